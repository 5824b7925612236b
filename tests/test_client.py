"""`tressel.client`: standard library only, SSE parsing, errors, and starting a daemon on demand."""

from __future__ import annotations

import ast
import http.client
import io
import os
import socket
import subprocess

import pytest
from daemon_support import (
    DAEMON_COMMAND,
    PYTHON,
    REPO,
    Daemon,
    connect_concurrently,
    stop_detached,
    write_png,
)
from tressel.client import (
    Client,
    DaemonError,
    DaemonNotRunning,
    Endpoint,
    JobFailed,
    StaleEndpoint,
    _parse_sse,
    connect,
    start_daemon,
)
from tressel.errors import TresselError

pytestmark = pytest.mark.timeout(120)


def test_import_loads_only_the_standard_library():
    code = (
        "import sys; before = set(sys.modules); import tressel.client; "
        "new = set(sys.modules) - before; "
        "bad = sorted(m for m in new if m.split('.')[0] not in "
        "sys.stdlib_module_names and m.split('.')[0] != 'tressel'); "
        "heavy = [m for m in ('torch', 'numpy', 'pxr', 'fastapi', 'pydantic', 'uvicorn') "
        "if m in sys.modules]; "
        "print(bad, heavy); sys.exit(1 if bad or heavy else 0)"
    )
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "[] []"


def test_source_parses_as_python_311():
    # Hosts run Python 3.11 to 3.13: the grammar must be 3.11's (no 3.12 type statements...).
    for path in (REPO / "core" / "client.py", REPO / "core" / "errors.py"):
        ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 11))


def test_sse_parser_handles_comments_ids_and_multiline_data():
    stream = io.BytesIO(
        b": keepalive\n\n"
        b"id: b1-1\nevent: progress\ndata: {\"phase\": \"diffusion\",\n"
        b"data: \"step\": 2, \"total\": 5}\n\n"
        b"event: end\r\ndata: {\"state\": \"succeeded\"}\r\n\r\n"
        b"event: partial\ndata: {\"cut\": 1}\n"  # stream cut mid-event: not yielded
    )
    events = list(_parse_sse(stream))
    assert [(e.type, e.id) for e in events] == [("progress", "b1-1"), ("end", None)]
    assert events[0].data == {"phase": "diffusion", "step": 2, "total": 5}


def test_no_daemon_gives_an_actionable_error(tmp_path):
    with pytest.raises(DaemonNotRunning, match="tressel daemon start --detach"):
        connect(tmp_path / "state")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Client(Endpoint("127.0.0.1", port, "token"), timeout=5)
    with pytest.raises(DaemonNotRunning, match=f"127.0.0.1:{port}"):
        client.health()


def test_start_daemon_reports_a_daemon_that_dies_at_start(tmp_path):
    command = [PYTHON, "-c", "import sys; print('boom: no model'); sys.exit(3)"]
    with pytest.raises(DaemonError) as exc:
        start_daemon(tmp_path / "state", command=command, timeout=30)
    assert "status 3" in str(exc.value) and "boom: no model" in str(exc.value)


def test_autostart_starts_one_detached_daemon_and_reuses_it(tmp_path, daemon_env):
    state = tmp_path / "state"
    try:
        results = connect_concurrently(state, 3, start_timeout=60)
        pids = {c.health()["pid"] for c in results}
        assert len(pids) == 1  # three racing callers, one daemon
        pid = pids.pop()
        assert os.getsid(pid) != os.getsid(0)  # its own session: outlives the caller's terminal
        again = connect(state, autostart=True, daemon_command=DAEMON_COMMAND)
        assert again.health()["pid"] == pid

        job_path = again.run(write_png(tmp_path / "a.png", seed=9), tmp_path / "out" / "a.usdc",
                             params={"steps": 2}, seed=4, timeout=60)
        assert job_path.is_file() and '"seed": 4' in job_path.read_text()
    finally:
        stop_detached(state, strict=True)


def test_wrong_token_and_failed_jobs_raise_clear_errors(tmp_path):
    proc = Daemon(tmp_path / "state")
    client = proc.start()
    try:
        # A client holding an old token does not even send it: the identity check fails first.
        stale = Client(Endpoint("127.0.0.1", client.endpoint.port, "stale-token"))
        with pytest.raises(StaleEndpoint, match="identity check failed"):
            stale.jobs()
        conn = http.client.HTTPConnection("127.0.0.1", client.endpoint.port, timeout=10)
        conn.request("GET", "/v1/jobs", headers={"Authorization": "Bearer stale-token"})
        response = conn.getresponse()
        assert response.status == 401 and b"wrong token" in response.read()
        conn.close()
        job = client.submit(write_png(tmp_path / "a.png"), params={"fail": True})
        with pytest.raises(JobFailed, match="asked to fail") as failed:
            client.wait(job.id, timeout=30)
        assert failed.value.job.state == "failed"
        with pytest.raises(TresselError, match="cannot read .*missing.png"):
            client.submit(tmp_path / "missing.png")
    finally:
        proc.stop()


def test_tressel_submit_command(tmp_path):
    proc = Daemon(tmp_path / "state")
    proc.start()
    try:
        image = write_png(tmp_path / "face.png", seed=21)
        env = proc.env()
        run = [PYTHON, "-m", "tressel.cli", "submit", str(image), "--seed", "2",
               "--param", "steps=3", "--no-start", "-o", str(tmp_path / "face.usda")]
        first = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True,
                               timeout=60, check=False)
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip() == str(tmp_path / "face.usda")
        assert "diffusion" in first.stderr  # progress, one line per phase when not a TTY
        second = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=60, check=False)
        assert second.returncode == 0 and "(from cache)" in second.stdout
        bad = subprocess.run([*run[:5], "--param", "nonsense=1", "--no-start"], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=60,
                             check=False)
        assert bad.returncode == 1 and "nonsense" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        proc.stop()
