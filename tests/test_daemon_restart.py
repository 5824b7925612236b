"""Crash safety with the real pipeline: `kill -9` of the daemon mid-job, then a restart.

Finished results must be intact, the interrupted job re-queued (attempt 2) and finished ahead of
the jobs that waited behind it, and the cache must hold no half-written layer.
"""

from __future__ import annotations

import pytest
from daemon_support import FAST, WRITE, real_daemon, wait_for, write_png

pytestmark = pytest.mark.timeout(300)


def test_restart_after_kill_9_mid_job(tmp_path, bundle):
    from tressel.usd import read_groom

    proc = real_daemon(tmp_path / "state", bundle)
    client = proc.start()
    try:
        finished = client.submit(write_png(tmp_path / "done.png", seed=10), params=FAST,
                                 write_options=WRITE)
        client.wait(finished.id, timeout=180)
        before = client.fetch_result(finished.id, tmp_path / "before.usdc").read_bytes()

        interrupted = client.submit(write_png(tmp_path / "cut.png", seed=11),
                                    params={**FAST, "steps": 8}, write_options=WRITE)
        waiting = client.submit(write_png(tmp_path / "later.png", seed=12), params=FAST,
                                write_options=WRITE)
        wait_for(lambda: client.job(interrupted.id).phase == "diffusion"
                 and client.job(interrupted.id).step >= 1, timeout=120)
        proc.kill()  # SIGKILL: no handler, no cleanup, no chance to finish a write

        client = proc.start()
        # The interrupted job is re-queued (attempt 2), ahead of the one that waited.
        info = client.job(interrupted.id)
        assert info.state in ("queued", "running") and info.error is None
        assert client.wait(interrupted.id, timeout=240).attempts == 2
        assert client.wait(waiting.id, timeout=240).state == "succeeded"
        assert client.job(interrupted.id).finished_at <= client.job(waiting.id).started_at

        after = client.fetch_result(finished.id, tmp_path / "after.usdc").read_bytes()
        assert after == before  # finished results survive intact
        cache = proc.state_dir / "cache"
        assert not [p for p in cache.rglob("*") if p.name.startswith(".")]  # no temp files
        entries = [p for p in cache.rglob("*.usdc")]
        assert len(entries) == 3
        for entry in entries:
            assert read_groom(entry).num_strands > 0  # every cached layer is whole
    finally:
        proc.stop()
