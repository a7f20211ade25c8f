"""Firefox ESR with a real (virtual) microphone: a private PulseAudio and WebDriver BiDi.

Playwright cannot drive Debian's ``firefox-esr``: its own Firefox driver needs Mozilla's
Juggler patches, and its BiDi driver (``channel="moz-firefox"``) calls
``network.addDataCollector``, which ESR 140 does not implement. Firefox speaks WebDriver BiDi
natively (``--remote-debugging-port``), so a few BiDi commands over a WebSocket do the job.

The microphone is the monitor of a PulseAudio null sink; a test plays the dialog into the
sink with ``paplay`` once the page's recorder has started (as tests/data/captures/G was made).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

FIREFOX = shutil.which("firefox-esr") or "/usr/bin/firefox-esr"

PREFS: dict[str, Any] = {
    "media.navigator.permission.disabled": True,  # no microphone prompt
    "media.navigator.streams.fake": False,  # a real device: the PulseAudio source
    "media.cubeb.backend": "pulse",
    "media.autoplay.default": 0,
    "media.autoplay.block-webaudio": False,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
    "browser.startup.homepage_override.mstone": "ignore",
    "network.captive-portal-service.enabled": False,
    "browser.safebrowsing.update.enabled": False,
}


def _stop(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class PulseAudio:
    """A private PulseAudio with one mono 48 kHz null sink whose monitor is the default source.

    Nothing else on the machine can reach it (its socket lives in ``directory``).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "native"
        self.env = {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_RUNTIME_PATH": str(directory),
            "XDG_RUNTIME_DIR": str(directory),
            "HOME": str(directory),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.players: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> PulseAudio:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "pulseaudio", "--daemonize=no", "-n", "--exit-idle-time=-1",
                "--use-pid-file=no", "--disallow-exit", "--log-target=stderr",
                f"--load=module-native-protocol-unix socket={self.socket} auth-anonymous=1",
                "--load=module-null-sink sink_name=VirtualSink rate=48000 channels=1 "
                "sink_properties=device.description=VirtualSink",
            ],
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while self._pactl("set-default-source", "VirtualSink.monitor") != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError("PulseAudio did not start")
            time.sleep(0.05)
        return self

    def _pactl(self, *args: str) -> int:
        return subprocess.run(
            ["pactl", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            timeout=10,
            check=False,
        ).returncode

    def play(self, wav: Path) -> subprocess.Popen[bytes]:
        """Start playing ``wav`` into the sink (the microphone hears it)."""
        player = subprocess.Popen(
            ["paplay", "--device=VirtualSink", str(wav)],
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.players.append(player)
        return player

    def __exit__(self, *exc: object) -> None:
        for player in self.players:
            _stop(player)
        if self.process is not None:
            _stop(self.process)
            self.process = None


class BiDiError(RuntimeError):
    """A WebDriver BiDi command failed."""


class Firefox:
    """Headless ``firefox-esr`` with a fresh profile, driven over WebDriver BiDi."""

    def __init__(self, profile: Path, env: dict[str, str], prefs: dict[str, Any] | None = None):
        self.profile = profile
        self.env = env
        self.prefs = {**PREFS, **(prefs or {})}
        self.process: subprocess.Popen[str] | None = None
        self.log: list[str] = []
        self._stack = contextlib.ExitStack()
        self._ws: ClientConnection | None = None
        self._next_id = 0
        self.context = ""

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Firefox:
        self.profile.mkdir(parents=True, exist_ok=True)
        lines = (f"user_pref({json.dumps(k)}, {json.dumps(v)});" for k, v in self.prefs.items())
        (self.profile / "user.js").write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [FIREFOX, "--headless", "--no-remote", "--remote-debugging-port=0",
             "--profile", str(self.profile)],
            env={**os.environ, **self.env, "MOZ_CRASHREPORTER_DISABLE": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            url = self._wait_for_bidi_url()
            self._ws = self._stack.enter_context(connect(f"{url}/session", max_size=None))
            self.command("session.new", capabilities={})
            self.context = self.command("browsingContext.getTree")["contexts"][0]["context"]
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_for_bidi_url(self) -> str:
        assert self.process is not None
        assert self.process.stderr is not None
        found: queue.Queue[str] = queue.Queue()
        stderr = self.process.stderr

        def drain() -> None:  # keep reading so Firefox never blocks on a full pipe
            for line in stderr:
                self.log.append(line.rstrip())
                match = re.search(r"WebDriver BiDi listening on (ws://\S+)", line)
                if match:
                    found.put(match.group(1))

        threading.Thread(target=drain, name="firefox-stderr", daemon=True).start()
        try:
            return found.get(timeout=30)
        except queue.Empty:
            raise BiDiError("Firefox did not start BiDi:\n" + "\n".join(self.log[-20:])) from None

    def __exit__(self, *exc: object) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self.command("browser.close", timeout=5)
            self._ws = None
        self._stack.close()
        if self.process is not None:
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                _stop(self.process)
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None

    # -- commands ------------------------------------------------------------------------------

    def command(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send one BiDi command and return its result (events in between are skipped)."""
        assert self._ws is not None
        self._next_id += 1
        ident = self._next_id
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self._ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if reply.get("id") != ident:
                continue
            if reply.get("type") == "error":
                raise BiDiError(f"{method}: {reply.get('error')}: {reply.get('message')}")
            return dict(reply["result"])

    def goto(self, url: str) -> None:
        self.command("browsingContext.navigate", context=self.context, url=url, wait="complete")

    def set_viewport(self, width: int, height: int) -> None:
        self.command(
            "browsingContext.setViewport",
            context=self.context,
            viewport={"width": width, "height": height},
        )

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (promises are awaited)."""
        result = self.command(
            "script.evaluate",
            expression=f"Promise.resolve({expression}).then((v) => JSON.stringify(v ?? null))",
            target={"context": self.context},
            awaitPromise=True,
        )
        if result.get("type") == "exception":
            raise BiDiError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return json.loads(result["result"]["value"])

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll until ``expression`` is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true after {timeout} s: {expression}")
            time.sleep(0.05)
        return value

    def click(self, selector: str) -> None:
        """A trusted click (a user gesture, unlike element.click()) in the element's centre."""
        node = self.command(
            "script.evaluate",
            expression=f"document.querySelector({json.dumps(selector)})",
            target={"context": self.context},
            awaitPromise=False,
        )["result"]
        origin = {"type": "element", "element": {"sharedId": node["sharedId"]}}
        self.command(
            "input.performActions",
            context=self.context,
            actions=[
                {
                    "type": "pointer",
                    "id": "mouse",
                    "actions": [
                        {"type": "pointerMove", "x": 0, "y": 0, "origin": origin},
                        {"type": "pointerDown", "button": 0},
                        {"type": "pointerUp", "button": 0},
                    ],
                }
            ],
        )

    def screenshot(self, path: Path) -> None:
        data = self.command("browsingContext.captureScreenshot", context=self.context)["data"]
        path.write_bytes(base64.b64decode(data))
