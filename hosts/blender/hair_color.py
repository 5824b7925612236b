"""Recover the predicted melanin and redness from a groom layer's preview colour (no bpy).

Blender's USD importer brings the strands' `displayColor` in as a curve attribute but not the
layer's material inputs or provenance attributes, and Blender's Python has no `pxr` to read
them. Tressel writes that colour as an exact function of (melanin, redness): the d'Eon melanin
absorption turned into a colour by the inverse of Chiang et al. 2016's sigma_a mapping (see
`tressel.usd.material`). That function is inverted here, so the hair shader gets the predicted
values (to float32 precision) rather than a colour guess. Root darkness is not recoverable.
"""

from __future__ import annotations

import math

# The constants of tressel.usd.material (a test checks they agree): MaterialX's eumelanin and
# pheomelanin colours, and the azimuthal roughness the preview colour assumes.
EUMELANIN_COLOR = (0.657704, 0.498077, 0.254107)
PHEOMELANIN_COLOR = (0.829444, 0.67032, 0.349938)
PREVIEW_AZIMUTHAL_ROUGHNESS = 0.3


def _roughness_factor(b: float) -> float:
    return 5.969 - 0.215 * b + 2.532 * b**2 - 10.73 * b**3 + 5.574 * b**4 + 0.245 * b**5


def preview_color(melanin: float, redness: float) -> tuple[float, float, float]:
    """The colour Tressel's writer authors for (melanin, redness): the forward mapping."""
    amount = -math.log(max(1.0 - melanin, 1e-4))
    factor = _roughness_factor(PREVIEW_AZIMUTHAL_ROUGHNESS)
    rgb = []
    for eu, pheo in zip(EUMELANIN_COLOR, PHEOMELANIN_COLOR):
        sigma = amount * (1.0 - redness) * -math.log(eu) + amount * redness * -math.log(pheo)
        rgb.append(math.exp(-math.sqrt(max(sigma, 0.0)) * factor))
    return (rgb[0], rgb[1], rgb[2])


def melanin_from_preview_color(rgb: tuple[float, float, float]) -> tuple[float, float]:
    """(melanin, redness) whose preview colour is `rgb` (least squares over the 3 channels)."""
    factor = _roughness_factor(PREVIEW_AZIMUTHAL_ROUGHNESS)
    sigma = [(math.log(min(max(c, 1e-30), 1.0)) / factor) ** 2 for c in rgb]
    eu = [-math.log(c) for c in EUMELANIN_COLOR]
    pheo = [-math.log(c) for c in PHEOMELANIN_COLOR]
    # Normal equations of sigma = E * eu + P * pheo for the pigment amounts E and P.
    a11 = sum(x * x for x in eu)
    a12 = sum(x * y for x, y in zip(eu, pheo))
    a22 = sum(y * y for y in pheo)
    b1 = sum(x * s for x, s in zip(eu, sigma))
    b2 = sum(y * s for y, s in zip(pheo, sigma))
    det = a11 * a22 - a12 * a12
    eumelanin = max((a22 * b1 - a12 * b2) / det, 0.0)
    pheomelanin = max((a11 * b2 - a12 * b1) / det, 0.0)
    amount = eumelanin + pheomelanin
    if amount <= 1e-12:
        return 0.0, 0.0  # white hair: no pigment, redness has no meaning
    return 1.0 - math.exp(-amount), pheomelanin / amount
