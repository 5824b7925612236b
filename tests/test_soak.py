"""A bounded soak of the daemon: a few hundred jobs from several clients at once.

Four client threads each run a mix of jobs on one daemon process (the test engine, so each job
takes milliseconds): plain jobs, exact repeats (cache hits), jobs that fail, jobs cancelled
while running. Every job must end in the state its kind implies, every result must be the
layer of its own request, and once warmed up the daemon's resident memory and open file
descriptors must stay flat while the rest of the jobs run. About 20-40 s on a shared 2-core CPU.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import pytest
from daemon_support import Daemon, wait_for, write_png
from tressel.client import Client, JobFailed, read_endpoint
from tressel.errors import Cancelled

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="reads /proc")]

CLIENTS = 4
JOBS_PER_CLIENT = 75  # 300 jobs in all
WARMUP = 15  # jobs per client before the baseline is taken


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _layer_request(path: Path) -> dict:
    """The request the test engine wrote into a layer (its JSON comment line)."""
    for line in path.read_text().splitlines():
        if line.startswith("# {"):
            return json.loads(line[2:])
    raise AssertionError(f"{path} is not a complete test layer")


def test_soak_many_jobs_from_several_clients(tmp_path):
    proc = Daemon(tmp_path / "state")
    proc.start()
    pid = proc.process.pid
    endpoint = read_endpoint(proc.state_dir)
    images = [write_png(tmp_path / f"in{i}.png", seed=7000 + i) for i in range(40)]
    outcomes: list[tuple[str, str, str]] = []  # (kind, job id, final state)
    errors: list[BaseException] = []
    warmed = threading.Barrier(CLIENTS + 1, timeout=120)
    finished = threading.Barrier(CLIENTS + 1, timeout=240)
    lock = threading.Lock()

    def one_job(client: Client, rng: random.Random, n: int, out_dir: Path) -> None:
        kind = rng.choices(["plain", "repeat", "fail", "cancel"], [6, 2, 1, 1])[0]
        image = images[rng.randrange(len(images))] if kind == "repeat" else \
            write_png(out_dir / f"{n}.png", seed=rng.randrange(10**9))
        params = {"steps": rng.randint(1, 3), "step_seconds": 0.0}
        if kind == "fail":
            params["fail"] = True
        if kind == "cancel":
            params = {"steps": 400, "step_seconds": 0.01}
        seed = 1 if kind == "repeat" else rng.randrange(1000)
        job = client.submit(image, seed=seed, params=params)
        if kind == "cancel":
            client.cancel(job.id)
            with pytest.raises(Cancelled):
                client.wait(job.id, timeout=60)
            state = "cancelled"
        elif kind == "fail":
            with pytest.raises(JobFailed, match="asked to fail"):
                client.wait(job.id, timeout=60)
            state = "failed"
        else:
            info = client.wait(job.id, timeout=60)
            layer = client.fetch_result(job.id, out_dir / f"{n}.usda")
            written = _layer_request(layer)
            assert written["image"] == image.name and written["seed"] == seed
            assert written["params"]["steps"] == params["steps"]
            layer.unlink()
            state = info.state
        with lock:
            outcomes.append((kind, job.id, state))

    def client_thread(index: int) -> None:
        out_dir = tmp_path / f"client{index}"
        out_dir.mkdir()
        client = Client(endpoint, timeout=30, state_dir=proc.state_dir)
        rng = random.Random(index)
        try:
            for n in range(JOBS_PER_CLIENT):
                if n == WARMUP:
                    warmed.wait()
                one_job(client, rng, n, out_dir)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            warmed.abort()
        finally:
            try:
                finished.wait()
            except threading.BrokenBarrierError:
                pass

    started = time.monotonic()
    try:
        threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        try:
            warmed.wait()
        except threading.BrokenBarrierError:
            pass
        rss0, fds0 = _rss(pid), _fds(pid)
        try:
            finished.wait()
        except threading.BrokenBarrierError:
            pass
        for t in threads:
            t.join(60)
        assert not errors, errors[:3]
        elapsed = time.monotonic() - started
        client = Client(endpoint, timeout=30)
        wait_for(lambda: client.health()["queue"] == {"queued": 0, "running": 0}, timeout=30)
        rss1, fds1 = _rss(pid), _fds(pid)

        # Nothing lost: every job ended, in the state its kind implies, and the daemon knows it.
        assert len(outcomes) == CLIENTS * JOBS_PER_CLIENT
        expected = {"plain": "succeeded", "repeat": "succeeded", "fail": "failed",
                    "cancel": "cancelled"}
        assert all(state == expected[kind] for kind, _, state in outcomes)
        recorded = {j.id: j.state for j in client.jobs(limit=1000)}
        assert all(recorded.get(job_id) == state for _, job_id, state in outcomes)
        assert not list((proc.state_dir / "inputs").iterdir())  # no orphaned uploads
        assert not list((proc.state_dir / "cache" / "tmp").iterdir())
        # Flat: after the warm-up, the rest of the jobs cost no memory or descriptors.
        assert fds1 <= fds0 + 4, (fds0, fds1)
        assert rss1 - rss0 < 25e6, f"resident memory grew {(rss1 - rss0) / 1e6:.1f} MB"
        print(f"soak: {len(outcomes)} jobs in {elapsed:.1f} s; rss {rss0 / 1e6:.0f} -> "
              f"{rss1 / 1e6:.0f} MB, fds {fds0} -> {fds1}")
    finally:
        proc.stop()
