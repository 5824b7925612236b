"""Run one groom job for a DCC host: daemon work on a worker thread, results on the UI thread.

Every host (Maya, Houdini, Blender, the review tool) does the same thing: start the daemon if
needed, submit the photo, follow progress, fetch the layer to a file that overwrites nothing,
then bring it into the scene. All of it but the last step is here, with the standard library
only. The host passes `call_on_ui_thread` (Maya's `maya.utils.executeDeferred`, a Houdini or
Blender `CallQueue.drain` on a timer, a Qt signal) and gets its callbacks there; no client call
is ever made from the UI thread, and no host callback from the worker thread.

    job = HostJob("portrait.jpg", GroomOptions(seed=3), "/proj/usd/tressel",
                  call_on_ui_thread=maya.utils.executeDeferred,
                  on_progress=show, on_done=bring_in, on_error=report)
    job.start()          # returns at once
    job.cancel()         # from the UI thread too: the request is sent from another thread
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tressel import client as tressel_client
from tressel.errors import Cancelled, TresselError
from tressel.hosting.naming import release, reserve_output
from tressel.hosting.options import GroomOptions

log = logging.getLogger(__name__)

UiCall = Callable[[Callable[[], None]], Any]
ConnectFn = Callable[[], tressel_client.Client]


@dataclass(frozen=True)
class HostResult:
    """A finished groom: the layer on disk and the daemon's record of the job."""

    path: Path
    job: tressel_client.JobInfo
    photo: str
    options: GroomOptions


def default_connect() -> tressel_client.Client:
    """The user's daemon, started on demand (`TRESSEL_DAEMON_COMMAND` says how in a DCC)."""
    return tressel_client.connect(autostart=True)


def send_cancel(client: tressel_client.Client, job_id: str) -> None:
    """Cancel a daemon job; one that already ended (or a daemon gone away) is only logged."""
    try:
        client.cancel(job_id)
    except TresselError as exc:
        log.info("cancel of job %s: %s", job_id, exc)


def run_groom_job(
    photo: str | os.PathLike[str],
    options: GroomOptions,
    output_dir: str | os.PathLike[str],
    *,
    progress: tressel_client.ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    connect: ConnectFn = default_connect,
    on_submitted: Callable[[tressel_client.Client, str], None] | None = None,
    timeout: float | None = None,
) -> HostResult:
    """Blocking: connect (starting the daemon), submit, wait, fetch to a new file; the result.

    What the scripting entries (`mayapy`, `hython`, Blender scripts) call directly, and what
    `HostJob` runs on its worker thread. Raises `tressel.errors.Cancelled` when `cancel` is set
    (the daemon job is cancelled too), `tressel.client.JobFailed` with the daemon's reason, or
    another `TresselError`; nothing is left on disk unless the groom was written.
    """
    options.check()
    photo = str(photo)
    if not Path(photo).is_file():
        raise TresselError(f"photo {photo} not found: pick an existing image file")
    cancel = cancel or threading.Event()
    if progress:
        progress("connecting", 0, 0)
    client = connect()
    if cancel.is_set():
        raise Cancelled("job cancelled before it was submitted")
    job = client.submit(photo, **options.submit_kwargs())
    if on_submitted:
        on_submitted(client, job.id)
    cancel_sent = False

    def on_progress(phase: str, step: int, total: int) -> None:
        nonlocal cancel_sent
        if cancel.is_set() and not cancel_sent:
            cancel_sent = True
            send_cancel(client, job.id)  # the wait then ends with Cancelled
        if progress:
            progress(phase, step, total)

    if cancel.is_set():
        on_progress("cancelling", 0, 0)

    finished = client.wait(job.id, progress=on_progress, timeout=timeout)
    path = reserve_output(output_dir, photo, options.seed, ext=finished.format or options.format)
    try:
        client.fetch_result(job.id, path)
    except BaseException:
        release(path)
        raise
    return HostResult(path=path, job=finished, photo=photo, options=options)


class HostJob:
    """One groom job on a worker thread; every callback runs through `call_on_ui_thread`.

    Callbacks: `on_progress(phase, step, total)` (coalesced: the UI sees the latest step, never
    a backlog), then exactly one of `on_done(HostResult)`, `on_error(message)` or
    `on_cancelled()`. `state` is one of pending, running, succeeded, failed, cancelled.
    """

    def __init__(
        self,
        photo: str | os.PathLike[str],
        options: GroomOptions,
        output_dir: str | os.PathLike[str],
        *,
        call_on_ui_thread: UiCall,
        on_progress: Callable[[str, int, int], None] | None = None,
        on_done: Callable[[HostResult], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        connect: ConnectFn = default_connect,
    ) -> None:
        self.photo = str(photo)
        self.options = options
        self.output_dir = Path(output_dir)
        self._ui = call_on_ui_thread
        self._on_progress = on_progress
        self._on_done = on_done
        self._on_error = on_error
        self._on_cancelled = on_cancelled
        self._connect = connect
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._pending_progress: tuple[str, int, int] | None = None
        self._client: tressel_client.Client | None = None
        self.job_id: str | None = None
        self.state = "pending"
        self.result: HostResult | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"tressel-job-{Path(photo).name}",
                                        daemon=True)

    # -- called from the UI thread -----------------------------------------------------------

    def start(self) -> HostJob:
        self.state = "running"
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the daemon to stop this job; returns at once (the request goes from a thread)."""
        self._cancel.set()
        with self._lock:
            client, job_id = self._client, self.job_id
        if client is not None and job_id is not None:
            threading.Thread(target=send_cancel, args=(client, job_id),
                             name="tressel-cancel", daemon=True).start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker (tests and blocking scripts); True when it has finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

    # -- the worker thread -------------------------------------------------------------------

    def _submitted(self, client: tressel_client.Client, job_id: str) -> None:
        with self._lock:
            self._client, self.job_id = client, job_id

    def _progress(self, phase: str, step: int, total: int) -> None:
        with self._lock:
            post = self._pending_progress is None
            self._pending_progress = (phase, step, total)
        if post:
            self._ui(self._flush_progress)

    def _flush_progress(self) -> None:  # UI thread
        with self._lock:
            latest, self._pending_progress = self._pending_progress, None
        if latest is not None and self._on_progress and not self.done:
            self._on_progress(*latest)

    def _run(self) -> None:
        try:
            result = run_groom_job(self.photo, self.options, self.output_dir,
                                   progress=self._progress, cancel=self._cancel,
                                   connect=self._connect, on_submitted=self._submitted)
        except Cancelled:
            self._finish("cancelled", self._on_cancelled)
        except TresselError as exc:
            self._finish("failed", self._on_error, str(exc))
        except (OSError, TimeoutError) as exc:
            self._finish("failed", self._on_error, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a host must hear of every failure
            log.exception("Tressel job for %s failed", self.photo)
            self._finish("failed", self._on_error, f"unexpected error: {exc!r}")
        else:
            self.result = result
            self._finish("succeeded", self._on_done, result)

    def _finish(self, state: str, callback: Callable[..., None] | None, *args: Any) -> None:
        def deliver() -> None:  # UI thread: state changes where the host reads it
            self.state = state
            if state == "failed":
                self.error = args[0]
            if callback:
                callback(*args)

        self._ui(deliver)


class CallQueue:
    """Calls posted from any thread, run on the UI thread when it calls `drain()`.

    For hosts whose UI thread polls (a Blender timer, a Houdini event-loop callback, tests):
    pass `queue.post` as `call_on_ui_thread` and call `queue.drain()` from the UI side.
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def post(self, fn: Callable[[], None]) -> None:
        self._calls.put(fn)

    def drain(self) -> int:
        """Run every call posted so far; returns how many ran. Exceptions are logged, not lost."""
        count = 0
        while True:
            try:
                fn = self._calls.get_nowait()
            except queue.Empty:
                return count
            count += 1
            try:
                fn()
            except Exception:  # one bad callback must not stop the others
                log.exception("a Tressel UI callback failed")
