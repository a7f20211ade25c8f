"""The local engine as a plain synchronous object: PCM in, :class:`~streamdiarize.Segment` out.

:class:`LocalEngine` chains voice activity detection, speaker change detection, Whisper and
speaker clustering for one stream. It has no threads and no asyncio:
:class:`~.transcriber.LocalTranscriber` drives it from a worker thread, and anything else that
wants transcripts from PCM (the Azure protocol emulator, a batch job) can call it directly::

    engine = LocalEngine()
    for chunk in chunks:                 # int16, 16 kHz mono, any length
        for segment in engine.feed(chunk):
            print(segment.speaker, segment.text)
    remaining = engine.finish()          # the last turn

How speech becomes segments:

* **Turns.** The VAD opens an utterance at speech and closes it after ``min_silence`` of
  silence. Inside it, speaker embeddings of 1 s windows every 0.25 s are compared with the
  turn so far (:class:`~.speaker_change.SpeakerChangeDetector`); a change of voice cuts the
  utterance at the quietest point near the change. So a final segment never spans a change of
  speaker that is at least one window long; shorter interjections and overlap stay in the turn
  they interrupt (its most likely speaker).
* **Finals.** A turn is transcribed, in a Whisper call of its own, when it ends (a pause, a
  change of speaker, or the ``max_utterance`` cut) and published at once as a final segment
  with its speaker. Audio is analysed in ``change_hop`` steps whatever the chunk size, so
  the finals do not depend on how the audio was chunked.
* **Speakers.** Every final turn's embedding joins a session-wide clustering
  (:class:`~.clustering.SpeakerClustering`) that re-clusters the recent turns and maps them
  onto the labels already published. When that changes a published turn's speaker (typically
  one of the first turns, judged again once the second voice is heard), the engine publishes
  the same segment again with the new speaker and ``revision`` + 1: a client replaces the
  segment with the same ``offset``. Text and times of a final segment never change.
* **Interim** hypotheses (``interim_results``) carry ``Unknown`` as speaker.

``offset``/``duration`` of a final segment are the turn's speech bounds in the stream; word
times come from Whisper's alignment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..._audio_buffer import AudioBuffer
from ..._exceptions import SessionClosedError
from ..._speech_rate import SPEECH_SAMPLE_RATE as SAMPLE_RATE
from ...segment import Segment, Word
from .asr import WhisperRecognizer, available_cores
from .clustering import voice_similarity
from .settings import DEFAULT_CHANGE_THRESHOLD, ENCODERS, LocalSettings
from .speaker_change import SpeakerChangeDetector
from .turns import ClosedTurn, assign_words, drop_repeated_start
from .vad import SpeechEnded, SpeechStarted, VadEvent, VoiceActivityDetector

__all__ = [
    "DEFAULT_CHANGE_THRESHOLD",
    "UNKNOWN_SPEAKER",
    "LocalEngine",
    "LocalSettings",
    "recognize",
]

#: Speaker label of interim hypotheses (the speaker is decided when the turn ends).
UNKNOWN_SPEAKER = "Unknown"
_LOOKAHEAD = 0.5  # seconds Whisper hears past a cut, so that the cut falls between words
_SAME_VOICE_MARGIN = 0.1  # how much more alike than speaker_threshold undoes a cut
_CUT_TOLERANCE = 0.3  # seconds: how far two Whisper calls may disagree on a word's time
_QUIET_FRAME = 320  # 20 ms: the resolution at which a change is moved to the quietest point


@dataclass(slots=True)
class _Turn:
    """The turn being spoken: where it started, and whether it began at a cut (no pad)."""

    start: int
    after_cut: bool
    next_window: int  # start sample of the next change-detection window


class LocalEngine:
    """VAD → speaker turns → Whisper → session clustering, for one stream (not thread-safe).

    Args:
        settings: engine configuration; the Whisper model is loaded once per process.
        interim_results: also return non-final hypotheses of the growing turn, at most one
            per ``settings.interim_interval`` seconds of new audio and per :meth:`feed`.

    Raises:
        BackendUnavailableError: faster-whisper, onnxruntime or a model is missing.
    """

    def __init__(
        self, settings: LocalSettings | None = None, *, interim_results: bool = False
    ) -> None:
        self.settings = settings or LocalSettings()
        s = self.settings
        self._asr = WhisperRecognizer(
            s.model,
            language=s.language,
            beam_size=s.beam_size,
            compute_type=s.compute_type,
            cpu_threads=s.cpu_threads,
        )
        self._encoder = ENCODERS[s.embedding](s.cpu_threads or available_cores())
        self._vad = VoiceActivityDetector(s.vad)
        self._clusters = s.clustering()
        self._window = round(s.change_window * SAMPLE_RATE)
        self._hop = round(s.change_hop * SAMPLE_RATE)
        self._lookahead = round(_LOOKAHEAD * SAMPLE_RATE)
        self._cut_tolerance = round(_CUT_TOLERANCE * SAMPLE_RATE)
        self._tail_words: tuple[Word, ...] = ()  # words of the last turn, if it ended at a cut
        self._changes = SpeakerChangeDetector(s.change_threshold, self._window)
        self._interim = interim_results
        self._interim_step = round(s.interim_interval * SAMPLE_RATE)
        self._pad = round(s.vad.speech_pad * SAMPLE_RATE)
        self._min_speech = round(s.vad.min_speech * SAMPLE_RATE)
        self._buffer = AudioBuffer(SAMPLE_RATE * 4)
        self._turn: _Turn | None = None
        self._after_cut = False  # the next utterance begins at a max-length cut
        self._closed: list[ClosedTurn] = []  # finished turns not transcribed yet
        self._last_interim = 0  # buffer end at the last interim hypothesis
        self._published: dict[int, Segment] = {}  # clustering piece id -> its latest segment
        self._finished = False

    @property
    def samples_fed(self) -> int:
        """Samples received so far (the stream's clock)."""
        return self._buffer.end

    @property
    def buffered_samples(self) -> int:
        """Samples held for the open turn: at most ``max_utterance`` plus padding."""
        return self._buffer.end - self._buffer.start

    def feed(self, pcm: NDArray[np.int16]) -> list[Segment]:
        """Take the next samples (int16, 16 kHz mono, any length) and return new segments.

        The samples are analysed in ``change_hop`` steps, and a turn is transcribed in the
        step it ends, so final segments are the same however the audio is chunked (a backlog
        or a whole file at once gives what a live stream gives).

        Raises:
            TypeError: ``pcm`` is not a 1-D int16 array.
            SessionClosedError: called after :meth:`finish`.
        """
        if self._finished:
            raise SessionClosedError("the local engine has finished; start a new one")
        if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
            raise TypeError("feed() takes a 1-D numpy int16 array of 16 kHz mono samples")
        segments: list[Segment] = []
        for begin in range(0, len(pcm), self._hop):
            block = pcm[begin : begin + self._hop]
            self._buffer.append(block)
            self._handle(self._vad.feed(block))
            self._detect_changes()
            segments.extend(self._transcribe_closed())
            self._discard_old_audio()
        if (
            self._interim
            and self._turn is not None
            and self._buffer.end - self._last_interim >= self._interim_step
        ):
            segments.extend(self._interim_hypothesis())
        return segments

    def finish(self) -> list[Segment]:
        """End of stream: transcribe the open turn and return its segment(s). Idempotent."""
        if self._finished:
            return []
        self._finished = True
        self._handle(self._vad.flush())
        return self._transcribe_closed()

    def _handle(self, events: list[VadEvent]) -> None:
        for event in events:
            if isinstance(event, SpeechStarted):
                self._open_turn(event.start, after_cut=self._after_cut)
            elif isinstance(event, SpeechEnded) and self._turn is not None:
                start = max(self._turn.start, event.start)
                self._close_turn(ClosedTurn(start, event.end, self._turn.after_cut, event.cut))
                self._turn = None
                self._after_cut = event.cut

    def _open_turn(self, start: int, *, after_cut: bool) -> None:
        self._turn = _Turn(start, after_cut, start)
        self._changes.reset()
        self._last_interim = self._buffer.end

    def _close_turn(self, turn: ClosedTurn) -> None:
        if turn.end - turn.start >= self._min_speech:  # not the sliver left after a cut
            self._closed.append(turn)

    def _detect_changes(self) -> None:
        """Embed the open turn's new windows; at a change of voice, end the turn there."""
        while (turn := self._turn) is not None and self.settings.change_threshold < 1.0:
            analysed = min(self._vad.position, self._buffer.end)
            count = (analysed - turn.next_window - self._window) // self._hop + 1
            if count <= 0:
                return
            first = turn.next_window
            audio = self._buffer.slice(first, first + (count - 1) * self._hop + self._window)
            embeddings = self._encoder.embed_windows(audio, self._window, self._hop)
            turn.next_window += count * self._hop
            cut = None
            for k, embedding in enumerate(embeddings):
                start = first + k * self._hop
                speech = self._vad.speech_fraction(start, start + self._window)
                change = self._changes.add(start, embedding, speech)
                if change is not None:
                    earliest = max(change - self._hop, turn.start + self._window)
                    cut = self._quietest(earliest, change + self._hop)
                    if self._same_voice(turn.start, cut, analysed):
                        cut = None  # a second opinion with all the audio: no change
                        self._changes.reset()
                        continue
                    break
            if cut is None:
                return
            self._close_turn(ClosedTurn(turn.start, cut, turn.after_cut, cut=True))
            self._open_turn(cut, after_cut=True)  # and look again from the change on

    def _same_voice(self, start: int, cut: int, end: int) -> bool:
        """Whether the turn before ``cut`` and the speech after it are one voice after all.

        The windows compared a second of audio with the turn's mean; this compares the
        embeddings of the whole turn so far and of all the speech heard since the change. It
        takes a clearer likeness than the clustering's threshold to undo a change: a wrong cut
        costs a line break, a missed one puts two speakers on one line.
        """
        if cut - start < self._window or end - cut < self._window:
            return False
        before = self._encoder.embed(self._buffer.slice(start, cut))
        after = self._encoder.embed(self._buffer.slice(cut, end))
        similarity = voice_similarity(
            before, after, (cut - start) / SAMPLE_RATE, (end - cut) / SAMPLE_RATE
        )
        return similarity >= self.settings.speaker_threshold + _SAME_VOICE_MARGIN

    def _quietest(self, start: int, end: int) -> int:
        """The middle of the quietest 20 ms frame of ``[start, end)``: where to cut a turn."""
        start = max(start, self._buffer.start)
        audio = self._buffer.slice(start, end).astype(np.float32)
        frames = len(audio) // _QUIET_FRAME
        if frames < 1:
            return start
        energy = np.square(audio[: frames * _QUIET_FRAME]).reshape(frames, -1).sum(axis=1)
        return start + int(np.argmin(energy)) * _QUIET_FRAME + _QUIET_FRAME // 2

    def _transcribe_closed(self) -> list[Segment]:
        """Transcribe the finished turns, each in a Whisper call of its own.

        One call over several short turns loses words at their edges; a call per turn is
        what a live stream gets, and with the encoder reading only the turn's length
        (:mod:`~.asr`) it costs little more.
        """
        closed, self._closed = self._closed, []
        return [segment for turn in closed for segment in self._transcribe_turn(turn)]

    def _transcribe_turn(self, turn: ClosedTurn) -> list[Segment]:
        """One Whisper call for a finished turn: its final segment, if it has words.

        Whisper hears ``_LOOKAHEAD`` of audio past an end that is a cut and keeps only the
        words centred inside the turn (:func:`~.turns.assign_words`): a cut falls between
        words as Whisper hears them. Two calls may time a word at a cut differently, so a turn
        that begins at a cut also takes words centred up to ``_CUT_TOLERANCE`` before it, less
        those that repeat the end of the turn before (:func:`~.turns.drop_repeated_start`):
        no word is lost or given twice.
        """
        first = turn.start - (self._lookahead if turn.after_cut else self._pad)
        last = min(turn.end + (self._lookahead if turn.cut else self._pad), self._buffer.end)
        audio = self._buffer.slice(first, last)
        origin = max(first, self._buffer.start) / SAMPLE_RATE
        result = self._asr.transcribe(_to_float(audio))
        if not result.text:
            return []
        limit = len(audio) / SAMPLE_RATE
        words = [
            Word(
                w.text,
                origin + min(w.start, limit),
                max(0.0, min(w.end, limit) - min(w.start, limit)),
                w.probability,
            )
            for w in result.words
        ]
        placement = turn
        if turn.after_cut:
            placement = dataclasses.replace(turn, start=turn.start - self._cut_tolerance)
        (own,) = assign_words(words, [placement], SAMPLE_RATE)
        if turn.after_cut:
            own = drop_repeated_start(own, self._tail_words)
        self._tail_words = own if turn.cut else ()
        whole = not turn.after_cut and not turn.cut
        text = result.text if whole else " ".join(w.text for w in own)
        if not text:
            return []
        segment = Segment(
            speaker=UNKNOWN_SPEAKER,
            language=result.language,
            text=text,
            offset=turn.start / SAMPLE_RATE,
            duration=(turn.end - turn.start) / SAMPLE_RATE,
            final=True,
            words=own,
        )
        return self._label(segment, self._buffer.slice(turn.start, turn.end))

    def _label(self, segment: Segment, speech: NDArray[np.int16]) -> list[Segment]:
        """Give ``segment`` its speaker; re-publish earlier segments whose speaker changed."""
        try:
            assignment = self._clusters.add(self._encoder.embed(speech), segment.duration)
        except ValueError:  # an all-zero embedding carries no voice
            return [segment]
        labelled = dataclasses.replace(segment, speaker=_speaker(assignment.label))
        corrections = []
        if self.settings.revise_speakers:
            for piece, label in sorted(assignment.revised.items()):
                old = self._published.get(piece)
                if old is not None:
                    new = dataclasses.replace(
                        old, speaker=_speaker(label), revision=old.revision + 1
                    )
                    self._published[piece] = new
                    corrections.append(new)
        self._published[assignment.piece] = labelled
        for piece in [p for p in self._published if p not in self._clusters.labels]:
            del self._published[piece]  # beyond the horizon: final for good
        return [*corrections, labelled]

    def _interim_hypothesis(self) -> list[Segment]:
        assert self._turn is not None
        self._last_interim = self._buffer.end
        start = self._turn.start
        first = start - (self._lookahead if self._turn.after_cut else self._pad)
        audio = self._buffer.slice(first, self._buffer.end)
        result = self._asr.transcribe(_to_float(audio), word_timestamps=False)
        if not result.text:
            return []
        return [
            Segment(
                speaker=UNKNOWN_SPEAKER,
                language=result.language,
                text=result.text,
                offset=start / SAMPLE_RATE,
                duration=(self._buffer.end - start) / SAMPLE_RATE,
                final=False,
            )
        ]

    def _discard_old_audio(self) -> None:
        """Keep only what a turn may still need: bounded by ``max_utterance``."""
        anchor = None if self._turn is None else self._turn.start
        if anchor is None:
            anchor = self._vad.pending_start
        if anchor is None:
            anchor = self._vad.position
        keep = anchor - max(self._pad, self._lookahead)
        self._buffer.discard_before(keep)
        self._vad.discard_before(keep)


def _speaker(label: int) -> str:
    return f"Speaker {label + 1}"


def recognize(pcm: NDArray[np.int16], settings: LocalSettings | None = None) -> list[Segment]:
    """Transcribe a whole recording: the final segments of ``LocalEngine`` over it, each in
    its latest revision (speaker corrections applied), in stream order.

    The finals are those a live stream of the same audio gets.
    """
    engine = LocalEngine(settings)
    latest: dict[float, Segment] = {}
    for segment in engine.feed(pcm) + engine.finish():
        latest[segment.offset] = segment  # a correction replaces the segment at its offset
    return sorted(latest.values(), key=lambda segment: segment.offset)


def _to_float(pcm: NDArray[np.int16]) -> NDArray[np.float32]:
    result: NDArray[np.float32] = pcm.astype(np.float32) / np.float32(32768.0)
    return result
