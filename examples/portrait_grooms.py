"""Grooms of a bundle on the real portraits that installed packages ship, beside the photos.

One PNG, one row per portrait: the face crop the model saw, then the generated groom on
Tressel's synthetic head from the front and the side (`examples/render_groom.py`'s views),
with the measured length, curl and colour written under it:

    python examples/portrait_grooms.py docs/demo_portraits.png            # the default bundle
    python examples/portrait_grooms.py out.png --bundle runs/demo/bundle --seed 1

The portraits are those of `tressel.train.portraits` (scikit-image's astronaut, Matplotlib's
Grace Hopper, Mahotas' Luis Pedro and Lena, and the public-domain photos in the checkout's
tests/data/portraits); missing packages or files skip their photo. Lena's photo is
not reproduced (its rights are unclear); her row shows a grey panel instead, the groom is real.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

NOT_SHOWN = ("lena",)


def _label(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """The image with a white strip of text lines under it."""
    import cv2

    strip = np.full((16 * len(lines) + 6, image.shape[1], 3), 255, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(strip, line, (4, 15 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return np.concatenate([image, strip], axis=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("png", type=Path, help="image to write")
    parser.add_argument("--bundle", default=None, help="model bundle (default: the default one)")
    parser.add_argument("--seed", type=int, default=0, help="groom seed (default 0)")
    parser.add_argument("--size", type=int, default=224, help="pixels per panel (default 224)")
    args = parser.parse_args(argv)

    import cv2
    from tressel.bundles import default_bundle, load_bundle
    from tressel.pipeline import GenerateParams, run_generate
    from tressel.synth.render import render_groom, write_png
    from tressel.train.attributes import measure_groom
    from tressel.train.portraits import DESCRIPTIONS, available_portraits

    bundle = load_bundle(args.bundle) if args.bundle else default_bundle()
    found = available_portraits()
    if not found:
        parser.exit(1, "portrait_grooms: error: no portrait package is installed: "
                       "pip install scikit-image matplotlib mahotas\n")
    rows = []
    size = args.size
    for name, path in found.items():
        out = run_generate(path, bundle, GenerateParams(seed=args.seed))
        hair = out.hair
        m = hair.material
        views = [render_groom(hair.positions, m.melanin, m.redness,
                              (m.root_darkness_start, m.root_darkness_end,
                               m.root_darkness_strength), size=size, yaw_degrees=yaw)
                 for yaw in (0.0, 90.0)]
        if name in NOT_SHOWN:
            photo = np.full((size, size, 3), 160, np.uint8)
            cv2.putText(photo, "photo not", (size // 5, size // 2 - 8),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.6, (40, 40, 40), 1, cv2.LINE_AA)
            cv2.putText(photo, "reproduced", (size // 5, size // 2 + 16),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.6, (40, 40, 40), 1, cv2.LINE_AA)
        else:
            photo = cv2.resize(np.ascontiguousarray(out.crop_image), (size, size),
                               interpolation=cv2.INTER_AREA)
        seen = measure_groom(hair.positions, m.melanin)
        row = np.concatenate([photo, *views], axis=1)
        hangs = seen["tips_below_roots"]
        lines = [f"{name}: {DESCRIPTIONS[name]}",
                 (f"groom: {seen['length_cm']:.1f} cm ({seen['length_class']}), "
                  f"{seen['curl_class']}, melanin {seen['melanin']:.2f} ({seen['colour_class']})"
                  + ("" if np.isnan(hangs) else f", tips below roots {hangs:.2f}"))]
        if out.hair_reading is not None:
            measured = out.hair_reading.measurements
            lines.append(f"measured in the photo: hair falls {max(measured.fall_cm, 0):.0f} cm below the "
                         f"eyes, outline {measured.top_cm:.0f} cm above them")
        rows.append(_label(row, lines))
        print(f"{name}: {seen}")
    write_png(args.png, np.concatenate(rows, axis=0))
    print(f"{len(rows)} portraits, bundle {bundle.name} {bundle.content_hash[:12]} -> {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
