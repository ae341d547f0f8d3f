// What the page knows, built only from the daemon's answers and events.
// The page never guesses a state: a button press sends a request, and the
// screen changes when the daemon's event says it did (the daemon may be
// driven by other tabs, softphonectl, or its own countdowns at the same
// time). After a reconnect everything is dropped and rebuilt from the
// subscription's snapshot.

const CLOSED = 'closed';

export class Store extends EventTarget {
  constructor() {
    super();
    this.reset();
  }

  reset() {
    this.calls = new Map(); // call id -> last call.state params (+ since)
    this.callbacks = new Map(); // open callback id -> last callback.state params
    this.callCountdowns = new Map(); // call id -> {kind, deadline, total}
    this.callbackCountdowns = new Map(); // callback id -> {kind, deadline, total}
    this.quality = new Map(); // call id -> last call.quality params
    this.recordings = new Map(); // call id -> {state, path, duration_ms, reason}
    this.flags = new Map(); // call id -> the agent's flags on it (call.flags)
    this.saved = []; // recording.saved of this session, newest first
    this.history = [];
    this.agentState = null;
    this.audio = null; // {inputs, outputs, in_use}
    this.level = null; // last audio.level, when the daemon sends it
    this.focus = null; // the callback the Callback actions component shows
    this.changed();
  }

  changed(what = 'all') {
    this.dispatchEvent(new CustomEvent('change', { detail: what }));
  }

  /** Apply one notification from the daemon. */
  apply({ method, params }) {
    const handler = HANDLERS[method];
    if (handler) handler.call(this, params);
    this.changed(method);
  }

  /** Live calls in the order they came. */
  liveCalls() {
    return [...this.calls.values()].filter((c) => c.state !== 'ended');
  }

  /** The open callback whose call this is, if any. */
  callbackOfCall(callId) {
    for (const cb of this.callbacks.values()) if (cb.call === callId) return cb;
    return null;
  }

  /** The callback shown in the Callback actions component. */
  focused() {
    if (this.focus && this.callbacks.has(this.focus)) {
      const cb = this.callbacks.get(this.focus);
      if (!['offered', 'scheduled'].includes(cb.state)) return cb;
    }
    // Otherwise the one the agent is working on: the latest accepted.
    const working = [...this.callbacks.values()].filter((cb) => !['offered', 'scheduled'].includes(cb.state));
    return working.length ? working[working.length - 1] : null;
  }
}

const HANDLERS = {
  'call.state'(p) {
    const before = this.calls.get(p.call);
    if (p.state === 'ended') {
      this.calls.delete(p.call);
      this.callCountdowns.delete(p.call);
      this.quality.delete(p.call);
      this.flags.delete(p.call);
      const rec = this.recordings.get(p.call);
      // The daemon saves the file when the call ends; recording.saved follows.
      if (rec && rec.state !== 'saved') rec.state = 'saving';
      return;
    }
    // `since` (the page's clock) times the call from the answer on.
    const connected = ['connected', 'held', 'remote_held', 'transferring'].includes(p.state);
    const since = before && before.since ? before.since : connected ? performance.now() : null;
    // The snapshot after a (re)subscription carries the recording and the flags.
    if (p.recording) this.recordings.set(p.call, { ...p.recording });
    if (p.flags) this.flags.set(p.call, p.flags);
    const { recording, flags, ...call } = p;
    this.calls.set(p.call, { ...call, since });
  },

  'call.flags'(p) {
    this.flags.set(p.call, p.flags);
  },

  'call.countdown'(p) {
    if (p.stopped) this.callCountdowns.delete(p.call);
    else {
      const old = this.callCountdowns.get(p.call);
      this.callCountdowns.set(p.call, { kind: p.kind, deadline: performance.now() + p.remaining_ms, total: old ? old.total : p.remaining_ms });
    }
  },

  'call.quality'(p) {
    this.quality.set(p.call, p);
  },

  'callback.state'(p) {
    if (p.state === CLOSED) {
      this.callbacks.delete(p.callback);
      this.callbackCountdowns.delete(p.callback);
      if (this.focus === p.callback) this.focus = null;
      this.dispatchEvent(new CustomEvent('closed', { detail: p }));
      return;
    }
    this.callbacks.set(p.callback, p);
    // An accept (by this tab or another) brings the callback to the front.
    if (p.state === 'preview' && !this.focus) this.focus = p.callback;
  },

  'callback.countdown'(p) {
    if (p.stopped) this.callbackCountdowns.delete(p.callback);
    else {
      const old = this.callbackCountdowns.get(p.callback);
      const total = old && old.kind === p.kind ? old.total : p.remaining_ms;
      this.callbackCountdowns.set(p.callback, { kind: p.kind, deadline: performance.now() + p.remaining_ms, total });
    }
  },

  'recording.state'(p) {
    const state = p.state === 'stopped' ? 'saving' : p.state;
    this.recordings.set(p.call, { state, path: p.path });
  },

  'recording.saved'(p) {
    this.recordings.set(p.call, { state: 'saved', path: p.path, duration_ms: p.duration_ms });
    this.saved.unshift(p);
  },

  'recording.failed'(p) {
    this.recordings.set(p.call, { state: 'failed', reason: p.reason });
  },

  'agent.state'(p) {
    this.agentState = p.state;
  },

  'audio.device'(p) {
    if (this.audio) this.audio = { ...this.audio, in_use: p.audio };
    this.lastAudioChange = p;
  },

  'audio.level'(p) {
    this.level = p;
  },
};
