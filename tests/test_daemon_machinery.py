"""The daemon's own machinery on a real daemon process with the test engine (jobs of exact length).

Queue order and positions, SSE resumption, cancellation races, graceful stop, repeated crashes,
path submissions, request validation and the single-instance lock: behaviour that needs jobs
whose timing the test controls. The done-criteria with the real pipeline are in
test_daemon.py.
"""

from __future__ import annotations

import http.client
import json
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from daemon_support import PYTHON, REPO, SLOW, Daemon, wait_for, write_png
from tressel.client import (
    Client,
    DaemonError,
    JobFailed,
    read_endpoint,
)
from tressel.errors import Cancelled

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    root = tmp_path_factory.mktemp("machinery")
    allowed = root / "farm"
    allowed.mkdir()
    proc = Daemon(root / "state", args=["--allow-root", str(allowed)])
    client = proc.start()
    proc.allowed = allowed
    proc.client = client
    yield proc
    proc.stop()


@pytest.fixture
def client(daemon) -> Client:
    return daemon.client


@pytest.fixture
def image(tmp_path) -> Path:
    return write_png(tmp_path / "portrait.png", seed=int(time.monotonic_ns() % 10**6))


def idle(client: Client) -> None:
    """Wait until earlier tests' jobs have drained (tests share one daemon)."""
    wait_for(lambda: client.health()["queue"] == {"queued": 0, "running": 0}, timeout=60)


def test_endpoint_file_is_private_and_names_this_daemon(daemon):
    path = daemon.state_dir / "daemon.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    endpoint = read_endpoint(daemon.state_dir)
    assert endpoint.pid == daemon.process.pid and endpoint.host == "127.0.0.1"
    assert len(endpoint.token) >= 32


def test_jobs_run_in_submission_order_with_queue_positions(client, tmp_path):
    idle(client)
    images = [write_png(tmp_path / f"q{i}.png", seed=1000 + i) for i in range(4)]
    first = client.submit(images[0], params={"steps": 20, "step_seconds": 0.05})
    wait_for(lambda: client.job(first.id).state == "running")
    rest = [client.submit(p, params={"steps": 2, "step_seconds": 0.01}) for p in images[1:]]
    assert [client.job(j.id).queue_position for j in rest] == [0, 1, 2]
    seen: list[tuple[str, int, int]] = []
    client.wait(rest[-1].id, progress=lambda *a: seen.append(a), timeout=60)
    assert ("queued", 2, 0) in seen and ("queued", 0, 0) in seen  # position moved up
    assert seen.index(("queued", 2, 0)) < seen.index(("queued", 0, 0))
    finished = [client.job(j.id) for j in [first, *rest]]
    assert all(j.state == "succeeded" for j in finished)
    starts = [j.started_at for j in finished]
    assert starts == sorted(starts)


def test_events_resume_after_last_event_id(client, image):
    idle(client)
    job = client.submit(image, params={"steps": 12, "step_seconds": 0.05})
    first_part = []
    for event in client.events(job.id):
        if event.type == "progress":
            first_part.append(event)
        if len(first_part) == 3:
            break
    rest = list(client.events(job.id, last_event_id=first_part[-1].id))
    steps = [e.data["step"] for e in first_part + rest
             if e.type == "progress" and e.data["phase"] == "diffusion"]
    assert steps == list(range(13))  # every step exactly once across the two connections
    assert rest[-1].type == "end" and rest[-1].data["state"] == "succeeded"


def test_events_of_a_finished_job_end_at_once(client, image):
    job = client.submit(image, params={"steps": 1})
    client.wait(job.id, timeout=30)
    events = list(client.events(job.id))
    assert [e.type for e in events] == ["state", "end"]


def test_cancel_queued_and_running(daemon, client, tmp_path):
    idle(client)
    running = client.submit(write_png(tmp_path / "r.png", seed=1), params=SLOW)
    queued = client.submit(write_png(tmp_path / "q.png", seed=2), params=SLOW)
    wait_for(lambda: client.job(running.id).state == "running")
    assert client.cancel(queued.id).state == "cancelled"
    with pytest.raises(Cancelled):
        client.wait(queued.id, timeout=5)
    steps = []
    waiter = threading.Thread(
        target=lambda: pytest.raises(Cancelled, client.wait, running.id,
                                     progress=lambda *a: steps.append(a), timeout=30))
    waiter.start()
    wait_for(lambda: client.job(running.id).step >= 2)
    t0 = time.monotonic()
    client.cancel(running.id)
    waiter.join(30)
    assert not waiter.is_alive()
    assert time.monotonic() - t0 < 5  # stopped at the next step, not after 200
    info = client.job(running.id)
    assert info.state == "cancelled" and info.error == "cancelled while running"
    with pytest.raises(DaemonError) as exc:
        client.cancel(running.id)
    assert exc.value.status == 409 and "already cancelled" in str(exc.value)
    with pytest.raises(DaemonError) as exc:
        client.fetch_result(running.id, tmp_path / "x.usdc")
    assert exc.value.status == 409
    # nothing half written for the cancelled job
    assert not list((daemon.state_dir / "cache").glob("*/.*"))


def test_cancel_right_after_submit_always_wins(client, tmp_path):
    # Races the worker's claim of the job: the cancel must never be lost.
    idle(client)
    for i in range(6):
        job = client.submit(write_png(tmp_path / f"race{i}.png", seed=500 + i),
                            params={"steps": 40, "step_seconds": 0.02})
        client.cancel(job.id)
        with pytest.raises(Cancelled):
            client.wait(job.id, timeout=30)


def test_failed_job_reports_the_engine_message(client, image):
    job = client.submit(image, params={"fail": True, "steps": 1})
    with pytest.raises(JobFailed) as exc:
        client.wait(job.id, timeout=30)
    assert "asked to fail" in str(exc.value)
    assert client.job(job.id).state == "failed"


def test_wait_times_out_without_cancelling(client, image):
    idle(client)
    job = client.submit(image, params={"steps": 40, "step_seconds": 0.05})
    with pytest.raises(TimeoutError):
        client.wait(job.id, timeout=0.5)
    assert client.job(job.id).state in ("queued", "running")
    client.cancel(job.id)


def test_request_validation_errors(client, image):
    with pytest.raises(DaemonError) as exc:
        client.submit(image, params={"stepz": 3})
    assert exc.value.status == 422 and "stepz" in str(exc.value)
    with pytest.raises(DaemonError) as exc:
        client.submit(image, format="obj")
    assert exc.value.status == 422 and "format" in str(exc.value)
    with pytest.raises(DaemonError) as exc:
        client.submit(image, bundle="missing-model")
    assert exc.value.status == 422 and "tressel models list" in str(exc.value)
    status, _, body = client.request("POST", "/v1/jobs", body=b"{}",
                                     headers={"Content-Type": "application/json"})
    assert status == 415 and b"multipart/form-data" in body
    status, _, body = client.request("GET", "/v1/jobs/nope")
    assert status == 404 and json.loads(body)["detail"].startswith("no job 'nope'")
    status, _, body = client.request("GET", "/v1/jobs?state=bogus")
    assert status == 422


def test_path_jobs_only_under_allowed_roots(daemon, client, tmp_path):
    inside = write_png(daemon.allowed / "farm_shot.png", seed=77)
    job = client.submit(inside, server_path=True, params={"steps": 1})
    assert client.wait(job.id, timeout=30).image_name == "farm_shot.png"
    outside = write_png(tmp_path / "elsewhere.png", seed=78)
    with pytest.raises(DaemonError) as exc:
        client.submit(outside, server_path=True)
    assert exc.value.status == 403 and "--allow-root" in str(exc.value)
    link = daemon.allowed / "sneaky.png"
    link.symlink_to(outside)  # a link inside a root must not reach outside it
    with pytest.raises(DaemonError) as exc:
        client.submit(link, server_path=True)
    assert exc.value.status == 403
    with pytest.raises(DaemonError) as exc:
        client.submit("relative.png", server_path=True)
    assert exc.value.status == 422


def test_list_and_models(client, image):
    job = client.submit(image, seed=5, params={"steps": 1})
    client.wait(job.id, timeout=30)
    listed = client.jobs(limit=5)
    assert listed[0].id == job.id and len(listed) <= 5
    assert all(j.state == "succeeded" for j in client.jobs(state="succeeded"))
    models = client.models()
    assert models[0]["default"] is True
    assert client.load_model(models[0]["name"])["loaded"] is True


def test_second_start_says_one_is_running(daemon):
    result = subprocess.run(
        [PYTHON, "-m", "tressel.daemon", "start"], env=daemon.env(), cwd=REPO,
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert "already running" in result.stderr and str(daemon.process.pid) in result.stderr
    assert daemon.client.health()["pid"] == daemon.process.pid


def test_graceful_stop_requeues_the_running_job_and_restart_finishes_it(tmp_path):
    proc = Daemon(tmp_path / "state")
    client = proc.start()
    job = client.submit(write_png(tmp_path / "a.png", seed=3),
                        params={"steps": 100, "step_seconds": 0.05})
    wait_for(lambda: client.job(job.id).step >= 1)
    assert proc.stop() == 0
    assert read_endpoint(proc.state_dir) is None  # removed on a clean stop
    client = proc.start()
    info = client.wait(job.id, timeout=60)
    assert info.state == "succeeded" and info.attempts == 1  # a clean stop costs no attempt
    proc.stop()


def test_job_interrupted_twice_by_crashes_is_failed_not_retried_forever(tmp_path):
    proc = Daemon(tmp_path / "state")
    client = proc.start()
    job = client.submit(write_png(tmp_path / "a.png", seed=4),
                        params={"steps": 400, "step_seconds": 0.05})
    for attempt in (1, 2):
        current = client
        wait_for(lambda c=current: c.job(job.id).state == "running", timeout=60)
        assert current.job(job.id).attempts == attempt
        proc.kill()
        client = proc.start()
    info = client.job(job.id)
    assert info.state == "failed" and "2 times" in info.error
    proc.stop()


def test_kill_during_the_layer_write_leaves_no_half_written_result(tmp_path):
    proc = Daemon(tmp_path / "state")
    client = proc.start()
    try:
        job = client.submit(write_png(tmp_path / "a.png", seed=6),
                            params={"steps": 1, "write_seconds": 2.0})
        wait_for(lambda: client.job(job.id).phase == "write", timeout=60)
        proc.kill()
        cache = proc.state_dir / "cache"
        partial = [p for p in cache.rglob("*") if p.is_file()]
        assert len(partial) == 1 and partial[0].name.startswith(".")  # only the temp file
        assert "complete" not in partial[0].read_text()

        client = proc.start()
        assert not partial[0].exists()  # swept at start
        info = client.wait(job.id, timeout=60)
        assert info.state == "succeeded" and info.attempts == 2
        files = [p for p in cache.rglob("*") if p.is_file()]
        assert len(files) == 1 and files[0].read_text().endswith("# complete\n")
    finally:
        proc.stop()


def test_host_header_with_port_and_ipv4_loopback_variants(client):
    port = client.endpoint.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.2", f"[::1]:{port}"):
        assert _status_with_host(client, host) == 200, host
    for host in ("evil.example", f"evil.example:{port}", "192.168.1.5", "127.0.0.1.evil.com"):
        assert _status_with_host(client, host) == 403, host


def _status_with_host(client: Client, host: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", client.endpoint.port, timeout=10)
    try:
        conn.putrequest("GET", "/v1/health", skip_host=True)
        conn.putheader("Host", host)
        conn.putheader("Authorization", f"Bearer {client.endpoint.token}")
        conn.endheaders()
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_cli_status_logs_and_stop(daemon, tmp_path):
    # Runs last in this module: it stops the shared daemon.
    env = daemon.env()
    status = subprocess.run([PYTHON, "-m", "tressel.daemon", "status"], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    assert status.returncode == 0 and f"pid {daemon.process.pid}" in status.stdout
    assert "device cpu" in status.stdout
    logs = subprocess.run([PYTHON, "-m", "tressel.daemon", "logs", "-n", "5"], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert logs.returncode == 0 and logs.stdout.count("\n") == 5
    stop = subprocess.run([PYTHON, "-m", "tressel.daemon", "stop"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert daemon.process.wait(10) == 0
    status = subprocess.run([PYTHON, "-m", "tressel.daemon", "status"], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    assert status.returncode == 3 and "not answering" in status.stdout


def test_result_cache_keeps_the_recently_used_layers_under_its_limit(tmp_path):
    # Each test-engine layer is ~250 bytes: a 600-byte limit holds two of them.
    proc = Daemon(tmp_path / "state", args=["--cache-max-gb", str(600 / 2**30)])
    client = proc.start()
    try:
        images = [write_png(tmp_path / f"p{i}.png", seed=20 + i) for i in range(3)]
        first, second = (client.wait(client.submit(p).id, timeout=60) for p in images[:2])
        # Using the first layer again makes the second the least recently used.
        client.fetch_result(first.id, tmp_path / "first.usda")
        third = client.wait(client.submit(images[2]).id, timeout=60)
        assert third.state == "succeeded"
        with pytest.raises(DaemonError) as gone:
            client.fetch_result(second.id, tmp_path / "second.usda")
        assert gone.value.status == 410 and "submit the job again" in str(gone.value)
        assert not (tmp_path / "second.usda").exists()
        for job in (first, third):
            client.fetch_result(job.id, tmp_path / f"{job.id}.usda")
        health = client.health()
        assert health["cache"]["layers"] == 2 and health["cache"]["bytes"] <= 600
        assert health["limits"]["cache_max_bytes"] == 600
        # Submitted again, the evicted job runs again instead of being a cache hit.
        again = client.wait(client.submit(images[1]).id, timeout=60)
        assert again.state == "succeeded" and not again.cached
        client.fetch_result(again.id, tmp_path / "again.usda")
        assert "evicted 1 least recently used layer" in proc.output() + (
            proc.state_dir / "daemon.log").read_text()
    finally:
        proc.stop()
