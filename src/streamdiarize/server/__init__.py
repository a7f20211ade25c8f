"""The demo server of ``streamdiarize serve``: a page and a WebSocket endpoint (extra ``server``).

::

    from streamdiarize.server import BackgroundServer, ServerSettings, create_app, open_engine

    with open_engine("fake", script=[{"text": "Hello.", "start_s": 0.5, "end_s": 1.2}]) as engine:
        app = create_app(engine, ServerSettings(max_sessions=4))
        with BackgroundServer(app) as server:      # or run(app, port=8000) in the foreground
            print(server.url, server.ws_url)

The wire protocol (a JSON ``start`` message, binary audio, JSON results) is described in
:mod:`streamdiarize.server.protocol`, which needs nothing beyond the core package; the rest
needs Starlette and uvicorn (``pip install 'streamdiarize[server]'``).

Safe defaults: binds 127.0.0.1; accepts pages from its own origin only (``allowed_origins``)
and loopback ``Host`` names only when bound to loopback; limits message size (1 MiB), session
length (1 h), concurrent sessions (16), time to the start message (10 s) and idle time
(30 s); optional bearer token. See :class:`ServerSettings`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._observer import SessionInfo, SessionObserver, SessionOutcome
from ._settings import ServerSettings

if TYPE_CHECKING:
    from ._app import create_app
    from ._engines import ENGINES, Engine, default_engine_name, open_engine
    from ._recorder import SessionRecorder
    from ._run import BackgroundServer, run

__all__ = [
    "ENGINES",
    "BackgroundServer",
    "Engine",
    "ServerSettings",
    "SessionInfo",
    "SessionObserver",
    "SessionOutcome",
    "SessionRecorder",
    "create_app",
    "default_engine_name",
    "open_engine",
    "run",
]

# Imported on first use so that ``streamdiarize.server.protocol`` works without Starlette.
_LAZY = {
    "create_app": "._app",
    "ENGINES": "._engines",
    "Engine": "._engines",
    "default_engine_name": "._engines",
    "open_engine": "._engines",
    "SessionRecorder": "._recorder",
    "BackgroundServer": "._run",
    "run": "._run",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
