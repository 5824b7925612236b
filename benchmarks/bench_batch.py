"""Per-photo time of `tressel batch` against one `tressel generate` process per photo, same run.

    .venv/bin/python benchmarks/bench_batch.py [--photos 6] [--repeats 2] [--steps 2]
                                               [--model BUNDLE] [--device cpu]

Both sides are real processes of the installed CLI on the same photos and options, writing to
fresh folders (so `batch` skips nothing):

  generate   `tressel generate PHOTO -o OUT` once per photo: every photo pays the interpreter,
             torch import and model load (the baseline: a naive farm task per photo)
  batch      `tressel batch FOLDER -o OUT`: one process, one model load, the photos in turn

Repeats alternate the two so that load from other processes hits both alike; each figure is
the median. Without --model a tiny random bundle (`tressel.random_bundle`) and 64x64 noise
photos with --no-crop keep the model's own work small, so what is measured is mostly the
per-process cost a batch saves; with a real bundle (--model difflocks --device cuda) the same
script measures what it saves on real work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="diffusion steps per photo")
    parser.add_argument("--strands", default="200")
    parser.add_argument("--model", default=None, help="bundle (default: a tiny random one)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import numpy as np
    import OpenImageIO as oiio

    work = Path(tempfile.mkdtemp(prefix="tressel_bench_batch_"))
    model = args.model
    if model is None:
        from tressel.random_bundle import make_random_bundle

        model = str(make_random_bundle(work / "tiny-random", "tiny").path)
    photos = work / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for index in range(args.photos):
        pixels = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
        out = oiio.ImageOutput.create(str(photos / f"p{index}.png"))
        out.open(str(photos / f"p{index}.png"), oiio.ImageSpec(64, 64, 3, "uint8"))
        out.write_image(pixels)
        out.close()
    options = ["--model", model, "--device", args.device, "--steps", str(args.steps),
               "--strands", args.strands, "--no-crop", "--points", "16", "--guides", "16"]
    env = dict(os.environ, TRESSEL_MODELS_DIR=str(work / "store"))
    cli = [sys.executable, "-m", "tressel.cli"]

    def run(command: list[str]) -> None:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")

    per_process: list[float] = []
    batched: list[float] = []
    in_batch: list[float] = []  # seconds per photo inside the batch process (no startup)
    for repeat in range(args.repeats):
        start = time.perf_counter()
        for photo in sorted(photos.iterdir()):
            run([*cli, "generate", str(photo), "-o", str(work / f"gen{repeat}" / photo.stem),
                 "--no-progress", *options])
        per_process.append((time.perf_counter() - start) / args.photos)

        out = work / f"batch{repeat}"
        start = time.perf_counter()
        run([*cli, "batch", str(photos), "-o", str(out), "--progress", "none", *options])
        batched.append((time.perf_counter() - start) / args.photos)
        summary = json.loads((out / "tressel_batch.json").read_text())
        seconds = [o["seconds"] for o in summary["outcomes"] if o["status"] == "done"]
        assert len(seconds) == args.photos, summary
        in_batch.append(statistics.median(seconds[1:] or seconds))  # after the model load

    gen, bat = statistics.median(per_process), statistics.median(batched)
    print(f"photos: {args.photos}, repeats: {args.repeats}, steps: {args.steps}, "
          f"model: {Path(model).name}, device: {args.device}")
    print(f"  generate, a process per photo  {gen:8.2f} s/photo  (baseline)")
    print(f"  batch, one process             {bat:8.2f} s/photo  {gen / bat:6.1f}x faster")
    print(f"  (inside batch, after the model load: {statistics.median(in_batch):.2f} s/photo)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
