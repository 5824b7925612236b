"""What a user sees in a groom, measured from its strands: length, curl, colour, and whether it hangs.

`tressel eval` scores a model with these attributes, because point distances alone do not say
whether a groom got the look right: the per-attribute accuracy of generated grooms against the
held-out truth, with the image and with the image ignored, and the same measurements on real
portraits. Classes:

- length: the median strand arc length; buzz < 2.2 cm <= short < 9.5 cm <= medium < 23 cm
  <= long (the boundaries between the synthetic styles' length ranges).
- curl: `curliness`, one minus the median chord/arc ratio of 2 cm pieces of strand (0 for
  straight hair, near 1 for tight coils); straight < 0.03 <= wavy < 0.105 <= curly < 0.3
  <= coily, thresholds that classify about 88 % of synthetic grooms of known curl
  type correctly (frizz and gravity blur the boundaries). `coil` is the same for 1 cm pieces.
- colour: melanin (from rgb2material); blonde < 0.35 <= brown < 0.7 <= black.
- hang: the share of strands longer than 5 cm whose tip is at least 1 cm below their root.
"""

from __future__ import annotations

import numpy as np

LENGTH_BOUNDS_CM = (2.2, 9.5, 23.0)
LENGTH_NAMES = ("buzz", "short", "medium", "long")
COLOUR_BOUNDS = (0.35, 0.7)
COLOUR_NAMES = ("blonde", "brown", "black")
CURL_NAMES = ("straight", "wavy", "curly", "coily")


def _window_ratio(positions: np.ndarray, window_m: float) -> np.ndarray:
    """Median chord/arc of pieces `window_m` long, per strand (nan where a strand is shorter)."""
    seg = np.linalg.norm(np.diff(positions, axis=1), axis=-1)  # [N,V-1]
    arc = np.concatenate([np.zeros((len(seg), 1)), np.cumsum(seg, axis=1)], axis=1)
    total = arc[:, -1]
    ratios = np.full(len(positions), np.nan)
    for i in range(len(positions)):
        if total[i] < window_m * 1.5:
            continue
        starts = np.linspace(0, total[i] - window_m, 8)
        a = np.searchsorted(arc[i], starts)
        b = np.searchsorted(arc[i], starts + window_m)
        b = np.minimum(b, positions.shape[1] - 1)
        chord = np.linalg.norm(positions[i, b] - positions[i, a], axis=-1)
        length = np.maximum(arc[i, b] - arc[i, a], 1e-9)
        ratios[i] = np.median(chord / length)
    return ratios


def measure_groom(positions: np.ndarray, melanin: float | None = None,
                  max_strands: int = 400, seed: int = 0) -> dict:
    """Attributes of strands [N,V,3] (metres, Y up) and the hair's melanin, if known."""
    positions = np.asarray(positions, np.float64)
    if len(positions) > max_strands:
        rng = np.random.default_rng(seed)
        positions = positions[np.sort(rng.choice(len(positions), max_strands, replace=False))]
    out: dict = {}
    if len(positions) == 0:
        return {"strands": 0}
    seg = np.linalg.norm(np.diff(positions, axis=1), axis=-1).sum(1)
    length_cm = float(np.median(seg) * 100)
    out["length_cm"] = round(length_cm, 2)
    out["length_class"] = LENGTH_NAMES[int(np.searchsorted(LENGTH_BOUNDS_CM, length_cm))]
    chord = np.linalg.norm(positions[:, -1] - positions[:, 0], axis=-1)
    out["straightness"] = round(float(np.median(chord / np.maximum(seg, 1e-9))), 3)
    r2 = _window_ratio(positions, 0.02)
    r1 = _window_ratio(positions, 0.01)
    curliness = float(1 - np.nanmedian(r2)) if np.isfinite(r2).any() else 0.0
    coil = float(1 - np.nanmedian(r1)) if np.isfinite(r1).any() else 0.0
    out["curliness"] = round(curliness, 3)
    out["coil"] = round(coil, 3)
    out["curl_class"] = curl_class(curliness, coil, length_cm)
    long_enough = seg > 0.05
    if long_enough.any():
        below = positions[long_enough, -1, 1] < positions[long_enough, 0, 1] - 0.01
        out["tips_below_roots"] = round(float(below.mean()), 3)
    else:
        out["tips_below_roots"] = float("nan")
    if melanin is not None:
        out["melanin"] = round(float(melanin), 3)
        out["colour_class"] = colour_class(melanin)
    return out


def colour_class(melanin: float) -> str:
    return COLOUR_NAMES[int(np.searchsorted(COLOUR_BOUNDS, float(melanin)))]


# Curliness thresholds between the curl types, measured on synthetic grooms of each type.
CURL_BOUNDS = (0.03, 0.105, 0.3)


def curl_class(curliness: float, coil: float, length_cm: float) -> str:
    """Curl type from curliness; buzz-length hair counts as straight (too short to curl)."""
    if length_cm < LENGTH_BOUNDS_CM[0]:
        return "straight"
    return CURL_NAMES[int(np.searchsorted(CURL_BOUNDS, curliness))]
