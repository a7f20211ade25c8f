"""Every error streamdiarize raises, in one tree rooted at :class:`StreamDiarizeError`.

The hierarchy::

    StreamDiarizeError
    ├── InputError                  the bytes from the client are unusable
    │   ├── UnsupportedFormatError  not a format (or codec) we can decode, or not known yet
    │   └── CorruptStreamError      a known format, but broken: bad sizes, bad CRC, NaN samples
    │       └── LimitExceededError  a declared size or the buffered bytes pass a configured cap
    ├── TranscriberError            the speech backend failed
    │   ├── AuthenticationError     key, token or region rejected (HTTP 401/403)
    │   ├── QuotaExceededError      throttled or out of quota (HTTP 429, close 1007 "Quota")
    │   ├── ServiceError            any other cancellation; ``error_code``/``details`` from the SDK
    │   │   └── ConnectionLostError the connection dropped and retries ran out
    │   └── BackendUnavailableError the backend cannot start here (missing extra, missing model)
    ├── ConfigurationError          bad or missing settings (no key, no region, bad argument)
    └── SessionClosedError          ``send()`` after ``close()``

:class:`InputError` carries ``pcm``: the audio decoded from the failing chunk before the fault,
so no speech that was already decodable is lost when a stream breaks.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "AuthenticationError",
    "BackendUnavailableError",
    "ConfigurationError",
    "ConnectionLostError",
    "CorruptStreamError",
    "InputError",
    "LimitExceededError",
    "QuotaExceededError",
    "ServiceError",
    "SessionClosedError",
    "StreamDiarizeError",
    "TranscriberError",
    "UnsupportedFormatError",
]

_EMPTY_PCM: NDArray[np.int16] = np.zeros(0, dtype=np.int16)
_EMPTY_PCM.setflags(write=False)


class StreamDiarizeError(Exception):
    """Root of every error raised by streamdiarize."""


class InputError(StreamDiarizeError):
    """The audio bytes cannot be used.

    Attributes:
        pcm: int16 mono audio decoded from the failing chunk before the fault (often empty).
            Earlier chunks' audio was already returned by earlier calls.
    """

    pcm: NDArray[np.int16]

    def __init__(self, message: str, *, pcm: NDArray[np.int16] | None = None) -> None:
        super().__init__(message)
        self.pcm = _EMPTY_PCM if pcm is None else pcm


class UnsupportedFormatError(InputError):
    """The stream is not in a format (or codec) streamdiarize decodes, or cannot be told yet."""


class CorruptStreamError(InputError):
    """The stream claims a known format but its bytes break that format's rules."""


class LimitExceededError(CorruptStreamError):
    """A declared size, a header field or the buffered bytes exceed a configured limit."""


class TranscriberError(StreamDiarizeError):
    """The speech-to-text backend failed."""


class AuthenticationError(TranscriberError):
    """The service rejected the credentials (HTTP 401/403): check key, token and region."""


class QuotaExceededError(TranscriberError):
    """The service throttled the request or the quota is used up (HTTP 429)."""


class ServiceError(TranscriberError):
    """The service cancelled recognition for another reason.

    Attributes:
        error_code: the backend's error code name (e.g. ``"ServiceTimeout"``), if any.
        details: the backend's error text, with credentials removed.
    """

    def __init__(self, message: str, *, error_code: str | None = None, details: str = "") -> None:
        super().__init__(message)
        self.error_code = error_code
        self.details = details


class ConnectionLostError(ServiceError):
    """The connection to the service was lost and could not be re-established in time."""


class BackendUnavailableError(TranscriberError):
    """The backend cannot run here: an optional dependency or its model is missing."""


class ConfigurationError(StreamDiarizeError, ValueError):
    """A setting is missing or invalid (no key or region, a bad argument value)."""


class SessionClosedError(StreamDiarizeError):
    """The session is closed; no more audio can be sent."""
