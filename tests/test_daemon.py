"""The daemon with the real pipeline: a daemon process on 127.0.0.1 serving a tiny random bundle.

Covers the issue's done-criteria: the whole job cycle, 8 concurrent clients, cancel while
queued and while running, restart after `kill -9` mid-job, missing and wrong tokens, a
non-local Host header, corrupt, oversized and non-image uploads, and the cache hit. The restart
after `kill -9` is in test_daemon_restart.py.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
from pathlib import Path

import pytest
from daemon_support import FAST, WRITE, real_daemon, wait_for, write_png
from tressel.client import Client, DaemonError, Endpoint, JobFailed, read_endpoint
from tressel.errors import Cancelled

pytestmark = pytest.mark.timeout(300)

LONG = {**FAST, "steps": 400}  # minutes unless cancelled


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, bundle):
    proc = real_daemon(tmp_path_factory.mktemp("daemon") / "state", bundle)
    proc.client = proc.start()
    yield proc
    assert proc.stop() == 0


@pytest.fixture
def client(daemon) -> Client:
    return daemon.client


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_whole_job_cycle(daemon, client, bundle, tmp_path):
    from tressel.usd import read_groom

    image = write_png(tmp_path / "portrait.png", seed=1)
    job = client.submit(image, seed=7, params=FAST, write_options=WRITE)
    assert job.state in ("queued", "running") and job.bundle == "tiny-random"
    assert job.params["steps"] == 2 and job.params["seed"] == 7  # canonical, defaults filled
    assert "max_strands" in job.params and "device" not in job.params
    seen: list[tuple[str, int, int]] = []
    done = client.wait(job.id, progress=lambda *a: seen.append(a), timeout=180)
    assert done.state == "succeeded" and not done.cached and done.attempts == 1
    phases = [p for p, _, _ in seen]
    for phase in ("load", "encode", "diffusion", "decode", "write"):
        assert phase in phases, phases
    diffusion_steps = [(s, t) for p, s, t in seen if p == "diffusion"]
    assert (2, 2) in diffusion_steps and len(diffusion_steps) >= 3  # per step, not per phase
    layer = client.fetch_result(job.id, tmp_path / "out" / "groom.usdc")
    hair = read_groom(layer)
    assert 0 < hair.num_strands <= 48
    assert hair.provenance.image_sha256 == sha256(image)
    assert hair.provenance.seed == 7 and hair.provenance.bundle_hash == bundle.content_hash
    assert layer.read_bytes()[:8] == b"PXR-USDC"
    assert client.jobs(limit=3)[0].id == job.id

    text_job = client.submit(image, seed=7, params=FAST, write_options=WRITE, format="usda")
    client.wait(text_job.id, timeout=180)
    text = client.fetch_result(text_job.id, tmp_path / "out")  # a folder: named by job id
    assert text.name == f"{text_job.id}.usda" and text.read_text().startswith("#usda 1.0")

    health = client.health()
    assert health["devices"][0]["name"] == "cpu" and health["memory"]["rss_bytes"] > 0
    assert 0 < health["devices"][0]["memory_free"] <= health["devices"][0]["memory_total"]
    models = {m["name"]: m for m in client.models()}
    assert models["tiny-random"]["loaded"] and models["tiny-random"]["default"]
    assert client.unload_model("tiny-random")["loaded"] is False
    assert client.load_model("tiny-random")["loaded"] is True
    # After its first layer the daemon loads the compiled resampling loop, in the background.
    wait_for(lambda: "resampling: compiled loop loaded" in daemon.log_path.read_text(
        errors="replace"), timeout=120, interval=0.2)


def test_identical_request_is_answered_from_the_cache(client, tmp_path):
    image = write_png(tmp_path / "again.png", seed=2)
    first = client.submit(image, seed=3, params=FAST, write_options=WRITE)
    client.wait(first.id, timeout=180)
    a = client.fetch_result(first.id, tmp_path / "a.usdc")

    # The same request spelled differently (a default written out) is the same request.
    same = client.submit(image, seed=3, params={**FAST, "density_scale": 1.0},
                         write_options=WRITE)
    assert same.state == "succeeded" and same.cached
    assert same.started_at is None and same.attempts == 0  # the model never ran
    b = client.fetch_result(same.id, tmp_path / "b.usdc")
    assert a.read_bytes() == b.read_bytes()
    assert [e.type for e in client.events(same.id)] == ["state", "end"]

    other_seed = client.submit(image, seed=4, params=FAST, write_options=WRITE)
    assert not other_seed.cached
    client.wait(other_seed.id, timeout=180)
    assert client.fetch_result(other_seed.id, tmp_path / "c.usdc").read_bytes() != a.read_bytes()


def test_eight_concurrent_clients_nothing_lost_or_mixed(daemon, tmp_path):
    from tressel.usd import read_groom

    endpoint = read_endpoint(daemon.state_dir)
    results: dict[int, list[tuple[str, int, str, Path]]] = {}
    errors: list[BaseException] = []

    def one_client(index: int) -> None:
        try:
            own = Client(endpoint)  # a separate client, as separate host processes would have
            mine = []
            for n in range(2):
                image = write_png(tmp_path / f"c{index}_{n}.png", seed=100 + 10 * index + n)
                seed = 1000 + index * 10 + n
                job = own.submit(image, seed=seed, params=FAST, write_options=WRITE)
                mine.append((job.id, seed, sha256(image)))
            paths = []
            for job_id, seed, image_hash in mine:
                own.wait(job_id, timeout=240)
                layer = own.fetch_result(job_id, tmp_path / f"out{index}" / f"{job_id}.usdc")
                paths.append((job_id, seed, image_hash, layer))
            results[index] = paths
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=one_client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(280)
    assert not errors, errors
    assert sorted(results) == list(range(8))
    all_jobs = [entry for entries in results.values() for entry in entries]
    assert len({job_id for job_id, *_ in all_jobs}) == 16
    for job_id, seed, image_hash, layer in all_jobs:
        info = daemon.client.job(job_id)
        assert info.state == "succeeded" and info.seed == seed
        assert info.image_sha256 == image_hash
        provenance = read_groom(layer).provenance
        assert (provenance.seed, provenance.image_sha256) == (seed, image_hash)


def test_cancel_while_queued_and_while_running(client, tmp_path):
    running = client.submit(write_png(tmp_path / "long.png", seed=5), params=LONG)
    queued = client.submit(write_png(tmp_path / "next.png", seed=6), params=LONG)
    assert client.job(queued.id).state == "queued"
    assert client.cancel(queued.id).state == "cancelled"
    with pytest.raises(Cancelled):
        client.wait(queued.id, timeout=10)

    wait_for(lambda: client.job(running.id).phase == "diffusion"
             and client.job(running.id).step >= 1, timeout=120)
    client.cancel(running.id)
    with pytest.raises(Cancelled):
        client.wait(running.id, timeout=60)  # stops at the next step, not after 400
    info = client.job(running.id)
    assert info.state == "cancelled" and info.error == "cancelled while running"
    quick = client.submit(write_png(tmp_path / "after.png", seed=7), params=FAST,
                          write_options=WRITE)
    assert client.wait(quick.id, timeout=180).state == "succeeded"


def test_photo_without_a_face_fails_with_the_pipeline_message(client, tmp_path):
    job = client.submit(write_png(tmp_path / "noise.png", seed=8), params={"steps": 1})
    with pytest.raises(JobFailed) as exc:
        client.wait(job.id, timeout=180)
    assert "no face found in noise.png" in str(exc.value) and "--no-crop" in str(exc.value)


def raw_request(endpoint: Endpoint, method: str, path: str, headers: dict[str, str],
                body: bytes | None = None, host: str | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=host is not None)
        if host is not None:
            conn.putheader("Host", host)
        for key, value in headers.items():
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else {}
    finally:
        conn.close()


def test_missing_and_wrong_tokens_and_non_local_host(client):
    endpoint = client.endpoint
    job_id = client.jobs(limit=1)[0].id
    routes = [("GET", "/v1/health"), ("GET", "/v1/models"), ("GET", "/v1/jobs"),
              ("POST", "/v1/jobs"), ("GET", f"/v1/jobs/{job_id}"),
              ("GET", f"/v1/jobs/{job_id}/events"), ("GET", f"/v1/jobs/{job_id}/result"),
              ("DELETE", f"/v1/jobs/{job_id}"), ("POST", "/v1/models/tiny-random/unload"),
              ("POST", "/v1/daemon/shutdown")]
    for method, path in routes:
        status, problem = raw_request(endpoint, method, path, {})
        assert status == 401 and "missing token" in problem["detail"], (method, path)
        status, problem = raw_request(endpoint, method, path,
                                      {"Authorization": "Bearer not-the-token"})
        assert status == 401 and "wrong token" in problem["detail"], (method, path)
    status, _ = raw_request(endpoint, "GET", "/v1/health", {"Authorization": endpoint.token})
    assert status == 401  # the scheme is required

    good = {"Authorization": f"Bearer {endpoint.token}"}
    status, problem = raw_request(endpoint, "GET", "/v1/health", good, host="tressel.evil.com")
    assert status == 403 and "not local" in problem["detail"]
    status, _ = raw_request(endpoint, "GET", "/v1/health", good,
                            host=f"localhost:{endpoint.port}")
    assert status == 200
    assert client.health()["status"] == "ok"  # nothing above stopped or hurt it


def test_corrupt_oversized_and_non_image_uploads(client, tmp_path):
    import numpy as np
    from helpers import write_image

    good = write_png(tmp_path / "good.png", seed=9)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n" * 20)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    cases = {truncated: "truncated or corrupt", text: "not a readable", empty: "empty"}
    for path, message in cases.items():
        with pytest.raises(DaemonError) as exc:
            client.submit(path, params=FAST)
        assert exc.value.status == 400 and message in str(exc.value), (path, exc.value)

    # 1.2 Mpx of flat colour: a small file, but over the 1 Mpx limit this daemon has.
    wide = tmp_path / "wide.png"
    write_image(wide, np.full((1000, 1200, 3), 128, np.uint8))
    with pytest.raises(DaemonError) as exc:
        client.submit(wide, params=FAST)
    assert exc.value.status == 400 and "Mpx limit" in str(exc.value)

    big = tmp_path / "big.png"
    big.write_bytes(np.random.default_rng(0).bytes(1_300_000))
    with pytest.raises(DaemonError) as exc:  # refused by the client before uploading
        client.submit(big, params=FAST)
    assert exc.value.status == 413 and "upload limit" in str(exc.value)
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.png"
            f"\"\r\nContent-Type: image/png\r\n\r\n").encode() + big.read_bytes() + (
            f"\r\n--{boundary}--\r\n").encode()
    status, problem = raw_request(  # and by the daemon, for clients that do not check
        client.endpoint, "POST", "/v1/jobs",
        {"Authorization": f"Bearer {client.endpoint.token}",
         "Content-Type": f"multipart/form-data; boundary={boundary}"}, body)
    assert status == 413 and "--max-upload-mb" in problem["detail"]

    assert client.health()["status"] == "ok"
    job = client.submit(good, params=FAST, write_options=WRITE)
    assert client.wait(job.id, timeout=180).state == "succeeded"  # still serving
