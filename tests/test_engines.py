"""One engine registry: the same names and default rule for the library, the CLI and the server."""

from __future__ import annotations

import pytest

import streamdiarize as sd
from streamdiarize import engines, server, transcribe, transcribers
from streamdiarize.cli import build_parser


def test_every_front_end_uses_the_one_registry() -> None:
    assert transcribe.ENGINES is engines.ENGINES
    assert server.ENGINES is engines.ENGINES
    assert server.Engine is engines.Engine
    assert server.default_engine_name is engines.default_engine_name
    assert engines.default_engine_name is transcribers.default_engine_name


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({}, "local"),
        ({"SPEECH_KEY": "k"}, "local"),
        ({"SPEECH_REGION": "westeurope"}, "local"),
        ({"SPEECH_KEY": "k", "SPEECH_REGION": "westeurope"}, "azure"),
        ({"SPEECH_KEY": "k", "SPEECH_ENDPOINT": "wss://example.invalid"}, "azure"),
        ({"SPEECH_KEY": "k", "SPEECH_HOST": "ws://127.0.0.1:1"}, "azure"),
    ],
)
def test_the_default_engine_rule(environ: dict[str, str], name: str) -> None:
    assert engines.default_engine_name(environ) == name


def test_unknown_names_are_refused_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(sd.ConfigurationError, match="choose one of local, azure, fake"):
        engines.engine_name("watson")
    with pytest.raises(sd.ConfigurationError, match="unknown engine"), server.open_engine("x"):
        pass
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--engine", "watson"])
    assert "--engine {local,azure,fake}" in capsys.readouterr().err
