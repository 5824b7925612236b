"""Render a demo groom layer on Tressel's synthetic head, front and side, into one PNG.

The quick look used to check the demo model by eye, without a DCC:

    tressel generate examples/astronaut.png -o out/astronaut_groom.usdc
    python examples/render_groom.py out/astronaut_groom.usdc out/astronaut_groom.png

The strands are drawn with the synthetic-data renderer (`tressel.synth.render`) in the
groom's own material. The head is Tressel's procedural head, which is the head the demo
bundle's scalp belongs to; grooms from other bundles (DiffLocks) sit on a different head.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groom", type=Path, help="groom layer (.usdc/.usda) from tressel")
    parser.add_argument("png", type=Path, help="image to write")
    parser.add_argument("--size", type=int, default=320, help="pixels per view (default 320)")
    parser.add_argument("--yaw", type=float, nargs="+", default=[0.0, 90.0],
                        help="view angles in degrees about the vertical (default 0 90)")
    args = parser.parse_args(argv)

    from tressel.errors import TresselError
    from tressel.synth.render import render_groom, write_png
    from tressel.usd import read_groom

    try:
        hair = read_groom(args.groom)
    except TresselError as exc:
        parser.exit(1, f"render_groom: error: {exc}\n")
    m = hair.material
    views = [render_groom(hair.positions, m.melanin, m.redness,
                          (m.root_darkness_start, m.root_darkness_end, m.root_darkness_strength),
                          size=args.size, yaw_degrees=yaw) for yaw in args.yaw]
    write_png(args.png, np.concatenate(views, axis=1))
    print(f"{hair.num_strands:,} strands, {len(views)} views -> {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
