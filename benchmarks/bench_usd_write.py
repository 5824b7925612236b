"""Benchmark: write 100,000 strands to a .usdc groom layer, against numpy.save of the same arrays.

numpy.save is the floor (writing the bytes). Both run in the same invocation, each in a fresh
child process that loads its input from disk first; peak memory is the peak resident size
during the write (VmHWM, reset just before it) minus the resident size before it, so it counts
only what the writer itself allocates (Linux only). It measures
two layers: 256 points per strand (no decimation) and 32 points per strand (arc-length
resampled, with the reported maximum deviation); the baseline for each saves the arrays that
end up in that layer.

    .venv/bin/python benchmarks/bench_usd_write.py [--strands 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_strands(num: int, points: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """Wavy strands falling from a hemisphere scalp, built in chunks to bound memory."""
    rng = np.random.default_rng(seed)
    positions = np.empty((num, points, 3), dtype=np.float32)
    polar = np.arccos(rng.uniform(0.15, 1.0, num))
    azimuth = rng.uniform(0.0, 2 * np.pi, num)
    normal = np.stack([np.sin(polar) * np.cos(azimuth), np.cos(polar),
                       np.sin(polar) * np.sin(azimuth)], axis=-1)
    roots = np.array([0.0, 1.6, 0.0]) + 0.095 * normal
    t = np.linspace(0.0, 1.0, points)[None, :, None]
    down = np.array([0.0, -1.0, 0.0])
    for start in range(0, num, 10000):
        sl = slice(start, start + 10000)
        n = normal[sl]
        side = np.cross(n, down)
        side /= np.maximum(np.linalg.norm(side, axis=1, keepdims=True), 1e-6)
        binormal = np.cross(n, side)
        count = len(n)
        turns = rng.uniform(2, 6, (count, 1, 1))
        angle = 2 * np.pi * turns * t + rng.uniform(0, 6.3, (count, 1, 1))
        curl = 0.03 * t * (np.cos(angle) * side[:, None] + np.sin(angle) * binormal[:, None])
        length = rng.uniform(0.12, 0.3, (count, 1, 1))
        path = n[:, None] * 0.35 * t + down * t**2 * 0.9 + curl
        positions[sl] = roots[sl, None] + length * path
    root_uv = np.stack([azimuth / (2 * np.pi), 1.0 - polar / (np.pi / 2)], axis=-1)
    return {"positions": positions, "root_uv": root_uv.astype(np.float32),
            "root_normals": normal.astype(np.float32)}


def _status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> None:
    """Start VmHWM afresh (Linux >= 4.0), so the peak covers only what follows."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _child(kind: str, input_dir: str, output: str, points: int, queue) -> None:
    import tressel.usd  # pxr and schema registration are not part of the write
    from tressel.usd.curves import tapered_widths

    arrays = {name: np.load(Path(input_dir) / f"{name}.npy")
              for name in ("positions", "root_uv", "root_normals")}
    if kind != "usd":
        # The floor saves the arrays the layer holds, at its point count; the parent
        # resampled them already, so the child allocates nothing before the save.
        arrays["positions"] = np.load(Path(input_dir) / f"positions_{points}.npy")
    else:
        from tressel.result import HairMaterial, HairResult, Provenance

        result = HairResult(
            positions=arrays["positions"], root_uv=arrays["root_uv"],
            root_positions=arrays["positions"][:, 0], root_normals=arrays["root_normals"],
            material=HairMaterial.from_raw([0.5] * 11), provenance=Provenance(seed=1),
        )
    before = _status_bytes("VmRSS")
    _reset_peak_rss()
    start = time.perf_counter()
    info = {}
    if kind == "usd":
        report = tressel.usd.write_groom(result, output, points_per_strand=points)
        info = {"max_deviation_mm": report.max_deviation * 1e3, "guides": report.num_guides,
                "phases": report.timings}
    else:
        positions = arrays["positions"]
        num = len(positions)
        with open(output, "wb") as out:
            np.save(out, positions)
            np.save(out, np.tile(tapered_widths(points, 1e-4, 2e-5), num))
            np.save(out, arrays["root_uv"])
            np.save(out, arrays["root_normals"])
            np.save(out, np.arange(num, dtype=np.int32))
            np.save(out, np.full(num, points, dtype=np.int32))
    seconds = time.perf_counter() - start
    peak = _status_bytes("VmHWM")
    queue.put({"seconds": seconds, "bytes": Path(output).stat().st_size,
               "peak_extra": max(peak - before, 0), **info})


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def _segment_lengths(positions: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(positions, axis=1), axis=2)


def measure(kind: str, input_dir: Path, output: Path, points: int) -> dict:
    ctx = multiprocessing.get_context("spawn")  # a fresh process: clean peak memory
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(kind, str(input_dir), str(output), points, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strands", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="keep the written files in this folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_usd_"))
    try:
        arrays = synthetic_strands(args.strands)
        for name, array in arrays.items():
            np.save(work / f"{name}.npy", array)
        from tressel.usd.curves import resample_strands

        for points in (256, 32):
            np.save(work / f"positions_{points}.npy",
                    resample_strands(arrays["positions"], points).points)
        input_mb = arrays["positions"].nbytes / 1e6
        print(f"{args.strands} strands x 256 points ({input_mb:.0f} MB of positions)")
        # Resampling alone, against the cheapest pass it must make: every segment's length.
        floor = min(_timed(_segment_lengths, arrays["positions"]) for _ in range(2))
        resample = min(_timed(resample_strands, arrays["positions"], 32) for _ in range(2))
        print(f"resample to 32 pts: {resample:.2f} s; segment lengths alone {floor:.2f} s "
              f"(x{resample / floor:.1f})")
        del arrays
        print(f"{'case':<28}{'time s':>9}{'size MB':>10}{'peak +MB':>10}   notes")
        rows = {}
        for points in (256, 32):
            for kind, suffix in (("numpy.save", "npy"), ("usd", "usdc")):
                out = work / f"groom_{points}.{suffix}"
                row = measure(kind, work, out, points)
                rows[(kind, points)] = row
                notes = ""
                if kind == "usd":
                    base = rows[("numpy.save", points)]
                    notes = (f"x{row['seconds'] / base['seconds']:.1f} time, "
                             f"x{row['bytes'] / base['bytes']:.2f} size, "
                             f"x{row['peak_extra'] / max(base['peak_extra'], 1):.1f} memory vs "
                             f"numpy.save; max deviation {row['max_deviation_mm']:.3f} mm; "
                             + ", ".join(f"{k} {v:.2f}s" for k, v in row["phases"].items()))
                label = f"{'write_groom' if kind == 'usd' else kind} {points} pts"
                print(f"{label:<28}{row['seconds']:>9.2f}{row['bytes'] / 1e6:>10.1f}"
                      f"{row['peak_extra'] / 1e6:>10.0f}   {notes}", flush=True)
        print(json.dumps({f"{k}_{p}": v for (k, p), v in rows.items()}))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in work.glob("groom_*"):
                shutil.copy(path, args.keep / path.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
