"""The ``streamdiarize`` command: one function per subcommand, one shared :func:`main`.

``streamdiarize serve`` runs the demo page and WebSocket endpoint (extra ``server``);
``streamdiarize transcribe`` streams a recording through the same path and writes a transcript.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from ._exceptions import BackendUnavailableError, StreamDiarizeError

__all__ = ["build_parser", "main"]

#: Environment variable read for ``serve --token`` (keeps the token out of ``ps`` output).
TOKEN_ENV = "STREAMDIARIZE_TOKEN"

_SERVER_HINT = "pip install 'streamdiarize[server]'"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 error, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = getattr(args, "command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status: int = command(args)
    except BackendUnavailableError as exc:
        _fail(
            f"{exc}\n  or use Azure (set SPEECH_KEY and SPEECH_REGION, then --engine azure),"
            "\n  or try the emulator: --engine fake"
        )
        return 1
    except StreamDiarizeError as exc:
        _fail(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    return status


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="streamdiarize",
        description="Live, speaker-labelled transcripts from browser audio over WebSockets.",
    )
    parser.add_argument("--version", action="version", version=f"streamdiarize {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_serve(commands)
    _add_transcribe(commands)
    return parser


def _fail(message: str) -> None:
    print(f"streamdiarize: error: {message}", file=sys.stderr)


def _log_to_stderr(level: str) -> None:
    """Show the library's own log lines (sessions, refusals) next to uvicorn's."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:  %(name)s: %(message)s"))
    logger = logging.getLogger("streamdiarize")
    logger.addHandler(handler)
    logger.setLevel(level.upper())


# -- serve ---------------------------------------------------------------------------------


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .engines import ENGINES
    from .server._settings import ServerSettings

    defaults = ServerSettings()
    serve = commands.add_parser(
        "serve",
        help="run the live demo page and its WebSocket endpoint",
        description=(
            "Serve a page that streams your microphone to a WebSocket and shows the live, "
            "speaker-labelled transcript. Protocol: docs/protocol.md."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    serve.add_argument(
        "--engine",
        choices=ENGINES,
        help="speech engine; default: azure when SPEECH_KEY and SPEECH_REGION are set, else "
        "local. fake = the Azure SDK against a local emulator (no key, no model)",
    )
    serve.add_argument(
        "--language",
        action="append",
        dest="languages",
        metavar="LOCALE",
        help="BCP-47 locale for azure/fake, repeat for language identification (default en-US)",
    )
    serve.add_argument(
        "--script",
        type=Path,
        metavar="JSON",
        help="fake engine: answer these phrases (dialog.json format) instead of marking "
        "speech by its energy",
    )
    serve.add_argument(
        "--token",
        nargs="?",
        const="",
        metavar="TOKEN",
        help=f"require this token (no value: generate one; or set {TOKEN_ENV}); the printed "
        "URL carries it in its #fragment",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also accept WebSockets from pages of this origin (https://example.com; '*' any)",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        metavar="HOST",
        help="accepted Host header names (default: loopback names when bound to loopback)",
    )
    limits: list[tuple[str, type[float], str]] = [
        ("max_sessions", int, "concurrent sessions"),
        ("max_session_seconds", float, "longest session, wall clock and audio"),
        ("max_message_bytes", int, "largest WebSocket message"),
    ]
    for limit, kind, meaning in limits:
        serve.add_argument(
            "--" + limit.replace("_", "-"),
            type=kind,
            default=getattr(defaults, limit),
            help=f"{meaning} (default %(default)s)",
        )
    serve.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="keep every session's bytes in DIR (stream.bin, sizes.json, meta.json)",
    )
    serve.add_argument(
        "--quiet",
        action="store_true",
        help="do not print the final segments of every session on standard output",
    )
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    serve.set_defaults(command=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    """``streamdiarize serve``: build the engine and the app, then serve until Ctrl+C."""
    missing = [name for name in ("starlette", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        _fail(f"serve needs {' and '.join(missing)}: {_SERVER_HINT}")
        return 1
    from .engines import default_engine_name
    from .server import ServerSettings, SessionRecorder, create_app, open_engine, run

    token = args.token
    if token == "" or (token is None and os.environ.get(TOKEN_ENV)):
        token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)
    settings = ServerSettings(
        max_message_bytes=args.max_message_bytes,
        max_session_seconds=args.max_session_seconds,
        max_sessions=args.max_sessions,
        allowed_origins=tuple(args.allow_origin),
        allowed_hosts=tuple(args.allow_host) if args.allow_host else None,
        print_segments=not args.quiet,
        token=token,
    )
    _log_to_stderr(args.log_level)
    engine_name = args.engine or default_engine_name()
    recorder = SessionRecorder(args.record) if args.record else None
    with open_engine(
        engine_name, languages=args.languages or ("en-US",), script=args.script
    ) as engine:
        app = create_app(engine, settings, bind_host=args.host, observer=recorder)
        host = f"[{args.host}]" if ":" in args.host else args.host
        shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else host
        url = f"http://{shown}:{args.port}/" + (f"#token={token}" if token else "")
        print(f"streamdiarize {__version__}: {engine.label}", file=sys.stderr)
        print(f"  open {url}", file=sys.stderr)
        if settings.hosts_for(args.host) == ("*",) and token is None:
            print(
                f"  warning: listening on {args.host} without --token: anyone who reaches "
                "this port can use your speech service",
                file=sys.stderr,
            )
        run(app, host=args.host, port=args.port, settings=settings, log_level=args.log_level)
    return 0


# -- transcribe ----------------------------------------------------------------------------


def _add_transcribe(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ._transcribe_command import add_arguments

    transcribe = commands.add_parser(
        "transcribe",
        help="transcribe a recording, streamed the way a browser sends audio",
        description=(
            "Stream a file (or stdin) through the same path as a live WebSocket client and "
            "write the speaker-labelled transcript. Without FILE: the bundled sample."
        ),
    )
    add_arguments(transcribe)
    transcribe.set_defaults(command=transcribe_command)


def transcribe_command(args: argparse.Namespace) -> int:
    """``streamdiarize transcribe``: the run lives in :mod:`streamdiarize._transcribe_command`."""
    from ._transcribe_command import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
