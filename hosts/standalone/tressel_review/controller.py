"""The review tool's controller: daemon jobs, history, loading and export, all off the UI thread.

Every network call and every slow load runs on a worker thread (`HostJob` for jobs, `run_async`
for the rest); results come back to the UI thread through `UiBridge`, a Qt signal, so the
window only ever touches the queue model and its widgets from the thread that owns them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from tressel import client as tressel_client
from tressel.errors import TresselError
from tressel.hosting import HostJob, HostResult, default_connect, release, reserve_output
from tressel.paths import user_dir

from tressel_review import drawing
from tressel_review.export import ExportReport, export_groom, model_crop
from tressel_review.models import QueueEntry, ReviewOptions, ReviewQueue

log = logging.getLogger(__name__)

HISTORY_INTERVAL_MS = 3000
ConnectFn = Callable[[], tressel_client.Client]


def default_output_dir() -> Path:
    """Where the review tool keeps the layers it fetched (`$TRESSEL_REVIEW_DIR` overrides)."""
    return user_dir("data", "review", "grooms", env="TRESSEL_REVIEW_DIR")


class UiBridge(QObject):
    """`post(fn)` from any thread runs `fn` on the thread that owns the bridge (the UI)."""

    _call = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self._call.connect(self._run)

    def post(self, fn: Callable[[], None]) -> None:
        self._call.emit(fn)

    @Slot(object)
    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # one failing callback must not take the window down
            log.exception("review tool callback failed")


@dataclass
class LoadedGroom:
    """One groom ready for the viewer: the scene, its buffers per level of detail, images."""

    entry_key: str | None
    scene: drawing.GroomScene
    buffers: dict[str, drawing.DrawBuffers]
    head: drawing.HeadMesh
    photo: Any = None  # uint8 [H, W, 3] or None
    crop: Any = None  # uint8 [S, S, 3] or None
    crop_note: str = ""


def load_groom(layer: Path, photo: str | None, entry_key: str | None = None,
               lods: tuple[str, ...] = drawing.LODS) -> LoadedGroom:
    """Read the layer and prepare every level of detail and the images (a worker thread)."""
    scene = drawing.load_groom_scene(layer)
    buffers = {lod: drawing.prepare_buffers(scene.curves(lod), scene.look) for lod in lods}
    loaded = LoadedGroom(entry_key, scene, buffers, drawing.head_mesh(scene))
    if photo and Path(photo).is_file():
        from tressel.face import to_uint8_frame
        from tressel.images import load_image

        try:
            loaded.photo = to_uint8_frame(load_image(photo).rgb)
            loaded.crop = model_crop(photo, scene.provenance, out_size=512)
        except TresselError as exc:
            loaded.crop_note = str(exc)
    else:
        loaded.crop_note = "the source photo is not on this machine"
    return loaded


class ReviewController(QObject):
    """Owns the queue model and the daemon jobs; the window listens to its signals."""

    entry_added = Signal(str)  # key
    entry_changed = Signal(str)  # key
    groom_loaded = Signal(object)  # LoadedGroom
    load_failed = Signal(str, str)  # key, message
    exported = Signal(object)  # ExportReport
    message = Signal(str)  # status-bar text
    models_listed = Signal(object)  # list of model dicts, each with "sampler" when readable
    history_failed = Signal(str)
    history_ok = Signal()

    def __init__(self, connect: ConnectFn | None = None, output_dir: Path | None = None,
                 history: bool = True) -> None:
        super().__init__()
        self.queue = ReviewQueue()
        self.bridge = UiBridge()
        self._connect_fn = connect or default_connect
        self._client: tressel_client.Client | None = None
        self._client_lock = threading.Lock()
        self.output_dir = Path(output_dir or default_output_dir())
        self.jobs: dict[str, HostJob] = {}
        self._history_busy = False
        self.history_timer = QTimer(self)
        self.history_timer.setInterval(HISTORY_INTERVAL_MS)
        self.history_timer.timeout.connect(self.refresh_history)
        if history:
            self.history_timer.start()

    # -- threads -----------------------------------------------------------------------------

    def connect(self) -> tressel_client.Client:
        """The daemon client, connected (and the daemon started) once; worker threads only."""
        with self._client_lock:
            if self._client is None:
                self._client = self._connect_fn()
            return self._client

    def connect_if_running(self) -> tressel_client.Client:
        """The daemon client without starting a daemon: polling the history of a daemon that
        is not running must not start one (the first job does). Worker threads only."""
        with self._client_lock:
            if self._client is not None:
                return self._client
        if self._connect_fn is default_connect:
            try:
                return tressel_client.connect(autostart=False)
            except tressel_client.DaemonNotRunning as exc:
                raise TresselError("no daemon running yet: it starts with the first job") \
                    from exc
        return self.connect()

    def run_async(self, work: Callable[[], Any], on_done: Callable[[Any], None],
                  on_error: Callable[[str], None] | None = None, name: str = "review") -> None:
        """Run `work()` on a thread; its result or error message comes back on the UI thread."""

        def worker() -> None:
            try:
                result = work()
            except TresselError as exc:
                message = str(exc)
            except Exception as exc:  # the user must hear of every failure
                log.exception("%s failed", name)
                message = f"{type(exc).__name__}: {exc}"
            else:
                self.bridge.post(lambda: on_done(result))
                return
            if on_error:
                self.bridge.post(lambda: on_error(message))
            else:
                self.bridge.post(lambda: self.message.emit(f"{name}: {message}"))

        threading.Thread(target=worker, name=f"tressel-{name}", daemon=True).start()

    # -- jobs --------------------------------------------------------------------------------

    def submit_photos(self, photos: list[Path], options: ReviewOptions) -> list[QueueEntry]:
        entries = [self.queue.add(photo, ReviewOptions.from_dict(options.to_dict()))
                   for photo in photos]
        for entry in entries:
            self.entry_added.emit(entry.key)
            self._start(entry)
        return entries

    def submit_seed_variants(self, photo: Path, options: ReviewOptions,
                             seeds: list[int]) -> list[QueueEntry]:
        entries = self.queue.add_seed_variants(photo, options, seeds)
        for entry in entries:
            self.entry_added.emit(entry.key)
            self._start(entry)
        return entries

    def _start(self, entry: QueueEntry) -> None:
        key = entry.key
        self.queue.started(key)
        job = HostJob(
            entry.photo, entry.options, self.output_dir, call_on_ui_thread=self.bridge.post,
            on_progress=lambda phase, step, total: self._progress(key, phase, step, total),
            on_done=lambda result: self._done(key, result),
            on_error=lambda message: self._failed(key, message),
            on_cancelled=lambda: self._cancelled(key),
            connect=self.connect,
        )
        self.jobs[key] = job
        job.start()
        self.entry_changed.emit(key)

    def _progress(self, key: str, phase: str, step: int, total: int) -> None:
        job = self.jobs.get(key)
        if job is not None and job.job_id:
            self.queue.submitted(key, job.job_id)
        self.queue.progress(key, phase, step, total)
        self.entry_changed.emit(key)

    def _done(self, key: str, result: HostResult) -> None:
        self.queue.succeeded(key, result.path, result.job.id)
        self.entry_changed.emit(key)
        self.message.emit(f"{Path(result.photo).name} seed {result.options.seed}: groom ready")

    def _failed(self, key: str, message: str) -> None:
        job = self.jobs.get(key)
        if job is not None and job.job_id:
            self.queue.submitted(key, job.job_id)
        self.queue.failed(key, message)
        self.entry_changed.emit(key)
        self.message.emit(f"{self.queue.get(key).name}: {message}")

    def _cancelled(self, key: str) -> None:
        self.queue.cancelled(key)
        self.entry_changed.emit(key)

    def cancel(self, key: str) -> None:
        entry = self.queue.get(key)
        job = self.jobs.get(key)
        if job is not None and not job.done:
            job.cancel()  # returns at once; on_cancelled follows from the worker
        elif entry.origin == "daemon" and entry.job_id and entry.can_cancel:
            job_id = entry.job_id
            self.run_async(lambda: self.connect().cancel(job_id), lambda _: self.refresh_history(),
                           name="cancel")

    def retry(self, key: str) -> None:
        entry = self.queue.retry(key)
        self.entry_changed.emit(key)
        self._start(entry)

    def active_jobs(self) -> int:
        return sum(1 for job in self.jobs.values() if not job.done)

    # -- history -----------------------------------------------------------------------------

    @Slot()
    def refresh_history(self) -> None:
        """Ask the daemon for its recent jobs (a thread); new and changed rows follow."""
        if self._history_busy:
            return
        self._history_busy = True

        def done(jobs: list[tressel_client.JobInfo]) -> None:
            self._history_busy = False
            self.history_ok.emit()
            # A job of ours may be in the list before its first progress event told the queue
            # its id: record the ids HostJob already has, so it is not listed twice.
            for key, job in self.jobs.items():
                if job.job_id and self.queue.get(key).job_id is None:
                    self.queue.submitted(key, job.job_id)
            known = {e.key for e in self.queue}
            for entry in self.queue.merge_history(jobs):
                if entry.key in known:
                    self.entry_changed.emit(entry.key)
                else:
                    self.entry_added.emit(entry.key)

        def failed(message: str) -> None:
            self._history_busy = False
            self.history_failed.emit(message)

        self.run_async(lambda: self.connect_if_running().jobs(limit=100), done, failed,
                       name="history")

    def list_models(self) -> None:
        """The daemon's bundles with their sampler defaults (read from the bundle manifest when
        the bundle folder is on this machine), for the parameter panel."""

        def work() -> list[dict[str, Any]]:
            models = self.connect_if_running().models()
            for model in models:
                try:
                    from tressel.bundles import load_bundle

                    model["sampler"] = load_bundle(model["path"]).sampler
                except (TresselError, OSError, KeyError, ValueError) as exc:
                    # a remote daemon's bundle: no local defaults
                    log.debug("no sampler defaults for %s: %s", model.get("name"), exc)
            return models

        self.run_async(work, self.models_listed.emit, self.history_failed.emit, name="models")

    # -- viewing and export ------------------------------------------------------------------

    def ensure_layer(self, entry: QueueEntry) -> Path:
        """The entry's layer on disk, fetched from the daemon for history jobs (worker thread)."""
        if entry.layer is not None and entry.layer.is_file():
            return entry.layer
        if entry.state != "succeeded" or not entry.job_id:
            raise TresselError(f"{entry.name} has no groom yet ({entry.status_text()})")
        client = self.connect()
        info = client.job(entry.job_id)
        path = reserve_output(self.output_dir, entry.photo or entry.job_id, info.seed,
                              ext=info.format or "usdc")
        try:
            client.fetch_result(entry.job_id, path)
        except BaseException:
            release(path)
            raise
        entry.layer = path  # a plain attribute write; the UI reads it after groom_loaded
        return path

    def load_entry(self, key: str, lods: tuple[str, ...] = drawing.LODS) -> None:
        entry = self.queue.get(key)
        photo = entry.photo if entry.origin == "local" else None

        def work() -> LoadedGroom:
            return load_groom(self.ensure_layer(entry), photo, key, lods)

        self.run_async(work, self.groom_loaded.emit,
                       lambda message: self.load_failed.emit(key, message), name="load")

    def load_file(self, layer: Path, photo: str | None = None) -> None:
        self.run_async(lambda: load_groom(layer, photo), self.groom_loaded.emit,
                       lambda message: self.load_failed.emit("", message), name="load")

    def export(self, key: str, folder: Path) -> None:
        entry = self.queue.get(key)
        photo = entry.photo if entry.origin == "local" else None

        def work() -> ExportReport:
            return export_groom(self.ensure_layer(entry), folder, photo)

        self.run_async(work, self.exported.emit,
                       lambda message: self.message.emit(f"export failed: {message}"),
                       name="export")

    def export_file(self, layer: Path, folder: Path, photo: str | None = None) -> None:
        self.run_async(lambda: export_groom(layer, folder, photo), self.exported.emit,
                       lambda message: self.message.emit(f"export failed: {message}"),
                       name="export")

    def shutdown(self, cancel_jobs: bool = False, timeout: float = 5.0) -> None:
        """Stop polling. Jobs keep running in the daemon (they show up in the history next
        time) unless `cancel_jobs`, which cancels them and waits for their workers."""
        self.history_timer.stop()
        if not cancel_jobs:
            return
        for job in self.jobs.values():
            if not job.done:
                job.cancel()
        deadline = time.monotonic() + timeout
        for job in self.jobs.values():
            job.join(max(0.0, deadline - time.monotonic()))
