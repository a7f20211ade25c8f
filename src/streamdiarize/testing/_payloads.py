"""The JSON bodies of the service's results, shaped by what the client's context asked for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._recognizers import Hypothesis, Phrase

__all__ = ["TICKS", "OutputOptions", "hypothesis_body", "phrase_body", "ticks"]

TICKS = 10_000_000  # 100 ns ticks per second


@dataclass(frozen=True, slots=True)
class OutputOptions:
    """What the client's ``speech.context`` asked to see in results."""

    detailed: bool
    word_timings: bool
    word_confidence: bool
    language_id: bool
    diarize_interim: bool

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> OutputOptions:
        """The options a ``speech.context`` asks for (detailed output, word timings, ...)."""
        output = _dict(context.get("phraseOutput"))
        options = _dict(output.get("detailed")).get("options") or []
        diarization = _dict(_dict(context.get("phraseDetection")).get("speakerDiarization"))
        return cls(
            detailed=str(output.get("format", "")).lower() == "detailed",
            word_timings="WordTimings" in options,
            word_confidence="WordConfidence" in options,
            language_id="languageId" in context,
            diarize_interim=str(diarization.get("diarizeIntermediates", "")).lower() == "true",
        )


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def ticks(seconds: float) -> int:
    """``seconds`` in the service's 100 ns ticks."""
    return round(seconds * TICKS)


def _language(language: str | None, output: OutputOptions) -> dict[str, Any]:
    if not output.language_id or language is None:
        return {}
    return {"PrimaryLanguage": {"Language": language, "Confidence": "High"}}


def hypothesis_body(result: Hypothesis, output: OutputOptions) -> dict[str, Any]:
    """The ``speech.hypothesis`` JSON for ``result``."""
    return {
        "Text": result.text,
        "Offset": ticks(result.offset),
        "Duration": ticks(result.duration),
        "SpeakerId": result.speaker if output.diarize_interim else "Unknown",
        "Channel": 0,
        **_language(result.language, output),
    }


def phrase_body(result: Phrase, output: OutputOptions) -> dict[str, Any]:
    """The ``speech.phrase`` JSON for ``result`` (detailed, with words, when asked for)."""
    body: dict[str, Any] = {
        "RecognitionStatus": result.status,
        "Offset": ticks(result.offset),
        "Duration": ticks(result.duration),
        "Channel": 0,
        "SpeakerId": result.speaker if result.status == "Success" else "Unknown",
    }
    if result.status != "Success":
        return body
    body["DisplayText"] = result.text
    body.update(_language(result.language, output))
    if output.detailed:
        lexical = " ".join(w.text for w in result.words) or result.text.lower()
        best: dict[str, Any] = {
            "Confidence": result.confidence,
            "Lexical": lexical,
            "ITN": lexical,
            "MaskedITN": lexical,
            "Display": result.text,
        }
        if output.word_timings:
            best["Words"] = [
                {
                    "Word": w.text,
                    "Offset": ticks(w.offset),
                    "Duration": ticks(w.duration),
                    **({"Confidence": result.confidence} if output.word_confidence else {}),
                }
                for w in result.words
            ]
        body["NBest"] = [best]
    return body
