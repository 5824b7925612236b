"""Request guards: the bearer token, loopback-only Host headers and the upload size limit.

The Host check defeats DNS rebinding (a web page that resolves its own name to 127.0.0.1 would
send `Host: evil.example`); the token keeps other local users and processes out.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import HTTPException, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = {"localhost", "localhost.", "ip6-localhost"}


def problem_response(status: int, title: str, detail: str,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status, media_type="application/problem+json", headers=headers,
    )


MISSING_TOKEN = (
    "missing token: send `Authorization: Bearer TOKEN` with the token from the daemon's "
    "endpoint file (tressel.client does this for you)"
)
WRONG_TOKEN = (
    "wrong token: read it again from the daemon's endpoint file (the daemon makes a new one "
    "each time it starts)"
)


def token_problem(header: str | None, expected: str) -> tuple[str, str] | None:
    """None when `header` carries the token; else (detail, WWW-Authenticate value)."""
    if not header:
        return MISSING_TOKEN, "Bearer"
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode("utf-8", "replace"), expected.encode("utf-8")
    ):
        return WRONG_TOKEN, 'Bearer error="invalid_token"'
    return None


async def require_token(request: Request) -> None:
    """FastAPI dependency: `Authorization: Bearer <token from the endpoint file>` (the
    TokenGuard middleware checks it first; this keeps each router safe on its own)."""
    problem = token_problem(request.headers.get("authorization"), request.app.state.token)
    if problem is not None:
        raise HTTPException(401, problem[0], headers={"WWW-Authenticate": problem[1]})


class TokenGuard:
    """Refuse a request without the token before anything reads its body.

    FastAPI parses a route's JSON body before it runs the route's dependencies, so a
    dependency alone would let anyone make the daemon read and parse large bodies. Only the
    paths in `open_paths` (the identity check) answer without the token.
    """

    def __init__(self, app: ASGIApp, token: str, open_paths: set[str]) -> None:
        self.app = app
        self.token = token
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") not in self.open_paths:
            header = None
            for key, value in scope.get("headers", []):
                if key == b"authorization":
                    header = value.decode("latin-1")
                    break
            problem = token_problem(header, self.token)
            if problem is not None:
                response = problem_response(401, "Unauthorized", problem[0],
                                            headers={"WWW-Authenticate": problem[1]})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def is_local_host(host_header: str, extra: set[str]) -> bool:
    """True for `localhost`, 127.0.0.0/8, ::1 (with or without a port) or a configured name."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host in LOOPBACK_NAMES or host in extra:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HostGuard:
    """Refuse any request whose Host header is not a loopback name (or an allowed host)."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.extra = {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = ""
            for key, value in scope.get("headers", []):
                if key == b"host":
                    host = value.decode("latin-1")
                    break
            if not is_local_host(host, self.extra):
                response = problem_response(
                    403, "Host not allowed",
                    f"Host header {host!r} is not local: the daemon answers loopback requests "
                    "only (connect to 127.0.0.1, or start it with --allow-host NAME)",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over `max_bytes` (by Content-Length, or while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _problem(self) -> JSONResponse:
        return problem_response(
            413, "Upload too large",
            f"the request is over the daemon's upload limit of {self.max_bytes / 1e6:.1f} MB: "
            "downscale or re-encode the image, or restart the daemon with a larger "
            "--max-upload-mb",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._problem()(scope, receive, send)
                    return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._problem()(scope, receive, send)
