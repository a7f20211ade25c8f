"""Fixtures several test modules share: the fake engine, the emulator with the captures'
dialog, a script loader and a Python without the ``local`` extra.

Plain helpers live in ``_feeding.py`` (byte streams, captures, the dialog, mutations) and
``browser/`` (WebSocket conversations, audio checks, real browsers); fixtures live here.
A module's own fixture of the same name takes precedence over these.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from _feeding import CAPTURES, dialog_script
from streamdiarize.server import Engine, open_engine
from streamdiarize.testing import FakeSpeechService

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """The fake engine scripted with the captures' dialog, one per module (it is stateless)."""
    utterances = json.loads((CAPTURES / "dialog.json").read_text())["utterances"]
    with open_engine("fake", script=utterances) as running:
        yield running


@pytest.fixture
def service() -> Iterator[FakeSpeechService]:
    """The Azure Speech emulator answering the captures' dialog, fresh for each test."""
    with FakeSpeechService(dialog_script()) as svc:
        yield svc


@pytest.fixture
def load_script() -> Callable[[str], ModuleType]:
    """Import ``scripts/<name>.py`` as module ``name``: the converters are scripts, not package
    code, and their pickled classes must resolve through ``sys.modules``."""

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def without_faster_whisper(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``faster_whisper`` look uninstalled, as without the ``local`` extra."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "faster_whisper" else real(name, *a),
    )
