"""The layering holds at run time: importing a pure layer loads no session, backend or SDK.

``lint-imports`` (pyproject.toml's ``[tool.importlinter]``) checks the imports written in the
code; this checks what a fresh interpreter actually loads, which also covers
``streamdiarize/__init__.py`` (run by every ``import streamdiarize.…``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Module prefixes a pure layer must not load.
HEAVY = (
    "azure",
    "asyncio",
    "streamdiarize.session",
    "streamdiarize.server",
    "streamdiarize.transcribers",
    "streamdiarize.testing",
    "streamdiarize.engines",
)


def loaded_after(code: str) -> list[str]:
    """The modules a fresh interpreter has in ``sys.modules`` after running ``code``."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    modules: list[str] = json.loads(result.stdout.splitlines()[-1])
    return modules


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in HEAVY)]


@pytest.mark.parametrize(
    "code",
    [
        "import streamdiarize.containers",
        "from streamdiarize.containers import WebMDemuxer",
        "import streamdiarize.codecs",
        "import streamdiarize.reassembler",
        "import streamdiarize.output",
        "import streamdiarize as sd; sd.detect_format, sd.ChunkReassembler, sd.Segment",
        "import streamdiarize as sd; sd.InputError, sd.resample",
    ],
)
def test_pure_layers_load_no_session_backend_or_sdk(code: str) -> None:
    assert heavy(loaded_after(code)) == []


def test_the_wire_protocol_needs_no_server_stack() -> None:
    """The examples use ``streamdiarize.server.protocol`` without Starlette or a backend."""
    modules = loaded_after("import streamdiarize.server.protocol")
    unwanted = [m for m in heavy(modules) if not m.startswith("streamdiarize.server")]
    unwanted += [m for m in modules if m.split(".")[0] in ("starlette", "uvicorn")]
    assert unwanted == []
    assert "streamdiarize.server._app" not in modules


def test_backends_load_on_first_use() -> None:
    modules = loaded_after("import streamdiarize as sd; sd.TranscriptionSession, sd.Transcriber")
    assert "streamdiarize.session" in modules
    assert not [m for m in modules if m.startswith("azure")]
    modules = loaded_after("import streamdiarize as sd; sd.AzureTranscriber")
    assert "streamdiarize.transcribers.azure" in modules
    assert not [m for m in modules if m.startswith("azure")], "the SDK loads when a stream opens"


def test_lazy_exports_behave_like_attributes() -> None:
    import streamdiarize as sd

    assert set(sd.__all__) <= set(dir(sd))
    for name in sd.__all__:
        assert getattr(sd, name) is not None
    from streamdiarize.session import TranscriptionSession

    assert sd.TranscriptionSession is TranscriptionSession
    assert sd.containers.WebMDemuxer.__name__ == "WebMDemuxer"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = sd.nope  # type: ignore[attr-defined]
