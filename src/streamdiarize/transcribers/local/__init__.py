"""The embedded offline engine: Silero VAD, Whisper (faster-whisper) and GE2E speaker clustering.

Needs the ``local`` extra (``pip install 'streamdiarize[local]'``); importing this package does
not, the missing pieces are reported as :class:`~streamdiarize.BackendUnavailableError` when a
transcriber or engine is created.

* :class:`LocalTranscriber`: the asynchronous backend for sessions (worker thread per stream).
* :class:`LocalEngine`: the same pipeline as a synchronous ``feed(pcm) -> list[Segment]``
  object, for emulators and batch jobs; :func:`recognize` for a whole recording.
"""

from .clustering import SpeakerClustering
from .embedding import SpeakerEncoder
from .engine import UNKNOWN_SPEAKER, LocalEngine, LocalSettings, recognize
from .transcriber import LocalTranscriber, LocalTranscriberStream
from .vad import VadOptions, VoiceActivityDetector

__all__ = [
    "UNKNOWN_SPEAKER",
    "LocalEngine",
    "LocalSettings",
    "LocalTranscriber",
    "LocalTranscriberStream",
    "SpeakerClustering",
    "SpeakerEncoder",
    "VadOptions",
    "VoiceActivityDetector",
    "recognize",
]
