"""The job queue: submission (with cache hits), one worker thread per device, cancellation.

Workers take queued jobs strictly in submission order. A running job is stopped through its
cancel flag, which the engine checks between steps; a graceful daemon stop uses the same flag
and puts the job back at its place in the queue, so nothing is lost.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tressel.daemon.cache import ResultCache, cache_key, publish
from tressel.daemon.config import GB, DaemonConfig
from tressel.daemon.engine import Engine, EngineJob
from tressel.daemon.events import EventBus
from tressel.daemon.store import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Job,
    JobStore,
    new_job_id,
)
from tressel.errors import Cancelled, TresselError

log = logging.getLogger(__name__)


@dataclass
class Progress:
    phase: str
    step: int
    total: int


class _CancelFlag:
    """Set by a user's cancel or by a daemon stop; the reason decides the job's next state."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        self.reason = self.reason or reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class JobManager:
    """Owns the store, cache, event bus, engine and workers of one daemon."""

    def __init__(self, config: DaemonConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.store = JobStore(config.db_path)
        self.cache = ResultCache(config.cache_dir)
        self.bus = EventBus()
        self.inputs_dir = config.inputs_dir
        self.inputs_dir.mkdir(parents=True, exist_ok=True)
        self._progress: dict[str, Progress] = {}
        self._flags: dict[str, _CancelFlag] = {}
        self._pending_cancels: set[str] = set()
        self._lock = threading.Lock()
        self._inputs_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self.shutting_down = False  # set from a signal handler when a stop begins
        self.devices = engine.devices(config.devices)
        self._workers = [
            threading.Thread(target=self._work, args=(d,), name=f"tressel-worker-{d}",
                             daemon=True)
            for d in self.devices
        ]
        self.started_at = time.time()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Recover from a previous crash, then start the workers."""
        swept = self.cache.sweep()
        if swept:
            log.warning("removed %d half-written cache file(s) left by a stopped daemon", swept)
        requeued, failed = self.store.recover()
        for job_id in requeued:
            log.warning("job %s was interrupted by a daemon stop or crash: re-queued", job_id)
        for job_id in failed:
            log.error("job %s was interrupted repeatedly: marked failed", job_id)
        self.store.prune(self.config.recent_jobs)
        self._gc_inputs()
        self._evict()
        for worker in self._workers:
            worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers; a running job is cancelled and put back in the queue."""
        self._stopping.set()
        with self._lock:
            for flag in self._flags.values():
                flag.set("shutdown")
        with self._wake:
            self._wake.notify_all()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            if worker.is_alive():
                worker.join(max(0.0, deadline - time.monotonic()))
        self.bus.close()
        self.store.close()

    @property
    def stopping(self) -> bool:
        return self.shutting_down or self._stopping.is_set()

    # -- submission --------------------------------------------------------------------------

    def input_path(self, sha256: str, name: str) -> Path:
        """Where a job's image waits: `inputs/<sha256>/<name>`, so messages name the user's file."""
        return self.inputs_dir / sha256 / name

    def _store_input(self, data: bytes, sha256: str, name: str) -> Path:
        """Keep the image until no queued or running job needs it (caller holds the lock)."""
        path = self.input_path(sha256, name)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}.tmp-{os.getpid()}")
            tmp.write_bytes(data)
            publish(tmp, path)
        return path

    def submit(
        self,
        image: bytes,
        image_name: str,
        bundle: str | None,
        params: dict[str, Any],
        write_options: dict[str, Any],
        seed: int,
        fmt: str,
        validate: Callable[[], object] | None = None,
    ) -> Job:
        """Queue a job, or record it as already succeeded when its result is cached.

        `validate` (decoding the image) runs only on a cache miss: a hit proves the same bytes
        were decoded before.
        """
        image_sha256 = hashlib.sha256(image).hexdigest()
        bundle_ref, bundle_hash = self.engine.resolve_bundle(bundle)
        canonical = self.engine.canonical_params(params, seed)
        options = self.engine.canonical_write_options(write_options)
        key = cache_key(image_sha256, bundle_hash, canonical, options, seed, fmt)
        job = Job(
            id=new_job_id(), state=QUEUED, created_at=time.time(), image_sha256=image_sha256,
            image_name=image_name, bundle=bundle_ref, bundle_hash=bundle_hash, params=canonical,
            write_options=options, seed=seed, format=fmt, cache_key=key,
        )
        if self.cache.lookup(key, fmt) is not None:
            job.state, job.cached, job.finished_at = SUCCEEDED, True, job.created_at
            self.store.add(job)
            self.bus.publish(job.id, "end", self.view(job))
            log.info("job %s: cache hit %s", job.id, key[:12])
            return job
        if validate is not None:
            validate()
        # Under the inputs lock so that a concurrent clean-up cannot delete the image between
        # storing it and recording the job that needs it.
        with self._inputs_lock:
            self._store_input(image, image_sha256, image_name)
            self.store.add(job)
        self.bus.publish(job.id, "queued", {"position": self.store.queue_position(job)})
        with self._wake:
            self._wake.notify()
        log.info("job %s queued (%s, seed %d, %s)", job.id, image_name, seed, fmt)
        return job

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job at once or ask a running one to stop; None if unknown."""
        if self.store.cancel_queued(job_id):
            job = self.store.get(job_id)
            assert job is not None
            self.bus.publish(job_id, "end", self.view(job))
            self._announce_queue()
            self._gc_inputs()
            log.info("job %s cancelled while queued", job_id)
            return job
        with self._lock:
            flag = self._flags.get(job_id)
            if flag is None:
                # Claimed by a worker that has not armed its flag yet: it will find this.
                self._pending_cancels.add(job_id)
        if flag is not None:
            flag.set("user")
        log.info("job %s: cancel requested while running", job_id)
        return self.store.get(job_id)

    # -- views -------------------------------------------------------------------------------

    def view(self, job: Job) -> dict[str, Any]:
        """The JSON a client sees for a job (`JobView` in schemas)."""
        progress = self._progress.get(job.id) if job.state == RUNNING else None
        return {
            "id": job.id,
            "state": job.state,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "queue_position": self.store.queue_position(job),
            "progress": progress.__dict__ if progress else None,
            "error": job.error,
            "cached": job.cached,
            "format": job.format,
            "bundle": Path(job.bundle).name,
            "bundle_hash": job.bundle_hash,
            "seed": job.seed,
            "params": job.params,
            "write_options": job.write_options,
            "image_sha256": job.image_sha256,
            "image_name": job.image_name,
            "attempts": job.attempts,
            "device": job.device,
            "result_url": f"/v1/jobs/{job.id}/result" if job.state == SUCCEEDED else None,
        }

    def result_path(self, job: Job) -> Path | None:
        return self.cache.lookup(job.cache_key, job.format) if job.state == SUCCEEDED else None

    # -- workers -----------------------------------------------------------------------------

    def _work(self, device: str) -> None:
        log.info("worker for %s started", device)
        while not self._stopping.is_set():
            try:
                job = self.store.claim_next(device)
            except Exception:  # a database error must not kill the worker silently
                log.exception("cannot read the job queue")
                job = None
            if job is None:
                with self._wake:
                    self._wake.wait(timeout=1.0)
                continue
            self._announce_queue()
            try:
                self._run(job, device)
            except Exception:
                log.exception("job %s: unexpected error in the worker", job.id)
                self._end(job.id, FAILED, "internal error in the daemon; see `tressel daemon logs`")
        log.info("worker for %s stopped", device)

    def _run(self, job: Job, device: str) -> None:
        flag = _CancelFlag()
        with self._lock:
            self._flags[job.id] = flag
            if job.id in self._pending_cancels:
                self._pending_cancels.discard(job.id)
                flag.set("user")
            self._progress[job.id] = Progress("starting", 0, 0)
        self.bus.publish(job.id, "state", self.view(job))
        log.info("job %s running on %s (attempt %d)", job.id, device, job.attempts)
        try:
            if self.cache.lookup(job.cache_key, job.format) is not None:
                # An identical job finished while this one waited (or before a crash).
                self._end(job.id, SUCCEEDED, cached=True)
                return
            engine_job = EngineJob(
                job_id=job.id, image_path=self.input_path(job.image_sha256, job.image_name),
                image_name=job.image_name, bundle=job.bundle, bundle_hash=job.bundle_hash,
                params=job.params, write_options=job.write_options, seed=job.seed,
                format=job.format, device=device,
                output_path=self.cache.path(job.cache_key, job.format),
                temp_path=self.cache.temp_path(job.cache_key, job.format),
            )

            def progress(phase: str, step: int, total: int) -> None:
                self._progress[job.id] = Progress(phase, int(step), int(total))
                self.bus.publish(job.id, "progress",
                                 {"phase": phase, "step": int(step), "total": int(total)})

            try:
                self.engine.run_job(engine_job, progress, flag)
            finally:
                engine_job.temp_path.unlink(missing_ok=True)
            result = self.cache.lookup(job.cache_key, job.format)
            if result is None:
                raise RuntimeError("the engine returned without writing the result")
            self._evict(keep=result)
            self._end(job.id, SUCCEEDED)
        except Cancelled:
            if flag.reason == "shutdown":
                self.store.requeue(job.id)
                log.info("job %s interrupted by the daemon stopping: back in the queue", job.id)
            else:
                self._end(job.id, CANCELLED, "cancelled while running")
        except TresselError as exc:
            self._end(job.id, FAILED, str(exc))
        except MemoryError:
            self._end(job.id, FAILED, "out of memory: use a smaller model or fewer strands")
        except Exception as exc:
            log.exception("job %s failed", job.id)
            self._end(job.id, FAILED, f"internal error ({type(exc).__name__}: {exc}); see "
                                      "`tressel daemon logs`")
        finally:
            with self._lock:
                self._flags.pop(job.id, None)
                self._progress.pop(job.id, None)
            self._gc_inputs()

    def _end(self, job_id: str, state: str, error: str | None = None,
             cached: bool | None = None) -> None:
        self.store.finish(job_id, state, error, cached=cached)
        self.store.prune(self.config.recent_jobs)
        with self._lock:
            self._pending_cancels.discard(job_id)
        job = self.store.get(job_id)
        if job is not None:
            self.bus.publish(job_id, "end", self.view(job))
            log.info("job %s %s%s", job_id, job.state, f": {error}" if error else "")

    def _evict(self, keep: Path | None = None) -> None:
        """Hold the result cache to its size limit (least recently used layers go first)."""
        limit = self.config.cache_max_bytes
        if limit <= 0:
            return
        with self._cache_lock:
            removed = self.cache.evict(limit, keep)
        if removed:
            log.info("result cache over %.1f GB: evicted %d least recently used layer(s)",
                     limit / GB, len(removed))

    def _announce_queue(self) -> None:
        for position, job_id in enumerate(self.store.queued_ids()):
            self.bus.publish(job_id, "queued", {"position": position})

    def _gc_inputs(self) -> None:
        # Under the lock that `submit` holds while storing, so nothing is mid-write here.
        with self._inputs_lock:
            needed = self.store.inputs_in_use()
            for path in self.inputs_dir.iterdir():
                if path.name in needed:
                    continue
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
