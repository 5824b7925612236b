"""Helpers for the daemon and client tests: start real daemon processes, make test images.

`make_engine` is the test engine behind the daemon's documented hook (`TRESSEL_DAEMON_ENGINE=
daemon_support:make_engine`). It runs jobs of controlled length (`steps` x `step_seconds`,
checking the cancel flag between steps) and writes a small text layer naming the job's inputs,
so the tests of queueing, SSE, auth and persistence can control timing exactly. The tests of
the issue's done-criteria use the real pipeline engine instead.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from tressel.client import Client

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PYTHON = sys.executable
DAEMON_COMMAND = [PYTHON, "-m", "tressel.daemon"]


# -- the test engine ---------------------------------------------------------------------------


class SleepEngine:
    """Steps of `step_seconds` each; writes `#usda 1.0` text holding the job's identity."""

    def __init__(self, default_bundle: str | None) -> None:
        self.default_bundle = default_bundle or "sleep-bundle"

    def devices(self, requested: list[str]) -> list[str]:
        return ["cpu"] if requested in ([], ["auto"]) else list(requested)

    def device_info(self, device: str) -> dict[str, Any]:
        return {"name": device, "kind": "cpu"}

    def resolve_bundle(self, name: str | None) -> tuple[str, str]:
        from tressel.errors import BundleError

        name = name or self.default_bundle
        if name.startswith("missing"):
            raise BundleError(f"no model bundle {name!r}: run `tressel models list`")
        return f"/bundles/{name}", f"hash-of-{name}"

    def canonical_params(self, params: dict[str, Any], seed: int) -> dict[str, Any]:
        from tressel.errors import ConfigError

        allowed = {"steps": 3, "step_seconds": 0.01, "fail": False, "write_seconds": 0.0,
                   "pad_bytes": 0}
        unknown = set(params) - set(allowed)
        if unknown:
            raise ConfigError(f"unknown generation parameter(s) {', '.join(sorted(unknown))}")
        return {**allowed, **params, "seed": seed}

    def canonical_write_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return dict(sorted(options.items()))

    def run_job(self, job: Any, progress: Any, cancel: Any) -> None:
        from tressel.daemon.cache import publish
        from tressel.errors import TresselError
        from tressel.progress import check_cancel

        steps = int(job.params["steps"])
        for step in range(steps):
            check_cancel(cancel)
            progress("diffusion", step, steps)
            time.sleep(float(job.params["step_seconds"]))
        check_cancel(cancel)
        progress("diffusion", steps, steps)
        if job.params["fail"]:
            raise TresselError("the test engine was asked to fail")
        body = json.dumps({"image": job.image_path.name, "seed": job.seed, "job": job.job_id,
                           "bundle": job.bundle_hash, "params": job.params})
        with open(job.temp_path, "w", encoding="utf-8") as layer:
            layer.write("#usda 1.0\n")
            layer.flush()
            progress("write", 0, 1)
            time.sleep(float(job.params["write_seconds"]))  # a slow write: a kill lands here
            layer.write("#" * int(job.params["pad_bytes"]) + "\n")  # a bigger layer
            layer.write(f"# {body}\n# complete\n")
        publish(job.temp_path, job.output_path)

    def models(self) -> list[dict[str, Any]]:
        return [{"name": self.default_bundle, "path": f"/bundles/{self.default_bundle}",
                 "hash": f"hash-of-{self.default_bundle}", "loaded": False, "default": True}]

    def load_model(self, name: str | None) -> dict[str, Any]:
        return {**self.models()[0], "loaded": True}

    def unload_model(self, name: str | None) -> dict[str, Any]:
        return self.models()[0]


def make_engine(default_bundle: str | None) -> SleepEngine:
    # A slow start (like loading a real engine) widens the window in which racing daemons
    # hold the lock but have not written their endpoint yet.
    time.sleep(float(os.environ.get("TRESSEL_TEST_ENGINE_LOAD_S", "0")))
    return SleepEngine(default_bundle)


SLEEP_ENGINE = "daemon_support:make_engine"


# -- daemon processes --------------------------------------------------------------------------


_STARTED: list[Daemon] = []


@atexit.register
def _kill_leftovers() -> None:
    """A failing test must not leave daemon processes behind when pytest exits."""
    for daemon in _STARTED:
        daemon.kill()


class Daemon:
    """A `tressel daemon start` process on 127.0.0.1 with its own state folder."""

    def __init__(self, state_dir: Path, engine: str | None = SLEEP_ENGINE,
                 args: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.state_dir = state_dir
        self.engine = engine
        self.args = list(args or [])
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen | None = None
        self.log_path = state_dir.parent / f"{state_dir.name}-stdout.log"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TRESSEL_DAEMON_DIR"] = str(self.state_dir)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS),
                                                         env.get("PYTHONPATH", "")]))
        env.pop("TRESSEL_DAEMON_ENGINE", None)
        if self.engine:
            env["TRESSEL_DAEMON_ENGINE"] = self.engine
        env.update(self.extra_env)
        return env

    def command(self) -> list[str]:
        return [PYTHON, "-m", "tressel.daemon", "start", *self.args]

    def start(self, timeout: float = 90.0) -> Any:
        """Start the process and return a connected `tressel.client.Client`."""
        from tressel.client import Client, read_endpoint

        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=self.env(), cwd=REPO,
            )
        _STARTED.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited ({self.process.returncode}):\n{self.output()}")
            endpoint = read_endpoint(self.state_dir)
            if endpoint is not None and endpoint.pid == self.process.pid:
                client = Client(endpoint, timeout=30.0)
                with contextlib.suppress(Exception):  # not answering yet
                    client.health(timeout=2.0)
                    return client
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"daemon did not answer within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """Graceful stop (SIGTERM), then SIGKILL if it hangs; returns the exit status."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """`kill -9`: no cleanup of any kind runs in the daemon."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


# Small real-pipeline jobs: the noise images have no face, so the whole image is the crop.
FAST = {"crop": False, "steps": 2, "max_strands": 48}
WRITE = {"guides": 8, "points_per_strand": 8}
# A sleep-engine job (SLEEP_ENGINE) that runs 10 s unless cancelled.
SLOW = {"steps": 200, "step_seconds": 0.05}


def tiny_bundle(folder: Path) -> Any:
    """A tiny bundle with random weights (`tressel.random_bundle`), named "tiny-random"."""
    from tressel.random_bundle import make_random_bundle

    return make_random_bundle(folder / "tiny-random", "tiny")


def real_daemon(state_dir: Path, bundle: Any, *extra: str) -> Daemon:
    """A daemon running the real pipeline engine on the CPU with `bundle` as its default, an
    empty model store, and limits of 1 MB and 1 Mpx per upload."""
    return Daemon(
        state_dir, engine=None,
        args=["--bundle", str(bundle.path), "--device", "cpu", "--max-upload-mb", "1",
              "--max-megapixels", "1", *extra],
        env={"TRESSEL_MODELS_DIR": str(state_dir.parent / "models")},
    )


def write_png(path: Path, width: int = 48, height: int = 40, seed: int = 0) -> Path:
    """A small RGB PNG of random pixels (different `seed`, different bytes and hash)."""
    import numpy as np
    from helpers import write_image

    pixels = (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)
    return write_image(path, pixels)


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.02) -> Any:
    """Poll `predicate()` until it returns a truthy value (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")



class ThreadRecordingClient(Client):
    """A real client that notes which thread made each request to the daemon, so host tests
    can check that none comes from the UI thread (`threads` is shared by every instance)."""

    threads: ClassVar[list[str]] = []

    def request(self, *args, **kwargs):
        self.threads.append(threading.current_thread().name)
        return super().request(*args, **kwargs)

    def events(self, *args, **kwargs):
        self.threads.append(threading.current_thread().name)
        return super().events(*args, **kwargs)


def stop_detached(state_dir: Path, strict: bool = False) -> None:
    """Stop a daemon a client started (detached: not our child), by force if it hangs.

    With `strict`, a daemon that had to be killed fails the test after the kill."""
    from tressel.client import DaemonError, read_endpoint
    from tressel.daemon.lock import is_held

    endpoint = read_endpoint(state_dir)
    if endpoint is None:
        return
    with contextlib.suppress(DaemonError):
        Client(endpoint, timeout=5).shutdown()
    try:
        wait_for(lambda: not is_held(state_dir), timeout=30)
    except AssertionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(endpoint.pid, signal.SIGKILL)
        if strict:
            raise


def connect_concurrently(state_dir: Path, clients: int, start_timeout: float) -> list[Client]:
    """`clients` threads each `connect(autostart=True)` on an empty state folder at once; their
    clients (every thread must succeed)."""
    from tressel.client import connect

    results: list[Client] = []
    errors: list[BaseException] = []

    def go() -> None:
        try:
            results.append(connect(state_dir, autostart=True,
                                   daemon_command=[PYTHON, "-m", "tressel.daemon"],
                                   start_timeout=start_timeout))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(start_timeout + 30)
    assert not errors, errors
    return results
