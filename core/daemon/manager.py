"""The job queue: submission (with cache hits), one worker thread per device, cancellation.

Workers take queued jobs strictly in submission order. A running job is stopped through its
cancel flag, which the engine checks between steps; a graceful daemon stop uses the same flag
and puts the job back at its place in the queue, so nothing is lost.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import sqlite3
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


DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# A running job that reports no progress for this long makes the health report "degraded".
STUCK_AFTER_S = 600.0


class DiskFull(TresselError):
    """The filesystem holding the daemon's state folder has no space left."""


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC/EDQUOT, SQLite's "database or disk is full" and USD's write errors,
    anywhere in the exception's chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFull):
            return True
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        if isinstance(current, sqlite3.Error) and "full" in str(current).lower():
            return True
        if "No space left on device" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclass
class WorkerStatus:
    """What one worker thread is doing, for the health report."""

    device: str
    state: str = "starting"  # idle, running, waiting for disk space, database error, stopped
    job_id: str | None = None
    since: float = 0.0  # when it entered this state (time.time())
    last_progress: float = 0.0  # monotonic time of the running job's last progress report
    problem: str | None = None
    cpu_threads: int | None = None  # threads the running CPU job was given


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
        # Submissions decode their image to check it; at most this many at once.
        self.decode_slots = threading.BoundedSemaphore(max(1, config.max_decodes))
        self._stopping = threading.Event()
        self.shutting_down = False  # set from a signal handler when a stop begins
        self.devices = engine.devices(config.devices)
        self.worker_status = {d: WorkerStatus(d, since=time.time()) for d in self.devices}
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

    def disk_full_message(self, exc: BaseException | None = None) -> str:
        detail = f" ({exc})" if exc is not None and str(exc) else ""
        return (f"the disk holding the daemon's state folder {self.config.state_dir} is full"
                f"{detail}: free some space there (or lower --cache-max-gb), then submit the "
                "job again")

    def problems(self) -> list[str]:
        """What is wrong with the workers and the disk now; empty when all is well."""
        problems = []
        now = time.monotonic()
        for worker, thread in zip(self.devices, self._workers):
            status = self.worker_status[worker]
            if not thread.is_alive() and not self._stopping.is_set():
                problems.append(f"the worker for {worker} has died: restart the daemon "
                                "(`tressel daemon stop`, then start it) and report the log")
            elif status.problem:
                problems.append(f"worker {worker}: {status.problem}")
            elif (status.state == "running" and status.last_progress
                  and now - status.last_progress > STUCK_AFTER_S):
                problems.append(f"worker {worker}: job {status.job_id} has reported no "
                                f"progress for {now - status.last_progress:.0f} s (stuck?): "
                                "cancel it")
        free = self.disk_free()
        if free is not None and free < self.config.min_free_bytes:
            problems.append(f"the disk holding {self.config.state_dir} has {free} bytes free: "
                            "jobs cannot be stored or written until space is freed")
        return problems

    def worker_report(self) -> list[dict[str, Any]]:
        """Per worker: device, state, job, since when, whether its thread is alive."""
        return [
            {"device": device, "state": status.state, "job": status.job_id,
             "since": status.since, "alive": thread.is_alive(), "problem": status.problem,
             "cpu_threads": status.cpu_threads if status.state == "running" else None}
            for (device, status), thread in zip(self.worker_status.items(), self._workers)
        ]

    def disk_free(self) -> int | None:
        try:
            return shutil.disk_usage(self.config.state_dir).free
        except OSError:
            return None

    def _set_status(self, device: str, state: str, job_id: str | None = None,
                    problem: str | None = None) -> None:
        status = self.worker_status[device]
        if (status.state, status.job_id, status.problem) != (state, job_id, problem):
            status.state, status.job_id, status.problem = state, job_id, problem
            status.since = time.time()
            status.last_progress = time.monotonic()

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
            try:
                tmp.write_bytes(data)
                publish(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)  # a partial copy (full disk) must not linger
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
        """The worker loop: nothing that goes wrong in one job (or in the database, or on a
        full disk) may end it; it waits for space and goes on."""
        log.info("worker for %s started", device)
        pause = 1.0
        while not self._stopping.is_set():
            try:
                job = self.store.claim_next(device)
            except Exception as exc:  # noqa: BLE001 - a database error must not kill the worker
                full = is_disk_full(exc)
                self._set_status(device, "waiting for disk space" if full else "database error",
                                 problem=(self.disk_full_message() if full else
                                          f"cannot read the job queue ({exc})"))
                if pause == 1.0:  # once per outage, not every retry
                    log.error("cannot read the job queue: %s", exc)
                self._stopping.wait(pause)
                pause = min(pause * 2, 10.0)
                continue
            pause = 1.0
            if job is None:
                self._set_status(device, "idle")
                with self._wake:
                    self._wake.wait(timeout=1.0)
                continue
            self._set_status(device, "running", job.id)
            try:
                self._announce_queue()
                self._run(job, device)
            except Exception:  # the loop is the last line of defence
                log.exception("job %s: unexpected error in the worker", job.id)
                self._end(job.id, FAILED, "internal error in the daemon; see `tressel daemon "
                                          "logs`", device=device)
        self._set_status(device, "stopped")
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
                self._end(job.id, SUCCEEDED, cached=True, device=device)
                return
            engine_job = EngineJob(
                job_id=job.id, image_path=self.input_path(job.image_sha256, job.image_name),
                image_name=job.image_name, bundle=job.bundle, bundle_hash=job.bundle_hash,
                params=job.params, write_options=job.write_options, seed=job.seed,
                format=job.format, device=device,
                output_path=self.cache.path(job.cache_key, job.format),
                temp_path=self.cache.temp_path(job.cache_key, job.format),
            )
            status = self.worker_status[device]
            status.cpu_threads = None  # until the engine announces this job's

            def announce(info: dict[str, Any]) -> None:
                threads = info.get("cpu_threads")
                status.cpu_threads = threads.get("threads") if isinstance(threads, dict) else None
                self.bus.publish(job.id, "setup", info)

            engine_job.announce = announce

            def progress(phase: str, step: int, total: int) -> None:
                status.last_progress = time.monotonic()
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
            self._end(job.id, SUCCEEDED, device=device)
        except Cancelled:
            if flag.reason == "shutdown":
                self._retry(device, lambda: self.store.requeue(job.id))
                log.info("job %s interrupted by the daemon stopping: back in the queue", job.id)
            else:
                self._end(job.id, CANCELLED, "cancelled while running", device=device)
        except TresselError as exc:
            self._end(job.id, FAILED, str(exc), device=device)
        except MemoryError:
            self._end(job.id, FAILED, "out of memory: use a smaller model or fewer strands",
                      device=device)
        except Exception as exc:
            if is_disk_full(exc):
                log.error("job %s: disk full: %s", job.id, exc)
                self._end(job.id, FAILED, self.disk_full_message(), device=device)
            else:
                log.exception("job %s failed", job.id)
                self._end(job.id, FAILED, f"internal error ({type(exc).__name__}: {exc}); "
                                          "see `tressel daemon logs`", device=device)
        finally:
            with self._lock:
                self._flags.pop(job.id, None)
                self._progress.pop(job.id, None)
            try:
                self._gc_inputs()
            except OSError as exc:
                log.warning("cannot clean up job inputs: %s", exc)

    def _retry(self, device: str | None, write: Callable[[], object]) -> bool:
        """Run a database write until it succeeds; on a full disk (or a locked or broken
        database) the worker reports it in the health report and retries with a growing pause,
        so it goes on by itself once space is freed. False if the daemon stopped first (the
        job is then recovered from the database at the next start)."""
        pause = 0.2
        while True:
            try:
                write()
                return True
            except Exception as exc:  # noqa: BLE001 - reported in the health report, retried
                full = is_disk_full(exc)
                if device is not None:
                    self._set_status(
                        device, "waiting for disk space" if full else "database error",
                        self.worker_status[device].job_id,
                        problem=(self.disk_full_message() if full else
                                 f"cannot record a job's state ({exc})"),
                    )
                if pause == 0.2:
                    log.error("cannot record a job's state (%s): retrying until it works", exc)
                if self._stopping.wait(pause):
                    return False
                pause = min(pause * 2, 5.0)

    def _end(self, job_id: str, state: str, error: str | None = None,
             cached: bool | None = None, device: str | None = None) -> None:
        if not self._retry(device, lambda: self.store.finish(job_id, state, error,
                                                               cached=cached)):
            return
        if device is not None:
            self._set_status(device, "idle")
        try:
            self.store.prune(self.config.recent_jobs)
        except Exception as exc:  # noqa: BLE001 - pruning can wait for the next job
            log.warning("cannot prune old jobs: %s", exc)
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
