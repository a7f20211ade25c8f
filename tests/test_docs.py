"""The documentation cannot rot: its code runs, its tables match the code, the site builds.

Conventions for fenced code blocks in ``docs/**/*.md`` and ``README.md`` (HTML comments are
invisible on the rendered page):

* ```` ```python ```` blocks run, in page order, in one namespace per page, with the repository
  root as the working directory (no block may write files there). A block that needs what a
  test cannot have (a live Azure key, a browser, a server that runs forever) is preceded by
  ``<!-- no-run: reason -->``; the reason is required.
* ```` ```bash ```` blocks run only when preceded by ``<!-- run -->`` (each is one ``bash -e``
  script, with the venv's ``bin`` first on ``PATH``); the others install or serve things.
* A fenced block preceded by ``<!-- output -->`` is the exact standard output of the block
  before it (trailing spaces ignored).
* A block made only of ``--8<--`` lines includes files (the examples, tested by
  ``test_examples.py``); ``mkdocs build --strict`` fails when an included file is missing.

The Azure backend runs against :class:`FakeSpeechService` (``SPEECH_KEY``/``SPEECH_HOST``),
which checks that what the real SDK forwards is speech and answers the bundled sample's
script; the local engine runs for real. README's zero-config ``handle(websocket)`` is called
with a fake socket that replays a Chromium capture, declaring nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import io
import json
import os
import re
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import streamdiarize as sd
from _feeding import CAPTURES, capture_dir, capture_messages
from streamdiarize.formats import parse_mime
from streamdiarize.testing import FakeSpeechService, ScriptedRecognizer
from streamdiarize.transcribe import sample_path
from streamdiarize.transcribers.azure import AzureTranscriber

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXTENSION = DOCS / "_ext" / "griffe_sphinx.py"
PAGES = [*sorted(p for p in DOCS.rglob("*.md") if "_ext" not in p.parts), ROOT / "README.md"]
#: Modules whose ``__all__`` must be fully documented in the API reference.
PUBLIC_MODULES = ("streamdiarize", "streamdiarize.testing", "streamdiarize.containers")

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>no-run|run|output)(?::\s*(?P<reason>.*?))?\s*-->\s*$")
_RUNNABLE = {"python"}
_SHELL = {"bash", "sh", "console", "shell"}


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None  # the HTML comment right before the fence: no-run, run or output
    reason: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_include(self) -> bool:
        lines = [line for line in self.code.splitlines() if line.strip()]
        return bool(lines) and all(line.lstrip().startswith("--8<--") for line in lines)

    @property
    def runs(self) -> bool:
        if self.is_include or self.marker == "output":
            return False
        if self.lang in _RUNNABLE:
            return self.marker != "no-run"
        return self.lang in _SHELL and self.marker == "run"


def parse_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a page, with the marker comment before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, fence = len(match["indent"]), match["fence"]
        closing = re.compile(rf"^ {{0,{indent + 3}}}{fence[0]}{{{len(fence)},}}\s*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            line = lines[j]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
            j += 1
        before = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        marker = _MARKER.match(before)
        blocks.append(
            Block(
                path,
                i + 1,
                match["lang"].lower(),
                "\n".join(body) + "\n",
                marker["kind"] if marker else None,
                marker["reason"] if marker else None,
            )
        )
        i = j + 1
    return blocks


def runnable_pages() -> list[Path]:
    return [p for p in PAGES if any(b.runs for b in parse_blocks(p))]


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- the backends the blocks use ---------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_service() -> Iterator[FakeSpeechService]:
    """The emulator, answering the bundled sample's script (and checking that it is speech)."""
    script = json.loads(sample_path().with_name("sample.json").read_text())["utterances"]
    with FakeSpeechService(ScriptedRecognizer.from_utterances(script)) as service:
        yield service


@contextlib.contextmanager
def azure_at(service: FakeSpeechService) -> Iterator[None]:
    """``SPEECH_*`` point the real SDK at ``service``, with the SDK's 2× real-time pacing lifted."""
    original = AzureTranscriber.speech_config

    def unthrottled(self: AzureTranscriber, token: str | None = None) -> Any:
        config = original(self, token)
        config.set_property_by_name("SPEECH-TransmitLengthBeforeThrottleMs", "100000000")
        return config

    with pytest.MonkeyPatch.context() as patch:
        for name in ("SPEECH_REGION", "SPEECH_ENDPOINT", "SPEECH_KEY", "SPEECH_HOST"):
            patch.delenv(name, raising=False)
        patch.setenv("SPEECH_KEY", "docs-test-key")
        patch.setenv("SPEECH_HOST", service.host)
        patch.setattr(AzureTranscriber, "speech_config", unthrottled)
        patch.chdir(ROOT)
        yield


def run_page(path: Path) -> dict[str, Any]:
    """Run a page's runnable blocks in order; check each ``<!-- output -->`` block."""
    namespace: dict[str, Any] = {"__name__": f"docs:{page_id(path)}"}
    blocks = parse_blocks(path)
    before = sorted(os.listdir(ROOT))
    for index, block in enumerate(blocks):
        if not block.runs:
            continue
        stdout = run_block(block, namespace)
        expected = blocks[index + 1] if index + 1 < len(blocks) else None
        if expected is not None and expected.marker == "output":
            assert _lines(stdout) == _lines(expected.code), (
                f"{expected.where}: the output shown is not what {block.where} prints:\n{stdout}"
            )
    assert sorted(os.listdir(ROOT)) == before, f"{page_id(path)}: a block wrote files"
    return namespace


def run_block(block: Block, namespace: dict[str, Any]) -> str:
    if block.lang in _SHELL:
        venv_bin = Path(sys.executable).parent
        env = dict(os.environ, PATH=f"{venv_bin}{os.pathsep}{os.environ['PATH']}")
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{block.where} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(block.code, block.where, "exec"), namespace)
    except Exception as exc:
        raise AssertionError(f"{block.where} raised {exc!r}:\n{out.getvalue()}") from exc
    return out.getvalue()


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


# -- tests --------------------------------------------------------------------------------------


def test_markers_are_well_formed() -> None:
    """Every marker sits on a block; ``no-run`` says why; ``output`` follows a block that runs."""
    for path in PAGES:
        blocks = parse_blocks(path)
        text = path.read_text(encoding="utf-8").splitlines()
        markers = sum(bool(_MARKER.match(line)) for line in text)
        assert markers == sum(b.marker is not None for b in blocks), (
            f"{page_id(path)}: a marker comment is not directly before a fenced block"
        )
        for index, block in enumerate(blocks):
            if block.marker == "no-run":
                assert block.reason, f"{block.where}: <!-- no-run: reason --> needs its reason"
            if block.marker == "output":
                assert index, f"{block.where}: output of nothing"
                assert blocks[index - 1].runs, f"{block.where}: output of a block that does not run"


@pytest.mark.slow
@pytest.mark.parametrize("path", runnable_pages(), ids=page_id)
def test_page_code_runs(path: Path, sample_service: FakeSpeechService) -> None:
    with azure_at(sample_service):
        run_page(path)
    assert not sample_service.audio_problems, sample_service.audio_problems


class FakeWebSocket:
    """What README's ``handle`` needs: ``async for`` over messages, and ``send``."""

    def __init__(self, messages: list[bytes]) -> None:
        self.messages = messages
        self.sent: list[str] = []

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for message in self.messages:
            yield message
            await asyncio.sleep(0)

    async def send(self, text: str) -> None:
        self.sent.append(text)


def test_readme_handler_transcribes_a_chromium_capture() -> None:
    """README's handler, fed Chromium's MediaRecorder messages with nothing declared, sends
    the dialog's phrases back as JSON ``segment`` messages."""
    meta = json.loads((capture_dir("A") / "meta.json").read_text())
    lag = float(meta["verification"]["lag_s"])
    utterances = json.loads((CAPTURES / "dialog.json").read_text())["utterances"]
    script = [u | {"start_s": u["start_s"] + lag, "end_s": u["end_s"] + lag} for u in utterances]
    with FakeSpeechService(ScriptedRecognizer.from_utterances(script)) as service:
        with azure_at(service):
            namespace = run_page(ROOT / "README.md")
            socket = FakeWebSocket(capture_messages("A"))
            asyncio.run(namespace["handle"](socket))  # no MIME type: found out from the bytes
        assert not service.audio_problems, service.audio_problems
    sent = [json.loads(text) for text in socket.sent]
    assert all(m["type"] == "segment" and m["final"] for m in sent), socket.sent
    guests: dict[str, str] = {}
    expected = [
        (guests.setdefault(u["speaker"], f"Guest-{len(guests) + 1}"), u["text"], u["start_s"] + lag)
        for u in utterances
    ]
    assert [(m["speaker"], m["text"]) for m in sent] == [(g, t) for g, t, _ in expected]
    assert all(m["language"] == "en-US" for m in sent)
    for m, (_, _, start) in zip(sent, expected, strict=True):
        assert m["offset"] == pytest.approx(start, abs=0.11)


def _griffe_package() -> Any:
    griffe = pytest.importorskip("griffe")
    return griffe.load(
        "streamdiarize",
        search_paths=[str(ROOT / "src")],
        extensions=griffe.load_extensions(str(EXTENSION)),
        docstring_parser="google",
        resolve_aliases=True,
    )


def _documented(obj: Any) -> bool:
    return bool(obj.docstring and obj.docstring.value.strip())


def _named_in_sections(cls: Any) -> set[str]:
    """Names given in the Attributes/Args sections of a class and its bases."""
    names: set[str] = set()
    for owner in (cls, *cls.mro()):
        for section in owner.docstring.parsed if owner.docstring else ():
            if section.kind.value in ("attributes", "parameters"):
                names |= {item.name for item in section.value}
    return names


def public_names() -> list[tuple[str, str]]:
    """``(public path, canonical path)`` of every name in the public ``__all__`` lists.

    The canonical path is where a class or function is defined (``streamdiarize.resample``
    is ``streamdiarize.resampling.resample``); other values keep their public path.
    """
    names = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            public = f"{module_name}.{name}"
            if inspect.isclass(obj) or inspect.isfunction(obj):
                names.append((public, f"{obj.__module__}.{obj.__qualname__}"))
            else:
                names.append((public, public))
    return names


def test_every_public_name_has_a_docstring() -> None:
    """Each name in the public ``__all__`` lists, and each public member of their classes."""
    collection = _griffe_package().modules_collection
    missing: list[str] = []
    for public, canonical in public_names():
        obj = collection[canonical]
        obj = obj.final_target if obj.is_alias else obj
        if not _documented(obj):
            missing.append(public)
        if not obj.is_class:
            continue
        named = _named_in_sections(obj)
        for member_name, member in obj.all_members.items():
            if member_name.startswith("_") or member_name in named:
                continue
            target = member.final_target if member.is_alias else member
            inherited = any(
                member_name in base.members and _documented(base.members[member_name])
                for base in obj.mro()
            )
            if not (_documented(target) or inherited):
                missing.append(f"{public}.{member_name}")
    assert not missing, "no docstring (nor an Attributes/Args entry): " + ", ".join(missing)


def _inventory(site: Path) -> set[str]:
    """The object names in a built site's ``objects.inv`` (Sphinx inventory v2)."""
    data = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    body = zlib.decompress(data[header_end:]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines() if line}


@pytest.mark.slow
def test_site_builds_strict_and_documents_the_public_api(tmp_path: Path) -> None:
    """``mkdocs build --strict`` passes and its inventory has every public name."""
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if not mkdocs.exists():
        pytest.skip("mkdocs is not installed (extra 'docs')")
    site = tmp_path / "site"
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    inventory = _inventory(site)
    missing = [
        public
        for public, canonical in public_names()
        if canonical not in inventory
        and (public not in inventory or public in sys.modules)  # a module of the same name
    ]
    assert not missing, f"not in the API reference: {missing}"


def test_errors_page_covers_every_exception() -> None:
    """docs/errors.md has a section for each exception of ``streamdiarize._exceptions``."""
    from streamdiarize import _exceptions

    headings = {
        m[1] for m in re.finditer(r"^#+ `(\w+)`", (DOCS / "errors.md").read_text(), re.MULTILINE)
    }
    assert set(_exceptions.__all__) <= headings, set(_exceptions.__all__) - headings


def test_browser_table_matches_parse_mime() -> None:
    """Each row of the browser table: its MIME type maps to the ``AudioFormat`` it shows."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in (DOCS / "why-chunks.md").read_text().splitlines()
        if line.startswith("|") and "AudioFormat" in line and "`audio/" in line
    ]
    assert len(rows) >= 7
    scope = {"AudioFormat": sd.AudioFormat, "Container": sd.Container}
    for row in rows:
        mime = next(c for c in row if c.startswith("`audio/")).strip("`")
        shown = next(c for c in row if c.startswith("`AudioFormat")).strip("`")
        assert parse_mime(mime) == eval(shown, scope), (mime, shown)
