"""Benchmark: write 100,000 strands to a .usdc groom layer, against numpy.save of the same arrays.

numpy.save is the floor (writing the bytes). Both run in the same invocation, each in a fresh
child process that loads its input from disk first (and torch, as the daemon has it loaded);
peak memory is the peak resident size during the write (VmHWM, reset just before it) minus
the resident size before it, so it counts only what the writer itself allocates (Linux only).
It measures two layers: 256 points per strand (no decimation) and 32 points per strand
(arc-length resampled, with the reported maximum deviation), each without guides and, at 256
points, with the default 2,000 clump guides; the baseline for each saves the arrays that end
up in that layer; each point count is also written with `width_variation=0.1` (per-strand
widths: USD stores them as they are instead of compressing the repeated taper), and every
layer's widths are read back, timed. The 32-point layer and the guided 256-point layer are
also written with the compiled resampling loop loaded first ("compiled"), as the daemon and
batch runs have it. Resampling to 32 points and picking the guides are also timed alone, the
resampling against the implementation before issue 19 (benchmarks/resample_previous.py),
against one numpy pass that only measures every segment's length, and with the compiled loop
(and what loading that loop costs a process).

    .venv/bin/python benchmarks/bench_usd_write.py [--strands 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # resample_previous


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


def _child(kind: str, input_dir: str, output: str, points: int, guides: int, variation: float,
           queue) -> None:
    import torch  # noqa: F401  (loaded, as in the daemon: the resampler's cumsum uses it)
    import tressel.usd  # pxr and schema registration are not part of the write
    from tressel.usd.curves import tapered_widths

    arrays = {name: np.load(Path(input_dir) / f"{name}.npy")
              for name in ("positions", "root_uv", "root_normals")}
    if kind == "numpy.save":
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
    if kind == "usd-compiled":
        from tressel.usd.curves import load_compiled_kernel

        load_compiled_kernel()  # loaded, as the daemon and batch runs have it after a groom
    before = _status_bytes("VmRSS")
    _reset_peak_rss()
    start = time.perf_counter()
    info = {}
    if kind.startswith("usd"):
        report = tressel.usd.write_groom(result, output, points_per_strand=points,
                                         guides=guides, width_variation=variation)
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


def read_widths_seconds(path: Path) -> float:
    """Seconds to open a written layer and read its strands' widths (as a renderer would)."""
    from pxr import Usd, UsdGeom

    start = time.perf_counter()
    stage = Usd.Stage.Open(str(path))
    prim = next(p for p in stage.Traverse() if p.IsA(UsdGeom.BasisCurves)
                and p.GetName() == "Strands")
    widths = UsdGeom.BasisCurves(prim).GetWidthsAttr().Get()
    seconds = time.perf_counter() - start
    del widths, stage
    return seconds


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def _segment_lengths(positions: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(positions, axis=1), axis=2)


def time_alone(positions: np.ndarray) -> dict[str, float]:
    """Resampling to 32 points and the default guides, each alone, in this process with torch
    loaded (as in the daemon); best of two for the resampling. Then the compiled resampling
    loop: the time to load it, and resampling with it."""
    import torch  # noqa: F401
    from resample_previous import resample_strands as previous_resample
    from tressel.geometry.guides import pick_guides, reconstruction_error
    from tressel.usd.curves import compute_threads, load_compiled_kernel, resample_strands

    floor = min(_timed(_segment_lengths, positions) for _ in range(2))
    before = min(_timed(previous_resample, positions, 32) for _ in range(2))
    one = min(_timed(resample_strands, positions, 32, "linear", True, None, 1) for _ in range(2))
    now = min(_timed(resample_strands, positions, 32) for _ in range(2))
    threads = compute_threads()
    print(f"resample to 32 pts: {now:.2f} s on {threads} threads, {one:.2f} s on one; before "
          f"issue 19 {before:.2f} s (x{before / now:.1f} faster now); segment lengths alone "
          f"{floor:.2f} s (now x{now / floor:.1f} that)")
    start = time.perf_counter()
    guide_set = pick_guides(positions, 2000, "clusters")
    picked = time.perf_counter() - start
    error = reconstruction_error(positions, guide_set)
    both = time.perf_counter() - start
    print(f"2,000 clump guides alone: {picked:.2f} s to pick, {both:.2f} s with the "
          f"reconstruction error (mean {error['mean'] * 1e3:.3f} mm, "
          f"p95 {error['p95'] * 1e3:.3f} mm)")
    # The compiled loop, as the daemon and batch runs use it once loaded.
    start = time.perf_counter()
    loaded = load_compiled_kernel()
    load_s = time.perf_counter() - start
    compiled = compiled_one = float("nan")
    if loaded:
        compiled_one = min(_timed(resample_strands, positions, 32, "linear", True, None, 1)
                           for _ in range(2))
        compiled = min(_timed(resample_strands, positions, 32) for _ in range(2))
        print(f"compiled loop: resample to 32 pts {compiled:.2f} s on {threads} threads, "
              f"{compiled_one:.2f} s on one (x{now / compiled:.1f} faster than numpy, x"
              f"{before / compiled:.1f} than before issue 19); loading it took {load_s:.2f} s, "
              "once per process")
    return {"resample32_s": now, "resample32_one_thread_s": one,
            "resample32_compiled_s": compiled, "resample32_compiled_one_thread_s": compiled_one,
            "compiled_load_s": load_s,
            "resample32_before_s": before, "segment_lengths_s": floor,
            "guides_s": both, "guides_error_mean_mm": error["mean"] * 1e3,
            "guides_error_p95_mm": error["p95"] * 1e3}


def measure(kind: str, input_dir: Path, output: Path, points: int, guides: int = 0,
            variation: float = 0.0) -> dict:
    ctx = multiprocessing.get_context("spawn")  # a fresh process: clean peak memory
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(kind, str(input_dir), str(output), points, guides,
                                            variation, queue))
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
        print(f"{args.strands} strands x 256 points ({input_mb:.0f} MB of positions); "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        alone = time_alone(arrays["positions"])
        del arrays
        print(f"{'case':<48}{'time s':>8}{'size MB':>9}{'peak +MB':>10}   notes")
        rows = {}
        # (kind, points, guides, width variation): varied widths are stored uncompressed.
        # "usd-compiled" writes with the compiled resampling loop loaded, as in the daemon.
        cases = [("numpy.save", 256, 0, 0.0), ("usd", 256, 0, 0.0), ("usd", 256, 0, 0.1),
                 ("usd", 256, 2000, 0.0), ("usd-compiled", 256, 2000, 0.0),
                 ("numpy.save", 32, 0, 0.0), ("usd", 32, 0, 0.0), ("usd", 32, 0, 0.1),
                 ("usd-compiled", 32, 0, 0.0)]
        for kind, points, guides, variation in cases:
            suffix = "npy" if kind == "numpy.save" else "usdc"
            out = work / f"groom_{kind}_{points}_{guides}_{variation}.{suffix}"
            row = measure(kind, work, out, points, guides, variation)
            rows[(kind, points, guides, variation)] = row
            notes = ""
            if kind != "numpy.save":
                base = rows[("numpy.save", points, 0, 0.0)]
                row["read_widths_s"] = read_widths_seconds(out)
                notes = (f"x{row['seconds'] / base['seconds']:.1f} numpy.save time, "
                         f"x{row['bytes'] / base['bytes']:.2f} size, "
                         f"x{row['peak_extra'] / max(base['peak_extra'], 1):.1f} memory; "
                         f"max deviation {row['max_deviation_mm']:.3f} mm; "
                         + ", ".join(f"{k} {v:.2f}s" for k, v in row["phases"].items())
                         + f"; reading its widths {row['read_widths_s']:.3f}s")
            label = (f"write_groom {points} pts, guides={guides}"
                     + (f", width var {variation}" if variation else "")
                     + (", compiled" if kind == "usd-compiled" else "")
                     if kind != "numpy.save" else f"numpy.save {points} pts")
            print(f"{label:<48}{row['seconds']:>8.2f}{row['bytes'] / 1e6:>9.1f}"
                  f"{row['peak_extra'] / 1e6:>10.0f}   {notes}", flush=True)
        def name(k: str, p: int, g: int, v: float) -> str:
            return (f"{p}_guides{g}" + (f"_widthvar{v}" if v else "")
                    + ("_compiled" if k == "usd-compiled" else ""))

        ratios = {f"write_groom_{name(k, p, g, v)}_vs_numpy_save":
                  rows[(k, p, g, v)]["seconds"] / rows[("numpy.save", p, 0, 0.0)]["seconds"]
                  for k, p, g, v in cases if k != "numpy.save"}
        ratios.update({f"peak_over_input_{name(k, p, g, v)}":
                       rows[(k, p, g, v)]["peak_extra"] / (input_mb * 1e6)
                       for k, p, g, v in cases if k != "numpy.save"})
        print("summary: " + ", ".join(f"{k} {v:.2f}" for k, v in {**alone, **ratios}.items()))
        print(json.dumps({"alone": alone, **{f"{k}_{name(k, p, g, v)}": row
                                             for (k, p, g, v), row in rows.items()}}))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in work.glob("groom_*"):
                shutil.copy(path, args.keep / path.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
