// Active-call controls, one card per live call: mute, hold, record (start,
// pause, resume; the daemon saves the file when the call ends), transfer
// (Blind, or Consult and then Merge calls / Leave & transfer / cancel),
// hang up, and the call-quality indicator fed by `call.quality`.
//
// A consult call is drawn inside its customer's card, because the agent
// decides about both together.

import { h, fill, act, toast, duration, prettyNumber, icon } from './dom.js';

const STATE_WORDS = {
  dialing: 'Dialing…',
  ringing: 'Ringing…',
  early_media: 'Ringing…',
  connected: 'Connected',
  held: 'On hold',
  remote_held: 'Held by the other side',
  transferring: 'Transferring…',
};

export function mountCalls(el, ctx) {
  const { store } = ctx;
  const drafts = new Map(); // call id -> {transferOpen, target}
  let last = '';

  const render = () => {
    const calls = store.liveCalls().filter((c) => c.state !== 'incoming');
    const signature = JSON.stringify([
      calls,
      calls.map((c) => [store.quality.get(c.call), store.recordings.get(c.call), drafts.get(c.call)]),
      store.selectedCall,
      store.saved.length,
      [...store.flags],
    ]);
    if (signature === last) return;
    last = signature;
    const redraw = () => { last = ''; render(); };
    // A consult is drawn inside its customer's card until both are merged
    // into the conference, where each party gets its own card (and Hang up).
    const customers = calls.filter((c) => c.conference || !c.consult_for || !calls.some((o) => o.call === c.consult_for));
    fill(el,
      h('h2', {}, 'Calls'),
      customers.length ? customers.map((call) => callCard(call, calls, ctx, drafts, redraw))
        : h('p', { class: 'empty' }, 'No active call.'),
      store.saved.length ? savedRecordings(store.saved) : null);
  };
  return render;
}

function draftOf(drafts, id) {
  if (!drafts.has(id)) drafts.set(id, { transferOpen: false, target: '' });
  return drafts.get(id);
}

function title(call, store) {
  const cb = store.callbackOfCall(call.call);
  return cb?.customer || call.display_name || prettyNumber(call.remote);
}

function callCard(call, calls, ctx, drafts, redraw) {
  const { store } = ctx;
  const answered = ['connected', 'held', 'remote_held'].includes(call.state);
  const consult = call.consult ? calls.find((c) => c.call === call.consult) : null;
  const draft = draftOf(drafts, call.call);
  const selected = store.selectedCall === call.call;
  const run = (method, params = {}) => (e) => act(e.currentTarget, () => ctx.call(method, { call: call.call, ...params }));
  return h('article', { class: `call-card ${selected ? 'selected' : ''} ${call.state}`, dataset: { call: call.call, state: call.state },
    'aria-label': `Call with ${title(call, store)}`,
    onclick: () => { if (store.selectedCall !== call.call) { store.selectedCall = call.call; store.changed('select'); } } },
    h('header', { class: 'call-head' },
      h('span', { class: `icon ${call.direction === 'inbound' ? 'in' : 'out'}`, 'aria-hidden': 'true' }, icon(call.direction === 'inbound' ? 'incoming' : 'outgoing')),
      h('div', { class: 'grow' },
        h('div', { class: 'card-title' }, title(call, store), call.conference ? h('span', { class: 'badge conf' }, 'Conference') : null),
        h('div', { class: 'card-sub' }, prettyNumber(call.remote), call.codec ? ` · ${call.codec.toUpperCase()}` : '', call.secure ? ' · SRTP' : '')),
      h('div', { class: 'call-status' },
        h('span', { class: `state-chip ${call.state}`, 'data-testid': 'call-state' }, STATE_WORDS[call.state] || call.state),
        call.since ? h('span', { class: 'timer', dataset: { since: String(call.since) } }, duration(performance.now() - call.since)) : null),
      quality(store.quality.get(call.call))),
    transferReport(call),
    h('div', { class: 'controls', role: 'toolbar', 'aria-label': 'Call controls' },
      toggle(call.muted ? 'Unmute' : 'Mute', call.muted, !answered || !ctx.allows(call.muted ? 'call.unmute' : 'call.mute'),
        run(call.muted ? 'call.unmute' : 'call.mute'), call.muted ? 'micOff' : 'mic'),
      toggle(call.held ? 'Resume' : 'Hold', call.held, !answered || call.conference || !ctx.allows(call.held ? 'call.resume' : 'call.hold'),
        run(call.held ? 'call.resume' : 'call.hold'), call.held ? 'play' : 'pause'),
      recordControls(call, answered, ctx),
      h('button', { type: 'button', class: 'ctl', disabled: !answered || !!call.consult || call.conference,
        'aria-expanded': String(draft.transferOpen), onclick: (e) => { e.stopPropagation(); draft.transferOpen = !draft.transferOpen; redraw(); } },
        icon('transfer'), 'Transfer'),
      flagButton(call, ctx),
      h('button', { type: 'button', class: 'ctl', disabled: !answered || !ctx.allows('callback.schedule'), title: 'Book a callback from this call',
        onclick: (e) => { e.stopPropagation(); store.scheduleFromCall = call.call; store.changed('schedule'); } }, icon('callback'), 'Schedule'),
      h('button', { type: 'button', class: 'ctl hangup', disabled: !ctx.allows('call.hangup'), onclick: run('call.hangup') },
        icon('hangup'), 'Hang up')),
    draft.transferOpen && answered && !call.consult ? transferPanel(call, ctx, draft, redraw) : null,
    consult && !(call.conference && consult.conference) ? consultBlock(call, consult, ctx) : null);
}

function toggle(label, on, disabled, onclick, glyph) {
  return h('button', { type: 'button', class: `ctl ${on ? 'on' : ''}`, 'aria-pressed': String(on), disabled, onclick },
    icon(glyph), label);
}

/**
 * Escalate: ServiceNow's flag icon. The flag goes on the call's history
 * record (`call.flag`); the button shows what the daemon says (`call.flags`),
 * so every tab agrees.
 */
function flagButton(call, ctx) {
  const on = (ctx.store.flags.get(call.call) || []).includes('escalate');
  return h('button', { type: 'button', class: `ctl ${on ? 'on flagged' : ''}`, 'aria-pressed': String(on), disabled: !ctx.allows('call.flag'),
    title: on ? 'Escalated: click to take the flag off' : 'Flag this call for escalation',
    onclick: (e) => act(e.currentTarget, () => ctx.call('call.flag', { call: call.call, flag: 'escalate', on: !on })) },
    icon('flag'), on ? 'Escalated' : 'Escalate');
}

/** Record, then Pause / Resume and Stop; the file is saved when the call ends. */
function recordControls(call, answered, ctx) {
  // What the daemon says (recording.state), never what this tab guesses.
  const rec = ctx.store.recordings.get(call.call);
  const send = (method) => (e) => act(e.currentTarget, () => ctx.call(method, { call: call.call }));
  if (!rec || !['recording', 'paused'].includes(rec.state)) {
    return h('button', { type: 'button', class: 'ctl', disabled: !answered || !ctx.allows('call.record.start'),
      onclick: send('call.record.start') }, icon('rec', 'red'), 'Record');
  }
  const paused = rec.state === 'paused';
  const toggle = paused ? 'call.record.resume' : 'call.record.pause';
  return h('span', { class: 'rec-group' },
    h('span', { class: `rec-status ${rec.state}`, 'data-testid': 'recording-status', title: rec.path || '', role: 'status' }, paused ? 'Paused' : 'Recording'),
    h('button', { type: 'button', class: 'ctl small', disabled: !ctx.allows(toggle), onclick: send(toggle) },
      paused ? 'Resume recording' : 'Pause recording'),
    h('button', { type: 'button', class: 'ctl small', disabled: !ctx.allows('call.record.stop'), onclick: send('call.record.stop') }, 'Stop'));
}

/** Bars from the MOS estimate, with loss; the details in the tooltip. */
function quality(q) {
  if (!q) return h('span', { class: 'quality none', title: 'No quality report yet' }, bars(0), h('span', { class: 'q-text' }, 'MOS –'));
  const level = q.mos >= 4.0 ? 4 : q.mos >= 3.6 ? 3 : q.mos >= 3.1 ? 2 : 1;
  const words = ['', 'poor', 'fair', 'good', 'excellent'][level];
  const tip = `MOS ${q.mos.toFixed(2)} (${words}), loss ${q.loss_percent.toFixed(1)} %, jitter ${q.jitter_ms.toFixed(1)} ms` +
    (q.rtt_ms != null ? `, RTT ${q.rtt_ms.toFixed(0)} ms` : '') + `, buffer ${q.jitter_buffer_ms} ms`;
  return h('span', { class: `quality q${level}`, title: tip, 'data-testid': 'call-quality', 'aria-label': `Call quality ${words}: ${tip}` },
    bars(level), h('span', { class: 'q-text' }, `MOS ${q.mos.toFixed(1)} · loss ${q.loss_percent.toFixed(1)}%`));
}

function bars(level) {
  return h('span', { class: 'bars', 'aria-hidden': 'true' }, [1, 2, 3, 4].map((i) => h('i', { class: i <= level ? 'lit' : '' })));
}

function transferReport(call) {
  const t = call.transfer;
  if (!t) return null;
  if (t.status === 'failed') return h('div', { class: 'banner warn' }, `Transfer to ${prettyNumber(t.to)} failed${t.sip_code ? ` (${t.sip_code})` : ''}: the customer is still with you.`);
  if (t.status === 'trying') return h('div', { class: 'banner progress' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), `Transferring to ${prettyNumber(t.to)}…`);
  return null;
}

function transferPanel(call, ctx, draft, redraw) {
  const target = () => draft.target.trim();
  const input = h('input', { value: draft.target, placeholder: 'Colleague or number, e.g. sip:grace@…', 'aria-label': 'Transfer to',
    oninput: (e) => { draft.target = e.currentTarget.value; }, onclick: (e) => e.stopPropagation() });
  const go = (method) => (e) => {
    e.stopPropagation();
    if (!target()) { toast('Who to transfer to?', 'error'); return; }
    act(e.currentTarget, async () => {
      await ctx.call(method, { call: call.call, to: target() });
      draft.transferOpen = false;
      redraw();
    });
  };
  return h('div', { class: 'transfer-panel', onclick: (e) => e.stopPropagation() },
    input,
    h('button', { type: 'button', class: 'small', disabled: !ctx.allows('call.transfer.blind'), onclick: go('call.transfer.blind') }, 'Blind transfer'),
    h('button', { type: 'button', class: 'primary small', disabled: !ctx.allows('call.transfer.consult'), onclick: go('call.transfer.consult') }, 'Consult'));
}

function consultBlock(call, consult, ctx) {
  const params = { call: call.call, consult: consult.call };
  const answered = consult.state === 'connected';
  return h('div', { class: 'consult', 'aria-label': 'Consult call' },
    h('div', { class: 'consult-head' },
      h('span', { class: 'muted' }, 'Consulting '),
      h('strong', {}, consult.display_name || prettyNumber(consult.remote)),
      h('span', { class: `state-chip ${consult.state}`, 'data-testid': 'consult-state' }, STATE_WORDS[consult.state] || consult.state),
      consult.since ? h('span', { class: 'timer', dataset: { since: String(consult.since) } }, '') : null),
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'primary small', disabled: !answered || !ctx.allows('call.merge'),
        onclick: (e) => act(e.currentTarget, () => ctx.call('call.merge', { calls: [call.call, consult.call] })) }, 'Merge calls'),
      h('button', { type: 'button', class: 'small', disabled: !answered || !ctx.allows('call.transfer.complete'),
        onclick: (e) => act(e.currentTarget, () => ctx.call('call.transfer.complete', params)) }, 'Leave & transfer'),
      h('button', { type: 'button', class: 'ghost small', disabled: !ctx.allows('call.transfer.cancel'),
        onclick: (e) => act(e.currentTarget, () => ctx.call('call.transfer.cancel', params)) }, 'Cancel transfer')));
}

function savedRecordings(saved) {
  return h('div', { class: 'saved-recordings' },
    h('h3', {}, 'Recordings saved'),
    h('ul', {}, saved.slice(0, 3).map((r) => h('li', { 'data-testid': 'recording-saved', title: r.path },
      icon('rec', 'red'), `${r.path.split('/').pop()} · ${duration(r.duration_ms)}`))));
}
