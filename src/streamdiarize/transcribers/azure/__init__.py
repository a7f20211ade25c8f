"""Azure Speech ConversationTranscriber backend: diarization, language ID, word timings."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..._exceptions import ConfigurationError
from .._base import SAMPLE_RATE, SegmentSink, Transcriber, TranscriberStream
from ._credentials import AzureCredentials, mask_secret, set_recognizer_token
from ._source import AudioSource
from ._stream import AzureStream

__all__ = ["AzureCredentials", "AzureTranscriber"]

_PROFANITY = ("masked", "removed", "raw")

#: The SDK property that lifts its send pacing (measured: 66 s of audio in 0.36 s, not 30 s).
NO_PACING = {"SPEECH-TransmitLengthBeforeThrottleMs": "100000000"}
_PASSTHROUGH_FORMATS = {"ogg": "OGG_OPUS", "any": "ANY", "mp3": "MP3", "flac": "FLAC"}


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
        credentials: where the service is and how to authenticate (secrets masked in
            ``repr()``).
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
        self.credentials = AzureCredentials.resolve(
            key=key,
            region=region,
            endpoint=endpoint,
            host=host,
            auth_token=auth_token,
            token_provider=token_provider,
            token_credential=token_credential,
        )
        self.languages = tuple(languages)
        if not 1 <= len(self.languages) <= 10:
            raise ConfigurationError(f"give 1 to 10 languages, got {len(self.languages)}")
        if profanity not in _PROFANITY:
            raise ConfigurationError(f"profanity must be one of {_PROFANITY}, got {profanity!r}")
        if passthrough_format not in _PASSTHROUGH_FORMATS:
            raise ConfigurationError(
                f"passthrough_format must be one of {tuple(_PASSTHROUGH_FORMATS)}"
            )
        self.word_timestamps = word_timestamps
        self.diarize_interim = diarize_interim
        self.phrases = tuple(phrases)
        self.profanity = profanity
        self.log_file = log_file
        self.accepts_encoded = passthrough
        self.passthrough_format = passthrough_format
        self.max_reconnects = max_reconnects
        self.max_replay_seconds = max_replay_seconds
        self.max_buffered_seconds = max_buffered_seconds
        self.finish_timeout = finish_timeout
        self.connect_timeout = connect_timeout
        self.stall_timeout = stall_timeout
        self.segmentation_silence_ms = segmentation_silence_ms
        self.properties = dict(properties or {})
        if not pace_audio:
            self.properties.update(NO_PACING)
        self.token_refresh_seconds = 8 * 60.0

    def __repr__(self) -> str:
        c = self.credentials
        where = c.host or c.endpoint or c.region
        return (
            f"AzureTranscriber(languages={list(self.languages)}, where={where!r}, "
            f"key={mask_secret(c.key)}, passthrough={self.accepts_encoded})"
        )

    @property
    def default_language(self) -> str | None:
        """The language to report when only one is configured (the service names none then)."""
        return self.languages[0] if len(self.languages) == 1 else None

    async def open(self, sink: SegmentSink, *, interim_results: bool = False) -> TranscriberStream:
        stream = AzureStream(self, sink, interim_results=interim_results)
        try:
            await stream.start()
        except BaseException:
            await stream.aclose()
            raise
        return stream

    # -- SDK object construction (runs in a worker thread) ---------------------------------

    def _token(self) -> str | None:
        c = self.credentials
        return c.auth_token or (c.token_provider() if c.token_provider else None)

    def speech_config(self, token: str | None = None) -> Any:
        """The SDK ``SpeechConfig`` these settings describe (credentials, output, language ID).

        Args:
            token: a bearer token to use instead of the key (fetched per connection).
        """
        import azure.cognitiveservices.speech as speechsdk

        c = self.credentials
        kwargs: dict[str, Any] = {}
        if c.host:
            kwargs["host"] = c.host
        elif c.endpoint:
            kwargs["endpoint"] = c.endpoint
        else:
            kwargs["region"] = c.region
        if c.token_credential is not None:
            kwargs["token_credential"] = c.token_credential
        elif token and "region" in kwargs:
            kwargs["auth_token"] = token
        elif c.key:
            kwargs["subscription"] = c.key
        config = speechsdk.SpeechConfig(**kwargs)
        pid = speechsdk.PropertyId
        if self.word_timestamps:
            config.request_word_level_timestamps()
            config.output_format = speechsdk.OutputFormat.Detailed
        if self.diarize_interim:
            config.set_property(pid.SpeechServiceResponse_DiarizeIntermediateResults, "true")
        config.set_profanity(getattr(speechsdk.ProfanityOption, self.profanity.capitalize()))
        if len(self.languages) > 1:
            config.set_property(pid.SpeechServiceConnection_LanguageIdMode, "Continuous")
        if self.log_file:
            config.set_property(pid.Speech_LogFilename, self.log_file)
        if self.segmentation_silence_ms is not None:
            config.set_property(
                pid.Speech_SegmentationSilenceTimeoutMs, str(self.segmentation_silence_ms)
            )
        for name, value in self.properties.items():
            config.set_property_by_name(name, value)
        return config

    def build_recognizer(self, source: AudioSource) -> tuple[Any, Any, Any]:
        """A ConversationTranscriber pulling audio from ``source``, phrase list applied.

        Returns the recognizer, its audio stream and its ``Connection`` (which reports the
        WebSocket opening): keep them alive together (the SDK's native side keeps only raw
        pointers to the stream and its callback).
        """
        import azure.cognitiveservices.speech as speechsdk

        if self.accepts_encoded:
            container = getattr(
                speechsdk.AudioStreamContainerFormat, _PASSTHROUGH_FORMATS[self.passthrough_format]
            )
            stream_format = speechsdk.audio.AudioStreamFormat(compressed_stream_format=container)
        else:
            stream_format = speechsdk.audio.AudioStreamFormat(
                samples_per_second=SAMPLE_RATE, bits_per_sample=16, channels=1
            )
        stream = speechsdk.audio.PullAudioInputStream(source, stream_format)
        audio_config = speechsdk.audio.AudioConfig(stream=stream)
        language_kwargs: dict[str, Any]
        if len(self.languages) > 1:
            language_kwargs = {
                "auto_detect_source_language_config": (
                    speechsdk.languageconfig.AutoDetectSourceLanguageConfig(
                        languages=list(self.languages)
                    )
                )
            }
        else:
            language_kwargs = {"language": self.languages[0]}
        token = self._token()
        recognizer = speechsdk.transcription.ConversationTranscriber(
            speech_config=self.speech_config(token), audio_config=audio_config, **language_kwargs
        )
        c = self.credentials
        if token and (c.host or c.endpoint) and c.token_credential is None:
            set_recognizer_token(recognizer, token)
        if self.phrases:
            grammar = speechsdk.PhraseListGrammar.from_recognizer(recognizer)
            for phrase in self.phrases:
                grammar.addPhrase(phrase)
        return recognizer, stream, speechsdk.Connection.from_recognizer(recognizer)
