"""Run :class:`FakeSpeechService` as its own process, for test suites in any language.

Usage::

    python -m streamdiarize.testing [--port 0] [--script dialog.json] [--key KEY]

It prints ``ws://127.0.0.1:PORT`` on the first line of stdout once it listens, then serves
until stdin closes or it gets SIGINT/SIGTERM. A script is a JSON file with a list of
utterances (``text``, ``start_s``, ``end_s``, optional ``speaker`` and ``language``), or an
object holding such a list under ``utterances`` (the shape of the captures' dialog.json).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from ._scripted import ScriptedRecognizer
from ._service import FakeSpeechService


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve, and return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m streamdiarize.testing", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: free)")
    parser.add_argument("--script", type=Path, help="JSON utterances to answer with")
    parser.add_argument("--key", help="the only subscription key to accept (default: any)")
    parser.add_argument("--max-records", type=int, default=100, help="connection records kept")
    args = parser.parse_args(argv)
    utterances = []
    if args.script:
        data = json.loads(args.script.read_text())
        utterances = data["utterances"] if isinstance(data, dict) else data
    recognizer = ScriptedRecognizer.from_utterances(utterances)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    def stop_when_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    with FakeSpeechService(
        recognizer, key=args.key, port=args.port, max_records=args.max_records
    ) as service:
        print(service.host, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
