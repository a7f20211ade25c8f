"""What configures the local engine: :class:`LocalSettings`, and the speaker embedders."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from ..._exceptions import ConfigurationError
from .asr import DEFAULT_BEAM_SIZE
from .campplus_embedding import CampPlusEncoder
from .clustering import DEFAULT_THRESHOLD, SpeakerClustering
from .embedding import SpeakerEncoder
from .vad import VadOptions

__all__ = ["DEFAULT_CHANGE_THRESHOLD", "ENCODERS", "LocalSettings", "SpeakerEmbedder"]

#: Cosine distance between a turn and a 1 s window that marks a change of speaker.
DEFAULT_CHANGE_THRESHOLD = 0.45


@dataclass(frozen=True, slots=True)
class LocalSettings:
    """Everything that configures the local engine (shared by every stream of a transcriber).

    Attributes:
        model: CTranslate2 Whisper model directory; ``None``: bundled ``tiny.en``.
        language: language to transcribe (``tiny.en``: only ``"en"``); ``None`` lets a
            multilingual model detect it per utterance.
        beam_size: Whisper beam width (1: greedy).
        compute_type: CTranslate2 quantisation.
        cpu_threads: CTranslate2 and speaker-embedding threads (0: one per available core).
        vad: utterance segmentation.
        speaker_threshold: centroid cosine similarity, normalised for the seconds of speech
            behind it (:mod:`~.clustering`), at which two groups of turns are one speaker.
        change_threshold: cosine distance between the current turn and a window of speech
            that starts a new turn; 1.0 or more turns change detection off.
        change_window: seconds of speech per embedding window of the change detector.
        change_hop: seconds between two windows.
        min_speakers: at least this many speakers once as many turns were heard (``None``:
            no minimum).
        max_speakers: cap on distinct speakers (``None``: no cap).
        revise_speakers: publish corrected speakers of recent final segments (``revision``
            > 0); ``False`` keeps every first decision.
        interim_interval: seconds of new audio between two interim hypotheses.
        embedding: the speaker-embedding network: ``"campplus"`` (CAM++, 2023; the default)
            or ``"ge2e"`` (Resemblyzer's GE2E, 2018).
    """

    model: str | os.PathLike[str] | None = None
    language: str | None = "en"
    beam_size: int = DEFAULT_BEAM_SIZE
    compute_type: str = "int8"
    cpu_threads: int = 0
    vad: VadOptions = field(default_factory=VadOptions)
    speaker_threshold: float = DEFAULT_THRESHOLD
    change_threshold: float = DEFAULT_CHANGE_THRESHOLD
    change_window: float = 1.0
    change_hop: float = 0.25
    min_speakers: int | None = None
    max_speakers: int | None = None
    revise_speakers: bool = True
    interim_interval: float = 1.0
    embedding: Literal["campplus", "ge2e"] = "campplus"

    def __post_init__(self) -> None:
        if self.interim_interval <= 0:
            raise ConfigurationError(
                f"interim_interval must be > 0 seconds, got {self.interim_interval}"
            )
        if (
            not 0.25 <= self.change_window <= 4.0
            or not 0.01 <= self.change_hop <= self.change_window
        ):
            raise ConfigurationError(
                "change_window must be 0.25-4 s and change_hop 0.01 s up to change_window, got "
                f"{self.change_window} and {self.change_hop}"
            )
        if self.embedding not in ENCODERS:
            raise ConfigurationError(
                f"unknown speaker embedding {self.embedding!r}: choose one of {', '.join(ENCODERS)}"
            )
        # Validate the clustering arguments now, not when the first session opens.
        self.clustering()

    def clustering(self) -> SpeakerClustering:
        """A new session-wide clustering with these settings."""
        return SpeakerClustering(
            self.speaker_threshold,
            min_speakers=self.min_speakers,
            max_speakers=self.max_speakers,
        )


class SpeakerEmbedder(Protocol):
    """A speaker-embedding network: :class:`CampPlusEncoder` or :class:`SpeakerEncoder`."""

    def embed(self, pcm: NDArray[np.int16]) -> NDArray[np.float32]:
        """Unit-length embedding of one clip."""

    def embed_windows(self, pcm: NDArray[np.int16], window: int, hop: int) -> NDArray[np.float32]:
        """Unit-length embeddings of the windows ``[k * hop, k * hop + window)``."""


ENCODERS: dict[str, Callable[[int], SpeakerEmbedder]] = {
    "campplus": lambda threads: CampPlusEncoder(threads=threads),
    "ge2e": lambda _threads: SpeakerEncoder(),
}
