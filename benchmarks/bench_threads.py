"""Benchmark: one groom job on an idle CPU against the same job with cores busy elsewhere.

A workstation running Maya or Houdini beside the daemon has cores the job cannot use. This
runs the same `tressel generate` (the shipped demo model, fixed seed) in fresh processes under
each thread policy, first with every core free and then with `--busy N` cores kept busy by
spinning processes (a DCC at work), and prints each time and its ratio to the idle default.
The policies are torch's default (one OpenMP thread per core, threads spinning while they
wait), `OMP_WAIT_POLICY=PASSIVE` (waiting threads sleep), one thread fewer than the cores, and
`auto` (what `tressel generate` and the daemon now do by default: the cores free at the job's
start, `tressel.cpu_threads`); the count auto chose is printed beside its time.

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


def run_job(env_extra: dict[str, str], steps: int, out: Path) -> tuple[float, float, str]:
    """(wall seconds of the whole command, diffusion seconds from its log, threads chosen)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "TRESSEL_THREADS")}
    env.update(env_extra)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "tressel.cli", "generate", str(PHOTO), "-o", str(out),
         "--steps", str(steps), "--no-progress", "--guides", "0"],
        env=env, capture_output=True, text=True, check=True,
    )
    wall = time.perf_counter() - start
    match = re.search(r"diffusion ([0-9.]+)s", result.stderr)
    chosen = re.search(r"(\d+) CPU thread", result.stderr)
    return (wall, float(match.group(1)) if match else float("nan"),
            chosen.group(1) if chosen else "?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=1, help="cores kept busy (default 1)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    # A fixed count equal to the cores is torch's own default (tressel then sets what torch
    # would have chosen anyway), so "default" still measures torch's behaviour.
    policies = {
        "default": {"TRESSEL_THREADS": str(cores)},
        "passive": {"TRESSEL_THREADS": str(cores), "OMP_WAIT_POLICY": "PASSIVE"},
        f"{max(cores - 1, 1)} threads": {"TRESSEL_THREADS": str(max(cores - 1, 1))},
        "auto": {"TRESSEL_THREADS": "auto"},
    }
    results: dict[tuple[str, str], float] = {}
    chosen: dict[tuple[str, str], list[str]] = {}
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
                        _, diffusion, threads = run_job(env, args.steps, out)
                        times[name].append(diffusion)
                        chosen.setdefault((load, name), []).append(threads)
                for name in policies:
                    results[(load, name)] = min(times[name])
            finally:
                for spinner in spinners:
                    spinner.terminate()
    base = results[("idle", "default")]
    print(f"{cores} cores; diffusion of the demo model, {args.steps} steps, best of "
          f"{args.repeats} (seconds, and ratio to the idle default)")
    for (load, name), seconds in results.items():
        note = f"  (threads chosen: {', '.join(chosen[(load, name)])})" if name == "auto" else ""
        print(f"  {load:<8} {name:<12} {seconds:7.2f} s  x{seconds / base:.2f}{note}")


if __name__ == "__main__":
    main()
