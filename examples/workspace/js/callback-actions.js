// The Callback actions component, as the vendors' agent desktops show it
// once a callback is accepted: the number drop-down, Call number, Retry
// call, Close callback; the dial countdown (automatic mode only) with a
// way to dial sooner or stop it; Transfer callback to a queue or agent,
// "Transferring callback, please wait…" and Cancel callback transfer.
//
// Which buttons are enabled follows the callback's state as the daemon
// reports it (src/callback/machine.rs says which command applies when);
// the daemon still has the last word and its refusal is shown as a toast.

import { h, fill, countdownText, countdownBar, act, toast, prettyNumber, localTime } from './dom.js';
import { customerTime } from './my-callbacks.js';

const STATE_WORDS = {
  preview: 'Preview',
  dialing: 'Dialing',
  in_call: 'On call',
  wrapup: 'Wrap-up',
  transferring: 'Transferring',
};

const OUTCOME_WORDS = {
  answered: 'answered',
  busy: 'busy',
  no_answer: 'no answer',
  failed: 'failed',
  cancelled_by_agent: 'hung up before answer',
  interrupted: 'interrupted',
};

export function mountCallbackActions(el, ctx) {
  const { store } = ctx;
  // The transfer form is the agent's draft: kept across redraws.
  const draft = { open: false, kind: 'queue', target: '' };
  let last = '';

  return function render() {
    const cb = store.focused();
    const working = [...store.callbacks.values()].filter((c) => !['offered', 'scheduled'].includes(c.state));
    const countdown = cb && store.callbackCountdowns.get(cb.callback);
    const signature = JSON.stringify([cb, working.map((c) => c.callback), countdown && [countdown.kind, countdown.total], draft.open, draft.kind]);
    if (signature === last) return;
    last = signature;
    if (!cb) {
      draft.open = false;
      fill(el, h('h2', {}, 'Callback actions'), h('p', { class: 'empty' }, 'No callback in progress. Accept one from the inbox, or pick one in My callbacks.'));
      return;
    }
    fill(el,
      working.length > 1 ? tabs(working, cb, ctx) : null,
      header(cb),
      numberRow(cb, ctx),
      cb.state === 'preview' && countdown && countdown.kind === 'dial' && cb.dial_mode === 'automatic' ? dialCountdown(cb, countdown, ctx) : null,
      stateBanner(cb, ctx),
      actions(cb, ctx, draft, () => { last = ''; render(); }),
      draft.open && cb.state === 'preview' && !cb.call ? transferForm(cb, ctx, draft, () => { last = ''; render(); }) : null,
      attempts(cb));
  };
}

function tabs(working, current, ctx) {
  return h('div', { class: 'tabs', role: 'tablist' }, working.map((cb) =>
    h('button', { type: 'button', role: 'tab', class: cb.callback === current.callback ? 'on' : '', 'aria-selected': String(cb.callback === current.callback),
      onclick: () => { ctx.store.focus = cb.callback; ctx.store.changed('focus'); } }, cb.customer || cb.callback)));
}

function header(cb) {
  return h('header', { class: 'cb-head' },
    h('div', {},
      h('h2', { class: 'cb-customer' }, cb.customer || prettyNumber(cb.selected)),
      h('div', { class: 'card-sub' }, ['Callback', cb.queue, cb.type === 'scheduled' ? 'Scheduled' : 'ASAP', cb.dial_mode === 'automatic' ? 'Automatic dial' : 'Manual dial'].filter(Boolean).join(' · '))),
    h('span', { class: `state-chip ${cb.state}`, 'data-testid': 'callback-state' }, STATE_WORDS[cb.state] || cb.state));
}

function numberRow(cb, ctx) {
  const editable = ['preview', 'wrapup'].includes(cb.state) && !cb.call && ctx.allows('callback.select_number');
  const select = h('select', { id: 'cb-number', 'aria-label': 'Number to call', disabled: !editable,
    onchange: (e) => act(e.currentTarget, () => ctx.call('callback.select_number', { callback: cb.callback, number: e.currentTarget.value })) },
    cb.numbers.map((n) => h('option', { value: n.number, selected: n.number === cb.selected }, `${n.label || 'number'} — ${prettyNumber(n.number)}`)));
  return h('div', { class: 'field-row' }, h('label', { for: 'cb-number' }, 'Number'), select);
}

function dialCountdown(cb, countdown, ctx) {
  const key = `callback:${cb.callback}`;
  const label = cb.numbers.find((n) => n.number === cb.selected)?.label || prettyNumber(cb.selected);
  return h('div', { class: 'dial-countdown', role: 'timer', 'aria-label': 'Automatic dial countdown' },
    h('div', { class: 'dial-countdown-text' }, `Calling ${label} in `, countdownText(countdown, key, { class: 'big', 'data-testid': 'dial-countdown' })),
    countdownBar(countdown, key),
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'primary small', disabled: !ctx.allows('callback.call'),
        onclick: (e) => act(e.currentTarget, () => ctx.call('callback.call', { callback: cb.callback })) }, 'Call now'),
      h('button', { type: 'button', class: 'ghost small', disabled: !ctx.allows('callback.countdown.cancel'),
        onclick: (e) => act(e.currentTarget, () => ctx.call('callback.countdown.cancel', { callback: cb.callback })) }, 'Cancel countdown')));
}

function stateBanner(cb, ctx) {
  if (cb.state === 'dialing') {
    return h('div', { class: 'banner progress' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }),
      `Calling ${prettyNumber(cb.attempts.at(-1)?.number || cb.selected)}… (attempt ${cb.attempt})`,
      cb.call ? h('button', { type: 'button', class: 'danger small', disabled: !ctx.allows('call.hangup'),
        onclick: (e) => act(e.currentTarget, () => ctx.call('call.hangup', { call: cb.call })) }, 'Hang up') : null);
  }
  if (cb.state === 'transferring') {
    const to = cb.transfer ? cb.transfer.queue || cb.transfer.agent : '';
    return h('div', { class: 'banner progress', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }),
      h('span', {}, 'Transferring callback, please wait…', to ? h('span', { class: 'muted' }, ` (to ${to})`) : null),
      h('button', { type: 'button', class: 'ghost small', disabled: !ctx.allows('callback.transfer.cancel'),
        onclick: (e) => act(e.currentTarget, () => ctx.call('callback.transfer.cancel', { callback: cb.callback })) }, 'Cancel callback transfer'));
  }
  if (cb.state === 'in_call') return h('div', { class: 'banner ok' }, 'Connected with the customer: the call controls are below.');
  if (cb.state === 'preview' && cb.restored) return h('div', { class: 'banner warn' }, 'Restored after a restart: nothing dials by itself.');
  return null;
}

function actions(cb, ctx, draft, redraw) {
  const idle = !cb.call;
  const preview = cb.state === 'preview' && idle;
  const retryable = ['preview', 'wrapup'].includes(cb.state) && idle && cb.attempt > 0;
  const run = (method) => (e) => act(e.currentTarget, () => ctx.call(method, { callback: cb.callback }));
  return h('div', { class: 'row actions' },
    h('button', { type: 'button', class: 'primary', disabled: !preview || !ctx.allows('callback.call'), onclick: run('callback.call') }, 'Call number'),
    h('button', { type: 'button', disabled: !retryable || !ctx.allows('callback.retry'), onclick: run('callback.retry') }, 'Retry call'),
    h('button', { type: 'button', disabled: !preview || !ctx.allows('callback.transfer'),
      onclick: () => { draft.open = !draft.open; redraw(); } }, 'Transfer callback'),
    h('button', { type: 'button', class: 'danger-ghost', disabled: !preview || !ctx.allows('callback.close'), onclick: run('callback.close') }, 'Close callback'));
}

function transferForm(cb, ctx, draft, redraw) {
  const input = h('input', { id: 'cb-transfer-target', value: draft.target, placeholder: draft.kind === 'queue' ? 'Queue, e.g. billing-tier2' : 'Agent, e.g. grace',
    'aria-label': draft.kind === 'queue' ? 'Queue name' : 'Agent name', oninput: (e) => { draft.target = e.currentTarget.value; } });
  const choose = (kind, label) => h('label', { class: 'radio' },
    h('input', { type: 'radio', name: 'cb-transfer-kind', value: kind, checked: draft.kind === kind, onchange: () => { draft.kind = kind; redraw(); } }), label);
  return h('form', { class: 'inline-form', 'aria-label': 'Transfer callback',
    onsubmit: (e) => {
      e.preventDefault();
      const target = draft.target.trim();
      if (!target) return;
      act(e.submitter, async () => {
        await ctx.call('callback.transfer', { callback: cb.callback, [draft.kind]: target });
        draft.open = false;
        draft.target = '';
      });
    } },
    h('div', { class: 'row' }, choose('queue', 'Queue'), choose('agent', 'Agent')),
    h('div', { class: 'row' }, input, h('button', { type: 'submit', class: 'primary small' }, 'Transfer'),
      h('button', { type: 'button', class: 'ghost small', onclick: () => { draft.open = false; redraw(); } }, 'Cancel')));
}

function attempts(cb) {
  if (!cb.attempts.length) return null;
  return h('div', { class: 'attempts' },
    h('h3', {}, 'Attempts'),
    h('ol', {}, cb.attempts.map((a) => h('li', { class: `attempt ${a.outcome || 'ongoing'}` },
      h('span', { class: 'num' }, `#${a.attempt}`),
      h('span', {}, prettyNumber(a.number)),
      h('span', { class: 'outcome' }, a.outcome ? OUTCOME_WORDS[a.outcome] || a.outcome : 'in progress', a.sip_code ? ` (${a.sip_code})` : ''),
      h('span', { class: 'muted' }, localTime(a.started_at))))));
}

// ---- the context card ----
// The callback context card: who the customer is, why they want a call
// back, the contact center's free-form context (ticket, account, ...),
// and the reason and notes the agent may correct before and during the
// call (ServiceNow's "Reason for the call"). Editing goes through
// `callback.update`, which came after the first daemons: without it the
// card stays read-only and says so.

export function mountContextCard(el, ctx) {
  const { store } = ctx;
  // Drafts per callback, so an event arriving while the agent types does
  // not wipe the text (the card is redrawn only when its callback changes).
  const drafts = new Map();
  let last = '';

  // The contact's recent interactions (history.list by customer), loaded
  // once per callback shown: what an agent glances at before dialling.
  const recentBox = h('div', { class: 'recent' });
  let recentFor = null;
  async function loadRecent(cb) {
    if (recentFor === cb.callback || !cb.customer || !ctx.allows('history.list')) return;
    recentFor = cb.callback;
    fill(recentBox);
    try {
      const { entries } = await ctx.call('history.list', { customer: cb.customer, kind: 'callback', limit: 6 });
      const earlier = entries.filter((e) => e.callback !== cb.callback).slice(0, 4);
      fill(recentBox, h('h3', {}, 'Recent interactions'),
        earlier.length ? h('ul', { class: 'recent-list' }, earlier.map((e) => h('li', {},
          h('span', {}, localTime(e.closed_at || e.created_at)),
          h('span', { class: 'muted' }, ` ${e.reason || e.queue || 'callback'} · ${e.closed || e.state}`))))
          : h('p', { class: 'hint' }, 'None before this one.'));
    } catch {
      // An older daemon without the filter: the card simply has no list.
    }
  }

  return function render() {
    const cb = store.focused() || [...store.callbacks.values()].find((c) => c.state === 'offered' && c.call);
    const editable = ctx.has('callback.update');
    const signature = JSON.stringify([cb && [cb.callback, cb.state, cb.customer, cb.reason, cb.notes, cb.context, cb.queue, cb.selected, cb.schedule], editable]);
    if (signature === last) return;
    last = signature;
    if (!cb) {
      fill(el, h('h2', {}, 'Context'), h('p', { class: 'empty' }, 'The customer\'s details show here during a callback.'));
      return;
    }
    let draft = drafts.get(cb.callback);
    if (!draft) {
      draft = { reason: cb.reason || '', notes: cb.notes ?? '', dirty: false };
      drafts.set(cb.callback, draft);
    } else if (!draft.dirty) {
      draft.reason = cb.reason || '';
      draft.notes = cb.notes ?? '';
    }
    // Editable before and during the callback, wrap-up included.
    const open = true;
    const reason = h('input', { id: 'ctx-reason', value: draft.reason, readOnly: !editable || !open, 'aria-label': 'Reason for the call',
      oninput: (e) => { draft.reason = e.currentTarget.value; draft.dirty = true; } });
    const notes = h('textarea', { id: 'ctx-notes', rows: 3, readOnly: !editable || !open, 'aria-label': 'Notes', placeholder: editable ? 'Notes for this callback' : '' });
    notes.value = draft.notes;
    notes.addEventListener('input', (e) => { draft.notes = e.currentTarget.value; draft.dirty = true; });
    const save = h('button', { type: 'submit', class: 'small', disabled: !editable || !open }, 'Save');
    fill(el,
      h('h2', {}, 'Context'),
      h('div', { class: 'ctx-customer', 'data-testid': 'context-customer' },
        h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(cb.customer)),
        h('div', {}, h('div', { class: 'card-title' }, cb.customer || 'Unknown customer'),
          h('div', { class: 'card-sub' }, prettyNumber(cb.selected)))),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Queue'), h('dd', {}, cb.queue || '—'),
        h('dt', {}, 'Type'), h('dd', {}, cb.type === 'scheduled' ? `Scheduled${cb.schedule ? `, ${customerTime(cb.schedule)}` : ''}` : 'ASAP'),
        h('dt', {}, 'Created'), h('dd', {}, localTime(cb.created_at)),
        cb.schedule?.instructions ? [h('dt', {}, 'Instructions'), h('dd', {}, cb.schedule.instructions)] : null,
        contextFacts(cb.context)),
      h('form', { class: 'ctx-form', onsubmit: (e) => {
        e.preventDefault();
        act(save, async () => {
          await ctx.call('callback.update', { callback: cb.callback, reason: draft.reason, notes: draft.notes });
          draft.dirty = false;
          toast('Context saved');
        });
      } },
        h('label', { for: 'ctx-reason' }, 'Reason for the call'), reason,
        h('label', { for: 'ctx-notes' }, 'Notes'), notes,
        editable ? h('div', { class: 'row end' }, save)
          : h('p', { class: 'hint' }, !ctx.allows('callback.update') ? 'This workspace may not edit callbacks.' : 'Editing needs a softphoned with callback.update.')),
      recentBox);
    loadRecent(cb);
  };

}

function initials(name) {
  return String(name || '?').split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('') || '?';
}

/** The contact center's context: one line per key, nested values as JSON. */
function contextFacts(context) {
  if (!context || typeof context !== 'object') return null;
  return Object.entries(context).slice(0, 12).map(([key, value]) => [
    h('dt', {}, key.replace(/_/g, ' ')),
    h('dd', {}, typeof value === 'object' ? JSON.stringify(value) : String(value)),
  ]);
}
