"""One WebSocket connection of the demo server: checks, the session's two tasks, the ending.

::

    handshake ─► Origin ok? ─► accept ─► token ok? ─► slot free? ─► first message ─► ready
        audio task:   socket ──► session.send()        (until stop, error or disconnect)
        results task: session ──► socket              (until the session's iteration ends)
    ─► end or error ─► close

The first message is a ``start`` message, or already audio from a zero-config page (no
subprotocol, no start message: see :mod:`streamdiarize.server.opening`). Final segments are
also printed on the server's standard output when ``ServerSettings.print_segments`` is set.

Whatever happens (client gone mid-stream, bad bytes, backend failure, time limit), both tasks
are finished and the session is closed or aborted before the handler returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import time
from typing import Any

from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket

from .._exceptions import StreamDiarizeError, TranscriberError
from ..session import TranscriptionSession
from ._context import ServerContext
from ._observer import SessionInfo, SessionOutcome
from ._security import origin_allowed, presented_token, token_matches
from ._socket import ClientGoneError, ClientSocket
from .opening import Opening, console_line, origin_refusal, parse_opening
from .protocol import (
    SUBPROTOCOL,
    ErrorCode,
    ProtocolError,
    end_message,
    error_for,
    parse_message,
    ready_message,
    segment_message,
)

__all__ = ["handle_websocket"]

logger = logging.getLogger("streamdiarize.server")


class _Signal(enum.Enum):
    STOP = "stop"  # the client sent {"type": "stop"}
    GONE = "gone"  # the client disconnected


_SERVER_SIDE = {ErrorCode.BACKEND, ErrorCode.QUOTA, ErrorCode.INTERNAL}


async def handle_websocket(websocket: WebSocket, context: ServerContext) -> None:
    """Serve one connection of the streamdiarize protocol, from handshake to close."""
    headers = websocket.headers
    origin = headers.get("origin")
    if not origin_allowed(origin, headers.get("host"), context.settings.allowed_origins):
        await _refuse_origin(websocket, origin)
        return
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    await _Connection(websocket, context).run()


async def _refuse_origin(websocket: WebSocket, origin: str | None) -> None:
    """HTTP 403 at the handshake, saying which ``--allow-origin`` would admit the page."""
    text = origin_refusal(origin)
    logger.warning("%s", text)
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(PlainTextResponse(text + "\n", status_code=403))
    else:  # before accept: the ASGI server answers HTTP 403 without a body
        await websocket.close(1008)


class _Connection:
    def __init__(self, websocket: WebSocket, context: ServerContext) -> None:
        self.ws = websocket
        self.context = context
        self.settings = context.settings
        self.socket = ClientSocket(websocket, context.settings.max_message_bytes)
        self.id = secrets.token_hex(4)
        client = websocket.client
        self.client = f"{client.host}:{client.port}" if client else "?"
        self.info: SessionInfo | None = None
        self.started = time.monotonic()
        self.messages = 0
        self.bytes = 0
        self.segments = 0

    # -- the whole connection ----------------------------------------------------------------

    async def run(self) -> None:
        session: TranscriptionSession | None = None
        ending: ProtocolError | _Signal
        try:
            self._authorize()
            with self.context.slots.acquire():
                opening = await self._receive_opening()
                session = self._open_session(opening)
                await session.start()
                await self.socket.send(
                    ready_message(
                        self.id,
                        self.context.engine.name,
                        emulated=self.context.engine.emulated,
                        limits=self.settings.limits(),
                    )
                )
                ending = await self._stream(session, opening.audio)
        except ProtocolError as exc:
            ending = exc
        except StreamDiarizeError as exc:
            ending = error_for(exc)
        except ClientGoneError:
            ending = _Signal.GONE
        except Exception:  # a bug: log it, tell the client, keep serving the others
            logger.exception("session %s failed", self.id)
            ending = ProtocolError(
                ErrorCode.INTERNAL, f"internal server error in session {self.id}; see the log"
            )
        finally:
            if session is not None:
                try:
                    await session.abort()  # idempotent; after close() it only confirms
                except Exception:
                    logger.exception("session %s: the backend failed to stop", self.id)
        close_code = await self._finish(ending, session)
        self._report(ending, close_code, session)

    def _authorize(self) -> None:
        expected = self.settings.token
        if expected is None:
            return
        token = presented_token(
            self.ws.scope.get("subprotocols") or [], self.ws.headers.get("authorization")
        )
        if not token_matches(expected, token):
            raise ProtocolError(
                ErrorCode.UNAUTHORIZED,
                "this server needs a token: open the page with the URL the server printed "
                "(…/#token=…), or offer the subprotocol streamdiarize.token.<token>",
            )

    async def _receive_opening(self) -> Opening:
        """The first message: a ``start`` message, or the first audio (zero-config pages)."""
        first = await self.socket.receive(self.settings.start_timeout, "first message")
        return parse_opening(first, self.ws.scope.get("query_string", b""))

    def _open_session(self, opening: Opening) -> TranscriptionSession:
        session = opening.session(
            self.context.engine.transcriber,
            max_buffered=self.settings.max_buffered_bytes,
            max_feed_seconds=self.settings.max_message_seconds,
            close_timeout=self.settings.close_timeout,
        )
        self.info = SessionInfo(
            self.id, self.client, opening.mime, opening.interim, self.ws.headers.get("origin")
        )
        shown = opening.mime or "no start message, format found out from the bytes"
        logger.info("session %s from %s: %s", self.id, self.client, shown)
        if self.context.observer is not None:
            self.context.observer.session_started(self.info)
        return session

    # -- the two tasks -----------------------------------------------------------------------

    async def _stream(self, session: TranscriptionSession, first: bytes) -> ProtocolError | _Signal:
        audio = asyncio.create_task(self._pump_audio(session, first), name=f"sd-audio-{self.id}")
        results = asyncio.create_task(self._pump_results(session), name=f"sd-results-{self.id}")
        try:
            remaining = self.settings.max_session_seconds - (time.monotonic() - self.started)
            done, _ = await asyncio.wait(
                {audio, results}, timeout=max(0.0, remaining), return_when=asyncio.FIRST_COMPLETED
            )
            if audio in done:
                ending = audio.result()
                if ending is _Signal.GONE:
                    return ending
                return await self._drain(session, results, ending)
            if results in done:
                outcome = results.result()
                if outcome is None:  # iteration ended although nobody closed the session
                    return ProtocolError(ErrorCode.BACKEND, "the speech backend ended the session")
                return outcome
            await _cancel(audio)
            return await self._drain(
                session,
                results,
                ProtocolError(
                    ErrorCode.SESSION_LIMIT,
                    f"sessions last at most {self.settings.max_session_seconds:g} s",
                ),
            )
        finally:
            await _cancel(audio)
            await _cancel(results)

    async def _drain(
        self,
        session: TranscriptionSession,
        results: asyncio.Task[ProtocolError | _Signal | None],
        ending: ProtocolError | _Signal,
    ) -> ProtocolError | _Signal:
        """Flush the audio, deliver the last segments, then report ``ending``."""
        await session.close()  # bounded by close_timeout; never raises backend errors
        try:
            outcome = await asyncio.wait_for(results, self.settings.close_timeout)
        except asyncio.TimeoutError:  # the client does not read its results
            return ProtocolError(ErrorCode.TIMEOUT, "the client did not read its results")
        if outcome is _Signal.GONE:
            return outcome
        if isinstance(outcome, ProtocolError) and ending is _Signal.STOP:
            return outcome  # the backend failed while finishing
        return ending

    async def _pump_audio(
        self, session: TranscriptionSession, first: bytes
    ) -> ProtocolError | _Signal:
        """Socket to session until ``stop``, beginning with ``first`` (audio that opened the
        connection, or ``b""``); returns why it stopped, never raises for clients."""
        pending: bytes | None = first or None
        try:
            while True:
                message = pending or await self.socket.receive(self.settings.idle_timeout, "audio")
                pending = None
                if isinstance(message, str):
                    parse_message(message)
                    return _Signal.STOP
                self.messages += 1
                self.bytes += len(message)
                if self.context.observer is not None and self.info is not None:
                    self.context.observer.audio_received(self.info, message)
                await session.send(message)
                if session.audio_seconds > self.settings.max_session_seconds:
                    raise ProtocolError(
                        ErrorCode.SESSION_LIMIT,
                        f"sessions hold at most {self.settings.max_session_seconds:g} s of audio",
                    )
        except ProtocolError as exc:
            return exc
        except StreamDiarizeError as exc:
            return error_for(exc)
        except ClientGoneError:
            return _Signal.GONE

    async def _pump_results(self, session: TranscriptionSession) -> ProtocolError | _Signal | None:
        """Session to socket until the iteration ends (``None``) or fails."""
        try:
            async for segment in session:
                await self.socket.send(segment_message(segment))
                self.segments += 1
                if self.settings.print_segments and segment.final:
                    print(console_line(segment), flush=True)
        except TranscriberError as exc:
            return error_for(exc)
        except ClientGoneError:
            return _Signal.GONE
        return None

    async def _finish(
        self, ending: ProtocolError | _Signal, session: TranscriptionSession | None
    ) -> int:
        """Send ``end`` or the error, then close; returns the close code."""
        if ending is _Signal.GONE or self.socket.gone:
            return 1006
        if isinstance(ending, ProtocolError):
            message, code, reason = ending.message(), ending.close_code, ending.close_reason
        else:
            seconds = session.audio_seconds if session is not None else 0.0
            message, code, reason = end_message(seconds), 1000, ""
        with contextlib.suppress(ClientGoneError):
            await self.socket.send(message)
        await self.socket.close(code, reason)
        return code

    def _report(
        self, ending: ProtocolError | _Signal, close_code: int, session: TranscriptionSession | None
    ) -> None:
        error = ending if isinstance(ending, ProtocolError) else None
        outcome = SessionOutcome(
            close_code=close_code,
            error=error.code.value if error else None,
            reason=error.text if error else "",
            audio_seconds=session.audio_seconds if session is not None else 0.0,
            messages=self.messages,
            bytes=self.bytes,
            segments=self.segments,
            restarts=session.reassembler.restarts if session is not None else 0,
            seconds=time.monotonic() - self.started,
        )
        server_side = error is not None and error.code in _SERVER_SIDE
        level = logging.WARNING if server_side else logging.INFO  # clients' faults are routine
        logger.log(
            level,
            "session %s ended: %s, %.1f s of audio, %d messages, %d segments",
            self.id,
            f"{error.code.value} ({error.text})"
            if error
            else ("client left" if close_code == 1006 else "end"),
            outcome.audio_seconds,
            outcome.messages,
            outcome.segments,
        )
        if self.context.observer is not None and self.info is not None:
            self.context.observer.session_ended(self.info, outcome)


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` if needed and wait until it is done (its outcome is dropped)."""
    if not task.done():
        task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" warning
