// A real softphoned for the browser tests: its own folder, config and
// Unix socket (like tests/common/mod.rs does for the Rust tests), the
// browser bridge on a free loopback port, and a JSON-RPC client on the
// Unix socket that plays the contact center (callback.offer) and pairs
// the page (bridge.pair).

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const REPO = resolve(new URL('../../..', import.meta.url).pathname);
const TARGET = process.env.CARGO_TARGET_DIR ? resolve(REPO, process.env.CARGO_TARGET_DIR) : join(REPO, 'target');
export const SOFTPHONED = join(TARGET, 'debug', 'softphoned');
export const SOFTPHONECTL = join(TARGET, 'debug', 'softphonectl');

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export async function freeTcpPort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/** A JSON-RPC client over the Unix socket, one object per line. */
export class Rpc {
  static async connect(path) {
    const rpc = new Rpc();
    await new Promise((ok, fail) => {
      rpc.socket = createConnection(path, ok);
      rpc.socket.once('error', fail);
    });
    rpc.socket.on('error', () => {});
    rpc.socket.setEncoding('utf8');
    rpc.socket.on('data', (chunk) => rpc.receive(chunk));
    return rpc;
  }

  constructor() {
    this.buffer = '';
    this.nextId = 1;
    this.pending = new Map();
    this.events = [];
    this.waiters = [];
  }

  receive(chunk) {
    this.buffer += chunk;
    let at;
    while ((at = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, at);
      this.buffer = this.buffer.slice(at + 1);
      if (!line.trim()) continue;
      const message = JSON.parse(line);
      if (message.id !== undefined && message.id !== null) {
        const waiter = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (waiter) message.error ? waiter.fail(Object.assign(new Error(`${waiter.method}: ${message.error.message}`), { code: message.error.code })) : waiter.ok(message.result);
      } else {
        this.events.push({ ...message, at: Date.now() });
        for (const waiter of [...this.waiters]) waiter();
      }
    }
  }

  call(method, params = {}) {
    const id = this.nextId++;
    return new Promise((ok, fail) => {
      this.pending.set(id, { ok, fail, method });
      this.socket.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
    });
  }

  /** The first event (seen so far or to come) that `match` accepts. */
  waitEvent(match, timeoutMs = 15000, what = 'an event') {
    return new Promise((ok, fail) => {
      const check = () => {
        const found = this.events.find((e) => match(e.method, e.params || {}));
        if (!found) return false;
        cleanup();
        ok(found);
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        fail(new Error(`no ${what} within ${timeoutMs} ms; events seen: ${this.events.map((e) => `${e.method} ${JSON.stringify(e.params)}`).slice(-15).join('\n')}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      if (!check()) this.waiters.push(check);
    });
  }

  close() {
    this.socket.destroy();
  }
}

/**
 * Start softphoned. `bridge`: {origins, methods?} (methods: origin -> list);
 * `extra`: TOML appended to the config; `env`: added to its environment
 * (e.g. ALSA_CONFIG_PATH for a software sound card).
 */
export async function startDaemon({ name = 'agent', bridge, extra = '', env = {} } = {}) {
  if (!existsSync(SOFTPHONED)) throw new Error(`${SOFTPHONED} is missing: run cargo build first`);
  const dir = mkdtempSync(join(tmpdir(), 'softphoned-browser-'));
  const socket = join(dir, 'control.sock');
  const bridgePort = await freeTcpPort();
  mkdirSync(join(dir, 'recordings'));
  let bridgeToml = '';
  if (bridge) {
    bridgeToml = `[bridge]\nenabled = true\nlisten = "127.0.0.1:${bridgePort}"\nallowed_origins = ${JSON.stringify(bridge.origins)}\n`;
    if (bridge.methods) {
      bridgeToml += '[bridge.methods]\n';
      for (const [origin, list] of Object.entries(bridge.methods)) bridgeToml += `${JSON.stringify(origin)} = ${JSON.stringify(list)}\n`;
    }
  }
  const config = [
    '[store]', 'path = "history.sqlite3"',
    '[control]', `socket = ${JSON.stringify(socket)}`,
    '[sip]', 'listen = ["udp:127.0.0.1:0"]', `user = "${name}"`,
    '[audio]', 'source = "tone:440"', 'sink = "null"',
    '[recording]', `dir = ${JSON.stringify(join(dir, 'recordings'))}`, 'mode = "on_demand"',
    extra,
    bridgeToml,
  ].join('\n');
  writeFileSync(join(dir, 'softphoned.toml'), config);
  const log = join(dir, 'daemon.log');
  const child = spawn(SOFTPHONED, ['--config', join(dir, 'softphoned.toml')], {
    cwd: dir,
    env: { ...process.env, RUST_LOG: 'debug,rsipstack=info', ...env },
    stdio: ['ignore', 'ignore', openSync(log, 'a')],
  });
  const daemon = new Daemon(child, dir, socket, bridgePort, log);
  await daemon.waitReady();
  return daemon;
}

export class Daemon {
  constructor(child, dir, socket, bridgePort, logPath) {
    Object.assign(this, { child, dir, socket, bridgePort, logPath });
    this.exited = null;
    child.on('exit', (code, signal) => { this.exited = { code, signal }; });
  }

  get bridgeUrl() {
    return `ws://127.0.0.1:${this.bridgePort}/`;
  }

  /** The daemon's log so far, without the colour codes tracing writes. */
  log() {
    try {
      // eslint-disable-next-line no-control-regex
      return readFileSync(this.logPath, 'utf8').replace(/\x1b\[[0-9;]*m/g, '');
    } catch {
      return '';
    }
  }

  async waitReady() {
    for (let i = 0; i < 500; i++) {
      if (this.exited) throw new Error(`softphoned exited (${JSON.stringify(this.exited)}):\n${this.log()}`);
      try {
        this.rpc = await Rpc.connect(this.socket);
        break;
      } catch {
        await sleep(20);
      }
    }
    if (!this.rpc) throw new Error(`softphoned did not open its socket in 10 s:\n${this.log()}`);
    await this.rpc.call('events.subscribe', {});
    const status = await this.rpc.call('daemon.status', {});
    this.sipPort = Number(status.sip_listen[0].split(':').pop());
    this.recordingDir = status.recording_dir;
  }

  /** Pair `origin` over the Unix socket: {id, origin, token}. */
  pair(origin) {
    return this.rpc.call('bridge.pair', { origin });
  }

  /** Log lines after `from` characters that contain every one of `words`. */
  logLines(words, from = 0) {
    return this.log().slice(from).split('\n').filter((line) => words.every((w) => line.includes(w)));
  }

  /** Wait until the log has a line with all of `words` (after `from`). */
  async waitLog(words, from = 0, timeoutMs = 5000) {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const lines = this.logLines(words, from);
      if (lines.length) return lines;
      await sleep(50);
    }
    throw new Error(`no log line with ${JSON.stringify(words)}; log tail:\n${this.log().slice(from).split('\n').slice(-30).join('\n')}`);
  }

  alive() {
    return this.exited === null;
  }

  async stop() {
    if (this.rpc) this.rpc.close();
    if (this.exited) return;
    const gone = new Promise((ok) => this.child.once('exit', ok));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(timer);
    // Its folder goes too, unless KEEP=1 asks to look at it.
    if (!process.env.KEEP) rmSync(this.dir, { recursive: true, force: true });
    else console.log(`kept ${this.dir}`);
  }
}
