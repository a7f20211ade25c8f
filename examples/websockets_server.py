"""The classic setup, fixed: a ``websockets`` server that transcribes a page's microphone.

The broken version pushes what MediaRecorder sends straight into the Speech SDK::

    push_stream = speechsdk.audio.PushAudioInputStream()   # expects raw 16 kHz PCM
    async for message in websocket:
        push_stream.write(message)     # WebM/Opus bytes read as PCM: noise, never any text

A ``TranscriptionSession`` decodes whatever the page sends (WebM, Ogg, MP4 or raw PCM, any
split, MediaRecorder restarts) and yields speaker-labelled segments. The page
(protocol: docs/protocol.md)::

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

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from streamdiarize import StreamDiarizeError, TranscriptionSession
from streamdiarize.server.protocol import (
    SUBPROTOCOL,
    end_message,
    error_for,
    parse_message,
    parse_start,
    segment_message,
)
from streamdiarize.transcribers import Transcriber, default_transcriber

ALLOWED_ORIGINS = {None, "http://localhost:8000", "http://127.0.0.1:8000"}  # None: not a browser


async def transcribe(websocket: ServerConnection, transcriber: Transcriber) -> None:
    """One connection: a start message, then audio in and segments out, two tasks."""
    try:
        start = parse_start(await websocket.recv())
        async with TranscriptionSession(
            transcriber, mime=start.mime, interim_results=start.interim
        ) as session:

            async def pump_audio() -> None:
                try:
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    transcriber = default_transcriber()

    def check_origin(connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Origin") in ALLOWED_ORIGINS:  # stop cross-site pages
            return None
        return connection.respond(403, "origin refused\n")

    async with serve(
        functools.partial(transcribe, transcriber=transcriber),
        args.host,
        args.port,
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        process_request=check_origin,
        max_size=1 << 20,
    ) as server:
        print(f"listening on ws://{args.host}:{args.port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
