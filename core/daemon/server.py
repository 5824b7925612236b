"""Run one daemon: single-instance lock, loopback socket, endpoint file with a fresh token, uvicorn.

The lock (an OS file lock on `daemon.lock` in the state folder) is what makes "one daemon per
user": the kernel drops it when the process dies, even by `kill -9`, so a crashed daemon never
blocks the next start. The endpoint file is written only once the socket listens.
"""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
import secrets
import signal
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from tressel import __version__
from tressel.client import (
    ENDPOINT_FILE,
    ENV_LAUNCH_ID,
    Endpoint,
    make_private_dir,
    read_endpoint,
    write_endpoint,
)
from tressel.daemon.app import create_app
from tressel.daemon.config import DaemonConfig
from tressel.daemon.engine import load_engine
from tressel.daemon.lock import acquire
from tressel.daemon.manager import JobManager
from tressel.errors import ConfigError, TresselError

log = logging.getLogger(__name__)


class DaemonAlreadyRunning(TresselError):
    """Another daemon holds this state folder's lock."""


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if os.name != "nt":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is already in use (another daemon, or another "
                "program): pick another with --port, or --port 0 for any free port"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def make_private(state_dir: Path) -> None:
    """Take group and other permissions off everything in the state folder (left by an older
    Tressel, or created under a permissive umask); symbolic links are left alone."""
    if os.name == "nt":
        return
    uid = os.getuid()
    for folder, dirs, files in os.walk(state_dir):
        for name in [*dirs, *files]:
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
                if st.st_uid == uid and not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
                    os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)
            except OSError as exc:
                log.warning("cannot make %s private: %s", path, exc)


def _setup_logging(config: DaemonConfig, to_stderr: bool) -> None:
    handler = logging.handlers.RotatingFileHandler(
        config.log_path, maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    if not to_stderr:
        for existing in list(root.handlers):
            if isinstance(existing, logging.StreamHandler) and not isinstance(
                existing, logging.FileHandler
            ):
                root.removeHandler(existing)
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def run_daemon(config: DaemonConfig, log_to_stderr: bool = True) -> int:
    """Serve until stopped (`tressel daemon stop`, SIGTERM or Ctrl-C); returns an exit status."""
    state_dir = config.state_dir
    # Uploaded photos, layers, the jobs database and the log are the user's alone, however the
    # daemon was started (a terminal's umask is often 022): every file it creates is 0600.
    if os.name != "nt":
        os.umask(0o077)
    make_private_dir(state_dir)
    lock = acquire(config.lock_path, wait=1.0)
    if lock is None:
        other = read_endpoint(state_dir)
        where = f" (pid {other.pid}, {other.url})" if other else ""
        raise DaemonAlreadyRunning(
            f"a Tressel daemon is already running for {state_dir}{where}: use it, or stop it "
            "with `tressel daemon stop` (another TRESSEL_DAEMON_DIR runs a second one)"
        )
    make_private(state_dir)
    _setup_logging(config, log_to_stderr)
    manager = None
    try:
        sock = _bind(config.host, config.port)
        engine = load_engine(config.engine, config.default_bundle, config.threads)
        manager = JobManager(config, engine)
        manager.start()
        if config.preload:
            log.info("preloading %s", engine.load_model(config.default_bundle)["name"])
        token = secrets.token_urlsafe(32)

        server: _Server | None = None

        def request_shutdown() -> None:
            if server is not None:
                server.request_exit()

        app = create_app(manager, token, request_shutdown=request_shutdown)
        server = _Server(
            uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                           timeout_graceful_shutdown=3),
            manager,
        )
        host, port = sock.getsockname()[:2]
        endpoint = Endpoint(host=host, port=port, token=token, pid=os.getpid(),
                            version=__version__, started_at=time.time(),
                            launch_id=os.environ.get(ENV_LAUNCH_ID, ""))
        write_endpoint(endpoint, state_dir)
        log.info("Tressel daemon %s listening on %s (pid %d, devices %s, state %s)",
                 __version__, endpoint.url, os.getpid(), ", ".join(manager.devices), state_dir)
        # uvicorn re-raises a captured SIGTERM/SIGINT after its graceful shutdown; with these
        # handlers in place that lands here instead of killing us before the cleanup below.
        stops: list[int] = []
        previous = {sig: signal.signal(sig, lambda s, f: stops.append(s))
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            server.run(sockets=[sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("stopping")
        return 0
    finally:
        if manager is not None:
            manager.stop()
        mine = read_endpoint(state_dir)
        if mine is not None and mine.pid == os.getpid():
            (state_dir / ENDPOINT_FILE).unlink(missing_ok=True)
        lock.close()
        log.info("stopped")


class _Server(uvicorn.Server):
    """uvicorn's server, told about the manager so that a stop ends event streams promptly."""

    def __init__(self, config: uvicorn.Config, manager: JobManager) -> None:
        super().__init__(config)
        self.manager = manager

    def handle_exit(self, sig: int, frame: Any) -> None:
        # Runs in a signal handler: a plain attribute write is the only safe signal to others.
        self.manager.shutting_down = True
        super().handle_exit(sig, frame)

    def request_exit(self) -> None:
        self.manager.shutting_down = True
        self.should_exit = True


def main() -> int:  # pragma: no cover - `python -m tressel.daemon.server` for debugging
    logging.basicConfig(level=logging.INFO)
    return run_daemon(DaemonConfig())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
