"""The daemon writes Alembic grooms: a real daemon process, job format "abc"."""

from __future__ import annotations

import pytest
from daemon_support import FAST, WRITE, real_daemon, tiny_bundle, write_png

pytest.importorskip("alembic3d", reason="pip install 'tressel[alembic]' for Alembic")

pytestmark = pytest.mark.timeout(300)


def test_daemon_job_in_alembic_format(tmp_path):
    from test_alembic import read_curves

    bundle = tiny_bundle(tmp_path / "bundle")
    proc = real_daemon(tmp_path / "state", bundle)
    client = proc.start()
    try:
        image = write_png(tmp_path / "portrait.png", seed=1)
        options = {**WRITE, "guides": 10, "units": "cm"}
        job = client.submit(image, seed=3, params=FAST, write_options=options, format="abc")
        done = client.wait(job.id, timeout=180)
        assert done.state == "succeeded" and done.format == "abc"
        (tmp_path / "out").mkdir()
        groom = client.fetch_result(job.id, tmp_path / "out")
        assert groom.name == f"{job.id}.abc" and groom.read_bytes()[:5] == b"Ogawa"
        strands = read_curves(groom, "Strands")
        assert 0 < len(strands["counts"]) <= 48
        assert len(read_curves(groom, "Guides")["counts"]) == min(10, len(strands["counts"]))
        usd = client.submit(image, seed=3, params=FAST, write_options=options)
        assert client.wait(usd.id, timeout=180).state == "succeeded"  # a different cache entry
        assert client.fetch_result(usd.id, tmp_path / "groom.usdc").read_bytes()[:8] == b"PXR-USDC"
    finally:
        assert proc.stop() == 0
