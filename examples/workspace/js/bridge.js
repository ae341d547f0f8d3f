// The page's only way to the daemon: softphoned's browser bridge, a
// WebSocket on loopback speaking the same JSON-RPC 2.0 as the Unix socket
// (proto/openrpc.json), one object per text frame.
//
// Why it looks the way it does:
// - The token is sent in the first frame (`bridge.auth`), never in the URL,
//   so it does not end up in server logs, history or Referer headers.
// - Nothing else may be sent before that answer: the daemon would not
//   answer it anyway, and a queued request would only time out.
// - A close with 1008 (policy) means the daemon refused us on purpose
//   (a token it does not know, a frame too large, too many frames): we do
//   not hammer it with reconnects then, the agent has to pair again.
//   Any other loss (daemon restarted, laptop slept) reconnects with
//   backoff, and the subscription's snapshot rebuilds the screen.

export const SUBPROTOCOL = 'softphoned.v1';

/** A JSON-RPC error answer, with its stable code (README: -32000 ...). */
export class RpcError extends Error {
  constructor(method, error) {
    super(error.message);
    this.name = 'RpcError';
    this.method = method;
    this.code = error.code;
    this.data = error.data;
  }
}

// Codes a page reacts to by name.
export const REFUSED = -32004; // the bridge does not let this origin call it
export const UNKNOWN_METHOD = -32601; // a daemon older than this page
export const BAD_PARAMS = -32602;

const REQUEST_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 5_000;

export class Bridge extends EventTarget {
  /** `url`: ws://127.0.0.1:PORT/; `token`: from `softphonectl bridge pair`. */
  constructor(url, token) {
    super();
    this.url = url;
    this.token = token;
    this.ws = null;
    this.nextId = 2; // 1 is bridge.auth's
    this.pending = new Map();
    this.status = { state: 'idle' };
    this.grant = null; // {origin, methods} once authenticated
    this.retryMs = 500;
    this.stopped = false;
  }

  /** Connect (and keep reconnecting after ordinary losses). */
  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000, 'page closed the bridge');
  }

  setStatus(status) {
    this.status = status;
    this.dispatchEvent(new CustomEvent('status', { detail: status }));
  }

  open() {
    let ws;
    this.setStatus({ state: 'connecting', url: this.url });
    try {
      ws = new WebSocket(this.url, SUBPROTOCOL);
    } catch (e) {
      // A malformed URL (or one CSP forbids) throws synchronously.
      this.setStatus({ state: 'failed', reason: String(e.message || e) });
      return;
    }
    this.ws = ws;
    let opened = false;
    // A connection the browser blocks (CSP) or a handshake that hangs
    // must not leave the page "connecting" for ever.
    const stalled = setTimeout(() => {
      if (opened) return;
      ws.close();
      this.closed(ws, { code: 1006, reason: 'no answer' }, false);
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      clearTimeout(stalled);
      opened = true;
      this.authenticate(ws);
    };
    ws.onmessage = (frame) => this.receive(frame.data);
    ws.onclose = (close) => {
      clearTimeout(stalled);
      this.closed(ws, close, opened);
    };
    // onerror carries no detail by design (browsers hide why a socket
    // failed from pages); onclose follows with code 1006.
  }

  authenticate(ws) {
    this.setStatus({ state: 'authenticating' });
    const auth = { jsonrpc: '2.0', id: 1, method: 'bridge.auth', params: { token: this.token } };
    this.pending.set(1, {
      method: 'bridge.auth',
      resolve: (grant) => {
        this.grant = grant;
        this.retryMs = 500;
        this.setStatus({ state: 'ready', origin: grant.origin, methods: grant.methods });
        this.dispatchEvent(new CustomEvent('ready', { detail: grant }));
      },
      reject: (error) => {
        this.setStatus({ state: 'refused', reason: error.message, code: error.code });
      },
    });
    ws.send(JSON.stringify(auth));
  }

  closed(ws, close, opened) {
    if (ws !== this.ws) return;
    this.ws = null;
    for (const [, waiter] of this.pending) {
      waiter.reject(new RpcError(waiter.method, { code: -1, message: 'the bridge closed' }));
    }
    this.pending.clear();
    this.grant = null;
    const detail = { code: close.code, reason: close.reason, opened };
    this.dispatchEvent(new CustomEvent('closed', { detail }));
    if (close.code === 1008) {
      // Refused on purpose: say why and wait for the agent.
      this.setStatus({ state: 'refused', code: 1008, reason: close.reason || 'policy' });
      return;
    }
    if (this.stopped) {
      this.setStatus({ state: 'idle' });
      return;
    }
    // Never opened: HTTP 403 before the upgrade (origin not allowed, bad
    // subprotocol) or nothing listening. The browser tells us only 1006.
    const state = opened ? 'lost' : 'unreachable';
    this.setStatus({ state, code: close.code, reason: close.reason, retryInMs: this.retryMs });
    this.retryTimer = setTimeout(() => this.open(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 10_000);
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return; // the daemon sends only JSON; ignore anything else
    }
    if (message.id === undefined || message.id === null) {
      if (message.method) {
        this.dispatchEvent(new CustomEvent('event', { detail: { method: message.method, params: message.params || {} } }));
      }
      return;
    }
    const waiter = this.pending.get(message.id);
    if (!waiter) return;
    this.pending.delete(message.id);
    clearTimeout(waiter.timer);
    if (message.error) waiter.reject(new RpcError(waiter.method, message.error));
    else waiter.resolve(message.result);
  }

  /** Call a method; resolves with its result, rejects with an RpcError. */
  call(method, params = {}) {
    if (!this.ws || this.status.state !== 'ready') {
      return Promise.reject(new RpcError(method, { code: -1, message: 'not connected to softphoned' }));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcError(method, { code: -2, message: `${method}: no answer in ${REQUEST_TIMEOUT_MS / 1000} s` }));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { method, resolve, reject, timer });
      this.ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  /** Whether the bridge lets this origin call `method` (`methods` null: all). */
  allows(method) {
    const methods = this.grant && this.grant.methods;
    return !methods || methods.includes(method);
  }
}
