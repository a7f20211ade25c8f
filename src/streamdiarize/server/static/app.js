// streamdiarize demo page: microphone -> WebSocket (/ws) -> live, speaker-labelled transcript.
// Protocol (docs/protocol.md): a JSON {"type":"start","mime":...} text message, then binary
// audio chunks, then {"type":"stop"}; the server answers ready / segment / end / error.

const $ = (id) => document.getElementById(id);
const ui = {
  mode: $("mode"), interim: $("interim-toggle"),
  start: $("start"), stop: $("stop"), restart: $("restart"),
  state: $("state"), level: $("level"), levelText: $("level-text"),
  format: $("format"), stats: $("stats"), error: $("error"),
  engine: $("engine"), engineLabel: $("engine-label"),
  placeholder: $("placeholder"), lines: $("lines"), interimLine: $("interim"),
};

const TIMESLICE_MS = 100;
const PALETTE = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#65a30d"];
const STATE_TEXT = {
  idle: "idle", starting: "starting microphone…", connecting: "connecting…",
  recording: "streaming", finishing: "finishing…", ended: "ended", closed: "closed", error: "error",
};

let run = null; // the current run: {socket, capture, audio, ...}
const speakerColors = new Map();

// -- small helpers ----------------------------------------------------------------------------

function setState(state, detail = "") {
  ui.state.dataset.state = state;
  ui.state.textContent = STATE_TEXT[state] + (detail ? ` · ${detail}` : "");
  const active = ["starting", "connecting", "recording"].includes(state);
  ui.start.disabled = active || state === "finishing";
  ui.mode.disabled = active || state === "finishing";
  ui.interim.disabled = ui.mode.disabled;
  ui.stop.disabled = !active;
  ui.restart.disabled = !(state === "recording" && run?.capture?.canRestart);
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = "";
}

function clock(seconds) {
  const m = Math.floor(seconds / 60);
  const s = seconds - 60 * m;
  return `${String(m).padStart(2, "0")}:${s.toFixed(1).padStart(4, "0")}`;
}

function colorOf(speaker) {
  if (!speaker || speaker === "Unknown") return "#6b7280";
  if (!speakerColors.has(speaker)) speakerColors.set(speaker, PALETTE[speakerColors.size % PALETTE.length]);
  return speakerColors.get(speaker);
}

function fillLine(line, seg) {
  line.replaceChildren();
  line.dataset.speaker = seg.speaker;
  line.style.setProperty("--speaker", colorOf(seg.speaker));
  const time = document.createElement("time");
  time.textContent = clock(seg.offset);
  time.title = `${seg.offset.toFixed(2)}–${(seg.offset + seg.duration).toFixed(2)} s`;
  const who = document.createElement("span");
  who.className = "speaker";
  who.textContent = seg.speaker;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = seg.text;
  line.append(time, who);
  if (seg.language) {
    const lang = document.createElement("span");
    lang.className = "lang";
    lang.textContent = seg.language;
    line.append(lang);
  }
  line.append(text);
}

function addMarker(text) {
  const marker = document.createElement("div");
  marker.className = "marker";
  marker.textContent = text;
  ui.lines.append(marker);
}

// Final lines by offset: a segment with revision > 0 corrects the speaker of the line it names.
const finalLines = new Map();

function onSegment(seg) {
  ui.placeholder.hidden = true;
  if (seg.final) {
    if (!seg.text) return;
    const known = finalLines.get(seg.offset);
    if (seg.revision > 0 && known) {
      fillLine(known, seg);
      known.dataset.revision = String(seg.revision);
      return;
    }
    const line = document.createElement("div");
    line.className = "line final";
    fillLine(line, seg);
    ui.lines.append(line);
    finalLines.set(seg.offset, line);
    ui.interimLine.hidden = true;
  } else {
    fillLine(ui.interimLine, seg);
    ui.interimLine.hidden = false;
  }
  ui.lines.parentElement.scrollTop = ui.lines.parentElement.scrollHeight;
}

// -- level meter ------------------------------------------------------------------------------

function startMeter(audio, source) {
  const analyser = audio.createAnalyser();
  analyser.fftSize = 2048;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let frame = 0;
  const draw = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
    const db = 10 * Math.log10(Math.max(sum / samples.length, 1e-10));
    const fraction = Math.min(1, Math.max(0, (db + 60) / 60));
    ui.level.style.width = `${(fraction * 100).toFixed(1)}%`;
    ui.level.dataset.hot = db > -3 ? "true" : "false";
    ui.levelText.textContent = `${Math.max(db, -99).toFixed(0)} dBFS`;
    frame = requestAnimationFrame(draw);
  };
  draw();
  return () => {
    cancelAnimationFrame(frame);
    analyser.disconnect();
    ui.level.style.width = "0%";
    ui.levelText.textContent = "– dBFS";
  };
}

// -- capture modes ----------------------------------------------------------------------------

// MediaRecorder, the browser's default container or an explicit one. Restart = stop() then
// start() on the same socket: the server's decoder follows the new stream header.
class RecorderCapture {
  constructor(stream, mimeType, sink) {
    this.stream = stream;
    this.mimeType = mimeType;
    this.sink = sink;
    this.canRestart = true;
    this.announced = false;
  }

  // Resolves once the recorder really records (Firefox takes ~0.5 s after start()).
  start() {
    if (this.mimeType && !MediaRecorder.isTypeSupported(this.mimeType)) {
      throw new Error(`this browser's MediaRecorder cannot record ${this.mimeType}`);
    }
    this.recorder = new MediaRecorder(this.stream, this.mimeType ? { mimeType: this.mimeType } : {});
    this.recorder.ondataavailable = (event) => {
      this.announce(this.recorder.mimeType || event.data.type || "audio/webm");
      this.sink.audio(event.data, event.data.size);
    };
    this.recorder.onerror = (event) => this.sink.fail(`MediaRecorder: ${event.error?.message ?? event.error}`);
    const started = new Promise((resolve) => {
      this.recorder.onstart = () => {
        if (this.recorder.mimeType) this.announce(this.recorder.mimeType);
        resolve();
      };
    });
    this.recorder.start(TIMESLICE_MS);
    return started;
  }

  announce(mime) {
    if (this.announced) return;
    this.announced = true;
    this.sink.begin(mime);
  }

  stopped() {
    return new Promise((resolve) => {
      if (this.recorder.state === "inactive") resolve();
      else this.recorder.addEventListener("stop", () => resolve(), { once: true });
    });
  }

  async restart() {
    const done = this.stopped();
    this.recorder.stop();
    await done; // the last dataavailable of the old stream has fired
    this.recorder.start(TIMESLICE_MS);
  }

  async stop() {
    if (this.recorder.state === "inactive") return;
    const done = this.stopped();
    this.recorder.stop();
    await done;
  }
}

// AudioWorklet: raw mono PCM at the AudioContext's rate, Float32 or Int16, ~100 ms per message.
class WorkletCapture {
  constructor(audio, source, format, sink) {
    this.audio = audio;
    this.source = source;
    this.format = format;
    this.sink = sink;
    this.canRestart = false;
  }

  async start() {
    await this.audio.audioWorklet.addModule("/static/worklet.js");
    this.node = new AudioWorkletNode(this.audio, "pcm-sender", {
      numberOfInputs: 1,
      numberOfOutputs: 0,
      processorOptions: { format: this.format, chunkFrames: Math.round(this.audio.sampleRate * TIMESLICE_MS / 1000) },
    });
    this.node.port.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) this.sink.audio(event.data, event.data.byteLength);
      else if (event.data?.flushed) this.flushed?.();
    };
    this.sink.begin(`audio/pcm;rate=${this.audio.sampleRate};encoding=${this.format === "int16" ? "int16" : "float32"};channels=1`);
    this.source.connect(this.node);
  }

  async stop() {
    if (!this.node) return;
    this.source.disconnect(this.node);
    await new Promise((resolve) => {
      this.flushed = resolve;
      this.node.port.postMessage("flush");
      setTimeout(resolve, 500);
    });
    this.node.port.onmessage = null;
  }
}

// -- one run: microphone + socket + capture ---------------------------------------------------

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws`;
}

function subprotocols() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  return token ? ["streamdiarize.v1", `streamdiarize.token.${token}`] : ["streamdiarize.v1"];
}

class Run {
  constructor(mode, interim) {
    this.mode = mode;
    this.interim = interim;
    this.sent = { messages: 0, bytes: 0 };
    this.finished = false; // end or error received, or the person cancelled
    this.over = false; // the socket closed, the run failed, or Stop came before streaming
  }

  // After each wait in start(): did the run end meanwhile (Stop, a refusal, an error)?
  cancelled() {
    if (this.over) this.abort();
    return this.over;
  }

  async start() {
    setState("starting");
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
    } catch (err) {
      throw new Error(`no microphone: ${err.name}: ${err.message}`);
    }
    if (this.cancelled()) return;
    this.audio = new AudioContext();
    await this.audio.resume();
    this.source = this.audio.createMediaStreamSource(this.stream);
    this.stopMeter = startMeter(this.audio, this.source);

    setState("connecting");
    this.socket = await this.connect();
    if (this.cancelled()) return;
    const sink = {
      begin: (mime) => this.begin(mime),
      audio: (data, size) => this.send(data, size),
      fail: (text) => this.fail(text),
    };
    this.capture = this.mode.startsWith("worklet")
      ? new WorkletCapture(this.audio, this.source, this.mode === "worklet-s16" ? "int16" : "float32", sink)
      : new RecorderCapture(this.stream, this.mode === "recorder-pcm" ? "audio/webm;codecs=pcm" : "", sink);
    await this.capture.start();
    if (this.over) {
      await this.capture.stop(); // refused, or stopped, while the capture was starting
      this.abort();
      return;
    }
    this.streaming = true;
    setState("recording", this.session ? `session ${this.session}` : "waiting for the server");
  }

  connect() {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(socketUrl(), subprotocols());
      socket.binaryType = "arraybuffer";
      socket.onopen = () => {
        socket.onerror = null;
        socket.onmessage = (event) => this.onMessage(event);
        socket.onclose = (event) => this.onClose(event);
        resolve(socket);
      };
      socket.onerror = () => reject(new Error(`cannot connect to ${socketUrl()}`));
      socket.onclose = (event) => reject(new Error(`connection refused (code ${event.code})`));
    });
  }

  begin(mime) {
    this.began = performance.now();
    ui.format.textContent = mime;
    this.mime = mime;
    this.socket.send(JSON.stringify({ type: "start", mime, interim: this.interim }));
  }

  send(data, size) {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    this.socket.send(data);
    this.sent.messages += 1;
    this.sent.bytes += size;
    const kb = (this.sent.bytes / 1024).toFixed(0);
    const queued = this.socket.bufferedAmount > 65536 ? ` · ${(this.socket.bufferedAmount / 1024).toFixed(0)} KB queued` : "";
    ui.stats.textContent = `${this.sent.messages} messages · ${kb} KB sent${queued}`;
  }

  onMessage(event) {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      showError(`the server sent something that is not JSON: ${String(event.data).slice(0, 80)}`);
      return;
    }
    if (message.type === "segment") onSegment(message);
    else if (message.type === "ready") {
      this.session = message.session;
      if (ui.state.dataset.state === "recording") setState("recording", `session ${message.session}`);
    } else if (message.type === "end") {
      this.finished = true;
      ui.interimLine.hidden = true;
      setState("ended", `${message.audio_seconds.toFixed(1)} s of audio`);
    } else if (message.type === "error") {
      this.finished = true;
      showError(`${message.code}: ${message.message}`);
      setState("error", message.code);
    }
  }

  onClose(event) {
    this.over = true;
    this.release();
    ui.interimLine.hidden = true;
    if (!this.finished) {
      const why = event.reason ? `: ${event.reason}` : "";
      showError(`connection closed by the server (code ${event.code}${why})`);
      setState("closed", `code ${event.code}`);
    }
    if (run === this) run = null;
  }

  fail(text) {
    this.over = true;
    showError(text);
    setState("error");
    this.abort();
  }

  async restart() {
    ui.restart.disabled = true;
    await this.capture.restart();
    const after = ((performance.now() - this.began) / 1000).toFixed(1);
    addMarker(`recorder restarted after ${after} s: a new ${this.mime} stream on the same socket`);
    ui.restart.disabled = false;
  }

  // Stop: the last audio, then {"type":"stop"}; the server answers with the last segments
  // and "end". Before streaming began there is nothing to finish: cancel instead.
  async stop() {
    if (!this.streaming) {
      this.over = true;
      this.abort();
      setState("idle");
      return;
    }
    setState("finishing");
    await this.capture.stop();
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: "stop" }));
    this.release();
  }

  abort() {
    this.finished = true; // a close that follows is expected, not an error to show
    this.release();
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
    if (run === this) run = null;
  }

  release() {
    this.stopMeter?.();
    this.stopMeter = null;
    this.stream?.getTracks().forEach((track) => track.stop());
    if (this.audio && this.audio.state !== "closed") this.audio.close();
  }
}

// -- wiring -----------------------------------------------------------------------------------

async function onStart() {
  clearError();
  ui.lines.replaceChildren();
  ui.interimLine.hidden = true;
  ui.placeholder.hidden = false;
  ui.format.textContent = "";
  ui.stats.textContent = "";
  speakerColors.clear();
  finalLines.clear();
  run = new Run(ui.mode.value, ui.interim.checked);
  try {
    await run.start();
  } catch (err) {
    run?.fail(err.message);
  }
}

async function loadInfo() {
  try {
    const response = await fetch("/api/info");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const info = await response.json();
    ui.engine.dataset.engine = info.engine;
    ui.engine.dataset.emulated = String(info.emulated);
    ui.engine.querySelector(".engine-kind").textContent = info.emulated ? "emulator" : info.engine;
    ui.engineLabel.textContent = info.label;
  } catch (err) {
    ui.engineLabel.textContent = "unknown";
    showError(`cannot read /api/info: ${err.message}`);
  }
}

function markUnsupportedModes() {
  const supported = {
    "recorder": typeof MediaRecorder !== "undefined",
    "recorder-pcm": typeof MediaRecorder !== "undefined" && MediaRecorder.isTypeSupported("audio/webm;codecs=pcm"),
    "worklet-f32": typeof AudioWorkletNode !== "undefined",
    "worklet-s16": typeof AudioWorkletNode !== "undefined",
  };
  for (const option of ui.mode.options) {
    if (!supported[option.value]) {
      option.disabled = true;
      option.textContent += " (not in this browser)";
    }
  }
  if (ui.mode.selectedOptions[0]?.disabled) ui.mode.value = [...ui.mode.options].find((o) => !o.disabled)?.value;
}

ui.start.addEventListener("click", onStart);
ui.stop.addEventListener("click", () => run?.stop());
ui.restart.addEventListener("click", () => run?.restart());
markUnsupportedModes();
setState("idle");
loadInfo();
if (!window.isSecureContext) showError("this page is not a secure context: browsers only give the microphone to https:// or http://127.0.0.1 / localhost pages");
