"""What an Azure transcriber asks of the service and of itself: one frozen, checked record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..._exceptions import ConfigurationError
from ._credentials import AzureCredentials

__all__ = ["NO_PACING", "PASSTHROUGH_FORMATS", "PROFANITY", "AzureSettings"]

PROFANITY = ("masked", "removed", "raw")

#: The SDK property that lifts its send pacing (measured: 66 s of audio in 0.36 s, not 30 s).
NO_PACING = {"SPEECH-TransmitLengthBeforeThrottleMs": "100000000"}

#: ``passthrough_format`` names and the ``AudioStreamContainerFormat`` member each selects.
#: Only containers the session can decode too: it measures every message, passthrough or not.
PASSTHROUGH_FORMATS = {"ogg": "OGG_OPUS", "any": "ANY"}


@dataclass(frozen=True)
class AzureSettings:
    """The options of :class:`~streamdiarize.AzureTranscriber`, checked once.

    The fields are the transcriber's arguments (see there); ``passthrough`` is the SDK's
    compressed input, ``properties`` already hold ``NO_PACING`` when pacing is off.

    Raises:
        ConfigurationError: a bad language count, ``profanity`` or ``passthrough_format``.
    """

    credentials: AzureCredentials
    languages: tuple[str, ...]
    word_timestamps: bool
    diarize_interim: bool
    phrases: tuple[str, ...]
    profanity: str
    log_file: str | None
    passthrough: bool
    passthrough_format: str
    max_reconnects: int
    max_replay_seconds: float
    max_buffered_seconds: float
    finish_timeout: float
    connect_timeout: float
    stall_timeout: float | None
    segmentation_silence_ms: int | None
    properties: Mapping[str, str]

    def __post_init__(self) -> None:
        if not 1 <= len(self.languages) <= 10:
            raise ConfigurationError(f"give 1 to 10 languages, got {len(self.languages)}")
        if self.profanity not in PROFANITY:
            raise ConfigurationError(
                f"profanity must be one of {PROFANITY}, got {self.profanity!r}"
            )
        if self.passthrough_format not in PASSTHROUGH_FORMATS:
            raise ConfigurationError(
                f"passthrough_format must be one of {tuple(PASSTHROUGH_FORMATS)}"
            )

    @property
    def default_language(self) -> str | None:
        """The language to report when only one is configured (the service names none then)."""
        return self.languages[0] if len(self.languages) == 1 else None
