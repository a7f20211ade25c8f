"""The classic setup, fixed: a ``websockets`` server that transcribes a page's microphone.

The broken version pushes what MediaRecorder sends straight into the Speech SDK::

    push_stream = speechsdk.audio.PushAudioInputStream()   # expects raw 16 kHz PCM
    async for message in websocket:
        push_stream.write(message)     # WebM/Opus bytes read as PCM: noise, never any text

A ``TranscriptionSession`` decodes whatever the page sends (WebM, Ogg, MP4 or raw PCM, any
split, MediaRecorder restarts) and yields speaker-labelled segments, printed here and sent
back as JSON. The page you already have works unchanged: no subprotocol, no start message,
``new WebSocket("ws://localhost:8765")`` and ``socket.send(event.data)`` (MediaRecorder) or
``socket.send(e.inputBuffer.getChannelData(0))`` (ScriptProcessor; the rate is measured).
A page may also declare what it sends (protocol: docs/protocol.md)::

    const socket = new WebSocket("ws://127.0.0.1:8765", ["streamdiarize.v1"]);
    socket.onmessage = (e) => console.log(JSON.parse(e.data));    // ready, segment, end, error
    const stream = await navigator.mediaDevices.getUserMedia({audio: true});
    const recorder = new MediaRecorder(stream);
    recorder.onstart = () => socket.send(JSON.stringify(
        {type: "start", mime: recorder.mimeType, interim: true}));
    recorder.ondataavailable = (e) => socket.send(e.data);
    socket.onopen = () => recorder.start(100);
    // when done: recorder.stop(); then socket.send(JSON.stringify({type: "stop"}))

Run: ``SPEECH_KEY=... SPEECH_REGION=... python examples/websockets_server.py --port 8765``
(without the two variables it uses the local engine, extra ``local``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
from collections.abc import Sequence
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

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

ALLOWED_ORIGINS = {None, "http://localhost:8000", "http://127.0.0.1:8000"}  # None: not a browser


async def transcribe(websocket: ServerConnection, transcriber: Transcriber) -> None:
    """One connection: a start message or audio first, then audio in and segments out."""
    try:
        query = urlsplit(websocket.request.path).query if websocket.request else ""
        opening = parse_opening(await websocket.recv(), query)  # start message, or audio
        async with opening.session(transcriber) as session:

            async def pump_audio() -> None:
                try:
                    await session.send(opening.audio)  # b"" after a start message
                    async for message in websocket:
                        if isinstance(message, str):  # the only text allowed: {"type": "stop"}
                            parse_message(message)
                            break
                        await session.send(message)
                finally:
                    await session.close()  # flush: the loop below gets the last segments

            audio = asyncio.create_task(pump_audio())
            try:
                async for segment in session:
                    if segment.final:
                        print(console_line(segment), flush=True)
                    await websocket.send(segment_message(segment))
                await audio  # its error, if any, is reported below
            finally:
                audio.cancel()
        await websocket.send(end_message(session.audio_seconds))
    except StreamDiarizeError as exc:
        error = error_for(exc)
        await websocket.send(error.message())
        await websocket.close(error.close_code, error.close_reason)
    except ConnectionClosed:
        pass  # the page went away: the session was aborted on the way out


def select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """``streamdiarize.v1`` when the page offers it, else none (plain ``new WebSocket(url)``)."""
    return Subprotocol(SUBPROTOCOL) if SUBPROTOCOL in offered else None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN")
    args = parser.parse_args()
    transcriber = default_transcriber()
    allowed = ALLOWED_ORIGINS | set(args.allow_origin)

    def check_origin(connection: ServerConnection, request: Request) -> Response | None:
        origin = request.headers.get("Origin")
        if origin in allowed:  # stop cross-site pages
            return None
        return connection.respond(403, origin_refusal(origin) + "\n")

    async with serve(
        functools.partial(transcribe, transcriber=transcriber),
        args.host,
        args.port,
        select_subprotocol=select_subprotocol,  # pages that offer none are welcome too
        process_request=check_origin,
        max_size=1 << 20,
    ) as server:
        print(f"listening on ws://{args.host}:{args.port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
