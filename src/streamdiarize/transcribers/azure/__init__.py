"""Azure Speech ConversationTranscriber backend: diarization, language ID, word timings."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._base import SegmentSink, Transcriber, TranscriberStream
from ._credentials import AzureCredentials, mask_secret
from ._sdk import Recognition, build_recognition, build_speech_config, current_token
from ._settings import NO_PACING, AzureSettings
from ._source import AudioSource
from ._stream import AzureStream

if TYPE_CHECKING:
    import azure.cognitiveservices.speech as speechsdk

__all__ = ["NO_PACING", "AzureCredentials", "AzureSettings", "AzureTranscriber"]


class AzureTranscriber(Transcriber):
    """Azure Speech ConversationTranscriber: live, speaker-labelled (``Guest-1``…) transcripts.

    Args:
        languages: BCP-47 locales. One: recognise that language. Several (up to 10): continuous
            language identification among them; each segment carries the detected language.
        key: the Speech resource key; default ``SPEECH_KEY`` (ignored when a token is given).
        region: the resource's region, e.g. ``"westeurope"``; default ``SPEECH_REGION``.
        endpoint: a ``wss://`` endpoint URL instead of a region; default ``SPEECH_ENDPOINT``.
        host: ``wss://host`` or ``ws://127.0.0.1:PORT`` instead of a region; default
            ``SPEECH_HOST``.
        auth_token: a bearer token instead of the key (see :class:`AzureCredentials`).
        token_provider: a callable returning a fresh token, for sessions that outlive one.
        token_credential: an ``azure.core`` ``TokenCredential`` (needs ``endpoint``).
        word_timestamps: ask for word-level timings (detailed output).
        diarize_interim: speaker ids on interim results too (when interim results are asked).
        phrases: a phrase list that biases recognition towards these words and names.
        profanity: ``"masked"`` (service default), ``"removed"`` or ``"raw"``.
        log_file: path for the SDK's own log (it never contains the key; audio is not logged).
        passthrough: push the client's container bytes to the SDK unchanged
            (``AudioStreamContainerFormat``); needs GStreamer on the server. Default: decode
            here and push 16 kHz PCM, which needs nothing else.
        passthrough_format: ``"any"`` (WebM and others) or ``"ogg"`` (Ogg/Opus).
        max_reconnects: fresh connections tried after the SDK's own retries give up.
        max_replay_seconds: audio kept for re-sending after a reconnect; also the most audio
            that may go unanswered by the service before ``send()`` waits (the SDK gives up
            at about 66 s of unanswered audio).
        max_buffered_seconds: audio that may wait for the SDK to read it before
            ``send()`` waits (backpressure from a slow or stalled service).
        finish_timeout: seconds to wait for the service's last results on close.
        connect_timeout: seconds ``open()`` waits for the WebSocket to the service, so that
            rejected credentials raise right there rather than on the first result.
        stall_timeout: a service that answers nothing for this long while as much sent audio
            waits counts as a lost connection (the SDK reports no stall itself); ``None``
            turns the watchdog off.
        segmentation_silence_ms: silence that ends a phrase (service default ≈ 500 ms).
        pace_audio: keep the SDK's own pacing (the first 5 s of audio at once, then twice
            real time), right for live streams. ``False`` sends audio as fast as the connection
            allows: for files, batch jobs and tests.
        properties: extra SDK properties by name (``SpeechConfig.set_property_by_name``).

    Attributes:
        settings: these options, checked (:class:`AzureSettings`, frozen).
        token_refresh_seconds: how often a live recognizer gets a new token from
            ``token_provider`` (8 minutes; Entra ID tokens live about 10).

    Raises:
        ConfigurationError: missing credentials or location, or a bad option value.
    """

    def __init__(
        self,
        languages: Sequence[str] = ("en-US",),
        *,
        key: str | None = None,
        region: str | None = None,
        endpoint: str | None = None,
        host: str | None = None,
        auth_token: str | None = None,
        token_provider: Callable[[], str] | None = None,
        token_credential: Any = None,
        word_timestamps: bool = True,
        diarize_interim: bool = True,
        phrases: Sequence[str] = (),
        profanity: str = "masked",
        log_file: str | None = None,
        passthrough: bool = False,
        passthrough_format: str = "any",
        max_reconnects: int = 3,
        max_replay_seconds: float = 60.0,
        max_buffered_seconds: float = 10.0,
        finish_timeout: float = 20.0,
        connect_timeout: float = 10.0,
        stall_timeout: float | None = 60.0,
        segmentation_silence_ms: int | None = None,
        pace_audio: bool = True,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        props = dict(properties or {})
        if not pace_audio:
            props.update(NO_PACING)
        self.settings = AzureSettings(
            credentials=AzureCredentials(
                key=key,
                region=region,
                endpoint=endpoint,
                host=host,
                auth_token=auth_token,
                token_provider=token_provider,
                token_credential=token_credential,
            ).with_environment(),
            languages=tuple(languages),
            word_timestamps=word_timestamps,
            diarize_interim=diarize_interim,
            phrases=tuple(phrases),
            profanity=profanity,
            log_file=log_file,
            passthrough=passthrough,
            passthrough_format=passthrough_format,
            max_reconnects=max_reconnects,
            max_replay_seconds=max_replay_seconds,
            max_buffered_seconds=max_buffered_seconds,
            finish_timeout=finish_timeout,
            connect_timeout=connect_timeout,
            stall_timeout=stall_timeout,
            segmentation_silence_ms=segmentation_silence_ms,
            properties=props,
        )
        self.token_refresh_seconds = 8 * 60.0

    def __repr__(self) -> str:
        c = self.credentials
        where = c.host or c.endpoint or c.region
        return (
            f"AzureTranscriber(languages={list(self.languages)}, where={where!r}, "
            f"key={mask_secret(c.key)}, passthrough={self.settings.passthrough})"
        )

    @property
    def credentials(self) -> AzureCredentials:
        """Where the service is and how to authenticate (secrets masked in ``repr()``)."""
        return self.settings.credentials

    @property
    def languages(self) -> tuple[str, ...]:
        """The configured locales."""
        return self.settings.languages

    @property
    def default_language(self) -> str | None:
        """The language to report when only one is configured (the service names none then)."""
        return self.settings.default_language

    async def open(self, sink: SegmentSink, *, interim_results: bool = False) -> TranscriberStream:
        stream = AzureStream(self, sink, interim_results=interim_results)
        try:
            await stream.start()
        except BaseException:
            await stream.aclose()
            raise
        return stream

    # -- SDK objects (built in a worker thread) ------------------------------------------

    def speech_config(self, token: str | None = None) -> speechsdk.SpeechConfig:
        """The SDK ``SpeechConfig`` these settings describe (credentials, output, language ID).

        Args:
            token: a bearer token to use instead of the key (fetched per connection).
        """
        return build_speech_config(self.settings, token)

    def build_recognizer(self, source: AudioSource) -> Recognition:
        """A ConversationTranscriber pulling audio from ``source``, phrase list applied.

        Returns the recognizer, its audio stream and its ``Connection`` (which reports the
        WebSocket opening): keep them alive together.
        """
        token = current_token(self.credentials)
        return build_recognition(self.settings, source, self.speech_config(token), token)
