"""Offline testing of Azure conversation transcription: an emulated Speech service.

:class:`FakeSpeechService` speaks the Azure Speech WebSocket protocol (USP) on 127.0.0.1, so
the real ``azure-cognitiveservices-speech`` SDK runs against it with no network and no key::

    from streamdiarize.testing import FakeSpeechService, ScriptedPhrase, ScriptedRecognizer

    script = ScriptedRecognizer([ScriptedPhrase("Hello there.", 0.5, 1.4, speaker="Guest-1")])
    with FakeSpeechService(script) as service:
        config = service.speech_config()          # SpeechConfig(host="ws://127.0.0.1:PORT")
        ...                                        # run a ConversationTranscriber
    assert not service.audio_problems              # the audio pushed was real 16 kHz speech

Faults (:class:`Fault`) make chosen connection attempts fail the way Azure does.
:class:`LocalRecognizer` answers with real transcripts from the embedded offline engine
(extra ``local``) instead of a script; :class:`EnergyRecognizer` marks speech spans by their
energy and voices by pitch (the ``fake`` engine of ``streamdiarize serve``).
"""

from ._audio_checks import speech_problem
from ._energy import EnergyRecognizer
from ._faults import Fault
from ._handshake import RECOGNITION_PATHS
from ._local import LocalRecognizer
from ._recognizers import Hypothesis, Phrase, Recognizer, TurnInfo, TurnRecognizer, WordTiming
from ._records import AudioProblem, ConnectionRecord, TurnRecord
from ._scripted import ScriptedPhrase, ScriptedRecognizer
from ._service import FakeSpeechService
from ._usp import UspMessage, UspProtocolError, WaveFormat, parse_message, serialize_message

__all__ = [
    "RECOGNITION_PATHS",
    "AudioProblem",
    "ConnectionRecord",
    "EnergyRecognizer",
    "FakeSpeechService",
    "Fault",
    "Hypothesis",
    "LocalRecognizer",
    "Phrase",
    "Recognizer",
    "ScriptedPhrase",
    "ScriptedRecognizer",
    "TurnInfo",
    "TurnRecognizer",
    "TurnRecord",
    "UspMessage",
    "UspProtocolError",
    "WaveFormat",
    "WordTiming",
    "parse_message",
    "serialize_message",
    "speech_problem",
]
