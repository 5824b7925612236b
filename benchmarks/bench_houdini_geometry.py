"""Benchmark: build Houdini curves from a groom layer (100,000 strands x 32 points by default).

What the Tressel Groom SOP's cook does, with the recording fake of `hou` (tests/fakes/hou.py)
standing in for Houdini's geometry: `read_layer` (open the layer with pxr, take its arrays as
buffers) then `build_geometry` (one createPoints, one createPolygons, one byte buffer per
attribute). The baseline, measured in the same run, is reading the layer alone; the ratio says
what building costs on top. The fake copies and checks every buffer it is given (as Houdini
does); a third row hands the same calls to a geometry that ignores them, so it isolates the
host's own Python (the per-curve grouping and the buffer joins). Houdini's own work behind each
call (allocating points and primitives) is not in these numbers.

    .venv/bin/python benchmarks/bench_houdini_geometry.py [--strands 100000] [--points 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests" / "fakes"),
                str(REPO / "hosts" / "houdini" / "python")]


def write_layer(path: Path, strands: int, points: int) -> None:
    from bench_usd_write import synthetic_strands
    from tressel.result import HairMaterial, HairResult, Provenance
    from tressel.usd import write_groom

    arrays = synthetic_strands(strands, points)
    result = HairResult(
        positions=arrays["positions"], root_uv=arrays["root_uv"],
        root_positions=arrays["positions"][:, 0], root_normals=arrays["root_normals"],
        material=HairMaterial.from_raw([0.5] * 11), provenance=Provenance(seed=1),
    )
    write_groom(result, path, points_per_strand=points, units="m", guides=2000)


class NullGeometry:
    """Takes the bulk calls and does nothing: what remains is the host code's own time."""

    def __init__(self, points: tuple) -> None:
        self._points = points  # made before timing: Houdini's hou.Point objects cost it

    def createPoints(self, positions):
        assert len(positions) == len(self._points)
        return self._points

    def createPolygons(self, points, is_closed=True):
        return ()

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strands", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import hou
    from tressel_houdini.geometry import build_geometry
    from tressel_houdini.layer import read_layer

    with tempfile.TemporaryDirectory(prefix="bench_houdini_") as work:
        layer = Path(work) / "groom.usdc"
        start = time.perf_counter()
        write_layer(layer, args.strands, args.points)
        print(f"layer: {args.strands} strands x {args.points} points "
              f"({layer.stat().st_size / 1e6:.1f} MB, written in "
              f"{time.perf_counter() - start:.1f} s)")
        read_times, total_times, build_times, host_times = [], [], [], []
        all_points = tuple(range(args.strands * args.points))
        for _ in range(args.repeats):
            start = time.perf_counter()
            groom = read_layer(layer, "strands")
            read_times.append(time.perf_counter() - start)
            del groom
            start = time.perf_counter()
            groom = read_layer(layer, "strands")
            middle = time.perf_counter()
            geo = hou.Geometry()
            built = build_geometry(hou, geo, groom)
            end = time.perf_counter()
            total_times.append(end - start)
            build_times.append(end - middle)
            assert built == {"curves": args.strands, "points": args.strands * args.points}
            assert geo.polygon_counts == [args.points] * args.strands
            start = time.perf_counter()
            build_geometry(hou, NullGeometry(all_points), groom)
            host_times.append(time.perf_counter() - start)
            del geo, groom
        read, total, build, host = (statistics.median(t) for t in (
            read_times, total_times, build_times, host_times))
        print(f"{'case':<34}{'median s':>10}")
        print(f"{'read_layer alone (baseline)':<34}{read:>10.3f}")
        print(f"{'read_layer + build_geometry':<34}{total:>10.3f}   x{total / read:.2f} baseline")
        print(f"{'  of which build_geometry':<34}{build:>10.3f}   "
              f"{build / (args.strands * args.points) * 1e9:.0f} ns per point")
        print(f"{'  host code alone (null geometry)':<34}{host:>10.3f}   "
              f"{host / (args.strands * args.points) * 1e9:.0f} ns per point")


if __name__ == "__main__":
    main()
