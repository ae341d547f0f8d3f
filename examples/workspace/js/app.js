// The workspace page: pairing, the connection to softphoned's bridge, and
// the components, each of which renders from the Store and acts through
// JSON-RPC calls. Nothing here talks to SIP or audio: the daemon does.

import { Bridge, UNKNOWN_METHOD, REFUSED } from './bridge.js';
import { Store } from './store.js';
import { h, fill, startTicker, syncCountdowns, toast, act } from './dom.js';
import { mountInbox, mountWrapup } from './prompts.js';
import { mountCallbackActions, mountContextCard } from './callback-actions.js';
import { mountCalls } from './calls.js';
import { mountDialpad, mountDevices } from './phone.js';
import { mountMyCallbacks } from './my-callbacks.js';

const TOKEN_KEY = 'softphoned.bridge.token';
const URL_KEY = 'softphoned.bridge.url';
const DEFAULT_URL = 'ws://127.0.0.1:7443/';

const $ = (id) => document.getElementById(id);

// Methods the page uses only when this daemon has them (they came later:
// PROTOCOL.md "Added with the workspace"). Probed once per connection.
const OPTIONAL = ['callback.update', 'audio.volume'];

function bridgeUrl() {
  // The address (never the token) may come in the query for demos.
  const fromQuery = new URLSearchParams(location.search).get('bridge');
  if (fromQuery) localStorage.setItem(URL_KEY, fromQuery);
  return localStorage.getItem(URL_KEY) || DEFAULT_URL;
}

const store = new Store();
const ctx = {
  store,
  bridge: null,
  features: new Set(),
  /** Call the daemon; components use this and act() for buttons. */
  call(method, params) {
    if (!ctx.bridge) return Promise.reject(new Error('not connected'));
    return ctx.bridge.call(method, params);
  },
  allows(method) {
    return !!ctx.bridge && ctx.bridge.allows(method);
  },
  has(method) {
    return ctx.features.has(method) && ctx.allows(method);
  },
  async refreshHistory() {
    try {
      const result = await ctx.call('history.list', { kind: 'callback', limit: 25 });
      store.history = result.entries || [];
      store.changed('history');
    } catch (error) {
      if (error.code !== REFUSED) toast(`History: ${error.message}`, 'error');
    }
  },
  async refreshDevices() {
    try {
      store.audio = await ctx.call('audio.devices', {});
      // Asked with nothing, audio.volume answers the gains as they stand.
      if (ctx.has('audio.volume')) store.audio.volume = await ctx.call('audio.volume', {});
      store.changed('audio');
    } catch (error) {
      if (error.code !== REFUSED) toast(`Devices: ${error.message}`, 'error');
    }
  },
};

/** Does the daemon know `method`? Bad params mean yes, unknown method no. */
async function probe(method) {
  try {
    await ctx.call(method, {});
    return true;
  } catch (error) {
    return error.code !== UNKNOWN_METHOD && error.code !== REFUSED;
  }
}

async function onReady() {
  $('pairing').hidden = true;
  $('desk').hidden = false;
  $('unpair').hidden = false;
  // A reconnect starts from nothing: the subscription's snapshot (a
  // call.state per live call, a callback.state per open callback)
  // rebuilds what another tab or the daemon changed meanwhile.
  store.reset();
  try {
    await ctx.call('events.subscribe', {});
    const status = await ctx.call('daemon.status', {});
    store.agentState = status.agent_state;
    store.status = status;
  } catch (error) {
    toast(error.message, 'error');
  }
  ctx.features = new Set();
  for (const method of OPTIONAL) if (await probe(method)) ctx.features.add(method);
  await Promise.all([ctx.refreshDevices(), ctx.refreshHistory()]);
  store.changed('ready');
}

function showStatus({ state, reason, code, origin, retryInMs }) {
  const conn = $('conn');
  conn.dataset.state = state;
  conn.dataset.closeCode = code ?? '';
  const words = {
    idle: 'Not connected',
    connecting: 'Connecting…',
    authenticating: 'Signing in…',
    ready: 'Connected',
    lost: 'Connection lost, reconnecting…',
    unreachable: 'softphoned unreachable, retrying…',
    refused: `Refused: ${reason || 'policy'}`,
    failed: `Cannot connect: ${reason}`,
  };
  conn.textContent = words[state] || state;
  conn.title = [origin && `as ${origin}`, code && `close code ${code}`, retryInMs && `retry in ${retryInMs} ms`].filter(Boolean).join(', ');
  if (state === 'refused') showPairing(`softphoned refused this workspace (${code === 1008 ? '1008 ' : ''}${reason || 'policy'}). Pair it again.`);
  if (state !== 'ready') document.body.classList.add('offline');
  else document.body.classList.remove('offline');
}

function showPairing(error) {
  $('pairing').hidden = false;
  $('desk').hidden = true;
  $('unpair').hidden = true;
  $('pairing-origin').textContent = location.origin;
  $('pairing-url').value = bridgeUrl();
  const box = $('pairing-error');
  box.hidden = !error;
  box.textContent = error || '';
}

function connect() {
  const token = localStorage.getItem(TOKEN_KEY);
  if (ctx.bridge) ctx.bridge.stop();
  ctx.bridge = null;
  if (!token) {
    showStatus({ state: 'idle' });
    showPairing();
    return;
  }
  const bridge = new Bridge(bridgeUrl(), token);
  ctx.bridge = bridge;
  bridge.addEventListener('status', (e) => showStatus(e.detail));
  bridge.addEventListener('ready', () => onReady());
  bridge.addEventListener('event', (e) => store.apply(e.detail));
  bridge.start();
}

function mountPairing() {
  $('pairing-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('pairing-token').value.trim();
    const url = $('pairing-url').value.trim();
    if (url) localStorage.setItem(URL_KEY, url);
    if (token) localStorage.setItem(TOKEN_KEY, token);
    $('pairing-token').value = '';
    connect();
  });
  $('unpair').addEventListener('click', () => {
    localStorage.removeItem(TOKEN_KEY);
    connect();
  });
}

function mountAgentState() {
  const box = $('agent-state');
  const render = () => {
    const state = store.agentState;
    const option = (value, label) =>
      h('button', {
        type: 'button',
        class: `seg ${value} ${state === value ? 'on' : ''}`,
        'aria-pressed': String(state === value),
        disabled: !ctx.allows('agent.set_state'),
        onclick: (e) => act(e.currentTarget, () => ctx.call('agent.set_state', { state: value })),
      }, h('span', { class: 'dot', 'aria-hidden': 'true' }), label);
    fill(box, option('ready', 'Ready'), option('not_ready', 'Not ready'));
  };
  return render;
}

function main() {
  startTicker();
  mountPairing();
  const renders = [
    mountAgentState(),
    mountInbox($('inbox-items'), ctx),
    mountCallbackActions($('callback-actions'), ctx),
    mountContextCard($('context-card'), ctx),
    mountCalls($('calls'), ctx),
    mountDialpad($('dialpad'), ctx),
    mountDevices($('devices'), ctx, $('headset-summary')),
    mountWrapup($('wrapup'), ctx),
    mountMyCallbacks($('my-callbacks'), ctx),
  ];
  // Renders are cheap (a few dozen elements); batch a burst of events
  // (the snapshot after subscribe) into one frame.
  let queued = false;
  store.addEventListener('change', () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      for (const render of renders) render();
      syncCountdowns(store);
      $('inbox-count').textContent = String($('inbox-items').querySelectorAll('.card').length || '');
    });
  });
  // A closed callback is in the history from now on.
  store.addEventListener('closed', () => ctx.refreshHistory());
  connect();
  // Tests and the agent's browser console may look at what the page knows.
  window.workspace = { store, ctx };
}

main();
