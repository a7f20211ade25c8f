"""Speech backends behind one protocol: Azure ConversationTranscriber and the local engine."""

from __future__ import annotations

import os

from ._base import SAMPLE_RATE, SegmentSink, Transcriber, TranscriberStream

__all__ = ["SAMPLE_RATE", "SegmentSink", "Transcriber", "TranscriberStream", "default_transcriber"]


def default_transcriber() -> Transcriber:
    """Azure when ``SPEECH_KEY`` and a location (``SPEECH_REGION``/``_ENDPOINT``/``_HOST``) are set.

    Otherwise the embedded local engine.

    Raises:
        BackendUnavailableError: no Azure credentials and the ``local`` extra is not installed.
    """
    located = any(os.environ.get(n) for n in ("SPEECH_REGION", "SPEECH_ENDPOINT", "SPEECH_HOST"))
    if os.environ.get("SPEECH_KEY") and located:
        from .azure import AzureTranscriber

        return AzureTranscriber()
    from .local import LocalTranscriber

    return LocalTranscriber()
