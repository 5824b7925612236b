"""Round-trip overhead of the daemon against calling `generate` in-process, in the same run.

    .venv/bin/python benchmarks/bench_daemon.py [--repeats 8] [--steps 2] [--max-strands 48]

A tiny random bundle (`tressel.random_bundle`), a 64x64 noise image and `crop=False` keep the
model's own work small, so what is measured is the daemon's cost around it. Three timings, each
the median of `--repeats`, interleaved so that load from other processes hits them alike:

  in-process   generate() + write_groom() to a temp file, models warm (the baseline)
  tiny job     client.submit() -> wait() over SSE -> fetch_result(): a new seed each time
  cached job   the same request again: submit() answered from the cache -> fetch_result()

It also prints the tiny job's time outside the engine: the round trip minus the daemon's own
started-to-finished time (upload, image check, queueing, SSE, download), which the model's
timing noise on a shared machine does not blur.

The daemon runs the real pipeline engine in its own process on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="diffusion steps per job")
    parser.add_argument("--max-strands", type=int, default=48)
    args = parser.parse_args()

    import numpy as np
    import OpenImageIO as oiio
    from tressel.client import Client, read_endpoint
    from tressel.pipeline import GenerateParams, generate
    from tressel.random_bundle import make_random_bundle
    from tressel.usd import write_groom

    work = Path(tempfile.mkdtemp(prefix="tressel_bench_daemon_"))
    bundle = make_random_bundle(work / "tiny-random", "tiny")
    image = work / "face.png"
    pixels = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    out = oiio.ImageOutput.create(str(image))
    out.open(str(image), oiio.ImageSpec(64, 64, 3, "uint8"))
    out.write_image(pixels)
    out.close()
    params = {"crop": False, "steps": args.steps, "max_strands": args.max_strands}
    write_options = {"guides": 8, "points_per_strand": 8}

    state = work / "state"
    env = dict(os.environ, TRESSEL_DAEMON_DIR=str(state), TRESSEL_MODELS_DIR=str(work / "m"))
    env.pop("TRESSEL_DAEMON_ENGINE", None)  # the real pipeline engine, never the test hook
    daemon = subprocess.Popen(
        [sys.executable, "-m", "tressel.daemon", "start", "--bundle", str(bundle.path),
         "--device", "cpu"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        client = None
        while client is None and time.monotonic() < deadline:
            endpoint = read_endpoint(state)
            if endpoint is not None and endpoint.pid == daemon.pid:
                client = Client(endpoint)
            else:
                time.sleep(0.1)
        if client is None:
            print("the daemon did not start", file=sys.stderr)
            return 1

        def in_process(seed: int) -> float:
            start = time.perf_counter()
            hair = generate(image, bundle, GenerateParams(seed=seed, **params))
            write_groom(hair, work / "inproc.usdc", **write_options)
            return time.perf_counter() - start

        def daemon_job(seed: int) -> float:
            start = time.perf_counter()
            job = client.submit(image, seed=seed, params=params, write_options=write_options)
            done = client.wait(job.id, timeout=300)
            client.fetch_result(job.id, work / "daemon.usdc")
            elapsed = time.perf_counter() - start
            # What the daemon adds around the engine, free of the model's own timing noise.
            beyond_engine.append(elapsed - (done.finished_at - done.started_at))
            return elapsed

        def cached_job(seed: int) -> float:
            start = time.perf_counter()
            job = client.submit(image, seed=seed, params=params, write_options=write_options)
            assert job.cached, "expected a cache hit"
            client.fetch_result(job.id, work / "cached.usdc")
            return time.perf_counter() - start

        beyond_engine: list[float] = []
        # Warm both sides: models loaded in this process and in the daemon.
        in_process(10_000)
        daemon_job(10_000)
        timings: dict[str, list[float]] = {"in-process": [], "tiny job": [], "cached job": []}
        beyond_engine.clear()
        for seed in range(args.repeats):
            timings["in-process"].append(in_process(seed))
            timings["tiny job"].append(daemon_job(seed))
            timings["cached job"].append(cached_job(seed))
    finally:
        daemon.terminate()
        daemon.wait(30)

    base = statistics.median(timings["in-process"])
    print(f"daemon round trip vs in-process generate+write_groom: tiny random bundle, "
          f"{args.steps} steps, <= {args.max_strands} strands, {args.repeats} repeats "
          f"(medians, {os.cpu_count()} CPU cores)")
    print(f"{'':12} {'median ms':>10} {'min ms':>8} {'vs in-process':>14} {'overhead ms':>12}")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:12} {median * 1e3:10.1f} {min(values) * 1e3:8.1f} "
              f"{median / base:13.2f}x {(median - base) * 1e3:12.1f}")
    print(f"tiny job time outside the engine (round trip - daemon's run time): median "
          f"{statistics.median(beyond_engine) * 1e3:.1f} ms, max {max(beyond_engine) * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
