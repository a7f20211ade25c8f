"""Speech SDK objects built from :class:`AzureSettings`: the config, the recognizer, its token.

The SDK is imported inside each function, so that importing streamdiarize does not load
it; these calls block (native setup) and run in worker threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from .._base import SAMPLE_RATE
from ._credentials import AzureCredentials
from ._settings import PASSTHROUGH_FORMATS, AzureSettings
from ._source import AudioSource

if TYPE_CHECKING:
    import azure.cognitiveservices.speech as speechsdk

__all__ = ["Recognition", "build_recognition", "build_speech_config", "current_token"]


class Recognition(NamedTuple):
    """The SDK objects of one recognizer: keep them alive together.

    The SDK's native side keeps only raw pointers to the audio stream and its callback.
    """

    recognizer: speechsdk.transcription.ConversationTranscriber
    audio_stream: speechsdk.audio.PullAudioInputStream
    #: Reports the WebSocket opening (``connected``).
    connection: speechsdk.Connection


def current_token(credentials: AzureCredentials) -> str | None:
    """The bearer token for a new connection: the given one, else a fresh one from the provider."""
    c = credentials
    return c.auth_token or (c.token_provider() if c.token_provider else None)


def build_speech_config(
    settings: AzureSettings, token: str | None = None
) -> speechsdk.SpeechConfig:
    """The ``SpeechConfig`` ``settings`` describe (credentials, output, language ID).

    Args:
        token: a bearer token to use instead of the key (fetched per connection).
    """
    import azure.cognitiveservices.speech as speechsdk

    c = settings.credentials
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
    if settings.word_timestamps:
        config.request_word_level_timestamps()
        config.output_format = speechsdk.OutputFormat.Detailed
    if settings.diarize_interim:
        config.set_property(pid.SpeechServiceResponse_DiarizeIntermediateResults, "true")
    config.set_profanity(getattr(speechsdk.ProfanityOption, settings.profanity.capitalize()))
    if len(settings.languages) > 1:
        config.set_property(pid.SpeechServiceConnection_LanguageIdMode, "Continuous")
    if settings.log_file:
        config.set_property(pid.Speech_LogFilename, settings.log_file)
    if settings.segmentation_silence_ms is not None:
        config.set_property(
            pid.Speech_SegmentationSilenceTimeoutMs, str(settings.segmentation_silence_ms)
        )
    for name, value in settings.properties.items():
        config.set_property_by_name(name, value)
    return config


def build_recognition(
    settings: AzureSettings,
    source: AudioSource,
    speech_config: speechsdk.SpeechConfig,
    token: str | None,
) -> Recognition:
    """A ConversationTranscriber pulling audio from ``source``, phrase list applied.

    Args:
        speech_config: the config built for ``token`` (see :func:`build_speech_config`).
        token: the bearer token of this connection, if any.
    """
    import azure.cognitiveservices.speech as speechsdk

    if settings.passthrough:
        container = getattr(
            speechsdk.AudioStreamContainerFormat, PASSTHROUGH_FORMATS[settings.passthrough_format]
        )
        stream_format = speechsdk.audio.AudioStreamFormat(compressed_stream_format=container)
    else:
        stream_format = speechsdk.audio.AudioStreamFormat(
            samples_per_second=SAMPLE_RATE, bits_per_sample=16, channels=1
        )
    stream = speechsdk.audio.PullAudioInputStream(source, stream_format)
    audio_config = speechsdk.audio.AudioConfig(stream=stream)
    language_kwargs: dict[str, Any]
    if len(settings.languages) > 1:
        language_kwargs = {
            "auto_detect_source_language_config": (
                speechsdk.languageconfig.AutoDetectSourceLanguageConfig(
                    languages=list(settings.languages)
                )
            )
        }
    else:
        language_kwargs = {"language": settings.languages[0]}
    recognizer = speechsdk.transcription.ConversationTranscriber(
        speech_config=speech_config, audio_config=audio_config, **language_kwargs
    )
    c = settings.credentials
    if token and (c.host or c.endpoint) and c.token_credential is None:
        set_recognizer_token(recognizer, token)
    if settings.phrases:
        grammar = speechsdk.PhraseListGrammar.from_recognizer(recognizer)
        for phrase in settings.phrases:
            grammar.addPhrase(phrase)
    return Recognition(recognizer, stream, speechsdk.Connection.from_recognizer(recognizer))


def set_recognizer_token(
    recognizer: speechsdk.transcription.ConversationTranscriber, token: str
) -> None:
    """Give a ConversationTranscriber a (new) bearer token.

    Its ``authorization_token`` setter fails in SDK 1.53 (it assigns through ``super()``:
    ``AttributeError``), so the property that setter means is set directly.
    """
    import azure.cognitiveservices.speech as speechsdk

    recognizer.properties.set_property(speechsdk.PropertyId.SpeechServiceAuthorization_Token, token)
