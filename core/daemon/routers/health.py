"""`GET /v1/health` (device, memory, queue, limits) and `POST /v1/daemon/shutdown`."""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, Request
from tressel import __version__
from tressel.daemon.engine import process_memory
from tressel.daemon.schemas import Health

router = APIRouter(tags=["daemon"])


@router.get("/health", response_model=Health)
def health(request: Request) -> Health:
    manager = request.app.state.manager
    config = manager.config
    counts = manager.store.counts()
    layers, stored = manager.cache.usage()
    problems = manager.problems()
    workers = manager.worker_report()
    return Health(
        status="stopping" if manager.stopping else "degraded" if problems else "ok",
        workers=workers, problems=problems, disk_free_bytes=manager.disk_free(),
        version=__version__,
        pid=os.getpid(),
        uptime_s=time.time() - manager.started_at,
        devices=[manager.engine.device_info(d) for d in manager.devices],
        memory=process_memory(),
        queue={"queued": counts["queued"], "running": counts["running"]},
        limits={
            "max_upload_bytes": config.max_upload_bytes,
            "max_pixels": config.max_pixels,
            "path_jobs": bool(config.allowed_roots),
            "cache_max_bytes": config.cache_max_bytes,
        },
        cache={"layers": layers, "bytes": stored},
    )


@router.post("/daemon/shutdown", status_code=202)
def shutdown(request: Request) -> dict[str, str]:
    """Stop the daemon; a running job goes back to the queue and runs after the next start."""
    request.app.state.request_shutdown()
    return {"status": "stopping"}
