"""Benchmark: one groom job on an idle CPU against the same job with cores busy elsewhere.

A workstation running Maya or Houdini beside the daemon has cores the job cannot use. This
runs the same `tressel generate` (the shipped demo model, fixed seed) in fresh processes under
each thread policy, first with every core free and then with `--busy N` cores kept busy by
spinning processes (a DCC at work), and prints each time and its ratio to the idle default.
The policies are torch's default (one OpenMP thread per core, threads spinning while they
wait), `OMP_WAIT_POLICY=PASSIVE` (waiting threads sleep), and one thread fewer than the cores.

    .venv/bin/python benchmarks/bench_threads.py [--busy 1] [--repeats 2] [--steps 30]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "examples" / "astronaut.png"


def _spin() -> None:
    while True:
        pass


def run_job(env_extra: dict[str, str], steps: int, out: Path) -> tuple[float, float]:
    """(wall seconds of the whole command, diffusion seconds from its log)."""
    env = {**os.environ, **env_extra}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "tressel.cli", "generate", str(PHOTO), "-o", str(out),
         "--steps", str(steps), "--no-progress", "--guides", "0"],
        env=env, capture_output=True, text=True, check=True,
    )
    wall = time.perf_counter() - start
    match = re.search(r"diffusion ([0-9.]+)s", result.stderr)
    return wall, float(match.group(1)) if match else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=1, help="cores kept busy (default 1)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    policies = {
        "default": {},
        "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
        f"{max(cores - 1, 1)} threads": {"OMP_NUM_THREADS": str(max(cores - 1, 1))},
    }
    results: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "groom.usdc"
        run_job({}, args.steps, out)  # warm the file cache and imports
        for load in ("idle", f"{args.busy} busy"):
            spinners = []
            if load != "idle":
                spinners = [multiprocessing.Process(target=_spin, daemon=True)
                            for _ in range(args.busy)]
                for spinner in spinners:
                    spinner.start()
            try:
                # Interleave the policies so slow drift in the machine's load hits them alike.
                times: dict[str, list[float]] = {name: [] for name in policies}
                for _ in range(args.repeats):
                    for name, env in policies.items():
                        times[name].append(run_job(env, args.steps, out)[1])
                for name in policies:
                    results[(load, name)] = min(times[name])
            finally:
                for spinner in spinners:
                    spinner.terminate()
    base = results[("idle", "default")]
    print(f"{cores} cores; diffusion of the demo model, {args.steps} steps, best of "
          f"{args.repeats} (seconds, and ratio to the idle default)")
    for (load, name), seconds in results.items():
        print(f"  {load:<8} {name:<12} {seconds:7.2f} s  x{seconds / base:.2f}")


if __name__ == "__main__":
    main()
