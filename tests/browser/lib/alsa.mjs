// Two software headsets for the daemon, made of ALSA plugins (as
// tests/alsa/file-card.conf.in does for the Rust tests): each speaker is a
// `file` tap over `null`, writing raw S16_LE 48 kHz stereo into a FIFO that
// this process drains at the card's real rate (null alone would take audio
// as fast as it is written, and a full FIFO blocks ALSA). What each FIFO
// carried is kept with its arrival time, so a test can say which headset
// played what, and when. The daemon gets the file via ALSA_CONFIG_PATH.

import { spawnSync } from 'node:child_process';
import { createReadStream, writeFileSync, openSync, closeSync, constants } from 'node:fs';
import { join } from 'node:path';

export const CARD_RATE = 48000;
const BYTES_PER_SECOND = CARD_RATE * 2 * 2; // S16_LE, stereo

function speaker(name, description, fifo) {
  return `pcm.${name} {
    type plug
    slave {
        pcm { type file slave.pcm "null" file "${fifo}" format "raw" }
        format S16_LE
        rate ${CARD_RATE}
        channels 2
    }
    hint { show on description "${description}" }
}
`;
}

/**
 * Write `dir`/asound.conf with headsets `names` ({name: description}); the
 * system default plays on the first and captures from null (the daemon's
 * microphone stays its test tone in these tests). Returns {config, fifos}.
 */
export function softwareHeadsets(dir, names) {
  const fifos = {};
  let text = '</usr/share/alsa/alsa.conf>\n\n';
  const list = Object.entries(names);
  text += `pcm.!default {\n    type asym\n    playback.pcm "${list[0][0]}"\n    capture.pcm "null"\n}\n\n`;
  for (const [name, description] of list) {
    fifos[name] = join(dir, `${name}.fifo`);
    const made = spawnSync('mkfifo', [fifos[name]]);
    if (made.status !== 0) throw new Error(`mkfifo ${fifos[name]}: ${made.stderr}`);
    text += speaker(name, description, fifos[name]);
  }
  const config = join(dir, 'asound.conf');
  writeFileSync(config, text);
  return { config, fifos };
}

/**
 * Drain `fifo` at the card's rate, again and again (ALSA opens and closes
 * it each time the device is probed or opened). `chunks`: [{t (epoch ms),
 * samples (Int16Array, left channel)}].
 */
export class PacedSpeaker {
  constructor(fifo) {
    this.fifo = fifo;
    this.chunks = [];
    this.opens = 0;
    this.stopped = false;
    this.open();
  }

  open() {
    if (this.stopped) return;
    // The open blocks (in libuv's pool) until ALSA opens the FIFO to write.
    const stream = createReadStream(this.fifo, { highWaterMark: 3840 });
    this.stream = stream;
    let start = null;
    let bytes = 0;
    let odd = null;
    stream.on('open', () => { this.opens++; });
    stream.on('data', (chunk) => {
      if (start === null) start = Date.now();
      if (odd) { chunk = Buffer.concat([odd, chunk]); odd = null; }
      const whole = chunk.length - (chunk.length % 4);
      if (whole < chunk.length) odd = chunk.subarray(whole);
      const frame = new Int16Array(whole / 4);
      for (let i = 0; i < frame.length; i++) frame[i] = chunk.readInt16LE(i * 4);
      this.chunks.push({ t: Date.now(), samples: frame });
      bytes += chunk.length;
      // Ahead of real time: wait until the card would have played it.
      const ahead = (bytes / BYTES_PER_SECOND) * 1000 - (Date.now() - start);
      if (ahead > 1) {
        stream.pause();
        setTimeout(() => stream.resume(), ahead);
      }
    });
    stream.on('end', () => this.open());
    stream.on('error', () => {});
  }

  /** The samples played between epoch ms `from` and `to`. */
  between(from, to) {
    const picked = this.chunks.filter((c) => c.t >= from && c.t <= to);
    const out = new Int16Array(picked.reduce((n, c) => n + c.samples.length, 0));
    let at = 0;
    for (const c of picked) {
      out.set(c.samples, at);
      at += c.samples.length;
    }
    return out;
  }

  /** Stop draining; a reader still blocked in open() is released by opening the other end. */
  stop() {
    this.stopped = true;
    this.stream?.destroy();
    try {
      closeSync(openSync(this.fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // no reader waiting: nothing to release
    }
  }
}
