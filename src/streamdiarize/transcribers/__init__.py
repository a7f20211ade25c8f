"""Speech backends behind one protocol: Azure ConversationTranscriber and the local engine."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ._base import SAMPLE_RATE, SegmentSink, Transcriber, TranscriberStream

__all__ = [
    "SAMPLE_RATE",
    "SegmentSink",
    "Transcriber",
    "TranscriberStream",
    "default_engine_name",
    "default_transcriber",
]


def default_engine_name(environ: Mapping[str, str] | None = None) -> str:
    """``azure`` when ``SPEECH_KEY`` and a location (``SPEECH_REGION``, ``SPEECH_ENDPOINT`` or
    ``SPEECH_HOST``) are set, else ``local``: the one rule for the default backend."""
    env = os.environ if environ is None else environ
    located = any(env.get(name) for name in ("SPEECH_REGION", "SPEECH_ENDPOINT", "SPEECH_HOST"))
    return "azure" if env.get("SPEECH_KEY") and located else "local"


def default_transcriber() -> Transcriber:
    """Azure when ``SPEECH_KEY`` and a location (``SPEECH_REGION``/``_ENDPOINT``/``_HOST``) are set.

    Otherwise the embedded local engine (see :func:`default_engine_name`).

    Raises:
        BackendUnavailableError: no Azure credentials and the ``local`` extra is not installed.
    """
    if default_engine_name() == "azure":
        from .azure import AzureTranscriber

        return AzureTranscriber()
    from .local import LocalTranscriber

    return LocalTranscriber()
