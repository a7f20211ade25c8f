"""Speech backends behind one protocol: Azure ConversationTranscriber and the local engine."""

from __future__ import annotations

import os

from ._base import SAMPLE_RATE, SegmentSink, Transcriber, TranscriberStream

__all__ = ["SAMPLE_RATE", "SegmentSink", "Transcriber", "TranscriberStream", "default_transcriber"]


def default_transcriber() -> Transcriber:
    """Azure when ``SPEECH_KEY`` and ``SPEECH_REGION`` (or ``SPEECH_ENDPOINT``) are set, else local.

    Raises:
        BackendUnavailableError: no Azure credentials and the ``local`` extra is not installed.
    """
    if os.environ.get("SPEECH_KEY") and (
        os.environ.get("SPEECH_REGION") or os.environ.get("SPEECH_ENDPOINT")
    ):
        from .azure import AzureTranscriber

        return AzureTranscriber()
    from .local import LocalTranscriber

    return LocalTranscriber()
