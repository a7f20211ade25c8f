"""streamdiarize: live, speaker-labelled transcripts from whatever audio a browser sends.

Public API::

    import streamdiarize as sd

    fmt = sd.detect_format(first_bytes, mime="audio/webm;codecs=opus")
    reassembler = sd.ChunkReassembler(mime="audio/webm;codecs=opus")
    pcm = reassembler.feed(chunk)     # int16 mono 16 kHz numpy array, possibly empty
    pcm = reassembler.flush()         # end of stream
"""

import logging

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
