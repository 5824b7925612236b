"""Benchmark: time of each `tressel generate` phase and peak memory, tiny and full-size bundles.

For each size a fresh process writes a bundle with random weights (`make_random_bundle`), then
runs the whole job on scikit-image's astronaut photo twice through `tressel.pipeline`: a cold
run (models loaded from disk) and a warm run (models from the cache, the daemon's case). It
prints the seconds per phase, the cold/warm ratio (what the model cache saves), the full/tiny
ratio per phase, and the peak resident memory of the process.

"full" has the released sizes (608M-parameter HDiT, ViT-L/14 DINOv2, 256x256 texture) with
few diffusion steps; on a 2-core CPU one diffusion step is about 1.5 min, so it runs once.

    .venv/bin/python benchmarks/bench_pipeline.py                    # tiny and full
    .venv/bin/python benchmarks/bench_pipeline.py --sizes tiny --repeats 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = ("load", "image", "face", "encode", "diffusion", "roots", "decode", "place",
          "material", "collide")


def peak_rss_gb() -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e9


def child_write(size: str, folder: Path) -> None:
    """Child process 1: write the random bundle (its memory does not count against the job)."""
    from tressel.random_bundle import make_random_bundle

    start = time.perf_counter()
    bundle = make_random_bundle(folder, size, seed=0)
    out = {"write_bundle_s": time.perf_counter() - start, "bundle_gb": bundle.total_bytes() / 1e9,
           "write_peak_rss_gb": peak_rss_gb()}
    print("RESULT " + json.dumps(out), flush=True)


def child_run(folder: Path, steps: int, strands: int | None, repeats: int) -> None:
    """Child process 2: run the job `repeats` times on the astronaut photo."""
    import numpy as np
    import skimage.data
    import torch
    from tressel.pipeline import GenerateParams, run_generate

    out: dict = {"steps": steps, "threads": torch.get_num_threads()}
    image = np.ascontiguousarray(skimage.data.astronaut())  # uint8 RGB portrait
    params = GenerateParams(seed=0, steps=steps, max_strands=strands)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run_generate(image, folder, params)
        runs.append({"total": time.perf_counter() - start, **result.timings})
        out["strands"] = result.hair.num_strands
        out["points"] = result.hair.points_per_strand
        out["finite"] = bool(np.isfinite(result.hair.positions).all())
    out["runs"] = runs
    out["peak_rss_gb"] = peak_rss_gb()
    print("RESULT " + json.dumps(out), flush=True)


def run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          check=False)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        raise SystemExit(f"child {args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(line[-1][len("RESULT "):])


def fmt(seconds: float) -> str:
    return f"{seconds:8.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,full")
    parser.add_argument("--steps-tiny", type=int, default=4)
    parser.add_argument("--steps-full", type=int, default=1)
    parser.add_argument("--strands-full", type=int, default=10000,
                        help="cap on decoded strands for the full size (random weights)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per size (tiny)")
    parser.add_argument("--write", nargs=2, metavar=("SIZE", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--run", metavar="FOLDER", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--strands", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        child_write(args.write[0], Path(args.write[1]))
        return 0
    if args.run:
        child_run(Path(args.run), args.steps, args.strands, args.repeats)
        return 0

    results = {}
    for size in args.sizes.split(","):
        full = size == "full"
        steps = args.steps_full if full else args.steps_tiny
        with tempfile.TemporaryDirectory(prefix="tressel-bench-") as tmp:
            folder = Path(tmp) / f"random-{size}"
            print(f"{size}: writing a random bundle ...", flush=True)
            written = run_child("--write", size, str(folder))
            print(f"{size}: running the job ...", flush=True)
            extra = ["--strands", str(args.strands_full)] if full else []
            ran = run_child("--run", str(folder), "--steps", str(steps), "--repeats",
                            str(1 if full else args.repeats), *extra)
        results[size] = {**written, **ran}

    for size, r in results.items():
        print(f"\n== {size}: {r['steps']} diffusion step(s), {r['strands']} strands x "
              f"{r['points']} points ({'all finite' if r['finite'] else 'NOT FINITE'}), "
              f"{r['threads']} CPU threads")
        print(f"bundle: {r['bundle_gb']:.3f} GB written in {r['write_bundle_s']:.1f} s "
              f"(peak RSS while writing {r['write_peak_rss_gb']:.2f} GB)")
        cold = r["runs"][0]
        warm = r["runs"][-1] if len(r["runs"]) > 1 else None
        header = f"{'phase':<10}{'cold s':>9}" + (f"{'warm s':>9}{'cold/warm':>11}"
                                                    if warm else "")
        print(header)
        for phase in (*PHASES, "total"):
            line = f"{phase:<10}{fmt(cold.get(phase, 0.0))}"
            if warm:
                w = warm.get(phase, 0.0)
                ratio = cold.get(phase, 0.0) / w if w > 1e-9 else float("nan")
                line += f" {fmt(w)}{ratio:10.1f}x"
            print(line)
        print(f"peak RSS of the job process: {r['peak_rss_gb']:.2f} GB")
    if "tiny" in results and "full" in results:
        tiny, full = results["tiny"]["runs"][0], results["full"]["runs"][0]
        print("\n== full / tiny, cold run, per phase")
        for phase in (*PHASES, "total"):
            t, f = tiny.get(phase, 0.0), full.get(phase, 0.0)
            ratio = f / t if t > 1e-9 else float("nan")
            print(f"{phase:<10}{fmt(t)}{fmt(f)}{ratio:10.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
