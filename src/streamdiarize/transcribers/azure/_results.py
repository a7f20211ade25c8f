"""Translate the Speech SDK's results and cancellations into streamdiarize's types.

Pure functions of the SDK's event objects: they run on SDK threads, so they must not touch
the event loop; the stream hands their output to the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import json
from typing import Any

from ..._exceptions import (
    AuthenticationError,
    ConnectionLostError,
    QuotaExceededError,
    ServiceError,
    TranscriberError,
)
from ...segment import Segment, Word

__all__ = ["TICKS_PER_SECOND", "error_from_cancellation", "is_retryable", "segment_from_result"]

#: The service counts time in 100 ns ticks.
TICKS_PER_SECOND = 10_000_000

#: Cancellation codes worth a fresh connection (the SDK's own retries already gave up).
_RETRYABLE = {"ConnectionFailure", "ServiceTimeout", "ServiceUnavailable", "ServiceError"}


def _language(result: Any) -> str | None:
    import azure.cognitiveservices.speech as speechsdk

    value = result.properties.get(
        speechsdk.PropertyId.SpeechServiceConnection_AutoDetectSourceLanguageResult
    )
    return str(value) if value else None


def _words(detail: dict[str, Any], base: float) -> tuple[Word, ...]:
    best = (detail.get("NBest") or [{}])[0]
    words = []
    for word in best.get("Words") or ():
        confidence = word.get("Confidence")
        words.append(
            Word(
                text=str(word.get("Word", "")),
                offset=base + int(word.get("Offset", 0)) / TICKS_PER_SECOND,
                duration=int(word.get("Duration", 0)) / TICKS_PER_SECOND,
                confidence=float(confidence) if confidence is not None else None,
            )
        )
    return tuple(words)


def segment_from_result(
    result: Any, *, final: bool, base: float, default_language: str | None
) -> Segment | None:
    """A :class:`Segment` from a ``ConversationTranscriptionResult``; ``None`` when it has no text.

    Args:
        result: the SDK result (``evt.result`` of transcribed/transcribing).
        final: True for ``transcribed``, False for ``transcribing``.
        base: seconds of stream time before this recognizer's first sample (reconnects).
        default_language: the language to report when the service names none (one language).
    """
    text = result.text or ""
    if not text.strip():
        return None
    try:
        detail = json.loads(result.json) if result.json else {}
    except (TypeError, ValueError):
        detail = {}
    return Segment(
        speaker=result.speaker_id or "Unknown",
        language=_language(result) or default_language,
        text=text,
        offset=base + result.offset / TICKS_PER_SECOND,
        duration=result.duration / TICKS_PER_SECOND,
        final=final,
        words=_words(detail, base) if final else (),
    )


def error_from_cancellation(code: str, details: str) -> TranscriberError:
    """Map a cancellation's error code and details to the typed error users catch.

    ``details`` must already be scrubbed of secrets.
    """
    lowered = details.lower()
    if code in ("AuthenticationFailure", "Forbidden") or "(401)" in details or "(403)" in details:
        return AuthenticationError(
            f"Azure Speech rejected the credentials ({code}): check the key/token and that "
            f"the region matches the resource. Service said: {details}"
        )
    if code == "TooManyRequests" or "quota" in lowered or "(429)" in details:
        return QuotaExceededError(
            f"Azure Speech throttled the request or the quota is used up ({code}): {details}"
        )
    if code == "ConnectionFailure":
        return ConnectionLostError(
            f"lost the connection to Azure Speech: {details}", error_code=code, details=details
        )
    return ServiceError(
        f"Azure Speech cancelled ({code}): {details}", error_code=code, details=details
    )


def is_retryable(code: str, details: str) -> bool:
    """True when a fresh connection may succeed (not auth, not quota, not a bad request)."""
    return code in _RETRYABLE and "quota" not in details.lower()
