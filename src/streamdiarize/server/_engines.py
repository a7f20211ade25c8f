"""The speech engines ``streamdiarize serve`` can run: Azure, the local engine, the emulator."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._exceptions import BackendUnavailableError, ConfigurationError
from ..transcribers import Transcriber

__all__ = ["ENGINES", "Engine", "default_engine_name", "open_engine"]

#: Engine names ``open_engine`` knows.
ENGINES = ("azure", "local", "fake")

#: Lifts the Azure SDK's pacing (5 s at once, then 2x real time) for the local emulator.


@dataclass(frozen=True, slots=True)
class Engine:
    """A speech backend shared by every session of a server.

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


def default_engine_name(environ: Mapping[str, str] | None = None) -> str:
    """``azure`` when ``SPEECH_KEY`` and a location (``SPEECH_REGION``, ``SPEECH_ENDPOINT`` or
    ``SPEECH_HOST``) are set, else ``local``."""
    env = os.environ if environ is None else environ
    located = any(env.get(name) for name in ("SPEECH_REGION", "SPEECH_ENDPOINT", "SPEECH_HOST"))
    return "azure" if env.get("SPEECH_KEY") and located else "local"


@contextlib.contextmanager
def open_engine(
    name: str,
    *,
    languages: Sequence[str] = ("en-US",),
    script: Path | Sequence[Mapping[str, Any]] | None = None,
) -> Iterator[Engine]:
    """Build (and for ``fake``, start) an engine; stopped when the ``with`` block ends.

    Args:
        name: one of :data:`ENGINES`.
        languages: BCP-47 locales for Azure (several: language identification).
        script: for ``fake``: phrases to answer (``dialog.json``'s ``utterances`` shape, or a
            JSON file holding them); ``None``: an energy-based stand-in for live microphones.

    Raises:
        ConfigurationError: an unknown name, or Azure without credentials.
        BackendUnavailableError: ``local`` without the ``local`` extra installed.
    """
    if name == "azure":
        from ..transcribers.azure import AzureTranscriber

        azure = AzureTranscriber(languages)
        where = azure.credentials.region or azure.credentials.endpoint or azure.credentials.host
        yield Engine("azure", f"Azure Speech ({where})", azure)
    elif name == "local":
        try:
            from ..transcribers.local import LocalTranscriber
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the local engine cannot be imported ({exc}): pip install 'streamdiarize[local]'"
            ) from exc
        label = "Local engine (offline Whisper + speaker clustering)"
        yield Engine("local", label, LocalTranscriber())
    elif name == "fake":
        with _emulated_engine(languages, script) as engine:
            yield engine
    else:
        raise ConfigurationError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")


@contextlib.contextmanager
def _emulated_engine(
    languages: Sequence[str], script: Path | Sequence[Mapping[str, Any]] | None
) -> Iterator[Engine]:
    from ..testing import FakeSpeechService, Recognizer, ScriptedRecognizer
    from ..transcribers.azure import AzureTranscriber
    from ._emulator import EnergyRecognizer

    recognizer: Recognizer
    if script is None:
        recognizer, kind = EnergyRecognizer(), "speech spans by energy, voices by pitch"
    else:
        recognizer = ScriptedRecognizer.from_utterances(_load_script(script))
        kind = "scripted phrases"
    with FakeSpeechService(recognizer) as service:
        transcriber = AzureTranscriber(
            languages, host=service.host, key="emulator", pace_audio=False
        )
        label = f"Azure SDK → FakeSpeechService ({kind}): no real speech recognition"
        yield Engine("fake", label, transcriber, emulated=True, emulator=service)


def _load_script(script: Path | Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    if not isinstance(script, Path):
        return script
    try:
        data = json.loads(script.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the emulator script {script}: {exc}") from exc
    utterances = data.get("utterances") if isinstance(data, dict) else data
    if not isinstance(utterances, list):
        raise ConfigurationError(
            f"{script}: expected a list of phrases or an object with 'utterances'"
        )
    return utterances
