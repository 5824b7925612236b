"""`/v1/jobs`: submit (upload or server path), status, progress events, result, cancel, list."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from tressel.daemon.events import sse_message
from tressel.daemon.manager import JobManager
from tressel.daemon.schemas import JobList, JobRequest, JobView, PathJobRequest
from tressel.daemon.store import STATES, SUCCEEDED

router = APIRouter(prefix="/jobs", tags=["jobs"])

MEDIA_TYPES = {"usdc": "application/octet-stream", "usda": "text/plain; charset=utf-8",
               "abc": "application/octet-stream"}


def _manager(request: Request) -> JobManager:
    return request.app.state.manager


def _job_or_404(manager: JobManager, job_id: str) -> Any:
    job = manager.store.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}: list jobs with GET /v1/jobs "
                                 "(finished jobs are kept for the last 1000)")
    return job


def _validation_detail(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ())) or "request"
        parts.append(f"{where}: {error.get('msg')}")
    return "; ".join(parts)


def _clean_name(name: str | None) -> str:
    """A safe file name from a client's file name (no folders, no leading dots)."""
    base = Path((name or "").replace("\\", "/")).name[:200].lstrip(".")
    return "".join(c if c.isprintable() and c not in "/\\:" else "_" for c in base) or "image"


async def _submit(request: Request, data: bytes, name: str, job_request: JobRequest) -> dict:
    from tressel.images import ImageLimits, check_image

    manager = _manager(request)
    config = manager.config
    limits = ImageLimits(max_file_bytes=config.max_upload_bytes, max_pixels=config.max_pixels)

    def validate() -> str:
        # Decode once here so a corrupt or oversized image is refused now, not after queueing:
        # band by band (bounded memory per upload), a few uploads at a time (bounded in all).
        with manager.decode_slots:
            return check_image(data, limits, name=name).sha256

    job = await run_in_threadpool(
        manager.submit, data, name, job_request.bundle, job_request.params,
        job_request.write_options, job_request.seed, job_request.format, validate,
    )
    return manager.view(job)


@router.post("", status_code=201, response_model=JobView)
async def submit_upload(request: Request) -> dict:
    """Queue a job for an uploaded image.

    Send `multipart/form-data` with a file field `image` and a field `request` holding the
    `JobRequest` JSON. A cache hit returns the job already `succeeded`.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise HTTPException(
            415, "send multipart/form-data with a file field `image` and a JSON field "
            "`request` (or POST /v1/jobs/by-path for an image on the daemon's machine)",
        )
    form = await request.form(max_files=1, max_fields=4, max_part_size=256 * 1024)
    try:
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise HTTPException(400, "no image: add the photo as the file field `image`")
        try:
            job_request = JobRequest.model_validate_json(str(form.get("request") or "{}"))
        except ValidationError as exc:
            raise HTTPException(422, f"invalid job request: {_validation_detail(exc)}") from None
        data = await upload.read()
        return await _submit(request, data, _clean_name(upload.filename), job_request)
    finally:
        await form.close()


@router.post("/by-path", status_code=201, response_model=JobView)
async def submit_path(job_request: PathJobRequest, request: Request) -> dict:
    """Queue a job for an image the daemon reads from disk; it must lie under an allowed root."""
    config = _manager(request).config
    if not config.allowed_roots:
        raise HTTPException(
            403, "this daemon accepts no image paths: upload the image instead, or start the "
            "daemon with --allow-root DIR for the folders it may read",
        )
    raw = Path(job_request.path)
    if not raw.is_absolute():
        raise HTTPException(422, f"{raw} is not an absolute path: send the full path")
    data = await run_in_threadpool(read_under_roots, raw, config.allowed_roots,
                                   config.max_upload_bytes)
    return await _submit(request, data, _clean_name(raw.name), job_request)


def _outside(raw: Path, roots: list[Path]) -> HTTPException:
    # The same answer whether or not the file exists: a 404 would tell a client what exists
    # outside the folders it may read.
    return HTTPException(
        403, f"{raw} is outside the folders this daemon may read "
        f"({', '.join(str(r) for r in roots)}): move the image or add --allow-root",
    )


def read_under_roots(raw: Path, allowed: list[Path], max_bytes: int) -> bytes:
    """The bytes of `raw`, opened first and then checked: the file actually opened must lie
    under an allowed root, so swapping a folder for a symbolic link between a check and the
    read cannot reach outside the roots."""
    roots = [Path(os.path.realpath(r)) for r in allowed]
    lexical = Path(os.path.normpath(raw))
    # Refuse paths that do not even name a place under a root, without touching the disk.
    if not any(lexical.is_relative_to(r) or lexical.is_relative_to(a)
               for r, a in zip(roots, allowed)):
        raise _outside(raw, roots)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(lexical, flags)  # a FIFO must not block the daemon: O_NONBLOCK
    except FileNotFoundError:
        raise HTTPException(404, f"image not found on the daemon's machine: {raw}") from None
    except OSError as exc:
        raise HTTPException(403, f"cannot open {raw}: {exc.strerror}") from None
    try:
        opened = _opened_path(fd, lexical)
        if opened is None or not any(opened.is_relative_to(r) for r in roots):
            raise _outside(raw, roots)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise HTTPException(422, f"{raw} is not a file: send the path of an image file")
        if st.st_size > max_bytes:
            raise HTTPException(
                413, f"{raw} is {st.st_size / 1e6:.1f} MB, over the limit of "
                f"{max_bytes / 1e6:.1f} MB: downscale or re-encode it",
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise HTTPException(413, f"{raw} grew over the limit of {max_bytes / 1e6:.1f} MB "
                                     "while being read")
        return data
    finally:
        os.close(fd)


def _opened_path(fd: int, lexical: Path) -> Path | None:
    """The real path of the file behind `fd`, or None when it cannot be told for sure."""
    proc = Path(f"/proc/self/fd/{fd}")
    if proc.exists():  # Linux: the kernel's name for what was opened
        try:
            return Path(os.readlink(proc))
        except OSError:
            return None
    # Elsewhere: resolve the name now, and accept it only if it still names the same file.
    real = Path(os.path.realpath(lexical))
    try:
        same = os.path.samestat(os.stat(real), os.fstat(fd))
    except OSError:
        return None
    return real if same else None


@router.get("", response_model=JobList)
def list_jobs(
    request: Request,
    limit: int = Query(50, ge=1, le=1000),
    state: str | None = Query(None, description="only jobs in this state"),
) -> dict:
    """Recent jobs, newest first."""
    if state is not None and state not in STATES:
        raise HTTPException(422, f"unknown state {state!r}: use one of {', '.join(STATES)}")
    manager = _manager(request)
    return {"jobs": [manager.view(j) for j in manager.store.recent(limit, state)]}


@router.get("/{job_id}", response_model=JobView)
def get_job(job_id: str, request: Request) -> dict:
    manager = _manager(request)
    return manager.view(_job_or_404(manager, job_id))


@router.delete("/{job_id}", response_model=JobView)
def cancel_job(job_id: str, request: Request) -> dict:
    """Cancel a queued job at once, or ask a running job to stop at its next step."""
    manager = _manager(request)
    job = _job_or_404(manager, job_id)
    if job.done:
        raise HTTPException(409, f"job {job_id} already {job.state}: there is nothing to cancel")
    job = manager.cancel(job_id)
    return manager.view(job)


@router.get("/{job_id}/result")
def get_result(job_id: str, request: Request) -> FileResponse:
    """The finished groom (`.usdc`, or `.usda` or `.abc` when the job asked for it)."""
    manager = _manager(request)
    job = _job_or_404(manager, job_id)
    if job.state != SUCCEEDED:
        hint = {"queued": "wait for it (GET /v1/jobs/{id}/events)",
                "running": "wait for it (GET /v1/jobs/{id}/events)"}.get(
            job.state, f"it has no result ({job.error or 'no reason recorded'})")
        raise HTTPException(409, f"job {job_id} is {job.state}: {hint}")
    path = manager.result_path(job)
    if path is None:
        raise HTTPException(
            410, f"the result of job {job_id} is no longer in the cache: submit the job again"
        )
    stem = Path(job.image_name).stem or job_id
    return FileResponse(
        path, media_type=MEDIA_TYPES[job.format], filename=f"{stem}_groom.{job.format}",
        headers={"X-Tressel-Format": job.format, "X-Tressel-Cache-Key": job.cache_key},
    )


@router.get("/{job_id}/events")
async def job_events(job_id: str, request: Request) -> StreamingResponse:
    """Server-Sent Events: `state` (snapshot), `queued` (position), `progress` (phase, step,
    total) and a final `end` carrying the finished job. Resumes after `Last-Event-ID`."""
    manager = _manager(request)
    _job_or_404(manager, job_id)
    resume_after = manager.bus.parse_event_id(request.headers.get("last-event-id"))
    keepalive = manager.config.keepalive_s
    return StreamingResponse(
        _event_stream(manager, job_id, resume_after, keepalive),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _event_stream(
    manager: JobManager, job_id: str, after: int, keepalive: float
) -> AsyncIterator[bytes]:
    bus = manager.bus
    # Subscribe before reading state, so an event published in between still wakes us.
    wakeup = bus.subscribe(job_id)
    try:
        job = manager.store.get(job_id)
        if job is None:
            return
        yield sse_message("state", manager.view(job))
        if job.done:
            yield sse_message("end", manager.view(job))
            return
        last_sent = time.monotonic()
        while True:
            wakeup.clear()
            events = bus.since(job_id, after)
            for event in events:
                after = event.number
                yield sse_message(event.type, event.data, bus.event_id(event))
                if event.type == "end":
                    return
            if events:
                last_sent = time.monotonic()
                continue
            if bus.closed or manager.stopping:
                return  # the daemon is stopping: the client asks for the state or reconnects
            try:
                # Short waits so that a stopping daemon ends its streams within a second.
                await asyncio.wait_for(wakeup.wait(), timeout=min(keepalive, 0.5))
                continue
            except TimeoutError:
                pass
            if time.monotonic() - last_sent < keepalive:
                continue
            job = manager.store.get(job_id)
            if job is None:
                return
            if job.done:  # its end event left the buffer: the database knows the outcome
                yield sse_message("end", manager.view(job))
                return
            yield b": keepalive\n\n"
            last_sent = time.monotonic()
    finally:
        bus.unsubscribe(job_id, wakeup)
