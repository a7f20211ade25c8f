"""The engines of ``streamdiarize serve``: the library's registry, with the demo's emulator.

:func:`streamdiarize.engines.open_engine` builds them; here ``fake`` answers with a script
or, for live microphones, with speech spans found by energy (no model needed).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import engines
from .._exceptions import ConfigurationError
from ..engines import ENGINES, Engine, default_engine_name

if TYPE_CHECKING:
    from ..testing import Recognizer

__all__ = ["ENGINES", "Engine", "default_engine_name", "open_engine"]


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
    recognizer = _recognizer(script) if name == "fake" else None
    # The demo's local engine has always ignored the languages (its model is English-only).
    chosen = () if name == "local" else languages
    with engines.open_engine(name, languages=chosen, recognizer=recognizer) as engine:
        yield engine


def _recognizer(script: Path | Sequence[Mapping[str, Any]] | None) -> Recognizer:
    """What the demo's emulator answers: the script, or speech spans by energy."""
    from ..testing import EnergyRecognizer, ScriptedRecognizer

    if script is None:
        return EnergyRecognizer()
    return ScriptedRecognizer.from_utterances(_load_script(script))


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
