"""Audio checks for the browser tests: the fake microphone's file, decoding what reached the
server (through the library), and normalized cross-correlation against the source dialog."""

from __future__ import annotations

import itertools
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

from streamdiarize import ChunkReassembler, resample

RATE = 16_000


def read_wav(path: Path) -> tuple[NDArray[np.int16], int]:
    """Mono 16-bit WAV samples and rate."""
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2), path
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return data, wav.getframerate()


def decode_recording(source: Path, rate: int) -> NDArray[np.int16]:
    """Any recording FFmpeg reads (here Opus in Ogg) as mono int16 at ``rate``, decoded and
    resampled by FFmpeg (PyAV): a reference independent of the library's own decoders."""
    with av.open(str(source)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        parts = [
            frame.to_ndarray().reshape(-1)
            for packet in container.demux(audio=0)
            for decoded in packet.decode()
            for frame in resampler.resample(decoded)
        ]
        parts += [frame.to_ndarray().reshape(-1) for frame in resampler.resample(None)]
    return np.concatenate(parts).astype(np.int16)


def write_dialog_48k(source: Path, target: Path) -> Path:
    """``source`` (16 kHz dialog) as the 48 kHz mono s16 WAV Chromium's fake device plays."""
    pcm, rate = read_wav(source)
    up = resample(pcm.astype(np.float32) / 32768.0, rate, 48_000)
    return write_wav_48k(np.clip(np.rint(up * 32768.0), -32768, 32767).astype("<i2"), target)


def write_recording_48k(source: Path, target: Path) -> Path:
    """Any recording FFmpeg reads as the 48 kHz WAV Chromium's fake device plays."""
    return write_wav_48k(decode_recording(source, 48_000), target)


def write_wav_48k(samples: NDArray[np.int16], target: Path) -> Path:
    """Mono 16-bit samples as a 48 kHz WAV file."""
    with wave.open(str(target), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(48_000)
        wav.writeframes(samples.astype("<i2").tobytes())
    return target


@dataclass(frozen=True)
class Decoded:
    """What the server's bytes decode to, and where new streams (restarts) began."""

    pcm: NDArray[np.int16]
    boundaries: tuple[int, ...]  # output sample index of each restart
    restarts: int

    def parts(self) -> list[NDArray[np.int16]]:
        edges = [0, *self.boundaries, len(self.pcm)]
        return [self.pcm[a:b] for a, b in itertools.pairwise(edges)]


def decode(messages: list[bytes], mime: str) -> Decoded:
    """Feed the messages, in order, to a :class:`ChunkReassembler` as the server did."""
    reassembler = ChunkReassembler(mime=mime)
    out: list[NDArray[np.int16]] = []
    boundaries: list[int] = []
    for message in messages:
        restarts = reassembler.restarts
        before = sum(len(p) for p in out)
        out.append(reassembler.feed(message))
        if reassembler.restarts != restarts:
            boundaries.append(before)
    out.append(reassembler.flush())
    pcm = np.concatenate(out) if out else np.zeros(0, np.int16)
    return Decoded(pcm, tuple(boundaries), reassembler.restarts)


@dataclass(frozen=True)
class Alignment:
    lag: float  # seconds into the capture at which the dialog starts (negative: cut)
    ncc: float  # normalized cross-correlation over the overlap at that lag
    overlap: float  # seconds of overlap


def align(
    capture: NDArray[np.int16], reference: NDArray[np.int16], max_lag: float = 3.0
) -> Alignment:
    """Best lag of ``reference`` inside ``capture`` (FFT cross-correlation), and its NCC over
    the overlapping samples only (captures may hold part of the dialog)."""
    x = capture.astype(np.float64)
    y = reference.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(x) + len(y))))
    corr = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(y, size)), size)
    limit = int(max_lag * RATE)
    lags = np.concatenate((np.arange(0, limit + 1), np.arange(-limit, 0)))
    best = int(lags[np.argmax(corr[lags % size])])
    xs = x[max(best, 0) :]
    ys = y[max(-best, 0) :]
    n = min(len(xs), len(ys))
    xs, ys = xs[:n], ys[:n]
    energy = np.sqrt(np.dot(xs, xs) * np.dot(ys, ys))
    ncc = float(np.dot(xs, ys) / energy) if energy > 0 else 0.0
    return Alignment(best / RATE, ncc, n / RATE)


def windowed_ncc(
    capture: NDArray[np.int16],
    reference: NDArray[np.int16],
    lag: float,
    *,
    window: float = 0.25,
    search: float = 0.06,
    min_level_dbfs: float = -40.0,
) -> NDArray[np.float64]:
    """NCC of every voiced ``window`` of ``reference`` at its best lag within ``search`` of
    ``lag``: robust to the small timing steps of a browser's input path (Firefox shifts by
    ~12 ms inside the first second; see tests/data/captures/README.md)."""
    x = capture.astype(np.float64)
    y = reference.astype(np.float64)
    size, reach, shift = round(window * RATE), round(search * RATE), round(lag * RATE)
    # cumulative energy of the capture, for the energy of every slice at once
    energy = np.concatenate(([0.0], np.cumsum(x * x)))
    scores = []
    for start in range(0, len(y) - size + 1, size):
        ref = y[start : start + size]
        if 10 * np.log10(np.mean(ref**2) / 32768.0**2 + 1e-12) < min_level_dbfs:
            continue
        lo, hi = start + shift - reach, start + shift + reach + size
        if lo < 0 or hi > len(x):
            continue  # not inside the capture
        corr = np.correlate(x[lo:hi], ref, mode="valid")
        slices = energy[lo + size : hi + 1] - energy[lo : hi - size + 1]
        norms = np.sqrt(np.maximum(slices, 1e-9) * np.dot(ref, ref))
        scores.append(float(np.max(corr / norms)))
    return np.array(scores)
