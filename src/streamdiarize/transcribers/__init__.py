"""Speech backends behind one protocol: Azure ConversationTranscriber and the local engine."""

from ._base import SAMPLE_RATE, SegmentSink, Transcriber, TranscriberStream

__all__ = ["SAMPLE_RATE", "SegmentSink", "Transcriber", "TranscriberStream"]
