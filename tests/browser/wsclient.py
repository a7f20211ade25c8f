"""A scripted WebSocket client for the streamdiarize protocol: send a list, record the answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

Outgoing = str | bytes | Mapping[str, Any]


@dataclass
class Conversation:
    """What the server said, and how it closed."""

    received: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    subprotocol: str | None = None
    send_error: str | None = None

    @property
    def types(self) -> list[str]:
        return [m["type"] for m in self.received]

    @property
    def finals(self) -> list[dict[str, Any]]:
        return [m for m in self.received if m["type"] == "segment" and m["final"]]

    @property
    def error_code(self) -> str | None:
        return None if self.error is None else str(self.error["code"])

    @property
    def error(self) -> dict[str, Any] | None:
        errors = [m for m in self.received if m["type"] == "error"]
        return errors[-1] if errors else None


def _encode(message: Outgoing) -> str | bytes:
    if isinstance(message, (str, bytes)):
        return message
    return json.dumps(dict(message))


async def _send_all(ws: ClientConnection, outgoing: Sequence[Outgoing], pace: float) -> str | None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        for index, message in enumerate(outgoing):
            await ws.send(_encode(message))
            if pace:  # on a schedule, so that late wake-ups do not add up
                await asyncio.sleep(max(0.0, began + (index + 1) * pace - loop.time()))
    except (ConnectionClosed, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def converse(
    url: str,
    outgoing: Sequence[Outgoing],
    *,
    pace: float = 0.0,
    subprotocols: Sequence[str] = ("streamdiarize.v1",),
    headers: Mapping[str, str] | None = None,
    origin: str | None = None,
    timeout: float = 60.0,
) -> Conversation:
    """Send ``outgoing`` (``pace`` seconds apart) while recording every server message, until
    the server closes. Dicts are sent as JSON text."""
    result = Conversation()
    async with connect(
        url,
        subprotocols=list(subprotocols) or None,  # type: ignore[arg-type]
        additional_headers=dict(headers or {}),
        origin=origin,  # type: ignore[arg-type]
        max_size=None,
        compression=None,
        proxy=None,
        open_timeout=10,
        close_timeout=5,
    ) as ws:
        result.subprotocol = ws.subprotocol
        sender = asyncio.create_task(_send_all(ws, outgoing, pace))
        try:
            async with asyncio.timeout(timeout):
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        text = await ws.recv()
                        assert isinstance(text, str), "the server sends text messages only"
                        result.received.append(json.loads(text))
                await ws.wait_closed()
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                result.send_error = await sender
        result.close_code = ws.close_code
        result.close_reason = ws.close_reason or ""
    return result
