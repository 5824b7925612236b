"""Real portraits that installed packages ship, and what a bundle's grooms look like on them.

The demo model is trained on synthetic renders only; these photographs are the check that it
follows a real photo. They come from packages the tests install (scikit-image's astronaut,
Matplotlib's Grace Hopper, Mahotas' Luis Pedro and Lena) and from the checkout's
`tests/data/portraits/` (public-domain photos, see the README there: a very short haircut); a
portrait whose package or file is missing is skipped and reported as missing. `DESCRIPTIONS` is what a person sees in each photo: the
hair the groom should follow (our reading of the photos, not measured ground truth).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PORTRAITS = ("astronaut", "grace_hopper", "luispedro", "lena", "obama")
DESCRIPTIONS = {
    "astronaut": "short dark-brown hair, above the collar",
    "grace_hopper": "short grey-white hair, mostly under a uniform cap",
    "luispedro": "short dark hair",
    "lena": "long brown hair falling past the shoulder, under a hat",
    "obama": "very short, close-cropped dark hair with grey",
}
# The hair length class a person would give each photo (for the long-vs-short check).
# "very short": a buzz cut or close crop, which the issue wants under 5 cm.
EXPECTED_LENGTH = {"astronaut": "short", "grace_hopper": "short", "luispedro": "short",
                   "lena": "long", "obama": "very short"}
VERY_SHORT_CM = 5.0
# Photos kept in the checkout rather than in a package (not in the wheel).
CHECKOUT_PORTRAITS = Path(__file__).resolve().parents[2] / "tests" / "data" / "portraits"


def portrait_file(name: str) -> Path | None:
    """The image file of a portrait, or None when its package is not installed."""
    try:
        if name == "astronaut":
            import skimage.data

            return Path(skimage.data.__file__).parent / "astronaut.png"
        if name == "grace_hopper":
            import matplotlib.cbook

            return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        if name in ("luispedro", "lena"):
            import mahotas

            return Path(mahotas.__file__).parent / "demos" / "data" / f"{name}.jpg"
        if name == "obama":
            return CHECKOUT_PORTRAITS / "obama.jpg"
    except ImportError:
        return None
    raise ValueError(f"unknown portrait {name!r}")


def _mean_of_numbers(values: list[float]) -> float:
    """Mean of the values that are numbers, rounded; NaN when none is (a measure with nothing
    to measure on every seed, such as how far tips hang below roots on a short groom)."""
    numbers = [v for v in values if not np.isnan(v)]
    return round(float(np.mean(numbers)), 3) if numbers else float("nan")


def available_portraits() -> dict[str, Path]:
    out = {}
    for name in PORTRAITS:
        path = portrait_file(name)
        if path is not None and path.is_file():
            out[name] = path
        else:
            log.info("portrait %s is not available (its package is not installed)", name)
    return out


def evaluate_portraits(bundle, seeds: tuple[int, ...] = (0, 1), max_strands: int = 1500,
                       progress=None, cancel=None) -> dict:
    """Generate a groom per portrait and seed (default crop) and measure what a user sees."""
    from tressel.bundles import load_bundle
    from tressel.pipeline import GenerateParams, run_generate
    from tressel.progress import check_cancel
    from tressel.train.attributes import measure_groom

    bundle = load_bundle(bundle)
    found = available_portraits()
    rows = {}
    total = len(found) * len(seeds)
    done = 0
    for name, path in found.items():
        per_seed = []
        reading = None
        for seed in seeds:
            check_cancel(cancel)
            out = run_generate(path, bundle, GenerateParams(seed=seed, max_strands=max_strands))
            hair = out.hair
            per_seed.append(measure_groom(hair.positions, hair.material.melanin, seed=seed))
            reading = reading or out.hair_reading
            done += 1
            if progress is not None:
                progress("portraits", done, total)
        numeric = [k for k, v in per_seed[0].items() if isinstance(v, float)]
        mean = {k: _mean_of_numbers([r[k] for r in per_seed]) for k in numeric}
        rows[name] = {"description": DESCRIPTIONS[name], "seeds": list(seeds),
                      "per_seed": per_seed, "mean": mean}
        if reading is not None:
            # What the photo measured, and the model's own groom without it (first seed).
            alone = run_generate(path, bundle, GenerateParams(
                seed=seeds[0], max_strands=max_strands, hair_reading=False)).hair
            rows[name]["hair_reading"] = reading.describe()
            rows[name]["model_alone"] = measure_groom(alone.positions, alone.material.melanin,
                                                      seed=seeds[0])
    missing = [n for n in PORTRAITS if n not in found]
    return {"portraits": rows, "missing": missing, "checks": portrait_checks(rows)}


def portrait_checks(rows: dict) -> dict:
    """The issue's checks that the available portraits allow: long-haired photos give longer
    hair than short-haired ones, very short hair comes out under 5 cm, and long hair hangs
    (most tips below their roots)."""
    checks = {}
    longs = [n for n in rows if EXPECTED_LENGTH.get(n) == "long"]
    shorts = [n for n in rows if EXPECTED_LENGTH.get(n) in ("short", "very short")]
    if longs and shorts:
        shortest_long = min(rows[n]["mean"]["length_cm"] for n in longs)
        longest_short = max(rows[n]["mean"]["length_cm"] for n in shorts)
        checks["long_longer_than_short"] = {
            "pass": bool(shortest_long > 1.5 * longest_short),
            "detail": f"shortest long-haired photo {shortest_long:.1f} cm vs longest "
                      f"short-haired photo {longest_short:.1f} cm (pass: more than 1.5x)"}
    for n in rows:
        if EXPECTED_LENGTH.get(n) == "very short":
            length = rows[n]["mean"]["length_cm"]
            checks[f"{n}_under_5cm"] = {
                "pass": bool(length < VERY_SHORT_CM),
                "detail": f"{length:.1f} cm (pass: under {VERY_SHORT_CM:.0f} cm)"}
    for n in longs:
        share = rows[n]["mean"].get("tips_below_roots", float("nan"))
        checks[f"{n}_hangs"] = {"pass": bool(share > 0.5),
                                "detail": f"{share:.2f} of strands over 5 cm end below their "
                                          "root (pass: more than half)"}
    return checks
