"""The WebSocket upgrade as the Azure Speech service judges it: path, credentials, subprotocol.

Two independent SDKs open the socket differently, and the service accepts both:

================  ===============================  ========================================
                  Python SDK 1.53 (native core)    JavaScript SDK 1.52 (Node and browsers)
================  ===============================  ========================================
subprotocol       offers ``USP``                   offers none
key               ``Ocp-Apim-Subscription-Key``    the same header (Node only) *and* the
                  header                           same name as a query parameter
token             ``Authorization: Bearer T``      the header (Node only) *and* the query
                                                   parameter ``Authorization=Bearer T``
connection id     ``X-ConnectionId`` header        header and query parameter
                                                   (``X-ConnectionId``, ``connectionId``)
================  ===============================  ========================================

Browsers cannot set headers on a WebSocket, which is why the JavaScript SDK repeats every
header as a query parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from websockets.asyncio.server import ServerConnection
from websockets.typing import Subprotocol

__all__ = [
    "RECOGNITION_PATHS",
    "connection_id",
    "judge_upgrade",
    "select_subprotocol",
]

#: WebSocket paths the service answers. The Python SDK uses ``/speech/universal/v2`` for
#: conversation transcription; the JavaScript SDK's ``ConversationTranscriber`` uses the
#: ``conversation`` path from a host (``/stt/speech/universal/v2`` with
#: ``SpeechServiceConnection_RecognitionEndpointVersion = "1"``, and it is the path to give
#: ``SpeechConfig.fromEndpoint``); both SDKs' ``SpeechRecognizer`` use ``interactive``,
#: ``conversation`` or ``dictation`` by recognition mode.
RECOGNITION_PATHS = frozenset(
    {
        "/speech/universal/v2",
        "/stt/speech/universal/v2",
        "/speech/recognition/conversation/cognitiveservices/v1",
        "/speech/recognition/interactive/cognitiveservices/v1",
        "/speech/recognition/dictation/cognitiveservices/v1",
    }
)

_USP = Subprotocol("USP")
_KEY = "ocp-apim-subscription-key"
_AUTHORIZATION = "authorization"
_BEARER = "bearer "


def select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """Echo ``USP`` when the client offers it (Python SDK), else go on without one (JS SDK).

    The service does not require the subprotocol; websockets' default would refuse a client
    that offers none with HTTP 400.
    """
    return _USP if _USP in offered else None


def _lower(mapping: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in mapping.items()}


def _secrets(headers: Mapping[str, str], query: Mapping[str, str]) -> list[str]:
    """Every key and token the client presented, from headers and query parameters."""
    found: list[str] = []
    for source in (_lower(headers), _lower(query)):
        if key := source.get(_KEY, "").strip():
            found.append(key)
        authorization = source.get(_AUTHORIZATION, "").strip()
        if authorization.lower().startswith(_BEARER):
            authorization = authorization[len(_BEARER) :].strip()
        if authorization:
            found.append(authorization)
    return found


def judge_upgrade(
    path: str, headers: Mapping[str, str], query: Mapping[str, str], key: str | None
) -> tuple[int, str] | None:
    """Check an upgrade request the way the service does.

    Args:
        path: the request path, without its query.
        headers: the request headers (any case).
        query: the query parameters (any case).
        key: the one key or token to accept; ``None`` accepts any non-empty one.

    Returns:
        ``None`` to upgrade, else the HTTP status and body of the refusal: 404 for a path the
        service does not serve, 401 for missing or wrong credentials.
    """
    if path not in RECOGNITION_PATHS:
        return 404, f"No speech service at {path}"
    secrets = _secrets(headers, query)
    if not secrets or (key is not None and key not in secrets):
        return 401, "Access denied due to invalid subscription key."
    return None


def connection_id(headers: Mapping[str, str], query: Mapping[str, str]) -> str:
    """The client's ``X-ConnectionId`` (header, else query parameter), or ``""``.

    Both SDKs keep it for every reconnect of one recognizer.
    """
    for source in (_lower(headers), _lower(query)):
        if value := source.get("x-connectionid") or source.get("connectionid"):
            return value
    return ""
