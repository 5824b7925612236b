"""The daemon and client under full disks, races, hostile input and misuse (issue 14, items 1-8).

Each test reproduces one defect found by trying the daemon as a hostile or unlucky user would,
on real daemon processes (the test engine of daemon_support, so timing is exact); disk-full
cases run on a small real filesystem (tmpfs), skipped with the reason where it cannot be
mounted.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import socket
import stat
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from daemon_support import (
    DAEMON_COMMAND,
    PYTHON,
    REPO,
    SLOW,
    Daemon,
    connect_concurrently,
    stop_detached,
    wait_for,
    write_png,
)
from helpers import fill_disk, small_filesystem
from tressel.client import (
    Client,
    DaemonError,
    DaemonNotRunning,
    Endpoint,
    connect,
    read_endpoint,
    write_endpoint,
)
from tressel.daemon.lock import acquire

pytestmark = pytest.mark.timeout(180)


# -- 1. a full disk ------------------------------------------------------------------------------


def test_full_disk_fails_the_job_keeps_the_worker_and_answers_507(tmp_path):
    with small_filesystem(tmp_path / "state", 64 * 2**20) as state:
        proc = Daemon(state)
        client = proc.start()
        try:
            assert client.health()["status"] == "ok"
            job = client.submit(write_png(tmp_path / "a.png", seed=1),
                                params={"steps": 1, "write_seconds": 1.0,
                                        "pad_bytes": 256 * 1024})
            wait_for(lambda: client.job(job.id).phase == "write", timeout=30)
            filler = fill_disk(state)  # the rest of the layer now hits ENOSPC, and so does
            # recording the failure in the jobs database: the worker must wait, not die

            def worker_waits() -> dict | None:
                health = client.health()
                states = [w.get("state") for w in health.get("workers", [])]
                return health if "waiting for disk space" in states else None

            health = wait_for(worker_waits, timeout=30)
            assert health["status"] == "degraded"
            assert any("full" in p for p in health["problems"]), health
            with pytest.raises(DaemonError) as refused:
                client.submit(write_png(tmp_path / "b.png", seed=2), params={"steps": 1})
            assert refused.value.status == 507
            assert "full" in str(refused.value) and "free some space" in str(refused.value)

            filler.unlink()  # space returns: the worker goes on by itself
            failed = wait_for(lambda: (j := client.job(job.id)).done and j, timeout=30)
            assert failed.state == "failed" and "full" in failed.error
            wait_for(lambda: client.health()["status"] == "ok", timeout=30)
            again = client.submit(write_png(tmp_path / "c.png", seed=3), params={"steps": 1})
            assert client.wait(again.id, timeout=30).state == "succeeded"
            assert [w["alive"] for w in client.health()["workers"]] == [True]
        finally:
            proc.stop()


# -- 2. wait() and keep-alives -------------------------------------------------------------------


class _FakeDaemon(ThreadingHTTPServer):
    """Answers the identity check with `token`, keeps every event stream alive with comments
    only, and says every job is running: a daemon with a job that never ends."""

    daemon_threads = True

    def __init__(self, token: str) -> None:
        self.token = token
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        super().__init__(("127.0.0.1", 0), _FakeHandler)


class _FakeHandler(BaseHTTPRequestHandler):
    server: _FakeDaemon

    def log_message(self, *args: object) -> None:
        pass

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append((self.command, self.path, dict(self.headers), body))

    def _json(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._record()
        if self.path.startswith("/v1/identity"):
            from tressel.client import identity_proof

            nonce = self.path.partition("nonce=")[2]
            self._json({"proof": identity_proof(self.server.token, nonce)})
        elif self.path.endswith("/events"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(600):
                    self.wfile.write(b": keepalive\n\n")
                    self.wfile.flush()
                    time.sleep(0.1)
        elif self.path.startswith("/v1/jobs/"):
            self._json({"id": "job1", "state": "running"})
        else:
            self._json({"status": "ok", "limits": {}})


def test_wait_times_out_while_the_daemon_sends_keepalives():
    server = _FakeDaemon("secret-token")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = Client(Endpoint("127.0.0.1", server.server_address[1], "secret-token"))
        outcome: list[BaseException | None] = []

        def wait() -> None:
            try:
                client.wait("job1", timeout=1.0)
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - inspected below
                outcome.append(exc)

        started = time.monotonic()
        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        waiter.join(15)
        assert not waiter.is_alive(), "wait(timeout=1) still waiting after 15 s of keep-alives"
        assert isinstance(outcome[0], TimeoutError)
        assert time.monotonic() - started < 5
    finally:
        server.shutdown()


def test_submit_timeout_is_a_one_line_error(tmp_path):
    proc = Daemon(tmp_path / "state")
    proc.start()
    try:
        result = subprocess.run(
            [PYTHON, "-m", "tressel.cli", "submit", str(write_png(tmp_path / "a.png")),
             "--param", "steps=200", "--param", "step_seconds=0.05", "--no-start",
             "--timeout", "1", "-o", str(tmp_path / "a.usda")],
            env=proc.env(), cwd=tmp_path, capture_output=True, text=True, timeout=60,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert "did not finish within 1 s" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        proc.stop()


# -- 3. concurrent autostart ---------------------------------------------------------------------


def test_concurrent_autostart_uses_the_winner(tmp_path, daemon_env, monkeypatch):
    # The engine takes a second to load, so the losers exit while the winner holds the lock
    # but has not written its endpoint yet: the window that made them fail.
    monkeypatch.setenv("TRESSEL_TEST_ENGINE_LOAD_S", "1.0")
    state = tmp_path / "state"
    try:
        results = connect_concurrently(state, 4, start_timeout=90)
        assert len({c.health()["pid"] for c in results}) == 1
    finally:
        stop_detached(state)


def test_two_detached_starts_at_once_both_report_the_one_daemon(tmp_path, daemon_env,
                                                               monkeypatch):
    monkeypatch.setenv("TRESSEL_TEST_ENGINE_LOAD_S", "1.0")
    state = tmp_path / "state"
    command = [PYTHON, "-m", "tressel.daemon", "start", "--detach", "--state-dir", str(state)]
    try:
        procs = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        endpoint = read_endpoint(state)
        for out, _ in outputs:
            assert f"pid {endpoint.pid}" in out
    finally:
        stop_detached(state)


# -- 4. the state folder is the user's alone -----------------------------------------------------


def _loose_modes(folder: Path) -> list[str]:
    loose = []
    for path in [folder, *folder.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            loose.append(f"{path.relative_to(folder.parent)} {stat.filemode(mode)}")
    return loose


def test_state_folder_is_private_however_the_daemon_was_started(tmp_path, daemon_env):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    old = state / "old.log"
    old.write_text("left by an older Tressel\n")
    old.chmod(0o644)
    previous = os.umask(0o022)  # a typical login umask, inherited by the detached daemon
    try:
        client = connect(state, autostart=True, daemon_command=DAEMON_COMMAND,
                         start_timeout=90)
        job = client.submit(write_png(tmp_path / "a.png", seed=5),
                            params={"steps": 2, "step_seconds": 0.2})
        wait_for(lambda: client.job(job.id).state == "running")  # its upload is on disk now
        assert not _loose_modes(state)
        client.wait(job.id, timeout=30)
        client.fetch_result(job.id, tmp_path / "a.usda")
        assert not _loose_modes(state)
    finally:
        os.umask(previous)
        stop_detached(state)


# -- 5. a stale endpoint file --------------------------------------------------------------------


class _Impostor(ThreadingHTTPServer):
    """Something else on a dead daemon's old port: answers everything with 200 and records it."""

    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.token = "not-the-real-token"
        super().__init__(("127.0.0.1", 0), _ImpostorHandler)


class _ImpostorHandler(_FakeHandler):
    def do_GET(self) -> None:
        self._record()
        self._json({"status": "ok", "limits": {}, "proof": "0" * 64, "models": [],
                    "id": "x", "state": "succeeded"})

    def do_POST(self) -> None:
        self._record()
        self._json({"id": "x", "state": "queued"})


def _dead_pid() -> int:
    child = subprocess.Popen([PYTHON, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_endpoint_gets_neither_token_nor_upload(tmp_path):
    impostor = _Impostor()
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    state = tmp_path / "state"
    token = "the-dead-daemons-token-" + "x" * 20
    image = write_png(tmp_path / "private.png", seed=8)
    port = impostor.server_address[1]
    try:
        # The daemon died: no lock, dead pid; its endpoint file names the impostor's port.
        write_endpoint(Endpoint("127.0.0.1", port, token, pid=_dead_pid()), state)
        with pytest.raises(DaemonNotRunning, match="stale"):
            connect(state)
        # Even with the lock held and a live pid, the identity check stops it.
        lock = acquire(state / "daemon.lock")
        write_endpoint(Endpoint("127.0.0.1", port, token, pid=os.getpid()), state)
        try:
            with pytest.raises(DaemonNotRunning, match="identity check failed"):
                connect(state)
            client = Client(read_endpoint(state))
            with pytest.raises(DaemonError, match="identity check failed"):
                client.submit(image)
            with pytest.raises(DaemonError, match="identity check failed"):
                client.fetch_result("x", tmp_path / "out.usdc")
        finally:
            lock.close()
        assert not (tmp_path / "out.usdc").exists()
        secret = image.read_bytes()
        for method, path, headers, body in impostor.requests:
            assert token not in json.dumps(headers) + path, (method, path)
            assert secret not in body and not body, (method, path)
            assert path.startswith("/v1/identity"), (method, path)
    finally:
        impostor.shutdown()


# -- 6-8. hostile requests on one daemon ---------------------------------------------------------


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    allowed = root / "farm"
    allowed.mkdir()
    proc = Daemon(root / "state", args=["--allow-root", str(allowed)])
    proc.client = proc.start()
    proc.allowed = allowed
    proc.root = root
    yield proc
    proc.stop()


def test_path_swapped_for_a_symlink_never_reads_outside_the_roots(farm):
    client: Client = farm.client
    inside_dir, parked = farm.allowed / "shots", farm.allowed / "shots-parked"
    outside_dir = farm.root / "outside"
    inside_dir.mkdir()
    outside_dir.mkdir()
    inside = write_png(inside_dir / "img.png", seed=31)
    outside = write_png(outside_dir / "img.png", seed=32)
    outside_hash = hashlib.sha256(outside.read_bytes()).hexdigest()
    inside_hash = hashlib.sha256(inside.read_bytes()).hexdigest()
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            os.rename(inside_dir, parked)
            os.symlink(outside_dir, inside_dir)
            os.unlink(inside_dir)
            os.rename(parked, inside_dir)

    swapper = threading.Thread(target=swap)
    swapper.start()
    seen: dict[object, int] = {}
    try:
        for _ in range(400):
            try:
                job = client.submit(inside_dir / "img.png", server_path=True,
                                    params={"steps": 1, "step_seconds": 0})
                key = "outside!" if job.image_sha256 == outside_hash else job.image_sha256
            except DaemonError as exc:
                key = exc.status
            seen[key] = seen.get(key, 0) + 1
    finally:
        stop.set()
        swapper.join()
    assert "outside!" not in seen, seen
    assert set(seen) <= {inside_hash, 403, 404}, seen
    assert seen.get(inside_hash), seen


def test_paths_outside_the_roots_get_403_whether_or_not_they_exist(farm):
    client: Client = farm.client
    existing = write_png(farm.root / "exists.png", seed=33)
    for path in (existing, farm.root / "does-not-exist.png", Path("/etc/shadow-nope")):
        with pytest.raises(DaemonError) as exc:
            client.submit(path, server_path=True)
        assert exc.value.status == 403, path
    with pytest.raises(DaemonError) as exc:
        client.submit(f"{farm.allowed}/a\x00b.png", server_path=True)
    assert exc.value.status == 422 and "NUL" in str(exc.value)


@pytest.mark.parametrize(("params", "words"), [
    ({"guidance": float("nan")}, "guidance=nan is not a finite number"),
    ({"guidance": float("inf")}, "guidance=inf is not a finite number"),
    ({"steps": 10**12}, "steps=1000000000000 is out of range: use 1 to 1000"),
    ({"guidance_interval": "0-5"}, "guidance_interval='0-5': give two noise levels"),
    ({"guidance_interval": [5, 1]}, "needs LO < HI"),
    ({"max_strands": -3}, "max_strands=-3 is out of range"),
])
def test_bad_parameters_are_refused_at_submission(farm, tmp_path, params, words):
    with pytest.raises(DaemonError) as exc:
        farm.client.submit(write_png(tmp_path / "p.png", seed=40), params=params)
    assert exc.value.status == 422 and words in str(exc.value)


def test_nul_bytes_and_huge_option_values_are_422_not_500(farm, tmp_path):
    image = write_png(tmp_path / "n.png", seed=41)
    with pytest.raises(DaemonError) as exc:
        farm.client.submit(image, bundle="demo\x00")
    assert exc.value.status == 422
    with pytest.raises(DaemonError) as exc:
        farm.client.submit(image, write_options={"points_per_strand": 10**9})
    assert exc.value.status == 422 and "points_per_strand" in str(exc.value)


def test_body_is_not_read_before_the_token_is_checked(farm):
    port = farm.client.endpoint.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/jobs/by-path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
                     + b"[" * 1024)
        sock.settimeout(5)  # the answer must come without the other 10 MB
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]


def test_openapi_needs_the_token(farm):
    conn = http.client.HTTPConnection("127.0.0.1", farm.client.endpoint.port, timeout=10)
    conn.request("GET", "/v1/openapi.json")
    response = conn.getresponse()
    assert response.status == 401
    response.read()
    conn.close()
    status, _, body = farm.client.request("GET", "/v1/openapi.json")
    assert status == 200 and b"/v1/jobs" in body


def test_cancelled_and_failed_jobs_leave_no_empty_cache_folders(farm, tmp_path):
    client: Client = farm.client
    running = client.submit(write_png(tmp_path / "r.png", seed=50), params=SLOW)
    wait_for(lambda: client.job(running.id).step >= 1)
    client.cancel(running.id)
    failed = client.submit(write_png(tmp_path / "f.png", seed=51),
                           params={"steps": 1, "fail": True})
    for job in (running, failed):
        wait_for(lambda j=job: client.job(j.id).done)
    cache = farm.state_dir / "cache"
    empty = [p for p in cache.rglob("*") if p.is_dir() and p.name != "tmp"
             and not any(p.iterdir())]
    assert not empty, empty


# -- 7. memory of many small uploads that declare huge images ------------------------------------


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_concurrent_uploads_of_huge_declared_images_stay_in_bounded_memory(tmp_path):
    import numpy as np
    from helpers import write_image

    width = height = 5000  # 25 Mpx, under the 40 Mpx limit; a few hundred KB as a PNG
    pixels = np.zeros((height, width, 3), np.uint8)
    images = []
    for i in range(4):
        pixels[0, 0] = i  # each its own bytes: no cache hit, four decodes
        images.append(write_image(tmp_path / f"big{i}.png", pixels).read_bytes())
    del pixels
    assert max(len(d) for d in images) < 1_000_000
    proc = Daemon(tmp_path / "state")
    client = proc.start()
    try:
        before = _peak_rss(proc.process.pid)
        errors: list[BaseException] = []

        def upload(data: bytes) -> None:
            try:
                client.submit(data, name="big.png", params={"steps": 1})
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=upload, args=(d,)) for d in images]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        grown = _peak_rss(proc.process.pid) - before
        print(f"peak memory grew {grown / 1e6:.0f} MB for four concurrent 25 Mpx uploads")
        # Decoding one of them whole to float32 RGB alone takes 300 MB.
        assert grown < 250e6, f"peak memory grew by {grown / 1e6:.0f} MB"
    finally:
        proc.stop()


def test_check_image_refuses_what_load_image_refuses(tmp_path):
    from tressel.errors import ImageError
    from tressel.images import check_image, load_image

    data = write_png(tmp_path / "ok.png", width=64, height=48, seed=3).read_bytes()
    info = check_image(data)
    assert (info.width, info.height) == (64, 48)
    assert info.sha256 == load_image(data).sha256
    for bad in (data[: len(data) // 2], b"", b"not an image at all"):
        with pytest.raises(ImageError):
            load_image(bad)
        with pytest.raises(ImageError):
            check_image(bad)



@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_health_problems_name_a_stuck_job_and_a_dead_worker(tmp_path, monkeypatch):
    # In process, so the test can stall a job and kill the worker thread outright.
    from daemon_support import SleepEngine
    from tressel.daemon import manager as manager_module
    from tressel.daemon.config import DaemonConfig

    monkeypatch.setattr(manager_module, "STUCK_AFTER_S", 0.5)
    manager = manager_module.JobManager(DaemonConfig(state_dir=tmp_path / "state"),
                                        SleepEngine(None))
    manager.start()
    try:
        assert manager.problems() == []
        image = write_png(tmp_path / "a.png").read_bytes()
        job = manager.submit(image, "a.png", None, {"steps": 1, "step_seconds": 3.0}, {}, 0,
                             "usda")
        stuck = wait_for(lambda: [p for p in manager.problems() if "no progress" in p],
                         timeout=10)
        assert job.id in stuck[0] and "cancel it" in stuck[0]

        def crash(device: str) -> None:
            raise SystemExit("simulated fault in the worker thread")  # nothing catches this

        monkeypatch.setattr(manager.store, "claim_next", crash)
        dead = wait_for(lambda: [p for p in manager.problems() if "has died" in p], timeout=15)
        assert "restart the daemon" in dead[0]
        assert manager.worker_report()[0]["alive"] is False
    finally:
        manager.stop(timeout=5)
