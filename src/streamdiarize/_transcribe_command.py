"""``streamdiarize transcribe``: a file (or stdin) through the live path, a transcript out.

The arguments and the run live here; :mod:`streamdiarize.cli` only registers them. Exit
status: 0 done, 1 the engine or the stream failed mid-way (what was transcribed until then is
written), 2 a usage error caught before any audio was sent (missing or unreadable file, a
format that is not audio we decode, unknown output format or engine, missing Azure key).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from ._exceptions import BackendUnavailableError, ConfigurationError, UnsupportedFormatError
from .engines import ENGINES, open_engine
from .output import FORMATS, SegmentWriter, make_writer
from .segment import Segment
from .transcribe import Progress, sample_path, transcribe_file
from .transcribers import Transcriber

__all__ = ["add_arguments", "run"]

#: Exit status for usage errors (argparse's own).
USAGE = 2
_PIPE_CLOSED = 141  # what a shell reports for a writer killed by SIGPIPE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``transcribe`` options on ``parser``."""
    parser.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="WebM, Ogg, MP4 or WAV file (raw frames: give --mime), or - for stdin; "
        "default: the bundled two-speaker sample",
    )
    parser.add_argument(
        "--sample", action="store_true", help="transcribe the bundled sample (27 s, two voices)"
    )
    parser.add_argument(
        "--engine",
        metavar="ENGINE",
        help=f"{' | '.join(ENGINES)}; default: azure when SPEECH_KEY and SPEECH_REGION are "
        "set, else local. fake = the real Azure SDK against the local emulator, answered by "
        "the local engine",
    )
    parser.add_argument(
        "--format",
        default="text",
        metavar="FORMAT",
        help=f"{' | '.join(FORMATS)} (default %(default)s)",
    )
    parser.add_argument("-o", "--output", type=Path, metavar="OUT", help="write here, not stdout")
    parser.add_argument(
        "--realtime", action="store_true", help="send the audio at the pace it plays"
    )
    parser.add_argument(
        "--chunk-ms",
        type=float,
        default=100.0,
        metavar="MS",
        help="audio per chunk sent, as a MediaRecorder timeslice (default %(default)g)",
    )
    parser.add_argument(
        "--language",
        action="append",
        dest="languages",
        metavar="LOCALE",
        help="BCP-47 locale (default en-US); repeat for Azure language identification",
    )
    parser.add_argument(
        "--interim",
        action="store_true",
        help="interim hypotheses: jsonl writes them (final: false); a terminal shows them",
    )
    parser.add_argument(
        "--min-speakers", type=int, metavar="N", help="at least N speakers (local and fake)"
    )
    parser.add_argument(
        "--max-speakers", type=int, metavar="N", help="at most N speakers (local and fake)"
    )
    parser.add_argument(
        "--mime",
        metavar="TYPE",
        help="the input's format when its bytes cannot tell: raw frames, e.g. "
        "'audio/pcm;rate=48000;encoding=float32'",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``streamdiarize transcribe``; returns the exit status.

    Usage errors print one line and return 2, a missing local engine one line and 1; other
    :class:`StreamDiarizeError` subclasses propagate to :func:`streamdiarize.cli.main`.
    """
    try:
        return _run(args)
    except (ConfigurationError, UnsupportedFormatError) as exc:
        _fail(str(exc))
        return USAGE
    except BackendUnavailableError as exc:  # local and fake both need the local engine
        _fail(f"{exc}; or set SPEECH_KEY and SPEECH_REGION to use Azure")
        return 1
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return _PIPE_CLOSED


def _fail(message: str) -> None:
    print(f"streamdiarize: error: {' '.join(message.split())}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    if args.format not in FORMATS:
        raise ConfigurationError(
            f"unknown output format {args.format!r}: choose one of {', '.join(FORMATS)}"
        )
    if args.engine is not None and args.engine not in ENGINES:
        raise ConfigurationError(
            f"unknown engine {args.engine!r}: choose one of {', '.join(ENGINES)}"
        )
    if not args.chunk_ms > 0:
        raise ConfigurationError(f"--chunk-ms must be > 0, got {args.chunk_ms:g}")
    for option in ("min_speakers", "max_speakers"):
        value = getattr(args, option)
        if value is not None and value < 1:
            flag = "--" + option.replace("_", "-")
            raise ConfigurationError(f"{flag} must be at least 1, got {value}")
    # Input first (a typo should not wait for a model to load), the output file last (no
    # empty file left behind by a missing key).
    with (
        _input(args) as (source, file_id),
        open_engine(
            args.engine or None,
            languages=args.languages or (),
            min_speakers=args.min_speakers,
            max_speakers=args.max_speakers,
            interim_results=args.interim,
        ) as engine,
        _output(args.output) as stream,
    ):
        if args.file is None:
            print(
                f"streamdiarize: transcribing the bundled sample {sample_path()}", file=sys.stderr
            )
        writer = make_writer(args.format, stream, file_id=file_id, interim=args.interim)
        bar = _ProgressBar(file_id)
        try:
            asyncio.run(_transcribe(args, source, engine.transcriber, writer, bar))
        finally:
            bar.close()
        writer.close()  # after an error only what was written (and flushed) stays
    return 0


@contextlib.contextmanager
def _input(args: argparse.Namespace) -> Iterator[tuple[BinaryIO, str]]:
    """The source as an open binary file, and its name for RTTM."""
    if args.sample and args.file is not None:
        raise ConfigurationError("give either FILE or --sample, not both")
    if args.file == "-":
        yield sys.stdin.buffer, "stdin"
        return
    path = sample_path() if args.file is None else Path(args.file)
    try:
        file = path.open("rb")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with file:
        yield file, path.stem or "audio"


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    try:
        stream = path.open("w", encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror or exc}") from exc
    with stream:
        yield stream


async def _transcribe(
    args: argparse.Namespace,
    source: BinaryIO,
    transcriber: Transcriber,
    writer: SegmentWriter,
    bar: _ProgressBar,
) -> None:
    segments = transcribe_file(
        source,
        transcriber,
        mime=args.mime,
        chunk_ms=args.chunk_ms,
        realtime=args.realtime,
        interim_results=args.interim,
        progress=bar.update,
    )
    async with contextlib.aclosing(segments):
        async for segment in segments:
            bar.show(segment)
            with bar.writing(writer.stream):
                writer.write(segment)


class _ProgressBar:
    """A tqdm bar on stderr when stderr is a terminal (and tqdm is installed), else nothing."""

    def __init__(self, name: str) -> None:
        self._bar: Any = None
        self._name = name
        self._finals = 0
        if not sys.stderr.isatty():
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self._tqdm = tqdm
        self._bar = tqdm(
            desc=name,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
        )

    def update(self, progress: Progress) -> None:
        if self._bar is None:
            return
        if self._bar.total is None and progress.total_bytes is not None:
            self._bar.total = progress.total_bytes
        postfix = f"{progress.audio_seconds:.1f} s audio, {self._finals} segments"
        self._bar.set_postfix_str(postfix, refresh=False)  # update() redraws, rate-limited
        self._bar.update(progress.bytes_sent - self._bar.n)

    def show(self, segment: Segment) -> None:
        """Count finals; show an interim hypothesis in the bar's description."""
        if self._bar is None:
            return
        if segment.final:
            self._finals += 1
            self._bar.set_description_str(self._name, refresh=False)
        else:
            text = segment.text if len(segment.text) <= 40 else "…" + segment.text[-39:]
            self._bar.set_description_str(text, refresh=True)

    def writing(self, stream: TextIO) -> contextlib.AbstractContextManager[object]:
        """Clears the bar while a line goes to ``stream``, when that is a terminal too."""
        if self._bar is None or not stream.isatty():
            return contextlib.nullcontext()
        cm: contextlib.AbstractContextManager[object] = self._tqdm.external_write_mode(file=stream)
        return cm

    def close(self) -> None:
        if self._bar is not None:
            self._bar.refresh()  # the final count, which rate limiting may have skipped
            self._bar.close()
