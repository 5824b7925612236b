"""The daemon's first job after start against a warm second job, phase by phase, in one run.

    .venv/bin/python benchmarks/bench_daemon_first_job.py [--rounds 2] [--steps 30] [--bundle B] [--preload]

Each round starts a fresh daemon (empty state folder, so nothing is cached; `--device cpu`,
the default bundle: the shipped demo model unless `--bundle`) and times:

  start -> ready   `python -m tressel.daemon start` until the endpoint file names it and it
                   answers `GET /v1/health` (imports, socket, workers)
  first job        submit examples/astronaut.png -> SSE wait -> fetch the layer
  second job       the same request with another seed (the same seed would be a cache hit)

and the phases of both jobs from the daemon's log: the pipeline's own timings line ("groom:
... (load 3.08s, image ..., encode ..., diffusion ...)": load is the bundle and its networks,
encode the image encoder's forward) and the engine's "layer written in" line. The first job's
extra cost is printed as a ratio to the second job of the same daemon; the best of the rounds
is kept per figure.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "examples" / "astronaut.png"


def _phases(log_text: str, job_id: str) -> dict[str, float]:
    """Phase seconds of one job from the daemon log (the job's own lines, by id and order)."""
    lines = log_text.splitlines()
    start = next(i for i, line in enumerate(lines) if f"job {job_id} running" in line)
    phases: dict[str, float] = {}
    for line in lines[start:]:
        if "groom:" in line and "strands x" in line:
            inside = line[line.rindex("(") + 1:line.rindex(")")]
            phases.update({name: float(s) for name, s in re.findall(r"(\w+) ([0-9.]+)s", inside)})
        elif f"job {job_id}:" in line and "layer written in" in line:
            phases["write"] = float(re.search(r"written in ([0-9.]+)s", line).group(1))
            break
    return phases


def one_round(work: Path, args: argparse.Namespace) -> dict[str, float]:
    from tressel.client import Client, DaemonError, read_endpoint

    state = work / "state"
    env = dict(os.environ, TRESSEL_DAEMON_DIR=str(state))
    env.pop("TRESSEL_DAEMON_ENGINE", None)  # the real pipeline engine, never the test hook
    command = [sys.executable, "-m", "tressel.daemon", "start", "--device", "cpu"]
    if args.bundle:
        command += ["--bundle", args.bundle]
    if args.preload:
        command.append("--preload")
    started = time.perf_counter()
    daemon = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out: dict[str, float] = {}
    try:
        client = None
        deadline = time.monotonic() + 300
        while client is None:
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError(f"the daemon did not start; see {state / 'daemon.log'}")
            endpoint = read_endpoint(state)
            if endpoint is not None and endpoint.pid == daemon.pid:
                try:
                    candidate = Client(endpoint, state_dir=state)
                    candidate.health()
                    client = candidate
                except (DaemonError, OSError):
                    time.sleep(0.02)
            else:
                time.sleep(0.02)
        out["start -> ready"] = time.perf_counter() - started
        params = {"steps": args.steps}
        for name, seed in (("first", 0), ("second", 1)):
            begin = time.perf_counter()
            job = client.submit(PHOTO, seed=seed, params=params)
            done = client.wait(job.id, timeout=1800)
            if done.state != "succeeded":
                raise RuntimeError(f"{name} job {done.state}: {done.error}")
            client.fetch_result(job.id, work / f"{name}.usdc")
            out[f"{name} job"] = time.perf_counter() - begin
            log_text = (state / "daemon.log").read_text(encoding="utf-8")
            for phase, seconds in _phases(log_text, job.id).items():
                out[f"{name} {phase}"] = seconds
            threads = re.search(rf"job {job.id}: (\d+) CPU thread", log_text)
            out[f"{name} threads"] = float(threads.group(1)) if threads else float("nan")
    finally:
        daemon.terminate()
        daemon.wait(60)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="fresh daemons (default 2)")
    parser.add_argument("--steps", type=int, default=30, help="diffusion steps (default 30)")
    parser.add_argument("--bundle", help="model bundle (default: the daemon's default)")
    parser.add_argument("--preload", action="store_true",
                        help="start the daemons with --preload (networks and head field at start)")
    args = parser.parse_args()
    rounds = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="tressel_bench_first_") as work:
            rounds.append(one_round(Path(work), args))
    best = {key: min(r[key] for r in rounds) for key in rounds[0]}
    print(f"daemon first job vs second job: {args.bundle or 'default bundle'}, {PHOTO.name}, "
          f"{args.steps} steps, CPU ({os.cpu_count()} cores), best of {args.rounds} fresh "
          f"daemon(s){', --preload' if args.preload else ''}; threads per job "
          f"{best.get('first threads'):.0f}")
    print(f"  start -> ready  {best['start -> ready']:7.2f} s")
    phases = [k.split(" ", 1)[1] for k in best if k.startswith("first ") and k != "first job"
              and k != "first threads"]
    print(f"  {'':16} {'first s':>8} {'second s':>9} {'first/second':>13}")
    for phase in ["job", *phases]:
        first, second = best[f"first {phase}"], best.get(f"second {phase}", float("nan"))
        ratio = f"{first / second:12.2f}x" if second > 0 else f"{'-':>13}"
        print(f"  {phase:<16} {first:8.2f} {second:9.2f} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
