"""The one PCM rate every backend consumes: 16 kHz, the rate speech models and services use."""

from typing import Final

__all__ = ["SPEECH_SAMPLE_RATE"]

#: Samples per second of the mono int16 PCM the reassembler produces and the backends read.
SPEECH_SAMPLE_RATE: Final = 16_000
