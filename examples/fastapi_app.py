"""Live transcription in a FastAPI (or plain Starlette) app: one WebSocket route.

The page sends ``{"type": "start", "mime": recorder.mimeType}``, then each MediaRecorder
chunk, then ``{"type": "stop"}``; it gets ``segment`` messages back (docs/protocol.md)::

    const socket = new WebSocket(`ws://${location.host}/ws`, ["streamdiarize.v1"]);
    recorder.onstart = () => socket.send(JSON.stringify({type: "start", mime: recorder.mimeType}));
    recorder.ondataavailable = (e) => socket.send(e.data);

Run: ``python examples/fastapi_app.py --port 8000`` or ``uvicorn examples.fastapi_app:app``.
The speech backend is Azure when ``SPEECH_KEY``/``SPEECH_REGION`` are set, else the local engine.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from streamdiarize import StreamDiarizeError
from streamdiarize.server.opening import console_line, origin_refusal, parse_opening
from streamdiarize.server.protocol import (
    SUBPROTOCOL,
    end_message,
    error_for,
    parse_message,
    segment_message,
)
from streamdiarize.transcribers import default_transcriber

ALLOWED_ORIGINS = {None, "http://localhost:8000", "http://127.0.0.1:8000"}  # None: not a browser


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.transcriber = default_transcriber()  # one backend configuration for all sessions
    yield


app = FastAPI(lifespan=lifespan)


async def receive(websocket: WebSocket) -> str | bytes:
    """The next message, text or binary (Firefox sends empty binary messages too)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    data = message.get("bytes")
    return data if data is not None else str(message.get("text", ""))


@app.websocket("/")  # what pages that open new WebSocket("ws://localhost:8000") reach
@app.websocket("/ws")
async def transcribe(websocket: WebSocket) -> None:
    origin = websocket.headers.get("origin")
    if origin not in ALLOWED_ORIGINS:  # stop cross-site pages
        print(origin_refusal(origin), flush=True)
        await websocket.close(1008)
        return
    offered = websocket.scope.get("subprotocols", [])
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    try:
        opening = parse_opening(await receive(websocket), websocket.url.query)
        async with opening.session(websocket.app.state.transcriber) as session:

            async def pump_audio() -> None:
                try:
                    await session.send(opening.audio)  # b"" after a start message
                    while isinstance(message := await receive(websocket), bytes):
                        await session.send(message)
                    parse_message(message)  # the only text allowed: {"type": "stop"}
                finally:
                    await session.close()  # flush: the loop below gets the last segments

            audio = asyncio.create_task(pump_audio())
            try:
                async for segment in session:
                    if segment.final:
                        print(console_line(segment), flush=True)
                    await websocket.send_text(segment_message(segment))
                await audio  # its error, if any, is reported below
            finally:
                audio.cancel()
        await websocket.send_text(end_message(session.audio_seconds))
        await websocket.close(1000)
    except StreamDiarizeError as exc:
        error = error_for(exc)
        await websocket.send_text(error.message())
        await websocket.close(error.close_code, error.close_reason)
    except WebSocketDisconnect:
        pass  # the page went away: the session was aborted on the way out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN")
    args = parser.parse_args()
    ALLOWED_ORIGINS.update(args.allow_origin)
    uvicorn.run(app, host=args.host, port=args.port, ws_max_size=1 << 20)
