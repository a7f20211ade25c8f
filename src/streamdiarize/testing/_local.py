"""``LocalRecognizer``: real transcripts for :class:`FakeSpeechService` from the local engine.

With it the emulator answers what was actually said, so the real Azure SDK path (USP framing,
result parsing, offsets, diarization ids, reconnects) can be exercised end to end with real
speech and no key::

    from streamdiarize.testing import FakeSpeechService, LocalRecognizer

    with FakeSpeechService(LocalRecognizer()) as service:
        transcriber = AzureTranscriber(host=service.host, key="any")
        ...

Each turn runs its own :class:`~streamdiarize.transcribers.local.LocalEngine` (Silero VAD,
Whisper, GE2E clustering); the models are loaded once per process. Its ``Speaker N`` labels
become Azure's ``Guest-N`` and its words Azure's lexical word timings. Speaker numbering is
per turn: it starts again when the SDK opens a new turn (after a reconnect, for instance). The
service sends each phrase once, so the engine's later speaker corrections (segments with a
``revision``) are not sent: phrases carry the engine's first decision.
Needs the ``local`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from .._exceptions import ConfigurationError
from ..segment import Segment
from ..transcribers.local import UNKNOWN_SPEAKER, LocalEngine, LocalSettings
from ._recognizers import Hypothesis, Phrase, Result, TurnInfo, WordTiming
from ._scripted import lexical_word

__all__ = ["LocalRecognizer"]

_SPEAKER_PREFIX = "Speaker "


def guest_id(speaker: str) -> str:
    """Azure's name for a local-engine speaker: ``Speaker 2`` → ``Guest-2``."""
    if speaker.startswith(_SPEAKER_PREFIX) and speaker[len(_SPEAKER_PREFIX) :].isdigit():
        return f"Guest-{speaker[len(_SPEAKER_PREFIX) :]}"
    return UNKNOWN_SPEAKER


class LocalRecognizer:
    """A :class:`~streamdiarize.testing.Recognizer` backed by the embedded offline engine.

    Args:
        settings: the local engine's configuration (model, VAD, speaker threshold, …).
        locale: the BCP-47 language reported in results; must be the model's language
            (``tiny.en``: English, so ``en-US``, ``en-GB``, …).
        interim: also send hypotheses of the growing utterance (one Whisper pass per
            ``settings.interim_interval`` seconds of audio, so this costs time).

    Raises:
        BackendUnavailableError: the ``local`` extra or its model is missing (checked here,
            by loading the models, rather than on the service's first turn).
        ConfigurationError: ``locale`` is not the model's language.
    """

    def __init__(
        self,
        settings: LocalSettings | None = None,
        *,
        locale: str = "en-US",
        interim: bool = False,
    ) -> None:
        self.settings = settings or LocalSettings()
        language = self.settings.language
        if language is not None and locale.split("-")[0].lower() != language:
            raise ConfigurationError(
                f"the local engine transcribes {language!r} only (Whisper tiny.en is "
                f"English-only), so it cannot report {locale!r}"
            )
        self.locale = locale
        self.interim = interim
        self._spare: LocalEngine | None = self._engine()  # loads the models now

    def _engine(self) -> LocalEngine:
        return LocalEngine(self.settings, interim_results=self.interim)

    def start_turn(self, turn: TurnInfo) -> _LocalTurn:
        """Recognise one turn with a fresh engine (times are relative to the turn's audio)."""
        engine, self._spare = self._spare or self._engine(), None
        return _LocalTurn(engine, self.locale)


class _LocalTurn:
    """One turn: engine segments (timed from the turn's first sample) to USP results."""

    def __init__(self, engine: LocalEngine, locale: str) -> None:
        self._engine = engine
        self._locale = locale

    def feed(self, pcm: NDArray[np.int16]) -> Sequence[Result]:
        return self._results(self._engine.feed(pcm))

    def finish(self) -> Sequence[Result]:
        return self._results(self._engine.finish())

    def _results(self, segments: list[Segment]) -> list[Result]:
        # The service never revises a phrase it sent: speaker corrections stay unsaid.
        return [self._result(s) for s in segments if not s.revision]

    def _result(self, segment: Segment) -> Result:
        if not segment.final:
            return Hypothesis(
                segment.text, segment.offset, segment.duration, UNKNOWN_SPEAKER, self._locale
            )
        words = tuple(
            WordTiming(lexical, w.offset, w.duration)
            for w in segment.words
            if (lexical := lexical_word(w.text))
        )
        known = [w.confidence for w in segment.words if w.confidence is not None]
        return Phrase(
            segment.text,
            segment.offset,
            segment.duration,
            guest_id(segment.speaker),
            self._locale,
            words,
            confidence=round(float(np.mean(known)), 4) if known else 0.9,
        )
