"""Live transcription in an aiohttp application: one WebSocket handler.

The page sends ``{"type": "start", "mime": recorder.mimeType}``, then each MediaRecorder
chunk, then ``{"type": "stop"}``; it gets ``segment`` messages back (docs/protocol.md)::

    const socket = new WebSocket(`ws://${location.host}/ws`, ["streamdiarize.v1"]);
    recorder.onstart = () => socket.send(JSON.stringify({type: "start", mime: recorder.mimeType}));
    recorder.ondataavailable = (e) => socket.send(e.data);

Run: ``python examples/aiohttp_app.py --port 8080``. The speech backend is Azure when
``SPEECH_KEY``/``SPEECH_REGION`` are set, else the local engine.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import WSMsgType, web

from streamdiarize import StreamDiarizeError
from streamdiarize.server.opening import console_line, origin_refusal, parse_opening
from streamdiarize.server.protocol import (
    SUBPROTOCOL,
    end_message,
    error_for,
    parse_message,
    segment_message,
)
from streamdiarize.transcribers import Transcriber, default_transcriber

ALLOWED_ORIGINS = {None, "http://localhost:8080", "http://127.0.0.1:8080"}  # None: not a browser
TRANSCRIBER = web.AppKey("transcriber", Transcriber)


class PageGoneError(Exception):
    """The page went away."""


async def receive(ws: web.WebSocketResponse) -> str | bytes:
    """The next message, text or binary (Firefox sends empty binary messages too)."""
    message = await ws.receive()
    if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
        return message.data  # type: ignore[no-any-return]
    raise PageGoneError


async def transcribe(request: web.Request) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin not in ALLOWED_ORIGINS:  # stop cross-site pages
        raise web.HTTPForbidden(text=origin_refusal(origin))
    ws = web.WebSocketResponse(protocols=[SUBPROTOCOL], max_msg_size=1 << 20)
    await ws.prepare(request)
    try:
        opening = parse_opening(await receive(ws), request.query_string)
        async with opening.session(request.app[TRANSCRIBER]) as session:

            async def pump_audio() -> None:
                try:
                    await session.send(opening.audio)  # b"" after a start message
                    while isinstance(message := await receive(ws), bytes):
                        await session.send(message)
                    parse_message(message)  # the only text allowed: {"type": "stop"}
                finally:
                    await session.close()  # flush: the loop below gets the last segments

            audio = asyncio.create_task(pump_audio())
            try:
                async for segment in session:
                    if segment.final:
                        print(console_line(segment), flush=True)
                    await ws.send_str(segment_message(segment))
                await audio  # its error, if any, is reported below
            finally:
                audio.cancel()
        await ws.send_str(end_message(session.audio_seconds))
        await ws.close(code=1000)
    except StreamDiarizeError as exc:
        error = error_for(exc)
        await ws.send_str(error.message())
        await ws.close(code=error.close_code, message=error.close_reason.encode())
    except (PageGoneError, ConnectionResetError):
        pass  # the session was aborted on the way out
    return ws


def make_app() -> web.Application:
    app = web.Application()
    app[TRANSCRIBER] = default_transcriber()
    app.router.add_get("/", transcribe)  # what new WebSocket("ws://localhost:8080") reaches
    app.router.add_get("/ws", transcribe)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN")
    args = parser.parse_args()
    ALLOWED_ORIGINS.update(args.allow_origin)
    web.run_app(make_app(), host=args.host, port=args.port)
