"""Assemble the FastAPI application: guards, routers under `/v1`, errors as problem details."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from tressel import __version__
from tressel.client import IDENTITY_PATH, identity_proof
from tressel.daemon.auth import (
    BodyLimit,
    HostGuard,
    TokenGuard,
    problem_response,
    require_token,
)
from tressel.daemon.manager import JobManager, is_disk_full
from tressel.daemon.routers import health, jobs, models
from tressel.errors import BundleError, ConfigError, ImageError, TresselError

log = logging.getLogger(__name__)

# What each user-facing error means over HTTP.
ERROR_STATUS: list[tuple[type[TresselError], int, str]] = [
    (ImageError, 400, "Unusable image"),
    (BundleError, 422, "Model bundle problem"),
    (ConfigError, 422, "Invalid request"),
]


def create_app(
    manager: JobManager, token: str, request_shutdown: Callable[[], None] = lambda: None
) -> FastAPI:
    app = FastAPI(
        title="Tressel daemon",
        version=__version__,
        description="Photo to USD hair groom: jobs, progress events, results and models.",
        docs_url=None, redoc_url=None, openapi_url="/v1/openapi.json",
    )
    app.state.manager = manager
    app.state.token = token
    app.state.request_shutdown = request_shutdown

    auth = [Depends(require_token)]
    app.include_router(health.router, prefix="/v1", dependencies=auth)
    app.include_router(models.router, prefix="/v1", dependencies=auth)
    app.include_router(jobs.router, prefix="/v1", dependencies=auth)

    @app.get(IDENTITY_PATH, include_in_schema=False)
    def identity(nonce: str = "") -> dict[str, Any]:
        """Prove, without revealing the token, that this daemon wrote the endpoint file: the
        client checks this before it sends its token or an upload (a stale endpoint file may
        name a port that another program now listens on)."""
        if not 16 <= len(nonce) <= 256 or not nonce.isascii() or not nonce.isalnum():
            raise StarletteHTTPException(400, "send ?nonce= with 16 to 256 letters or digits")
        return {"proof": identity_proof(token, nonce), "pid": os.getpid(),
                "version": __version__}

    # Added last = outermost: the Host check, then the token, run before anything reads the
    # body; the size limit applies to what is then read.
    app.add_middleware(BodyLimit, max_bytes=manager.config.max_upload_bytes)
    app.add_middleware(TokenGuard, token=token, open_paths={IDENTITY_PATH})
    app.add_middleware(HostGuard, allowed_hosts=manager.config.allowed_hosts)

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = HTTPStatus(exc.status_code).phrase
        return problem_response(exc.status_code, title, str(exc.detail),
                                headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
            parts.append(f"{where or 'body'}: {error.get('msg')}")
        return problem_response(422, "Invalid request", "; ".join(parts))

    @app.exception_handler(TresselError)
    async def tressel_problem(request: Request, exc: TresselError) -> JSONResponse:
        for kind, status, title in ERROR_STATUS:
            if isinstance(exc, kind):
                return problem_response(status, title, str(exc))
        return problem_response(400, "Request refused", str(exc))

    @app.exception_handler(Exception)
    async def internal_problem(request: Request, exc: Exception) -> JSONResponse:
        if is_disk_full(exc):
            log.error("%s %s: disk full: %s", request.method, request.url.path, exc)
            return problem_response(507, "Insufficient Storage", manager.disk_full_message())
        log.exception("internal error on %s %s", request.method, request.url.path)
        return problem_response(
            500, "Internal error",
            f"{type(exc).__name__}: {exc}; see `tressel daemon logs` and report it",
        )

    return app
