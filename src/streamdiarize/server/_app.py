"""The ASGI app: the demo page, ``/api/info`` and the ``/ws`` endpoint, with safe headers."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from .. import __version__
from .._redact import redact_secrets
from ._context import ServerContext, SessionSlots
from ._engines import Engine
from ._handler import handle_websocket
from ._observer import SessionObserver
from ._settings import ServerSettings
from .protocol import SUBPROTOCOL

__all__ = ["STATIC_DIR", "create_app"]

#: The page's files (no build step: plain HTML, CSS and ES modules).
STATIC_DIR = Path(str(resources.files("streamdiarize.server") / "static"))

_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-cache",
    "permissions-policy": "microphone=(self), camera=(), geolocation=()",
}


class _SecurityHeaders:
    """Adds a strict CSP and friends to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    engine: Engine,
    settings: ServerSettings | None = None,
    *,
    bind_host: str = "127.0.0.1",
    observer: SessionObserver | None = None,
) -> Starlette:
    """The demo server as an ASGI app (run it with uvicorn, see :func:`run`).

    Args:
        engine: the speech backend every session uses (see :func:`open_engine`).
        settings: limits and access rules; safe defaults when omitted.
        bind_host: the address the server listens on; with the default ``allowed_hosts``
            a loopback address only accepts loopback ``Host`` names (DNS rebinding defence).
        observer: gets every session's start, audio messages and outcome (tests, recording).

    Routes: ``/`` the page, ``/static/…`` its files, ``/api/info`` the engine and limits as
    JSON, ``/ws`` the WebSocket endpoint (protocol: :mod:`streamdiarize.server.protocol`),
    also on ``/`` for pages that open ``new WebSocket("ws://localhost:8000")``.
    ``app.state.context.slots.active`` counts running sessions.
    """
    settings = settings or ServerSettings()
    context = ServerContext(engine, settings, SessionSlots(settings.max_sessions), observer)
    # uvicorn hands this logger to websockets, which logs handshake headers (the token) at DEBUG.
    redact_secrets(logging.getLogger("uvicorn.error"))

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    async def info(request: Request) -> Response:
        return JSONResponse(
            {
                "engine": engine.name,
                "label": engine.label,
                "emulated": engine.emulated,
                "token_required": settings.token is not None,
                "protocol": SUBPROTOCOL,
                "limits": settings.limits(),
                "version": __version__,
            }
        )

    async def websocket_endpoint(websocket: WebSocket) -> None:
        await handle_websocket(websocket, context)

    app = Starlette(
        routes=[
            Route("/", index),
            WebSocketRoute("/", websocket_endpoint),  # what zero-config pages open
            Route("/api/info", info),
            WebSocketRoute("/ws", websocket_endpoint),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=list(settings.hosts_for(bind_host))),
            Middleware(_SecurityHeaders),
        ],
    )
    app.state.context = context
    return app
