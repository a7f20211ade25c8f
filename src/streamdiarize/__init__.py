"""streamdiarize: live, speaker-labelled transcripts from whatever audio a browser sends.

Public API::

    import streamdiarize as sd

    fmt = sd.detect_format(first_bytes, mime="audio/webm;codecs=opus")
    reassembler = sd.ChunkReassembler(mime="audio/webm;codecs=opus")
    pcm = reassembler.feed(chunk)     # int16 mono 16 kHz numpy array, possibly empty
    pcm = reassembler.flush()         # end of stream

Names are imported on first use (PEP 562), so ``import streamdiarize.containers`` or
``sd.detect_format`` does not load the session, the backends or the Azure SDK.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from . import _exceptions  # the error classes: cheap (numpy only), and always wanted

if TYPE_CHECKING:
    from ._exceptions import (
        AuthenticationError,
        BackendUnavailableError,
        ConfigurationError,
        ConnectionLostError,
        CorruptStreamError,
        InputError,
        LimitExceededError,
        QuotaExceededError,
        ServiceError,
        SessionClosedError,
        StreamDiarizeError,
        TranscriberError,
        UnsupportedFormatError,
    )
    from .formats import AudioFormat, Container, SampleFormat, detect_format
    from .reassembler import ChunkReassembler
    from .resampling import Resampler, resample
    from .segment import Segment, Word
    from .session import TranscriptionSession
    from .transcribers import Transcriber, TranscriberStream
    from .transcribers.azure import AzureCredentials, AzureTranscriber
    from .transcribers.local import LocalTranscriber

#: The package version (PEP 440).
__version__ = "0.1.0"

# A library logs, the application decides where it goes (no "No handlers" fallback to stderr).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AudioFormat",
    "AuthenticationError",
    "AzureCredentials",
    "AzureTranscriber",
    "BackendUnavailableError",
    "ChunkReassembler",
    "ConfigurationError",
    "ConnectionLostError",
    "Container",
    "CorruptStreamError",
    "InputError",
    "LimitExceededError",
    "LocalTranscriber",
    "QuotaExceededError",
    "Resampler",
    "SampleFormat",
    "Segment",
    "ServiceError",
    "SessionClosedError",
    "StreamDiarizeError",
    "Transcriber",
    "TranscriberError",
    "TranscriberStream",
    "TranscriptionSession",
    "UnsupportedFormatError",
    "Word",
    "__version__",
    "detect_format",
    "resample",
]

#: Where each public name lives; imported by :func:`__getattr__` on first use.
_LAZY = {
    **dict.fromkeys(_exceptions.__all__, "._exceptions"),
    **dict.fromkeys(("AudioFormat", "Container", "SampleFormat", "detect_format"), ".formats"),
    "ChunkReassembler": ".reassembler",
    "Resampler": ".resampling",
    "resample": ".resampling",
    "Segment": ".segment",
    "Word": ".segment",
    "TranscriptionSession": ".session",
    "Transcriber": ".transcribers",
    "TranscriberStream": ".transcribers",
    "AzureCredentials": ".transcribers.azure",
    "AzureTranscriber": ".transcribers.azure",
    "LocalTranscriber": ".transcribers.local",
}

#: Subpackages reachable as attributes (``sd.containers.WebMDemuxer``), imported on first use.
_SUBMODULES = frozenset(
    {
        "cli",
        "codecs",
        "containers",
        "engines",
        "formats",
        "output",
        "raw_detection",
        "reassembler",
        "resampling",
        "segment",
        "server",
        "session",
        "testing",
        "transcribe",
        "transcribers",
    }
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
