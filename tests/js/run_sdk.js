#!/usr/bin/env node
// Run Microsoft's JavaScript Speech SDK against a speech service (FakeSpeechService in the
// tests) and print every event it raises as one JSON line on stdout.
//
// Usage: node run_sdk.js CONFIG.json   (or the JSON itself on stdin with "-")
//
// Config keys (all optional except audio and one of host / endpoint):
//   host          "ws://127.0.0.1:PORT": SpeechConfig.fromHost
//   endpoint      "ws://127.0.0.1:PORT/path?query": SpeechConfig.fromEndpoint
//   key           subscription key (sent as the Ocp-Apim-Subscription-Key header and query
//                 parameter); token: an authorization token instead (Authorization: Bearer)
//   recognizer    "conversation" (ConversationTranscriber, default) or "speech"
//                 (SpeechRecognizer, continuous recognition)
//   language      recognition language (default "en-US"); languages: a list for automatic
//                 language identification (AutoDetectSourceLanguageConfig)
//   words         request word-level timestamps
//   diarizeIntermediates  ask for speakers on transcribing events
//   properties    {"PropertyIdName or raw name": "value"} set on the SpeechConfig
//   audio         path of a 16 kHz 16-bit mono WAV file (or raw PCM)
//   pace          push the audio in 100 ms chunks at this many times real time; 0 (default)
//                 pushes it all at once. The JS SDK stops reading its stream at its end: a
//                 reconnect after that sends no audio, so drops need a live pace.
//   throttle      keep the SDK's pacing (5 s at once, then 2x real time); default off
//   timeoutMs     give up (exit code 3, a "timeout" line) after this long; default 30000
//
// Lines: {"event": "transcribing"|"transcribed"|"recognizing"|"recognized", "at", "text",
// "speakerId", "offset", "duration", "reason", "language", "json"}, {"event": "canceled",
// "reason", "errorCode", "errorDetails"}, {"event": "sessionStarted"|"sessionStopped"},
// then {"event": "done", "stopMs"}. Offsets and durations are 100 ns ticks, "at" is ms from
// the start of recognition.
"use strict";

const fs = require("fs");
const sdk = require("microsoft-cognitiveservices-speech-sdk");

function readConfig() {
  const arg = process.argv[2];
  if (!arg) {
    throw new Error("usage: node run_sdk.js CONFIG.json (or - for stdin)");
  }
  return JSON.parse(fs.readFileSync(arg === "-" ? 0 : arg, "utf8"));
}

function pcmOf(path) {
  const data = fs.readFileSync(path);
  if (data.subarray(0, 4).toString("latin1") !== "RIFF") {
    return data;
  }
  // Walk the RIFF chunks to the "data" chunk; the SDK's push stream takes bare PCM.
  let at = 12;
  while (at + 8 <= data.length) {
    const id = data.subarray(at, at + 4).toString("latin1");
    const size = data.readUInt32LE(at + 4);
    if (id === "data") {
      return data.subarray(at + 8, at + 8 + size);
    }
    at += 8 + size + (size % 2);
  }
  throw new Error(`${path}: no data chunk`);
}

function speechConfig(config) {
  let speech;
  if (config.endpoint) {
    speech = config.token
      ? sdk.SpeechConfig.fromEndpoint(new URL(config.endpoint))
      : sdk.SpeechConfig.fromEndpoint(new URL(config.endpoint), config.key);
  } else if (config.host) {
    speech = config.token
      ? sdk.SpeechConfig.fromHost(new URL(config.host))
      : sdk.SpeechConfig.fromHost(new URL(config.host), config.key);
  } else {
    throw new Error("config needs host or endpoint");
  }
  if (config.token) {
    speech.authorizationToken = config.token;
  }
  speech.speechRecognitionLanguage = config.language || "en-US";
  if (config.words) {
    speech.requestWordLevelTimestamps();
  }
  if (config.diarizeIntermediates) {
    speech.setProperty(sdk.PropertyId.SpeechServiceResponse_DiarizeIntermediateResults, "true");
  }
  if (!config.throttle) {
    speech.setProperty("SPEECH-TransmitLengthBeforThrottleMs", "3600000");
  }
  for (const [name, value] of Object.entries(config.properties || {})) {
    const id = sdk.PropertyId[name];
    if (id === undefined) {
      speech.setProperty(name, String(value));
    } else {
      speech.setProperty(id, String(value));
    }
  }
  return speech;
}

function push(stream, pcm, pace) {
  const bytes = (start, end) => pcm.buffer.slice(pcm.byteOffset + start, pcm.byteOffset + end);
  if (!(pace > 0)) {
    stream.write(bytes(0, pcm.length));
    stream.close();
    return;
  }
  const chunk = 3200; // 100 ms of 16 kHz 16-bit mono
  let at = 0;
  const next = () => {
    if (at >= pcm.length) {
      stream.close();
      return;
    }
    stream.write(bytes(at, Math.min(at + chunk, pcm.length)));
    at += chunk;
    setTimeout(next, 100 / pace);
  };
  next();
}

function main() {
  const config = readConfig();
  const started = Date.now();
  const emit = (event, fields) => {
    process.stdout.write(JSON.stringify({ event, at: Date.now() - started, ...fields }) + "\n");
  };
  const timer = setTimeout(() => {
    emit("timeout", {});
    process.exit(3);
  }, config.timeoutMs || 30000);

  const format = sdk.AudioStreamFormat.getWaveFormatPCM(16000, 16, 1);
  const stream = sdk.AudioInputStream.createPushStream(format);
  const audio = sdk.AudioConfig.fromStreamInput(stream);
  const speech = speechConfig(config);
  const conversation = (config.recognizer || "conversation") === "conversation";
  let recognizer;
  if (config.languages) {
    const detect = sdk.AutoDetectSourceLanguageConfig.fromLanguages(config.languages);
    recognizer = conversation
      ? sdk.ConversationTranscriber.FromConfig(speech, detect, audio)
      : sdk.SpeechRecognizer.FromConfig(speech, detect, audio);
  } else {
    recognizer = conversation
      ? new sdk.ConversationTranscriber(speech, audio)
      : new sdk.SpeechRecognizer(speech, audio);
  }

  const result = (kind) => (_, e) => {
    const r = e.result;
    // The detected language, which AutoDetectSourceLanguageResult.fromResult also reads.
    const language = r.language || null;
    emit(kind, {
      text: r.text,
      speakerId: r.speakerId === undefined ? null : r.speakerId,
      offset: r.offset,
      duration: r.duration,
      reason: sdk.ResultReason[r.reason],
      language,
      json: r.json,
    });
  };
  const [interim, final] = conversation
    ? ["transcribing", "transcribed"]
    : ["recognizing", "recognized"];
  recognizer[interim] = result(interim);
  recognizer[final] = result(final);
  recognizer.sessionStarted = () => emit("sessionStarted", {});

  let finished = false;
  const finish = () => {
    if (finished) {
      return;
    }
    finished = true;
    const t0 = Date.now();
    const stop = conversation
      ? (ok, fail) => recognizer.stopTranscribingAsync(ok, fail)
      : (ok, fail) => recognizer.stopContinuousRecognitionAsync(ok, fail);
    const close = () => {
      emit("done", { stopMs: Date.now() - t0 });
      recognizer.close();
      clearTimeout(timer);
    };
    stop(close, (err) => {
      emit("stopFailed", { error: String(err) });
      close();
    });
  };
  recognizer.canceled = (_, e) => {
    emit("canceled", {
      reason: sdk.CancellationReason[e.reason],
      errorCode: sdk.CancellationErrorCode[e.errorCode],
      errorDetails: e.errorDetails || "",
    });
    if (e.reason === sdk.CancellationReason.Error) {
      finish(); // the SDK raises no sessionStopped after an error
    }
  };
  recognizer.sessionStopped = () => {
    emit("sessionStopped", {});
    finish();
  };

  const start = conversation
    ? (ok, fail) => recognizer.startTranscribingAsync(ok, fail)
    : (ok, fail) => recognizer.startContinuousRecognitionAsync(ok, fail);
  start(
    () => push(stream, pcmOf(config.audio), config.pace || 0),
    (err) => {
      emit("startFailed", { error: String(err) });
      finish();
    },
  );
}

main();
