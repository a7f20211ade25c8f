"""Load: N concurrent WebSocket clients streaming Chromium WebM/Opus in real time to the server.

Usage::

    python benchmarks/load.py [--clients 50 100 200 400] [--seconds 60] [--workers 1]
                              [--backend azure|null] [--profile N]

Separate processes, so that each one's CPU is measured alone:

* the emulator: ``python -m streamdiarize.testing --script tests/data/captures/dialog.json``;
* the server (``--workers`` of them, clients spread round-robin as a load balancer would):
  this script's ``--serve`` mode builds the app and runs uvicorn exactly as ``streamdiarize
  serve --engine fake`` does (``create_app``, ``ServerSettings``, ``run``; the real Azure SDK
  per session) but points the SDK at the emulator process. Benchmark-only patches add a
  ``/bench/stats`` route, an event-loop lag probe, a gen-2 GC pause recorder and timing:
  *pipeline latency* runs from the moment uvicorn parsed a frame off the socket to the moment
  its PCM sits in the SDK's audio queue (queueing in front of the handler included);
* the clients (this process, asyncio + websockets): each replays capture A's real messages
  (Chromium MediaRecorder, ~120 ms apart, 1.8 KB) at their recorded times, looped (the first
  message is an EBML header: a MediaRecorder restart), and reads its results.

``--backend null`` replaces the SDK with a stream that drops the PCM: what the socket, demux,
Opus decode and resample path costs alone.

Clients start over ``--ramp`` seconds; after ``--warmup`` seconds the measurement window of
``--seconds`` begins. Reported per N: CPU % of the server(s), the emulator, the clients and
other programs on the machine (100 % = one core), server RSS per session, p50/p99/max
pipeline latency, p99 loop lag, p99 client send lag (how late clients got their messages
out: the server stopped reading them), the longest gen-2 GC pause, and whether real time held.
Real time is lost when p99 pipeline latency or p99 loop lag exceeds 200 ms, p99 client lag
exceeds 500 ms, or sessions fail; the target is p99 pipeline latency below 50 ms.
``--profile N`` records the first server with py-spy during that step's window
(``artifacts/load/profile-N.txt``: self and total time per function). Results also go to
``artifacts/load/results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = ROOT / "tests" / "data" / "captures" / "A_chromium_mediarecorder_webm_opus_ts100"
DIALOG = ROOT / "tests" / "data" / "captures" / "dialog.json"
OUT = ROOT / "artifacts" / "load"
MIME = "audio/webm;codecs=opus"
LOST_LATENCY, LOST_CLIENT_LAG = 0.200, 0.500


# -- the server process ------------------------------------------------------------------------


def serve(port: int, emulator: str, max_sessions: int, backend: str) -> None:
    """``streamdiarize serve --engine fake`` with the emulator elsewhere, plus timing.

    ``backend="null"`` swaps the SDK for a stream that drops the PCM: what the socket, decode
    and resample path alone costs.
    """
    import numpy as np
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    from streamdiarize.server import Engine, ServerSettings, _handler, create_app, run
    from streamdiarize.session import TranscriptionSession
    from streamdiarize.transcribers.azure import AzureTranscriber

    latencies: list[float] = []  # frame parsed off the socket -> its PCM queued for the SDK
    processing: list[float] = []  # the handler's send() call alone
    lags: list[float] = []
    gc_pauses: list[float] = []
    probe: list[asyncio.Task[None]] = []
    _stamp_arrivals()

    class TimedSession(TranscriptionSession):
        websocket: Any = None

        async def send(self, chunk: bytes | bytearray | memoryview) -> None:
            began = time.perf_counter()
            await super().send(chunk)
            done = time.perf_counter()
            arrival = getattr(self.websocket, "bench_arrival", None) or began
            latencies.append(done - arrival)
            processing.append(done - began)

    open_session = _handler._Connection._open_session

    def open_timed_session(connection: Any, start: Any) -> TranscriptionSession:
        session = open_session(connection, start)
        session.websocket = connection.ws  # type: ignore[attr-defined]
        return session

    gc_began = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_began[0] = time.perf_counter()
        elif info["generation"] == 2:
            gc_pauses.append(time.perf_counter() - gc_began[0])

    gc.callbacks.append(on_gc)

    async def lag_probe() -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - began - 0.01)

    async def stats(request: Request) -> Response:
        if not probe:
            probe.append(asyncio.create_task(lag_probe()))
        body = {  # raw values in ms: the driver merges several server processes
            name: np.round(np.asarray(values) * 1e3, 3).tolist()
            for name, values in (
                ("latency", latencies),
                ("processing", processing),
                ("loop_lag", lags),
                ("gc2_pauses", gc_pauses),
            )
        }
        if request.query_params.get("reset"):
            for values in (latencies, processing, lags, gc_pauses):
                values.clear()
        return JSONResponse(body)

    _handler.TranscriptionSession = TimedSession  # type: ignore[misc]
    _handler._Connection._open_session = open_timed_session  # type: ignore[method-assign]
    if backend == "null":
        engine = Engine("null", "PCM dropped", _NullTranscriber())
    else:
        transcriber = AzureTranscriber(["en-US"], host=emulator, key="emulator", pace_audio=False)
        engine = Engine("fake", "Azure SDK → emulator process", transcriber, emulated=True)
    settings = ServerSettings(max_sessions=max_sessions, idle_timeout=60.0)
    app = create_app(engine, settings)
    app.add_route("/bench/stats", stats)
    with contextlib.suppress(KeyboardInterrupt):  # the driver's SIGINT ends it
        run(app, host="127.0.0.1", port=port, settings=settings, log_level="warning")


def _NullTranscriber() -> Any:  # noqa: N802 - a factory of a local class
    """A backend that takes PCM and answers nothing (for ``--backend null``)."""
    from streamdiarize.transcribers import Transcriber, TranscriberStream

    class NullStream(TranscriberStream):
        async def write(self, pcm: Any) -> None:
            pass

        async def finish(self) -> None:
            pass

        async def aclose(self) -> None:
            pass

    class NullTranscriber(Transcriber):
        async def open(self, sink: Any, *, interim_results: bool = False) -> TranscriberStream:
            return NullStream()

    return NullTranscriber()


def _stamp_arrivals() -> None:
    """Note when uvicorn parsed each frame off the socket; the handler's WebSocket keeps the
    time of the last message it received (a benchmark-only patch of uvicorn and Starlette)."""
    from starlette.websockets import WebSocket
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    class StampedQueue(asyncio.Queue[Any]):
        def put_nowait(self, item: Any) -> None:
            if item.get("type") == "websocket.receive":
                item["bench.arrival"] = time.perf_counter()
            super().put_nowait(item)

    protocol_init = WebSocketsSansIOProtocol.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        protocol_init(self, *args, **kwargs)
        self.queue = StampedQueue()

    receive = WebSocket.receive

    async def stamped_receive(self: Any) -> Any:
        message = await receive(self)
        self.bench_arrival = message.get("bench.arrival")
        return message

    WebSocketsSansIOProtocol.__init__ = init  # type: ignore[method-assign]
    WebSocket.receive = stamped_receive  # type: ignore[method-assign]


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def emulator_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "streamdiarize.testing", "--script", str(DIALOG),
         "--max-records", "20"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        host = process.stdout.readline().strip()
        if not host.startswith("ws://"):
            raise RuntimeError(f"the emulator did not start: {host!r}")
        yield process, host
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def server_process(
    emulator: str, max_sessions: int, backend: str
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--emulator", emulator,
         "--max-sessions", str(max_sessions), "--backend", backend],
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while fetch(port, "/api/info", timeout=2) is None:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        yield process, port
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def fetch(port: int, path: str, timeout: float = 60.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return dict(json.loads(response.read()))
    except OSError:
        return None


# -- the clients ---------------------------------------------------------------------------------


@functools.cache
def capture() -> tuple[list[bytes], list[float], float]:
    """Capture A's messages, their send times (s) within one loop, and the loop's length."""
    data = (CAPTURE / "stream.bin").read_bytes()
    sizes = json.loads((CAPTURE / "sizes.json").read_text())
    arrivals = json.loads((CAPTURE / "meta.json").read_text())["per_message_arrival_ms"]
    messages, pos = [], 0
    for size in sizes:
        messages.append(data[pos : pos + size])
        pos += size
    times = [(t - arrivals[0]) / 1e3 for t in arrivals]
    return messages, times, times[-1] + 0.12


@dataclass
class ClientStats:
    """What the clients saw."""

    started: int = 0
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    segments: int = 0
    sent: int = 0
    lags: list[float] = field(default_factory=list)  # send time minus schedule, in window


async def one_client(
    url: str, delay: float, stop_at: float, window: list[float], stats: ClientStats
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    messages, times, period = capture()
    loop = asyncio.get_running_loop()
    await asyncio.sleep(delay)
    try:
        async with connect(url, subprotocols=["streamdiarize.v1"], compression=None,  # type: ignore[list-item]
                           max_size=None, proxy=None, open_timeout=60, ping_interval=None,
                           close_timeout=30) as ws:  # fmt: skip
            await ws.send(json.dumps({"type": "start", "mime": MIME}))
            ready = json.loads(await ws.recv())
            if ready["type"] != "ready":
                stats.refused.append(ready.get("code", "?"))
                return
            stats.started += 1

            async def read() -> None:
                with contextlib.suppress(ConnectionClosed):
                    async for text in ws:
                        message = json.loads(text)
                        if message["type"] == "segment":
                            stats.segments += 1
                        elif message["type"] == "error":
                            stats.errors.append(message["code"])

            reader = asyncio.create_task(read())
            began, k = loop.time(), 0
            while loop.time() < stop_at:
                due = began + (k // len(messages)) * period + times[k % len(messages)]
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                await ws.send(messages[k % len(messages)])
                now = loop.time()
                if window[0] <= now <= window[1]:
                    stats.lags.append(now - due)
                    stats.sent += 1
                k += 1
            await ws.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(reader, 60)
    except (OSError, asyncio.TimeoutError, ConnectionClosed) as exc:
        stats.errors.append(f"{type(exc).__name__}: {str(exc)[:60]}")


@dataclass
class Step:
    """One row of the result table."""

    clients: int
    workers: int
    started: int
    server_cpu: float
    emulator_cpu: float
    clients_cpu: float
    others_cpu: float
    rss_idle_mib: float
    rss_per_session_mib: float
    threads: int
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    processing_p99_ms: float
    loop_lag_p99_ms: float
    gc2_pauses: int
    gc2_max_ms: float
    client_lag_p99_ms: float
    segments: int
    errors: list[str]
    realtime: bool


def cpu_seconds(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def run_step(n: int, args: argparse.Namespace) -> Step:
    import numpy as np
    import psutil

    workers = args.workers
    with contextlib.ExitStack() as stack:
        emulator, host = stack.enter_context(emulator_process())
        servers = [
            stack.enter_context(server_process(host, n // workers + 8, args.backend))
            for _ in range(workers)
        ]
        server_ps = [psutil.Process(process.pid) for process, _ in servers]
        emulator_ps, me = psutil.Process(emulator.pid), psutil.Process()
        urls = [f"ws://127.0.0.1:{port}/ws" for _, port in servers]
        # Warm each server up with one session (SDK libraries, codecs), then measure idle.
        for url in urls:
            await one_client(url, 0, time.monotonic() + 2, [0, 0], ClientStats())
        await asyncio.sleep(1)
        rss_idle = sum(p.memory_info().rss for p in server_ps) / 2**20
        loop = asyncio.get_running_loop()
        start = loop.time()
        window = [start + args.ramp + args.warmup, start + args.ramp + args.warmup + args.seconds]
        stats = ClientStats()
        clients = [  # round-robin over the workers, as a load balancer would
            asyncio.create_task(
                one_client(urls[i % workers], args.ramp * i / n, window[1], window, stats)
            )
            for i in range(n)
        ]
        await asyncio.sleep(window[0] - loop.time())
        for _, port in servers:
            fetch(port, "/bench/stats?reset=1")
        measured = [*server_ps, emulator_ps, me]
        cpu0 = [cpu_seconds(p) for p in measured]
        system0 = psutil.cpu_times()
        t0 = time.monotonic()
        profiler = None
        if args.profile == n:
            OUT.mkdir(parents=True, exist_ok=True)
            spy = Path(sys.executable).with_name("py-spy")
            profiler = await asyncio.create_subprocess_exec(
                str(spy) if spy.exists() else "py-spy",
                "record", "--pid", str(server_ps[0].pid), "--duration",
                str(int(args.seconds * 0.8)), "--rate", "100", "--format", "raw",
                "--output", str(OUT / f"profile-{n}.folded"), "--nonblocking",
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        rss_peak = 0.0
        threads = 0
        while loop.time() < window[1]:
            await asyncio.sleep(1.0)
            rss_peak = max(rss_peak, sum(p.memory_info().rss for p in server_ps) / 2**20)
            threads = max(threads, sum(p.num_threads() for p in server_ps))
        elapsed = time.monotonic() - t0
        cpu = [(cpu_seconds(p) - c) / elapsed * 100 for p, c in zip(measured, cpu0, strict=True)]
        system1 = psutil.cpu_times()
        busy = sum(system1) - sum(system0) - (system1.idle - system0.idle)
        others = max(0.0, busy / elapsed * 100 - sum(cpu))  # other programs on the machine
        merged: dict[str, list[float]] = {}
        for _, port in servers:
            for name, values in (fetch(port, "/bench/stats") or {}).items():
                merged.setdefault(name, []).extend(values)
        await asyncio.gather(*clients)
        if profiler is not None:
            await asyncio.wait_for(profiler.wait(), 60)
            summarize_profile(OUT / f"profile-{n}.folded", OUT / f"profile-{n}.txt")

    def pct(name: str, q: float) -> float:
        values = merged.get(name) or []
        return float(np.percentile(values, q)) if values else float("nan")

    client_lag = float(np.percentile(stats.lags, 99) * 1e3) if stats.lags else float("nan")
    step = Step(
        clients=n,
        workers=workers,
        started=stats.started,
        server_cpu=sum(cpu[:workers]),
        emulator_cpu=cpu[-2],
        clients_cpu=cpu[-1],
        others_cpu=others,
        rss_idle_mib=rss_idle,
        rss_per_session_mib=(rss_peak - rss_idle) / max(1, stats.started),
        threads=threads,
        latency_p50_ms=pct("latency", 50),
        latency_p99_ms=pct("latency", 99),
        latency_max_ms=pct("latency", 100),
        processing_p99_ms=pct("processing", 99),
        loop_lag_p99_ms=pct("loop_lag", 99),
        gc2_pauses=len(merged.get("gc2_pauses", [])),
        gc2_max_ms=max(merged.get("gc2_pauses") or [0.0]),
        client_lag_p99_ms=client_lag,
        segments=stats.segments,
        errors=sorted(set(stats.errors + stats.refused)),
        realtime=False,
    )
    step.realtime = (
        step.started == n
        and not stats.errors
        and step.latency_p99_ms <= LOST_LATENCY * 1e3
        and step.loop_lag_p99_ms <= LOST_LATENCY * 1e3
        and step.client_lag_p99_ms <= LOST_CLIENT_LAG * 1e3
    )
    return step


def summarize_profile(folded: Path, out: Path, top: int = 40) -> None:
    """Self and total time per function from py-spy's folded stacks."""
    if not folded.exists():
        out.write_text("no profile (py-spy could not attach?)\n")
        return
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        samples += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + n
    lines = [f"{samples} samples", "", "self %  function"]
    lines += [
        f"{100 * c / samples:6.1f}  {f}" for f, c in sorted(own.items(), key=lambda x: -x[1])[:top]
    ]
    lines += ["", "total %  function"]
    lines += [
        f"{100 * c / samples:6.1f}  {f}"
        for f, c in sorted(total.items(), key=lambda x: -x[1])[:top]
    ]
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds to start all clients")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after the ramp")
    parser.add_argument("--profile", type=int, help="py-spy the (first) server at this N")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes, clients spread round-robin (instances behind a balancer)",
    )
    parser.add_argument(
        "--backend",
        choices=("azure", "null"),
        default="azure",
        help="null: drop the PCM instead of the SDK (what the socket and decode path costs)",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--emulator", help=argparse.SUPPRESS)
    parser.add_argument("--max-sessions", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.emulator, args.max_sessions, args.backend)
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    header = (
        f"{'N':>4} {'started':>7} {'server CPU':>10} {'emulator':>8} {'clients':>7} {'others':>6} "
        f"{'RSS/sess':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'loop p99':>8} "
        f"{'client lag p99':>14} {'gc2 max':>7} {'segments':>8}  real time"
    )
    print(
        f"{os.cpu_count()} CPUs, {args.seconds:g} s windows, {args.workers} server process(es), "
        f"backend {args.backend}",
        flush=True,
    )
    print(header, flush=True)
    steps = []
    for n in args.clients:
        step = asyncio.run(run_step(n, args))
        steps.append(step)
        print(
            f"{n:>4} {step.started:>7} {step.server_cpu:>9.0f}% {step.emulator_cpu:>7.0f}% "
            f"{step.clients_cpu:>6.0f}% {step.others_cpu:>5.0f}% "
            f"{step.rss_per_session_mib:>6.2f}MB "
            f"{step.latency_p50_ms:>7.2f} {step.latency_p99_ms:>7.2f} {step.latency_max_ms:>7.0f} "
            f"{step.loop_lag_p99_ms:>8.2f} {step.client_lag_p99_ms:>14.1f} "
            f"{step.gc2_max_ms:>7.0f} {step.segments:>8}  "
            f"{'yes' if step.realtime else 'NO'} {' '.join(step.errors)}",
            flush=True,
        )
        (OUT / "results.json").write_text(json.dumps([asdict(s) for s in steps], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
