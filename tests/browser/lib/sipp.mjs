// sipp peers for the browser tests, started as tests/common/sipp.rs starts
// them (same scenarios in tests/sipp/, same flags), judged by their exit
// code and their message log; and a tcpdump capture of the RTP the daemon
// sends a peer, decoded with tshark, so "silence while muted" and "the
// customer hears the colleague" are read off the wire.

import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO } from './daemon.mjs';

const SCENARIOS = join(REPO, 'tests', 'sipp');

// Every sipp and tcpdump started, so a failed test leaves none running
// (a live child would also keep node's test runner waiting).
const children = new Set();
function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** Kill every peer and capture still running (call in after()). */
export function killPeers() {
  for (const child of children) child.kill('SIGKILL');
}

async function udpFree(port) {
  return new Promise((ok) => {
    const s = createSocket('udp4');
    s.once('error', () => ok(false));
    s.bind(port, '127.0.0.1', () => s.close(() => ok(true)));
  });
}

async function anyUdpPort() {
  return new Promise((ok) => {
    const s = createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** An even free UDP port whose successor (RTCP) and +2 (sipp's echo port) are free too. */
export async function freePortPair() {
  for (;;) {
    const port = await anyUdpPort();
    if (port % 2 === 0 && port < 65000 && (await udpFree(port + 1)) && (await udpFree(port + 2)) && (await udpFree(port + 3))) return port;
  }
}

/** tone1k.ulaw (30 s of 1 kHz, raw μ-law) in `dir`: what uas_tone.xml streams. */
export function writeToneFile(dir) {
  const made = spawnSync('sox', ['-n', '-r', '8000', '-c', '1', '-e', 'u-law', '-t', 'raw', 'tone1k.ulaw', 'synth', '30', 'sine', '1000'], { cwd: dir });
  if (made.status !== 0) throw new Error(`sox failed: ${made.stderr}`);
}

export class Sipp {
  /** sipp with `scenario` in `dir`, SIP on `port`, media on `mediaPort`. */
  static async start(dir, scenario, port, mediaPort, extra = []) {
    const name = scenario.replace(/\.xml$/, '').replace(/\W/g, '_') + `_${port}`;
    const args = ['-sf', join(SCENARIOS, scenario), '-i', '127.0.0.1', '-mi', '127.0.0.1', '-ci', '127.0.0.1',
      '-p', String(port), '-mp', String(mediaPort), '-m', '1', '-nostdin', '-timeout', '60', '-timeout_error', '-recv_timeout', '20000',
      '-trace_msg', '-message_file', `${name}.msg`, '-trace_err', '-error_file', `${name}.err`,
      ...(extra.includes('-key') ? [] : ['-key', 'hdr', 'X-Softphoned-Test: plain']), ...extra];
    const child = track(spawn('sipp', args, { cwd: dir, stdio: ['ignore', 'ignore', 'ignore'] }));
    const sipp = new Sipp(child, dir, name, port);
    for (let i = 0; i < 250 && (await udpFree(port)); i++) await sleep(20);
    if (await udpFree(port)) throw new Error(`sipp ${scenario} did not bind 127.0.0.1:${port}`);
    return sipp;
  }

  /** A sipp UAC calling `service`@`target` with `scenario`. */
  static async call(dir, scenario, target, service, extra = []) {
    return Sipp.start(dir, scenario, await freePortPair(), await freePortPair(), [target, '-s', service, ...extra]);
  }

  constructor(child, dir, name, port) {
    Object.assign(this, { child, dir, name, port });
    this.exit = new Promise((ok) => child.on('exit', (code, signal) => ok({ code, signal })));
  }

  uri(user = 'customer') {
    return `sip:${user}@127.0.0.1:${this.port}`;
  }

  /** The full text of every message sipp sent and received so far. */
  log() {
    const file = join(this.dir, `${this.name}.msg`);
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  errors() {
    const file = join(this.dir, `${this.name}.err`);
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  /** Wait for sipp to finish (at most `timeoutMs`); throws unless it exited 0. */
  async expectSuccess(timeoutMs = 30000) {
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const { code, signal } = await this.exit;
    clearTimeout(timer);
    if (code !== 0) throw new Error(`sipp ${this.name} failed (${code ?? signal}):\n${this.errors()}\n${this.log().slice(-4000)}`);
    return this.log();
  }

  /** Wait until sipp's log contains `text` (a message it sent or received). */
  async waitLog(text, timeoutMs = 15000) {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (this.log().includes(text)) return;
      await sleep(50);
    }
    throw new Error(`sipp ${this.name} never logged ${JSON.stringify(text)}:\n${this.log().slice(-3000)}`);
  }

  kill() {
    this.child.kill('SIGKILL');
  }
}

/** Capture UDP to 127.0.0.1:`port` (what the daemon sends a peer's media port). */
export class Capture {
  static async start(dir, port) {
    const file = join(dir, `rtp-${port}.pcap`);
    const child = track(spawn('tcpdump', ['-i', 'lo', '-n', '-U', '--immediate-mode', '-w', file, `udp and dst host 127.0.0.1 and dst port ${port}`], { stdio: ['ignore', 'ignore', 'pipe'] }));
    let err = '';
    await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`tcpdump did not start: ${err}`)), 5000);
      child.stderr.on('data', (d) => {
        err += d;
        if (err.includes('listening on')) {
          clearTimeout(timer);
          ok();
        }
      });
      child.on('exit', () => fail(new Error(`tcpdump exited: ${err}`)));
    });
    return new Capture(child, file, port);
  }

  constructor(child, file, port) {
    Object.assign(this, { child, file, port });
  }

  /** Stop and return [{t (epoch s), samples (Int16Array, μ-law decoded)}] of PCMU packets. */
  async stop() {
    await sleep(300); // what is in flight reaches the file
    const gone = new Promise((ok) => this.child.on('exit', ok));
    this.child.kill('SIGINT');
    await gone;
    const out = spawnSync('tshark', ['-r', this.file, '-d', `udp.port==${this.port},rtp`, '-Y', 'rtp.p_type==0', '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'rtp.payload'],
      { encoding: 'utf8', maxBuffer: 64 << 20 });
    return out.stdout.split('\n').filter(Boolean).map((line) => {
      const [t, hex] = line.split('\t');
      const bytes = Buffer.from((hex || '').replace(/:/g, ''), 'hex');
      return { t: Number(t), samples: Int16Array.from(bytes, ulaw) };
    });
  }
}

/** The RFC 4733 events in a stopped capture, as keys ("1", "#"), each once. */
export function rtpEvents(capture) {
  const out = spawnSync('tshark', ['-r', capture.file, '-d', `udp.port==${capture.port},rtp`, '-Y', 'rtpevent', '-T', 'fields', '-e', 'rtp.timestamp', '-e', 'rtpevent.event_id'],
    { encoding: 'utf8' });
  const keys = '0123456789*#ABCD';
  const seen = new Map(); // one event per RTP timestamp (its packets repeat it)
  for (const line of out.stdout.split('\n').filter(Boolean)) {
    const [ts, id] = line.split('\t');
    if (!seen.has(ts)) seen.set(ts, keys[Number(id)]);
  }
  return [...seen.values()].join('');
}

/** G.711 μ-law byte to a 16-bit sample. */
export function ulaw(byte) {
  const u = ~byte & 0xff;
  const t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
  return u & 0x80 ? 0x84 - t : t - 0x84;
}

/** The amplitude of `hz` in `samples` at `rate` (Goertzel). */
export function toneAmplitude(samples, rate, hz) {
  if (!samples.length) return 0;
  const w = (2 * Math.PI * hz) / rate;
  const coeff = 2 * Math.cos(w);
  let s1 = 0;
  let s2 = 0;
  for (const x of samples) {
    const s0 = x + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  return (2 * Math.sqrt(Math.max(power, 0))) / samples.length;
}

/** The samples of the packets captured between epoch seconds `from` and `to`. */
export function window(packets, from, to) {
  const picked = packets.filter((p) => p.t >= from && p.t <= to);
  const out = new Int16Array(picked.reduce((n, p) => n + p.samples.length, 0));
  let at = 0;
  for (const p of picked) {
    out.set(p.samples, at);
    at += p.samples.length;
  }
  return out;
}
