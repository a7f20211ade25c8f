"""Stream an audio file to a streamdiarize WebSocket endpoint in real time; print the transcript.

    python examples/stream_file_client.py talk.wav --url ws://127.0.0.1:8000/ws
    python examples/stream_file_client.py rec.webm --url ws://127.0.0.1:8765 --speed 4 --json

Works with ``streamdiarize serve`` and with every example server here (docs/protocol.md).
A WAV file goes out as raw PCM frames, 100 ms per message, like an AudioWorklet page; any
other file (a MediaRecorder recording: WebM, Ogg, MP4) goes out as its own bytes, cut into
100 ms worth of bytes, like MediaRecorder ``start(100)``. ``--speed 0`` sends as fast as the
server takes it. Exit status: 0 after ``end``, 1 after an ``error`` or an abnormal close.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import av
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

CHUNK_SECONDS = 0.1
MIME_BY_SUFFIX = {".webm": "audio/webm", ".mkv": "audio/webm", ".ogg": "audio/ogg",
                  ".opus": "audio/ogg", ".oga": "audio/ogg", ".mp4": "audio/mp4",
                  ".m4a": "audio/mp4"}  # fmt: skip


def wav_chunks(path: Path) -> tuple[str, Iterator[bytes]]:
    """The MIME string of a 16-bit WAV file's frames and its 100 ms chunks."""
    with wave.open(str(path)) as wav:
        width, rate, channels = wav.getsampwidth(), wav.getframerate(), wav.getnchannels()
    if width != 2:
        raise SystemExit(f"{path}: only 16-bit WAV goes out as raw PCM; send a recording instead")

    def chunks() -> Iterator[bytes]:
        with wave.open(str(path)) as wav:
            while frames := wav.readframes(round(rate * CHUNK_SECONDS)):
                yield frames

    return f"audio/pcm;rate={rate};encoding=int16;channels={channels}", chunks()


def file_chunks(path: Path, mime: str | None) -> tuple[str, Iterator[bytes]]:
    """The file's bytes in pieces of 100 ms at its average bitrate (duration from its packets:
    MediaRecorder files often declare none)."""
    mime = mime or MIME_BY_SUFFIX.get(path.suffix.lower())
    if mime is None:
        raise SystemExit(f"{path}: unknown type; give --mime (e.g. audio/webm;codecs=opus)")
    data = path.read_bytes()
    with av.open(str(path)) as container:
        packets = container.demux(container.streams.audio[0])
        ends = [(p.pts + (p.duration or 0)) * p.time_base for p in packets if p.pts is not None]
        seconds = float(max(ends, default=0))
    size = max(1, round(len(data) * CHUNK_SECONDS / seconds)) if seconds > 0 else 4096
    return mime, (data[i : i + size] for i in range(0, len(data), size))


async def send_audio(
    ws: ClientConnection, mime: str, chunks: Iterator[bytes], speed: float
) -> None:
    await ws.send(json.dumps({"type": "start", "mime": mime, "interim": False}))
    loop = asyncio.get_running_loop()
    began = loop.time()
    for index, chunk in enumerate(chunks):
        if speed > 0:  # pace by the clock, not by sleeps, so delays do not add up
            await asyncio.sleep(max(0.0, began + index * CHUNK_SECONDS / speed - loop.time()))
        await ws.send(chunk)
    await ws.send(json.dumps({"type": "stop"}))


def show(message: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(message), flush=True)
    elif message["type"] == "segment" and message["final"]:
        offset = float(message["offset"])  # type: ignore[arg-type]
        minutes, seconds = divmod(offset, 60)
        language = f" ({message['language']})" if message["language"] else ""
        who = f"{message['speaker']}{language}"
        print(f"[{int(minutes):02d}:{seconds:04.1f}] {who}: {message['text']}", flush=True)
    elif message["type"] == "error":
        print(f"error {message['code']}: {message['message']}", file=sys.stderr)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws")
    parser.add_argument("--mime", help="MIME type of a non-WAV file (default: from its suffix)")
    parser.add_argument("--speed", type=float, default=1.0, help="1 real time, 0 unpaced")
    parser.add_argument("--token", help="token of a server started with --token")
    parser.add_argument("--json", action="store_true", help="print every message as JSON")
    args = parser.parse_args()
    is_wav = args.file.suffix.lower() == ".wav" and args.mime is None
    mime, chunks = wav_chunks(args.file) if is_wav else file_chunks(args.file, args.mime)
    protocols = ["streamdiarize.v1"] + ([f"streamdiarize.token.{args.token}"] if args.token else [])
    async with connect(args.url, subprotocols=[Subprotocol(p) for p in protocols]) as ws:
        sender = asyncio.create_task(send_audio(ws, mime, chunks, args.speed))
        ended = False
        try:
            async for text in ws:
                message = json.loads(text)
                show(message, args.json)
                ended = ended or message["type"] == "end"
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
    return 0 if ended else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
