"""Talk to the Tressel daemon from Maya, Houdini, scripts or the CLI with the standard library.

This module must import nothing outside the standard library, `tressel.errors` and `tressel.paths`
(it runs inside a DCC's own Python 3.11-3.13), and must never block forever: every socket has a
timeout, and waiting for a job reads the daemon's Server-Sent Events with a deadline.

    from tressel.client import connect
    client = connect(autostart=True)            # starts a daemon when none runs
    job = client.submit("portrait.jpg", seed=3)
    client.wait(job.id, progress=lambda phase, step, total: print(phase, step, total))
    client.fetch_result(job.id, "portrait_groom.usdc")
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tressel.errors import Cancelled, TresselError
from tressel.paths import user_dir

log = logging.getLogger(__name__)

ENV_DAEMON_DIR = "TRESSEL_DAEMON_DIR"
ENV_DAEMON_COMMAND = "TRESSEL_DAEMON_COMMAND"
ENV_LAUNCH_ID = "TRESSEL_DAEMON_LAUNCH_ID"
ENDPOINT_FILE = "daemon.json"  # host, port, token, pid: readable by the user only (0600)
LAUNCH_LOG = "daemon.out"  # stdout/stderr of a detached daemon (import errors land here)
API = "/v1"
IDENTITY_PATH = f"{API}/identity"  # the one path that answers without the token
# Domain separation: the proof can never be mistaken for the token or for another protocol.
IDENTITY_CONTEXT = b"tressel-daemon-identity/1\n"
TERMINAL_STATES = ("succeeded", "failed", "cancelled")

KEEPALIVE = "keepalive"  # the type of a comment line from `_parse_sse(..., comments=True)`

ProgressCallback = Callable[[str, int, int], None]


class DaemonError(TresselError):
    """The daemon refused a request or could not be reached; the message says what to do."""

    def __init__(self, message: str, status: int = 0, title: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.title = title


class DaemonNotRunning(DaemonError):
    """No daemon answers at the endpoint recorded in the state folder."""


class StaleEndpoint(DaemonNotRunning):
    """The endpoint file names a daemon that is gone (or something else now answers there);
    nothing was sent to it."""


class JobFailed(TresselError):
    """A job ended in the `failed` state; the message is the daemon's reason."""

    def __init__(self, message: str, job: JobInfo | None = None) -> None:
        super().__init__(message)
        self.job = job


def daemon_dir() -> Path:
    """The per-user folder holding the daemon's endpoint file, jobs database, cache and logs.

    `TRESSEL_DAEMON_DIR` overrides it (tests, or several daemons for one user).
    """
    return user_dir("state", "daemon", env=ENV_DAEMON_DIR, app="Tressel")


@dataclass(frozen=True)
class Endpoint:
    """Where a running daemon listens and the token it expects (the endpoint file's content)."""

    host: str
    port: int
    token: str
    pid: int = 0
    version: str = ""
    started_at: float = 0.0
    launch_id: str = ""  # set by `start_daemon`, so it knows the daemon that answers is its own

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def identity_proof(token: str, nonce: str) -> str:
    """HMAC-SHA256 of the client's nonce under the token: the daemon's answer to the identity
    check, which only a holder of the token can compute and which does not reveal it."""
    return hmac.new(token.encode("utf-8"), IDENTITY_CONTEXT + nonce.encode("ascii"),
                    hashlib.sha256).hexdigest()


def read_endpoint(state_dir: Path | None = None) -> Endpoint | None:
    """The endpoint a daemon recorded in `state_dir`, or None when there is none (or it is torn)."""
    path = Path(state_dir or daemon_dir()) / ENDPOINT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Endpoint(
            host=str(data["host"]), port=int(data["port"]), token=str(data["token"]),
            pid=int(data.get("pid", 0)), version=str(data.get("version", "")),
            started_at=float(data.get("started_at", 0.0)),
            launch_id=str(data.get("launch_id", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_endpoint(endpoint: Endpoint, state_dir: Path) -> Path:
    """Write the endpoint file atomically, readable and writable by the user only."""
    make_private_dir(state_dir)
    path = state_dir / ENDPOINT_FILE
    tmp = state_dir / f".{ENDPOINT_FILE}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    payload = json.dumps(endpoint.__dict__, indent=2).encode("utf-8")
    # The token is a credential: create the file 0600 from the start, never chmod afterwards.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def make_private_dir(folder: Path) -> Path:
    """Create `folder` (and its parents) if needed; the folder itself is the user's alone
    (0700), whoever created it and with whatever umask."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name != "nt":
        try:
            if folder.stat().st_uid == os.getuid():
                os.chmod(folder, 0o700)
        except OSError:
            pass
    return folder


@dataclass
class JobInfo:
    """A job as the daemon reports it (`GET /v1/jobs/{id}`)."""

    id: str
    state: str
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    queue_position: int | None = None
    phase: str | None = None
    step: int = 0
    total: int = 0
    error: str | None = None
    cached: bool = False
    format: str = "usdc"
    bundle: str = ""
    bundle_hash: str = ""
    seed: int = 0
    image_sha256: str = ""
    image_name: str = ""
    attempts: int = 0
    device: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobInfo:
        progress = data.get("progress") or {}
        return cls(
            id=data["id"], state=data["state"], created_at=data.get("created_at") or 0.0,
            started_at=data.get("started_at"), finished_at=data.get("finished_at"),
            queue_position=data.get("queue_position"), phase=progress.get("phase"),
            step=int(progress.get("step") or 0), total=int(progress.get("total") or 0),
            error=data.get("error"), cached=bool(data.get("cached")),
            format=data.get("format") or "usdc", bundle=data.get("bundle") or "",
            bundle_hash=data.get("bundle_hash") or "",
            seed=int(data.get("seed") or 0), image_sha256=data.get("image_sha256") or "",
            image_name=data.get("image_name") or "", attempts=int(data.get("attempts") or 0),
            device=data.get("device"), params=dict(data.get("params") or {}),
        )


@dataclass
class Event:
    """One Server-Sent Event from `GET /v1/jobs/{id}/events`."""

    type: str
    data: dict[str, Any]
    id: str | None = None


class Client:
    """A connection to one daemon; safe to share between threads (one HTTP connection per call).

    Before its first request (and again after the daemon stopped answering) the client checks
    that the daemon at the endpoint is the one that wrote it: the state folder's lock is held,
    its pid is alive, and it answers the identity challenge (`identity_proof`) that only the
    token's holder can. Only then does it send the token, an upload or anything else.
    """

    def __init__(self, endpoint: Endpoint, timeout: float = 30.0,
                 state_dir: str | os.PathLike[str] | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.state_dir = Path(state_dir) if state_dir else None
        self._limits: dict[str, Any] | None = None
        self._verified = False
        self._verify_lock = threading.Lock()

    # -- identity ----------------------------------------------------------------------------

    def verify(self, timeout: float | None = None) -> None:
        """Raise `StaleEndpoint` unless the live daemon that wrote the endpoint answers."""
        url = self.endpoint.url
        stale = (f"the daemon recorded at {url} is gone (stale endpoint file"
                 + (f" in {self.state_dir}" if self.state_dir else "") + "): nothing was sent "
                 "to it; start a daemon with `tressel daemon start --detach`, or "
                 "connect(autostart=True)")
        if self.state_dir is not None:
            from tressel.daemon.lock import is_held  # standard library only

            if not is_held(self.state_dir):
                raise StaleEndpoint(stale)
            if _is_loopback(self.endpoint.host) and not _pid_alive(self.endpoint.pid):
                raise StaleEndpoint(stale)
        nonce = secrets.token_hex(16)
        conn = self._connection(timeout)
        try:
            conn.request("GET", f"{IDENTITY_PATH}?nonce={nonce}",
                         headers={"Accept": "application/json"})
            response = conn.getresponse()
            status, body = response.status, response.read(64 * 1024)
        except (ConnectionRefusedError, socket.gaierror) as exc:
            raise DaemonNotRunning(
                f"no Tressel daemon answers at {url} ({exc}): start one with "
                "`tressel daemon start --detach`, or connect(autostart=True)"
            ) from exc
        except TimeoutError as exc:
            raise DaemonError(
                f"the daemon at {url} did not answer the identity check within "
                f"{timeout or self.timeout:.0f} s: check `tressel daemon status` and its logs"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise StaleEndpoint(f"{stale} ({type(exc).__name__}: {exc})") from exc
        finally:
            conn.close()
        try:
            proof = str(json.loads(body).get("proof") or "") if status == 200 else ""
        except (ValueError, AttributeError):
            proof = ""
        expected = identity_proof(self.endpoint.token, nonce).encode("ascii")
        if not proof or not hmac.compare_digest(proof.encode("utf-8", "replace"), expected):
            raise StaleEndpoint(
                f"something at {url} answers but is not the daemon that wrote the endpoint "
                f"file (identity check failed, HTTP {status}): nothing was sent to it. If the "
                "daemon restarted (new token), connect again; if a daemon of an older Tressel "
                "is running, stop it (`tressel daemon stop`); otherwise start one with "
                "`tressel daemon start --detach`"
            )

    def _ensure_verified(self, timeout: float | None) -> None:
        if self._verified:
            return
        with self._verify_lock:
            if not self._verified:
                self.verify(timeout)
                self._verified = True

    # -- plumbing ----------------------------------------------------------------------------

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            self.endpoint.host, self.endpoint.port, timeout=timeout or self.timeout
        )

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.endpoint.token}", "Accept": "application/json"}
        headers.update(extra or {})
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request; return (status, lower-cased headers, body)."""
        self._ensure_verified(timeout)
        conn = self._connection(timeout)
        try:
            conn.request(method, path, body=body, headers=self._headers(headers))
            response = conn.getresponse()
            headers = {k.lower(): v for k, v in response.getheaders()}  # names are any case
            return response.status, headers, response.read()
        except (ConnectionRefusedError, socket.gaierror) as exc:
            self._verified = False  # whatever listens there next must prove itself again
            raise DaemonNotRunning(
                f"no Tressel daemon answers at {self.endpoint.url} ({exc}): start one with "
                "`tressel daemon start --detach`, or connect(autostart=True)"
            ) from exc
        except (ConnectionResetError, BrokenPipeError) as exc:
            self._verified = False
            raise DaemonError(
                f"the daemon at {self.endpoint.url} closed the connection ({exc}); if this was "
                "an upload, it may be over the daemon's upload limit"
            ) from exc
        except TimeoutError as exc:
            raise DaemonError(
                f"the daemon at {self.endpoint.url} did not answer {method} {path} within "
                f"{timeout or self.timeout:.0f} s: check `tressel daemon status` and its logs"
            ) from exc
        finally:
            conn.close()

    def _json(self, method: str, path: str, payload: Any = None, **kwargs: Any) -> Any:
        body = None
        headers = dict(kwargs.pop("headers", None) or {})
        if payload is not None:
            body = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        status, _, data = self.request(method, path, body=body, headers=headers, **kwargs)
        if status >= 400:
            raise _problem(status, data, f"{method} {path}")
        return json.loads(data) if data else None

    # -- daemon and models ------------------------------------------------------------------

    def health(self, timeout: float | None = None) -> dict[str, Any]:
        """Version, devices, memory, queue and limits of the daemon."""
        return self._json("GET", f"{API}/health", timeout=timeout)

    def models(self) -> list[dict[str, Any]]:
        return self._json("GET", f"{API}/models")["models"]

    def load_model(self, name: str) -> dict[str, Any]:
        """Load a bundle onto the daemon's device(s) now, so the next job starts at once."""
        return self._json("POST", f"{API}/models/{name}/load")

    def unload_model(self, name: str) -> dict[str, Any]:
        """Free the memory a loaded bundle holds."""
        return self._json("POST", f"{API}/models/{name}/unload")

    def shutdown(self) -> None:
        """Ask the daemon to stop; a running job goes back to the queue for the next start."""
        self._json("POST", f"{API}/daemon/shutdown")

    def limits(self) -> dict[str, Any]:
        if self._limits is None:
            self._limits = dict(self.health().get("limits") or {})
        return self._limits

    # -- jobs --------------------------------------------------------------------------------

    def submit(
        self,
        image: str | os.PathLike[str] | bytes,
        *,
        seed: int = 0,
        bundle: str | None = None,
        format: str = "usdc",
        params: dict[str, Any] | None = None,
        write_options: dict[str, Any] | None = None,
        server_path: bool = False,
        name: str | None = None,
    ) -> JobInfo:
        """Queue a job for `image` and return it at once (state `queued`, or `succeeded` on a
        cache hit).

        `image` is a local file or its bytes, uploaded to the daemon. With `server_path=True`
        it is a path the daemon reads itself (farm use; it must lie under a root the daemon was
        started with, `--allow-root`). `params` are generation parameters (steps, guidance...),
        `write_options` the USD writer's options; `format` is "usdc" or "usda".
        """
        request = {"seed": seed, "format": format, "params": params or {},
                   "write_options": write_options or {}}
        if bundle:
            request["bundle"] = bundle
        if server_path:
            request["path"] = str(image)
            return JobInfo.from_json(self._json("POST", f"{API}/jobs/by-path", request))
        if isinstance(image, (bytes, bytearray, memoryview)):
            data, filename = bytes(image), name or "image"
        else:
            path = Path(image)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise TresselError(f"cannot read {path}: {exc.strerror}: check the path") from exc
            filename = name or path.name
        limit = int(self.limits().get("max_upload_bytes") or 0)
        if limit and len(data) > limit:
            raise DaemonError(
                f"{filename} is {len(data) / 1e6:.1f} MB, over the daemon's upload limit of "
                f"{limit / 1e6:.1f} MB: downscale or re-encode it, or restart the daemon with a "
                "larger --max-upload-mb", status=413,
            )
        body, content_type = _multipart(
            {"request": json.dumps(request)}, "image", filename, data
        )
        status, _, reply = self.request(
            "POST", f"{API}/jobs", body=body, headers={"Content-Type": content_type}
        )
        if status >= 400:
            raise _problem(status, reply, f"submit {filename}")
        return JobInfo.from_json(json.loads(reply))

    def job(self, job_id: str) -> JobInfo:
        return JobInfo.from_json(self._json("GET", f"{API}/jobs/{job_id}"))

    def jobs(self, limit: int = 50, state: str | None = None) -> list[JobInfo]:
        """Recent jobs, newest first."""
        query = f"?limit={int(limit)}" + (f"&state={state}" if state else "")
        return [JobInfo.from_json(j) for j in self._json("GET", f"{API}/jobs{query}")["jobs"]]

    def cancel(self, job_id: str) -> JobInfo:
        """Cancel a queued or running job; a running one stops at its next step."""
        return JobInfo.from_json(self._json("DELETE", f"{API}/jobs/{job_id}"))

    def events(
        self, job_id: str, last_event_id: str | None = None, read_timeout: float = 30.0
    ) -> Iterator[Event]:
        """Yield the job's Server-Sent Events until the stream ends.

        Raises `TimeoutError` when nothing (not even a keep-alive) arrives for `read_timeout`
        seconds; the caller may reconnect with the last event id.
        """
        for event in self._events(job_id, last_event_id, read_timeout):
            if event.type != KEEPALIVE:
                yield event

    def _events(
        self, job_id: str, last_event_id: str | None, read_timeout: float
    ) -> Iterator[Event]:
        """`events`, with each keep-alive comment as an Event of type KEEPALIVE (so a waiter
        can check its deadline while the daemon has nothing to say)."""
        self._ensure_verified(read_timeout)
        conn = self._connection(read_timeout)
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        try:
            try:
                conn.request("GET", f"{API}/jobs/{job_id}/events", headers=self._headers(headers))
                response = conn.getresponse()
            except (ConnectionRefusedError, socket.gaierror) as exc:
                raise DaemonNotRunning(f"no Tressel daemon answers at {self.endpoint.url}") from exc
            if response.status >= 400:
                raise _problem(response.status, response.read(), f"events of job {job_id}")
            yield from _parse_sse(response, comments=True)
        finally:
            conn.close()

    def wait(
        self,
        job_id: str,
        progress: ProgressCallback | None = None,
        timeout: float | None = None,
        read_timeout: float = 30.0,
    ) -> JobInfo:
        """Block until the job ends, calling `progress(phase, step, total)` as events arrive.

        While queued, `progress("queued", jobs_ahead, 0)` is reported. Returns the finished
        job; raises `JobFailed` or `tressel.errors.Cancelled` when it did not succeed, and
        `TimeoutError` after `timeout` seconds (the job keeps running in the daemon). A host UI
        should call this from a worker thread, never its UI thread.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last_id: str | None = None
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"job {job_id} did not finish within {timeout:.0f} s")
            stream_timeout = read_timeout if remaining is None else min(read_timeout, remaining)
            final: JobInfo | None = None
            try:
                for event in self._events(job_id, last_id, max(stream_timeout, 0.1)):
                    last_id = event.id or last_id
                    if event.type == "progress" and progress:
                        progress(event.data["phase"], int(event.data["step"]),
                                 int(event.data["total"]))
                    elif event.type == "queued" and progress:
                        progress("queued", int(event.data.get("position") or 0), 0)
                    elif event.type == "end":
                        final = JobInfo.from_json(event.data)
                        break
                    if deadline is not None and time.monotonic() > deadline:
                        break  # a busy (or keep-alive only) stream, but out of time
            except (TimeoutError, ConnectionResetError, http.client.HTTPException):
                pass  # silence or a dropped stream: look at the job, then reconnect
            if final is None:
                info = self.job(job_id)
                final = info if info.done else None
            if final is not None:
                return _raise_unless_succeeded(final)
            time.sleep(0.05)  # bounded reconnect pace

    def fetch_result(self, job_id: str, dest: str | os.PathLike[str]) -> Path:
        """Download the finished layer to `dest` (a file, or a folder for `<job id>.<format>`)."""
        dest = Path(dest)
        status, headers, data = self.request("GET", f"{API}/jobs/{job_id}/result",
                                             timeout=max(self.timeout, 120.0))
        if status >= 400:
            raise _problem(status, data, f"result of job {job_id}")
        if dest.is_dir():
            ext = headers.get("x-tressel-format") or "usdc"
            dest = dest / f"{job_id}.{ext}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def run(
        self,
        image: str | os.PathLike[str] | bytes,
        dest: str | os.PathLike[str],
        progress: ProgressCallback | None = None,
        timeout: float | None = None,
        **submit_options: Any,
    ) -> Path:
        """Submit, wait and fetch in one call; returns the written layer's path."""
        job = self.submit(image, **submit_options)
        self.wait(job.id, progress=progress, timeout=timeout)
        return self.fetch_result(job.id, dest)


def connect(
    state_dir: str | os.PathLike[str] | None = None,
    autostart: bool = False,
    start_timeout: float = 120.0,
    daemon_command: list[str] | None = None,
    daemon_args: list[str] | None = None,
    timeout: float = 30.0,
) -> Client:
    """A client for the user's daemon; with `autostart`, start a detached one when none runs."""
    folder = Path(state_dir) if state_dir else daemon_dir()
    endpoint = read_endpoint(folder)
    if endpoint is not None:
        client = Client(endpoint, timeout=timeout, state_dir=folder)
        try:
            client.health(timeout=5.0)
            return client
        except StaleEndpoint:
            if not autostart:
                raise  # says why the recorded daemon is not used
        except (DaemonError, OSError, ValueError, http.client.HTTPException):
            pass
    if not autostart:
        raise DaemonNotRunning(
            f"no Tressel daemon is running for {folder}: start one with "
            "`tressel daemon start --detach` (or pass autostart=True)"
        )
    endpoint = start_daemon(folder, command=daemon_command, args=daemon_args,
                            timeout=start_timeout)
    return Client(endpoint, timeout=timeout, state_dir=folder)


def default_daemon_command() -> list[str]:
    """The command line that, followed by `start ARGS`, starts a daemon.

    `$TRESSEL_DAEMON_COMMAND` when set (for example `/opt/tressel/.venv/bin/tressel daemon`),
    else `tressel daemon` with the `tressel` script beside this Python or on PATH, else
    `python -m tressel.daemon`. Inside Maya or Houdini `sys.executable` is the DCC itself, so
    set TRESSEL_DAEMON_COMMAND or put Tressel's `tressel` script on PATH.
    """
    configured = os.environ.get(ENV_DAEMON_COMMAND)
    if configured:
        return shlex.split(configured, posix=os.name != "nt")
    script = "tressel.exe" if os.name == "nt" else "tressel"
    beside = Path(sys.executable).parent / script
    if beside.is_file():
        return [str(beside), "daemon"]
    found = shutil.which("tressel")
    if found:
        return [found, "daemon"]
    return [sys.executable, "-m", "tressel.daemon"]


def start_daemon(
    state_dir: str | os.PathLike[str] | None = None,
    command: list[str] | None = None,
    args: list[str] | None = None,
    timeout: float = 120.0,
) -> Endpoint:
    """Start a detached daemon and return its endpoint once it answers.

    `command` is what `start ARGS` is appended to (default: `default_daemon_command()`).
    The daemon outlives the caller (its own session/process group); its early output goes to
    `daemon.out` in the state folder. If another daemon won the race to start, that one is used.
    """
    from tressel.daemon.lock import is_held  # standard library only

    folder = make_private_dir(Path(state_dir) if state_dir else daemon_dir())
    argv = list(command or default_daemon_command()) + ["start"] + list(args or [])
    env = dict(os.environ)
    env[ENV_DAEMON_DIR] = str(folder)
    launch_id = uuid.uuid4().hex
    env[ENV_LAUNCH_ID] = launch_id
    out_path = folder / LAUNCH_LOG
    kwargs: dict[str, Any] = {}
    if os.name == "nt":
        kwargs["creationflags"] = (
            subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        )
    else:
        kwargs["start_new_session"] = True  # a Ctrl-C in the caller's terminal must not reach it
    log.info("starting the Tressel daemon: %s", " ".join(argv))
    # The launch log may hold paths and errors: the user's alone, like the rest of the folder.
    with os.fdopen(os.open(out_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            close_fds=True, **kwargs,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        endpoint = read_endpoint(folder)
        exited = process.poll()
        ours = endpoint is not None and endpoint.launch_id == launch_id
        # When ours exited, another daemon may have won the race to start: use that one.
        if (endpoint is not None and (ours or exited is not None)
                and _answers(Client(endpoint, timeout=2.0, state_dir=folder))):
            return endpoint
        # Ours exited: if another daemon holds the folder's lock it won the race and is still
        # starting (its endpoint file comes once it listens), so wait for it; else ours failed.
        if exited is not None and not is_held(folder):
            raise DaemonError(
                f"the daemon exited while starting (status {exited}):\n"
                f"{_tail(out_path, 20)}\nsee {out_path}"
            )
        time.sleep(0.1)
    raise DaemonError(
        f"the daemon did not answer within {timeout:.0f} s of starting (pid {process.pid}):\n"
        f"{_tail(out_path, 20)}\nsee {out_path}, or run `tressel daemon start` in a terminal"
    )


# -- helpers -----------------------------------------------------------------------------------


def _answers(client: Client) -> bool:
    try:
        client.health(timeout=5.0)
        return True
    except (DaemonError, OSError, ValueError, http.client.HTTPException):
        return False


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":
        return True  # no cheap check; the caller's deadline bounds the wait
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _problem(status: int, body: bytes, what: str) -> DaemonError:
    """Turn an `application/problem+json` reply into a DaemonError carrying its detail."""
    title, detail = "", ""
    try:
        data = json.loads(body)
        title, detail = str(data.get("title") or ""), str(data.get("detail") or "")
    except (ValueError, AttributeError):
        detail = body.decode("utf-8", "replace")[:500]
    return DaemonError(f"{what}: {detail or title or 'HTTP ' + str(status)}", status, title)


def _raise_unless_succeeded(job: JobInfo) -> JobInfo:
    if job.state == "succeeded":
        return job
    if job.state == "cancelled":
        raise Cancelled(f"job {job.id} was cancelled")
    raise JobFailed(f"job {job.id} failed: {job.error or 'no reason given'}", job)


def _multipart(
    fields: dict[str, str], file_field: str, filename: str, data: bytes
) -> tuple[bytes, str]:
    boundary = f"tressel-{secrets.token_hex(16)}"
    safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
    parts: list[bytes] = []
    for key, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
            + value.encode("utf-8") + b"\r\n"
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
        f'filename="{safe_name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + data + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _parse_sse(response: http.client.HTTPResponse, comments: bool = False) -> Iterator[Event]:
    """Parse a text/event-stream body (the subset the daemon sends: id, event, data, comments).

    With `comments`, each comment line (the daemon's keep-alive) is yielded as a KEEPALIVE
    event."""
    event_type, event_id, data_lines = "message", None, []
    while True:
        raw = response.readline()
        if not raw:
            return
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data_lines:
                try:
                    payload = json.loads("\n".join(data_lines))
                except ValueError:
                    payload = {"text": "\n".join(data_lines)}
                yield Event(event_type, payload, event_id)
            event_type, event_id, data_lines = "message", None, []
            continue
        if line.startswith(":"):
            if comments:
                yield Event(KEEPALIVE, {"text": line[1:].strip()})
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            event_type = value
        elif key == "data":
            data_lines.append(value)
        elif key == "id":
            event_id = value
