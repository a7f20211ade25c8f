"""The demo page in real browsers with a fake microphone playing a three-speaker dialog.

Chromium (Debian's, through Playwright) reads ``dialog.wav`` (48 kHz) as its fake capture
device; Firefox ESR (through WebDriver BiDi, see browser/firefox.py) records a private
PulseAudio null sink into which the test plays the dialog. The page talks to the real demo
server, whose engine is the real Azure SDK against the emulator scripted from dialog.json.

For every capture mode the test checks what a user sees (one line per phrase, speaker,
language, timestamp) and what reached the server: the bytes, decoded by the library, must
match the source dialog. Normalized cross-correlation after alignment, each part separately
when a MediaRecorder restart split the stream: >= 0.9 over the whole part (Chromium), and for
every browser >= 0.9 in 90 % of the voiced 250 ms windows, each realigned within 60 ms
(Firefox's input path shifts its timing by ~12 ms once or twice, see the captures' README).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from browser.audio import (
    align,
    decode,
    read_wav,
    windowed_ncc,
    write_dialog_48k,
    write_recording_48k,
)
from browser.stack import Collector, wait_until
from streamdiarize.server import (
    BackgroundServer,
    Engine,
    ServerSettings,
    SessionInfo,
    SessionOutcome,
    create_app,
    open_engine,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CAPTURES = ROOT / "tests" / "data" / "captures"
DIALOGS = ROOT / "tests" / "data" / "dialogs"
DIALOG = json.loads((CAPTURES / "dialog.json").read_text())["utterances"]
DIALOG_PCM, _ = read_wav(CAPTURES / "dialog.wav")
CHROMIUM = "/usr/bin/chromium"
SPEAKERS = ["Guest-1", "Guest-2", "Guest-3", "Guest-1", "Guest-2"]  # spk1 spk2 spk3 spk1 spk2

FINALS_JS = "document.querySelectorAll('#lines .line.final').length"
LINES_JS = """[...document.querySelectorAll('#lines .line.final')].map((e) => ({
    time: e.querySelector('time').textContent,
    speaker: e.dataset.speaker,
    language: e.querySelector('.lang')?.textContent ?? null,
    text: e.querySelector('.text').textContent}))"""
STATE_JS = "document.querySelector('#state').dataset.state"


@dataclass
class Stack:
    engine: Engine
    server: BackgroundServer
    sessions: Collector


@dataclass
class PageRun:
    """One Start…Stop on the page, as the page showed it and as the server saw it."""

    lines: list[dict[str, Any]]
    info: SessionInfo
    outcome: SessionOutcome
    messages: list[bytes]
    problems: list[str]
    seconds: float


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    sessions = Collector()
    with (
        open_engine("fake", script=DIALOG) as engine,
        BackgroundServer(create_app(engine, observer=sessions)) as server,
    ):
        yield Stack(engine, server, sessions)


@pytest.fixture(scope="module")
def dialog_48k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dialog_48k(CAPTURES / "dialog.wav", tmp_path_factory.mktemp("mic") / "d48.wav")


def audio_problems(stack: Stack) -> list[str]:
    """What the emulator found wrong with the audio it received (not speech, silence)."""
    emulator = stack.engine.emulator
    return [p.message for p in emulator.audio_problems] if emulator is not None else []


def finish_run(stack: Stack, before: tuple[int, int, float], lines: Any) -> PageRun:
    """Collect the server's side of a run; ``before``: sessions and audio problems before it,
    and when it began."""
    first_session, known_problems, began = before
    wait_until(lambda: len(stack.sessions.started) > first_session, what="a session started")
    info = stack.sessions.started[first_session]
    wait_until(lambda: info.id in stack.sessions.ended, what="the session ended")
    problems = audio_problems(stack)[known_problems:]
    return PageRun(
        lines=list(lines),
        info=info,
        outcome=stack.sessions.ended[info.id],
        messages=stack.sessions.audio[info.id],
        problems=problems,
        seconds=time.monotonic() - began,
    )


def clock(text: str) -> float:
    minutes, seconds = text.split(":")
    return 60 * int(minutes) + float(seconds)


def check_run(
    run: PageRun, *, mime: str, finals: int, restarts: int, steady_clock: bool = True
) -> None:
    """What the page shows and what the server received both match the dialog."""
    # The page: one line per phrase, in order, with speaker, language and time.
    texts = [line["text"] for line in run.lines]
    assert texts[:finals] == [u["text"] for u in DIALOG[:finals]], texts
    assert len(texts) <= finals + 1  # a stop inside the next phrase may finalise its start
    assert [line["speaker"] for line in run.lines[:finals]] == SPEAKERS[:finals]
    assert {line["language"] for line in run.lines} == {"en-US"}
    for line, utterance in zip(run.lines, DIALOG, strict=False):
        assert clock(line["time"]) == pytest.approx(utterance["start_s"], abs=0.06)
    # The server: a clean session, the restart seen, speech (not noise) for the emulator.
    assert run.info.mime.replace(" ", "") == mime  # Firefox 140 says "audio/ogg; codecs=opus"
    assert (run.outcome.close_code, run.outcome.error) == (1000, None)
    assert run.outcome.restarts == restarts
    assert not run.problems, run.problems
    # The bytes: decoded by the library, each stream correlates with the dialog.
    decoded = decode(run.messages, run.info.mime)
    assert decoded.restarts == restarts
    parts = [align(part, DIALOG_PCM, max_lag=20.0) for part in decoded.parts()]
    windows = [
        windowed_ncc(pcm, DIALOG_PCM, part.lag)
        for pcm, part in zip(decoded.parts(), parts, strict=True)
    ]
    for part, scores in zip(parts, windows, strict=True):
        assert part.overlap > 2.0, parts
        assert len(scores) >= 8, "voiced 250 ms windows inside the part"
        # Every voiced 250 ms, realigned by at most 60 ms, matches the dialog. Firefox hears
        # it through a real-time PulseAudio loopback that drops a few ms when the two cores
        # are busy, so a tenth of its windows may hold such a step.
        floor = 0.9 if steady_clock else 0.75
        assert np.percentile(scores, 10) >= floor, (part, np.round(scores, 3))
        assert np.median(scores) >= 0.95, (part, np.round(scores, 3))
        if steady_clock:  # Chromium's capture has no timing steps: one lag fits it all
            assert part.ncc >= 0.9, parts
    assert -0.25 < parts[0].lag < 0.6, "the recording starts near the start of the dialog"
    losses = [
        (before.lag - after.lag) - len(pcm) / 16_000
        for before, after, pcm in zip(parts, parts[1:], decoded.parts(), strict=False)
    ]
    for lost in losses:
        assert -0.01 < lost < 0.3, f"a restart loses little audio, lost {lost:.3f} s"
    print(  # shown with -rP: the numbers behind the assertions
        f"{mime}: {len(run.messages)} messages, {sum(map(len, run.messages))} bytes, "
        + ", ".join(
            f"part {i}: lag {p.lag:+.3f} s, NCC {p.ncc:.3f}, 250 ms windows median "
            f"{np.median(w):.3f} p10 {np.percentile(w, 10):.3f} min {w.min():.3f}"
            for i, (p, w) in enumerate(zip(parts, windows, strict=True))
        )
        + "".join(f", restart lost {lost * 1000:.0f} ms" for lost in losses)
        + f", {run.seconds:.1f} s"
    )


def save_artifact(source: Path, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return Path(shutil.copy(source, ARTIFACTS / name))


# -- Chromium ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """One Playwright driver for the module (the sync API allows one per thread)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def chromium(playwright: Any, dialog_48k: Path) -> Iterator[Any]:
    yield from launch_chromium(playwright, dialog_48k)


@pytest.fixture(scope="module")
def chromium_two_voices(playwright: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium whose microphone plays the short two-voice dialog of ``tests/data/dialogs``."""
    wav = tmp_path_factory.mktemp("mic2") / "two_voices_48k.wav"
    yield from launch_chromium(playwright, write_recording_48k(DIALOGS / "espeak_short.ogg", wav))


def launch_chromium(playwright: Any, microphone: Path) -> Iterator[Any]:
    """Headless system Chromium with ``microphone`` (48 kHz WAV) as its fake capture device."""
    browser = playwright.chromium.launch(  # a fresh temporary profile, removed on close
        executable_path=CHROMIUM,
        headless=True,
        args=[
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}%noloop",
            "--use-fake-ui-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
        env={**os.environ, "PULSE_SERVER": "/nonexistent"},  # no PulseAudio for Chromium
        timeout=30_000,
    )
    try:
        yield browser
    finally:
        browser.close()


def run_chromium(
    browser: Any,
    stack: Stack,
    mode: str,
    *,
    finals: int,
    restart_after: int | None = None,
    screenshots: Path | None = None,
    last_turn_start: float | None = None,
) -> PageRun:
    """Record the fake microphone on the demo page until ``finals`` final lines are shown
    (and, with ``last_turn_start``, one that starts in the last turn: an engine may cut a
    turn into several lines), then stop and collect both sides."""
    before = (len(stack.sessions.started), len(audio_problems(stack)), time.monotonic())
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        # Locators, not wait_for_function: the page's CSP (no 'unsafe-eval') stays in force.
        final = page.locator("#lines .line.final")
        page.goto(stack.server.url + "/")
        page.locator(".engine[data-engine]").wait_for()  # /api/info answered
        page.select_option("#mode", mode)
        page.click("#start")
        page.locator("#state[data-state='recording']").wait_for(timeout=15_000)
        if restart_after is not None:
            final.nth(restart_after - 1).wait_for(timeout=30_000)
            page.wait_for_timeout(1000)  # inside the next phrase
            page.click("#restart")
        if screenshots is not None:  # mid-stream: level meter, interim hypothesis
            page.locator("#interim:not([hidden])").wait_for(timeout=10_000)
            page.screenshot(path=str(screenshots / "live.png"))
        final.nth(finals - 1).wait_for(timeout=40_000)
        if last_turn_start is not None:
            start = last_turn_start - 0.3
            wait_until(
                lambda: any(clock(line["time"]) >= start for line in page.evaluate(LINES_JS)),
                40,
                what=f"a final line from {start:.1f} s on",
            )
        page.click("#stop")
        page.locator("#state[data-state='ended']").wait_for(timeout=20_000)
        lines = page.evaluate(LINES_JS)
        assert page.locator("#error").is_hidden(), page.inner_text("#error")
        assert page.locator("#interim").is_hidden(), "the hypothesis is gone after the end"
        if screenshots is not None:
            page.screenshot(path=str(screenshots / "ended.png"))
    finally:
        context.close()
    assert not errors, errors
    return finish_run(stack, before, lines)


def test_chromium_mediarecorder_webm_opus_with_restart(
    chromium: Any, stack: Stack, tmp_path: Path
) -> None:
    run = run_chromium(chromium, stack, "recorder", finals=5, restart_after=2, screenshots=tmp_path)
    check_run(run, mime="audio/webm;codecs=opus", finals=5, restarts=1)
    save_artifact(tmp_path / "ended.png", "demo-chromium.png")
    save_artifact(tmp_path / "live.png", "demo-chromium-live.png")


@pytest.mark.parametrize(
    ("mode", "mime"),
    [
        ("recorder-pcm", "audio/webm;codecs=pcm"),
        ("worklet-f32", "audio/pcm;rate=44100;encoding=float32;channels=1"),
        ("worklet-s16", "audio/pcm;rate=44100;encoding=int16;channels=1"),
    ],
)
def test_chromium_capture_modes(chromium: Any, stack: Stack, mode: str, mime: str) -> None:
    run = run_chromium(chromium, stack, mode, finals=2)  # two speakers, 7.4 s
    check_run(run, mime=mime, finals=2, restarts=0)


TOKEN = "browser-token-0123456789"


@pytest.fixture
def token_server(stack: Stack) -> Iterator[BackgroundServer]:
    app = create_app(stack.engine, ServerSettings(token=TOKEN), observer=stack.sessions)
    with BackgroundServer(app, settings=ServerSettings(token=TOKEN)) as server:
        yield server


def test_chromium_shows_errors_and_sends_the_token(chromium: Any, token_server: Any) -> None:
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(token_server.url + "/")  # no #token=: the server refuses the session
        page.click("#start")
        page.locator("#state[data-state='error']").wait_for(timeout=15_000)
        assert page.inner_text("#error").startswith("unauthorized: this server needs a token")
        assert not page.locator("#start").is_disabled(), "the person can try again"
        page.goto(f"{token_server.url}/#token={TOKEN}")  # the URL `serve --token` prints
        page.reload()
        page.select_option("#mode", "worklet-f32")
        page.click("#start")
        page.locator("#state[data-state='recording']").wait_for(timeout=15_000)
        page.click("#stop")
        page.locator("#state[data-state='ended']").wait_for(timeout=15_000)
        assert page.locator("#error").is_hidden()
    finally:
        context.close()


@pytest.fixture(scope="module")
def local_stack() -> Iterator[Stack]:
    from streamdiarize import BackendUnavailableError

    sessions = Collector()
    try:
        with (
            open_engine("local") as engine,
            BackgroundServer(create_app(engine, observer=sessions)) as server,
        ):
            yield Stack(engine, server, sessions)
    except BackendUnavailableError as exc:
        pytest.skip(f"the local engine is not available: {exc}")


def test_chromium_local_engine_transcribes_the_dialog(chromium: Any, local_stack: Stack) -> None:
    jiwer = pytest.importorskip("jiwer")
    run = run_chromium(
        chromium, local_stack, "recorder", finals=5, last_turn_start=DIALOG[-1]["start_s"]
    )
    texts = [line["text"] for line in run.lines]
    error = jiwer.wer(" ".join(u["text"] for u in DIALOG).lower(), " ".join(texts).lower())
    print(f"local engine: {texts}, WER {error:.2f}, {run.seconds:.1f} s")
    assert error <= 0.6, texts  # tiny.en on Opus-coded espeak: 0.3-0.5; garbage: ~1
    assert (run.outcome.close_code, run.outcome.error) == (1000, None)
    # Every turn has lines of one speaker, and the voices of turns 0/3 and 1/4 are the same.
    speakers = speakers_by_turn(run.lines, [(u["start_s"], u["end_s"]) for u in DIALOG])
    assert speakers[0] == speakers[3] != speakers[1] == speakers[4], speakers


def test_chromium_local_engine_tells_two_voices_apart(
    chromium_two_voices: Any, local_stack: Stack
) -> None:
    """Four turns, two voices 0.7 s apart, from the fake microphone: two speakers, each on
    the lines of the turns it spoke (speaker corrections applied by the page)."""
    turns = json.loads((DIALOGS / "espeak_short.json").read_text())["turns"]
    run = run_chromium(
        chromium_two_voices,
        local_stack,
        "recorder",
        finals=len(turns),
        last_turn_start=turns[-1]["start_s"],
    )
    assert (run.outcome.close_code, run.outcome.error) == (1000, None)
    speakers = speakers_by_turn(run.lines, [(t["start_s"], t["end_s"]) for t in turns])
    print(f"two voices: {[(line['speaker'], line['text']) for line in run.lines]}")
    assert speakers[0] == speakers[2] != speakers[1] == speakers[3], run.lines
    assert len({line["speaker"] for line in run.lines}) == 2, run.lines


def speakers_by_turn(lines: list[dict[str, str]], turns: list[tuple[float, float]]) -> list[str]:
    """The one speaker shown on the lines of each reference turn ``(start, end)``.

    A line belongs to the turn its start falls in (0.3 s of slack for the page's clock);
    every turn must have lines, all of one speaker, and every line must belong to a turn.
    """
    found: list[set[str]] = [set() for _ in turns]
    for line in lines:
        start = clock(line["time"])
        inside = [k for k, (a, b) in enumerate(turns) if a - 0.3 <= start < b]
        assert inside, f"line {line} starts outside every turn {turns}"
        found[inside[-1]].add(line["speaker"])
    assert all(len(labels) == 1 for labels in found), (found, lines)
    return [labels.pop() for labels in found]


# -- Firefox ESR ------------------------------------------------------------------------------


def run_firefox(
    stack: Stack, microphone: Path, workdir: Path, mode: str, *, finals: int, restart: bool
) -> tuple[PageRun, str]:
    """One run in Firefox: play the dialog into the virtual microphone once the page records.

    Returns the run and the MIME type the page showed.
    """
    from browser.firefox import FIREFOX, Firefox, PulseAudio

    missing = [t for t in (FIREFOX, "pulseaudio", "paplay", "pactl") if not shutil.which(t)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    before = (len(stack.sessions.started), len(audio_problems(stack)), time.monotonic())
    with PulseAudio(workdir / "pulse") as pulse, Firefox(workdir / "profile", pulse.env) as ff:
        ff.set_viewport(1100, 720)
        ff.goto(stack.server.url + "/")
        ff.wait_for("document.querySelector('.engine').dataset.engine")
        ff.evaluate(f"document.querySelector('#mode').value = {json.dumps(mode)}")
        ff.click("#start")
        ff.wait_for(f"{STATE_JS} === 'recording'", timeout=15)  # e.g. the recorder's start event
        player = pulse.play(microphone)
        if restart:
            ff.wait_for(f"{FINALS_JS} >= 2", timeout=30)
            time.sleep(1.0)  # inside the next phrase
            ff.click("#restart")
        if finals == len(DIALOG):
            player.wait(timeout=30)
            ff.wait_for(f"{FINALS_JS} >= {finals - 1}", timeout=10)
            time.sleep(0.6)  # the tail silence, so the last phrase ends inside the recording
        else:
            ff.wait_for(f"{FINALS_JS} >= {finals}", timeout=30)
        ff.click("#stop")
        ff.wait_for(f"{STATE_JS} === 'ended'", timeout=20)
        lines = ff.evaluate(LINES_JS)
        shown_mime = ff.evaluate("document.querySelector('#format').textContent")
        assert ff.evaluate("document.querySelector('#error').hidden")
        ff.screenshot(workdir / "page.png")
    return finish_run(stack, before, lines), shown_mime


def test_firefox_mediarecorder_ogg_opus_with_restart(
    stack: Stack, dialog_48k: Path, tmp_path: Path
) -> None:
    run, shown = run_firefox(stack, dialog_48k, tmp_path, "recorder", finals=5, restart=True)
    assert shown == run.info.mime
    check_run(run, mime="audio/ogg;codecs=opus", finals=5, restarts=1, steady_clock=False)
    save_artifact(tmp_path / "page.png", "demo-firefox.png")


def test_firefox_audioworklet_float32(stack: Stack, dialog_48k: Path, tmp_path: Path) -> None:
    run, shown = run_firefox(stack, dialog_48k, tmp_path, "worklet-f32", finals=2, restart=False)
    assert shown == run.info.mime
    rate = int(shown.split("rate=")[1].split(";")[0])  # Firefox's AudioContext rate
    assert rate in (44_100, 48_000)
    mime = f"audio/pcm;rate={rate};encoding=float32;channels=1"
    check_run(run, mime=mime, finals=2, restarts=0, steady_clock=False)


# -- pages people already wrote: no subprotocol, no start message, the root path ---------------

PAGES = Path(__file__).parent / "browser" / "pages"
PAGE_FINALS = 2  # two speakers, 7.1 s: enough to show words, speakers and the clock
LINE = re.compile(r"^\[\s*(?P<offset>[\d.]+) s\] (?P<speaker>\S+): (?P<text>.*)$")
RATE_LOG = re.compile(
    r"raw frames: float32, rate inferred: (?P<rate>\d+) Hz \(measured .*?(?P<off>[\d.]+) % off\)"
)


@dataclass
class ConsoleServer:
    """A server process whose standard output (the printed segments) the test reads."""

    url: str
    lines: list[str]
    logs_decisions: bool = False  # `serve` logs the raw-format decision at INFO


@contextlib.contextmanager
def page_host() -> Iterator[str]:
    """Serve tests/browser/pages over HTTP on a free port: another origin than the server."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(PAGES))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def console_server(command: list[str], env: dict[str, str], port: int) -> Iterator[ConsoleServer]:
    """Run ``command`` until the block ends; collect its output lines (both streams)."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.extend(stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield ConsoleServer(f"ws://127.0.0.1:{port}/", lines)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module", params=["serve", "websockets_server.py"])
def own_page_server(request: pytest.FixtureRequest) -> Iterator[tuple[ConsoleServer, str]]:
    """``streamdiarize serve`` (fake engine) or the websockets example (real Azure SDK against
    the emulator), accepting the page host's origin; yields it and that origin."""
    from streamdiarize.testing import FakeSpeechService, ScriptedRecognizer

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPEECH_")}
    with page_host() as origin, contextlib.ExitStack() as stack:
        if request.param == "serve":
            script = str(CAPTURES / "dialog.json")
            cli = "from streamdiarize.cli import main; raise SystemExit(main())"
            command = [sys.executable, "-c", cli, "serve", "--engine", "fake", "--script",
                       script, "--port", str(port), "--allow-origin", origin]  # fmt: skip
        else:
            service = stack.enter_context(
                FakeSpeechService(ScriptedRecognizer.from_utterances(DIALOG))
            )
            env |= {"SPEECH_KEY": "k", "SPEECH_REGION": "emulator", "SPEECH_HOST": service.host}
            command = [sys.executable, str(ROOT / "examples" / request.param),
                       "--port", str(port), "--allow-origin", origin]  # fmt: skip
        server = stack.enter_context(console_server(command, env, port))
        server.logs_decisions = request.param == "serve"
        yield server, origin


def printed_segments(server: ConsoleServer, since: int) -> list[dict[str, Any]]:
    """The segments printed since line ``since``, from the dialog's first phrase on.

    The server is shared by the tests of a module: the previous page's session may still
    print its last (flushed) phrase after this test began; that is not this page's output.
    """
    printed = [m.groupdict() for line in server.lines[since:] if (m := LINE.match(line.strip()))]
    first = next((i for i, p in enumerate(printed) if p["text"] == DIALOG[0]["text"]), None)
    return [] if first is None else printed[first:]


def check_printed(server: ConsoleServer, since: int, what: str) -> None:
    """The server printed the dialog's first phrases with their speakers, at the right pace."""
    try:
        wait_until(lambda: len(printed_segments(server, since)) >= PAGE_FINALS, 40, what)
    except AssertionError as exc:
        output = "".join(server.lines[since:])
        raise AssertionError(f"{exc}; the server's output:\n{output}") from None
    printed = printed_segments(server, since)[:PAGE_FINALS]
    assert [p["text"] for p in printed] == [u["text"] for u in DIALOG[:PAGE_FINALS]], printed
    assert [p["speaker"] for p in printed] == SPEAKERS[:PAGE_FINALS]
    # The scripted engine answers with the script's times, so the rate is checked where
    # `serve` logs its measurement: the AudioContext's rate, measured within 2 %.
    decisions = [m for line in server.lines[since:] if (m := RATE_LOG.search(line))]
    if "scriptprocessor" in what and server.logs_decisions:
        assert len(decisions) == 1, server.lines[since:]
        assert int(decisions[0]["rate"]) in (44_100, 48_000)
        assert float(decisions[0]["off"]) < 2.0, decisions[0].group(0)
    print(f"{what}: {printed}", *(d.group(0) for d in decisions))


@pytest.mark.parametrize("page", ["scriptprocessor.html", "mediarecorder.html"])
def test_chromium_own_page_unchanged(
    chromium: Any, own_page_server: tuple[ConsoleServer, str], page: str
) -> None:
    server, origin = own_page_server
    since = len(server.lines)
    context = chromium.new_context()
    try:
        tab = context.new_page()
        tab.goto(f"{origin}/{page}?ws={server.url}")
        check_printed(server, since, f"chromium {page}")
    finally:
        context.close()


@pytest.mark.parametrize("page", ["scriptprocessor.html", "mediarecorder.html"])
def test_firefox_own_page_unchanged(
    own_page_server: tuple[ConsoleServer, str], dialog_48k: Path, tmp_path: Path, page: str
) -> None:
    from browser.firefox import FIREFOX, Firefox, PulseAudio

    missing = [t for t in (FIREFOX, "pulseaudio", "paplay", "pactl") if not shutil.which(t)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    server, origin = own_page_server
    since = len(server.lines)
    with PulseAudio(tmp_path / "pulse") as pulse, Firefox(tmp_path / "profile", pulse.env) as ff:
        ff.goto(f"{origin}/{page}?ws={server.url}")
        ff.wait_for("document.title === 'recording'", timeout=15)
        pulse.play(dialog_48k)
        check_printed(server, since, f"firefox {page}")
