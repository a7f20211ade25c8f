// AudioWorklet processor: mixes the input to mono and posts ~100 ms chunks of raw PCM
// (Float32 or Int16, little-endian as on every platform browsers run on) to the page.
// A "flush" message posts the partial chunk, then {flushed: true}.

class PcmSender extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { format, chunkFrames } = options.processorOptions;
    this.int16 = format === "int16";
    this.chunk = new Float32Array(chunkFrames);
    this.filled = 0;
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        this.post(this.filled);
        this.port.postMessage({ flushed: true });
      }
    };
  }

  post(frames) {
    if (frames === 0) return;
    const samples = this.chunk.subarray(0, frames);
    let out;
    if (this.int16) {
      out = new Int16Array(frames);
      for (let i = 0; i < frames; i++) {
        const s = Math.max(-1, Math.min(1, samples[i]));
        out[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
      }
    } else {
      out = samples.slice();
    }
    this.port.postMessage(out.buffer, [out.buffer]);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // no input connected yet
    const frames = channels[0].length;
    let offset = 0;
    while (offset < frames) {
      const n = Math.min(frames - offset, this.chunk.length - this.filled);
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let c = 0; c < channels.length; c++) sum += channels[c][offset + i];
        this.chunk[this.filled + i] = sum / channels.length;
      }
      this.filled += n;
      offset += n;
      if (this.filled === this.chunk.length) this.post(this.filled);
    }
    return true;
  }
}

registerProcessor("pcm-sender", PcmSender);
