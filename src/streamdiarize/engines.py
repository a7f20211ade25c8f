"""The speech engines by name: one registry for the library, the CLI and the server.

* ``local``: the embedded offline engine (extra ``local``).
* ``azure``: Azure Speech, credentials from ``SPEECH_KEY`` and ``SPEECH_REGION`` (or an
  endpoint or host).
* ``fake``: the real Azure SDK against :class:`~streamdiarize.testing.FakeSpeechService`,
  which answers with the local engine's transcripts, or with the recognizer you give.

Without a name, :func:`default_engine_name` picks ``azure`` when its credentials are set and
``local`` otherwise::

    with open_engine("fake", max_speakers=2) as engine:
        session = TranscriptionSession(engine.transcriber)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._exceptions import BackendUnavailableError, ConfigurationError
from .transcribers import Transcriber, default_engine_name

if TYPE_CHECKING:
    from .testing import Recognizer

__all__ = ["ENGINES", "Engine", "default_engine_name", "engine_name", "open_engine"]

#: Engine names :func:`open_engine` builds.
ENGINES = ("local", "azure", "fake")

_FAKE_LOCAL_FINISH = 300.0  # seconds: the offline engine may still be on the last turns


@dataclass(frozen=True, slots=True)
class Engine:
    """A speech backend built by name; a server shares one among all its sessions.

    Attributes:
        name: ``"azure"``, ``"local"``, ``"fake"`` or a name of your own.
        label: what the page shows about it.
        transcriber: opens one stream per session.
        emulated: results come from an emulator, not from speech recognition.
        emulator: the running emulator for ``fake`` (its records help tests), else ``None``.
    """

    name: str
    label: str
    transcriber: Transcriber
    emulated: bool = False
    emulator: Any = None


def engine_name(name: str | None = None) -> str:
    """``name`` if it is one of :data:`ENGINES`; ``None``: :func:`default_engine_name`.

    Raises:
        ConfigurationError: an unknown name.
    """
    chosen = default_engine_name() if name is None else name
    if chosen not in ENGINES:
        raise ConfigurationError(f"unknown engine {chosen!r}: choose one of {', '.join(ENGINES)}")
    return chosen


@contextlib.contextmanager
def open_engine(
    name: str | None = None,
    *,
    languages: Sequence[str] = (),
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    interim_results: bool = False,
    recognizer: Recognizer | None = None,
) -> Iterator[Engine]:
    """Build an engine by name; for ``fake``, the emulator runs until the block ends.

    Args:
        name: one of :data:`ENGINES`; ``None``: :func:`default_engine_name`.
        languages: BCP-47 locales (default ``en-US``); for Azure several mean language
            identification. The local model is English-only: ``local`` and ``fake`` without a
            ``recognizer`` accept only ``en``/``en-*``.
        min_speakers: at least this many speakers (``local``, and ``fake`` without a
            ``recognizer``).
        max_speakers: cap on distinct speakers (same engines).
        interim_results: for ``fake`` without a ``recognizer``: the emulator sends hypotheses.
        recognizer: for ``fake``: what the emulator answers with (a script, speech spans by
            energy, …); ``None``: the local engine's transcripts
            (:class:`~streamdiarize.testing.LocalRecognizer`).

    Raises:
        ConfigurationError: an unknown name, Azure without credentials, or an option the
            engine does not have.
        BackendUnavailableError: ``local``, or ``fake`` without a ``recognizer``, without the
            ``local`` extra.
    """
    chosen = engine_name(name)
    locales = tuple(languages) or ("en-US",)
    if chosen == "azure":
        if max_speakers is not None or min_speakers is not None:
            raise ConfigurationError(
                "min_speakers and max_speakers are for the local and fake engines: Azure finds "
                "the speakers itself"
            )
        yield _azure(locales)
    elif chosen == "local":
        _check_english(chosen, locales)
        yield _local(min_speakers, max_speakers)
    else:
        if recognizer is None:
            _check_english(chosen, locales)
        with _emulated(locales, recognizer, min_speakers, max_speakers, interim_results) as engine:
            yield engine


def _azure(locales: tuple[str, ...]) -> Engine:
    from .transcribers.azure import AzureTranscriber

    azure = AzureTranscriber(locales)
    where = azure.credentials.region or azure.credentials.endpoint or azure.credentials.host
    return Engine("azure", f"Azure Speech ({where})", azure)


def _local(min_speakers: int | None, max_speakers: int | None) -> Engine:
    try:
        from .transcribers.local import LocalTranscriber
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the local engine cannot be imported ({exc}): pip install 'streamdiarize[local]'"
        ) from exc
    transcriber = LocalTranscriber(min_speakers=min_speakers, max_speakers=max_speakers)
    return Engine("local", "Local engine (offline Whisper + speaker clustering)", transcriber)


def _check_english(name: str, locales: Sequence[str]) -> None:
    """The local model (Whisper tiny.en) transcribes English only."""
    foreign = [code for code in locales if code.split("-")[0].lower() != "en"]
    if foreign:
        raise ConfigurationError(
            f"the {name} engine's model (Whisper tiny.en) is English-only, not "
            f"{', '.join(foreign)}: use the azure engine for other languages"
        )


@contextlib.contextmanager
def _emulated(
    locales: tuple[str, ...],
    recognizer: Recognizer | None,
    min_speakers: int | None,
    max_speakers: int | None,
    interim_results: bool,
) -> Iterator[Engine]:
    """The real Azure SDK against a running :class:`~streamdiarize.testing.FakeSpeechService`."""
    from .testing import FakeSpeechService, LocalRecognizer
    from .transcribers.azure import AzureTranscriber

    options: dict[str, Any] = {}
    if recognizer is None:
        from .transcribers.local import LocalSettings

        settings = LocalSettings(min_speakers=min_speakers, max_speakers=max_speakers)
        recognizer = LocalRecognizer(settings, locale=locales[0], interim=interim_results)
        # The emulator transcribes with the offline engine, which may still be working on the
        # last turns when the audio ends: allow it the time it needs to answer.
        options["finish_timeout"] = _FAKE_LOCAL_FINISH
    with FakeSpeechService(recognizer) as service:
        transcriber = AzureTranscriber(
            locales, host=service.host, key="emulator", pace_audio=False, **options
        )
        yield Engine("fake", _label(recognizer), transcriber, emulated=True, emulator=service)


def _label(recognizer: Recognizer) -> str:
    """What the page says about a ``fake`` engine: whom the emulator's answers come from."""
    from .testing import EnergyRecognizer, LocalRecognizer, ScriptedRecognizer

    if isinstance(recognizer, LocalRecognizer):
        return "Azure SDK → FakeSpeechService (transcripts from the local engine)"
    if isinstance(recognizer, EnergyRecognizer):
        kind = "speech spans by energy, voices by pitch"
    elif isinstance(recognizer, ScriptedRecognizer):
        kind = "scripted phrases"
    else:
        kind = type(recognizer).__name__
    return f"Azure SDK → FakeSpeechService ({kind}): no real speech recognition"
