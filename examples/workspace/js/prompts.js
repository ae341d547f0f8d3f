// What asks the agent for a decision: the inbox (callback offers and
// inbound-call notices) and the wrap-up modal after a call.

import { customerTime } from './my-callbacks.js';
import { h, fill, countdownText, countdownBar, act, prettyNumber, localTime, icon } from './dom.js';

// ---- inbox ----
// The inbox: what waits for the agent's yes or no.
// - A callback offer card (agent-first): customer, queue, ASAP/Scheduled,
//   reason; Accept / Reject.
// - An inbound-call notice (customer-first): who calls, "Accept (00:09)"
//   counting down when the daemon will auto-answer, Reject. When the
//   contact center sent the callback context for that call
//   (`callback.offer` with `call`), the notice carries it, and Accept /
//   Reject act on the callback (which answers or refuses the call).

export function mountInbox(el, ctx) {
  const { store } = ctx;
  let last = '';

  return function render() {
    const inbound = store.liveCalls().filter((c) => c.state === 'incoming');
    const offers = [...store.callbacks.values()].filter((cb) => cb.state === 'offered' && !inbound.some((c) => c.call === cb.call));
    // Redraw only when something the cards show changed: the countdowns
    // tick by themselves, and a redraw would steal a hovered button.
    const signature = JSON.stringify([
      inbound.map((c) => [c.call, c.display_name, c.remote, store.callCountdowns.get(c.call)?.total, store.callbackOfCall(c.call)?.callback]),
      offers.map((cb) => [cb.callback, cb.customer, cb.reason, cb.type]),
      ctx.allows('callback.accept'),
    ]);
    if (signature === last) return;
    last = signature;
    if (!inbound.length && !offers.length) {
      fill(el, h('p', { class: 'empty' }, 'Nothing waiting. New callbacks and calls appear here.'));
      return;
    }
    fill(el, inbound.map((call) => inboundNotice(call, ctx)), offers.map((cb) => offerCard(cb, ctx)));
  };
}

function typeBadge(cb) {
  return cb.type === 'scheduled' ? h('span', { class: 'badge scheduled' }, 'Scheduled') : h('span', { class: 'badge asap' }, 'ASAP');
}

function offerCard(cb, ctx) {
  return h('article', { class: 'card offer', dataset: { callback: cb.callback }, 'aria-label': `Callback offer: ${cb.customer || 'customer'}` },
    h('header', { class: 'card-head' },
      h('span', { class: 'icon callback', 'aria-hidden': 'true' }, icon('callback')),
      h('div', {},
        h('div', { class: 'card-title' }, cb.customer || prettyNumber(cb.selected)),
        h('div', { class: 'card-sub' }, 'Callback', cb.queue ? ` · ${cb.queue}` : '')),
      typeBadge(cb)),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Reason'), h('dd', {}, cb.reason || '—'),
      cb.schedule ? [h('dt', {}, 'Due'), h('dd', {}, customerTime(cb.schedule))] : null,
      h('dt', {}, 'Number'), h('dd', {}, prettyNumber(cb.selected)),
      h('dt', {}, 'Dialling'), h('dd', {}, cb.dial_mode === 'automatic' ? `Automatic, ${Math.round(cb.countdown_ms / 1000)} s after accept` : 'Manual'),
      h('dt', {}, 'Offered'), h('dd', {}, localTime(cb.offered_at))),
    h('footer', { class: 'card-actions' },
      h('button', { type: 'button', class: 'danger-ghost', disabled: !ctx.allows('callback.reject'),
        onclick: (e) => act(e.currentTarget, () => ctx.call('callback.reject', { callback: cb.callback })) }, 'Reject'),
      h('button', { type: 'button', class: 'primary', disabled: !ctx.allows('callback.accept'),
        onclick: (e) => act(e.currentTarget, async () => {
          await ctx.call('callback.accept', { callback: cb.callback });
          ctx.store.focus = cb.callback;
        }) }, 'Accept')));
}

function inboundNotice(call, ctx) {
  const { store } = ctx;
  const countdown = store.callCountdowns.get(call.call);
  const cb = store.callbackOfCall(call.call);
  const who = cb?.customer || call.display_name || prettyNumber(call.remote);
  const accept = cb
    ? () => ctx.call('callback.accept', { callback: cb.callback }).then(() => { store.focus = cb.callback; })
    : () => ctx.call('call.answer', { call: call.call });
  const reject = cb ? () => ctx.call('callback.reject', { callback: cb.callback }) : () => ctx.call('call.reject', { call: call.call, reason: 'busy' });
  const canAnswer = ctx.allows(cb ? 'callback.accept' : 'call.answer');
  return h('article', { class: 'card inbound ringing', dataset: { call: call.call }, 'aria-label': `Incoming call: ${who}` },
    h('header', { class: 'card-head' },
      h('span', { class: 'icon phone', 'aria-hidden': 'true' }, icon('phone')),
      h('div', {},
        h('div', { class: 'card-title' }, who),
        h('div', { class: 'card-sub' }, 'Incoming call', cb?.queue ? ` · ${cb.queue}` : '', ' · ', prettyNumber(call.remote))),
      cb ? typeBadge(cb) : null),
    cb ? h('dl', { class: 'facts' }, h('dt', {}, 'Reason'), h('dd', {}, cb.reason || '—')) : null,
    countdown && countdown.kind === 'auto_answer'
      ? h('div', { class: 'auto-answer' }, 'Answers by itself in ', countdownText(countdown, `call:${call.call}`), countdownBar(countdown, `call:${call.call}`))
      : null,
    h('footer', { class: 'card-actions' },
      h('button', { type: 'button', class: 'danger-ghost', disabled: !canAnswer, onclick: (e) => act(e.currentTarget, reject) }, 'Reject'),
      h('button', { type: 'button', class: 'primary accept-call', disabled: !canAnswer, onclick: (e) => act(e.currentTarget, accept) },
        'Accept',
        countdown && countdown.kind === 'auto_answer' ? [' (', countdownText(countdown, `call:${call.call}`, { class: 'accept-countdown' }), ')'] : null)));
}

// ---- wrapup ----
// The wrap-up modal: after the customer's call ends the callback is in
// `wrapup` and the agent writes what happened (reason, notes,
// disposition), then Submit & close (`callback.wrapup`). When the offer
// set a wrap-up time the daemon runs the auto-close countdown and this
// shows it; "Keep open" stops it (`callback.countdown.cancel`). If the
// line dropped, Retry call dials the customer again from here.

const REASONS = ['Resolved', 'Follow-up needed', 'Customer not available', 'Wrong number', 'Other'];
const DISPOSITIONS = [
  ['success', 'Success'],
  ['no_resolution', 'No resolution'],
  ['callback_requested', 'Callback requested'],
  ['escalated', 'Escalated'],
];

export function mountWrapup(el, ctx) {
  const { store } = ctx;
  const drafts = new Map();
  let last = '';

  return function render() {
    const focused = store.focused();
    const cb = focused?.state === 'wrapup' ? focused : [...store.callbacks.values()].find((c) => c.state === 'wrapup');
    const countdown = cb && store.callbackCountdowns.get(cb.callback);
    const running = countdown && countdown.kind === 'wrapup' ? countdown : null;
    const signature = JSON.stringify([cb && [cb.callback, cb.attempt, cb.call], running && running.total]);
    if (signature === last) return;
    last = signature;
    if (!cb) {
      el.hidden = true;
      el.replaceChildren();
      return;
    }
    if (!drafts.has(cb.callback)) drafts.set(cb.callback, { reason: '', notes: cb.notes ?? '', disposition: 'success' });
    const draft = drafts.get(cb.callback);
    const talk = cb.attempts.filter((a) => a.talk_ms != null).reduce((sum, a) => sum + a.talk_ms, 0);
    const key = `callback:${cb.callback}`;

    const reason = h('input', { id: 'wrapup-reason', list: 'wrapup-reasons', value: draft.reason, placeholder: 'Why did the customer call?',
      oninput: (e) => { draft.reason = e.currentTarget.value; } });
    const notes = h('textarea', { id: 'wrapup-notes', rows: 4, placeholder: 'What was agreed', oninput: (e) => { draft.notes = e.currentTarget.value; } });
    notes.value = draft.notes;
    const disposition = h('select', { id: 'wrapup-disposition', onchange: (e) => { draft.disposition = e.currentTarget.value; } },
      DISPOSITIONS.map(([value, label]) => h('option', { value, selected: draft.disposition === value }, label)));
    const submit = h('button', { type: 'submit', class: 'primary', disabled: !ctx.allows('callback.wrapup') }, 'Submit & close');

    el.hidden = false;
    fill(el, h('div', { class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'wrapup-title' },
      h('header', { class: 'modal-head' },
        h('div', {},
          h('h2', { id: 'wrapup-title' }, 'Wrap-up'),
          h('div', { class: 'card-sub' }, `${cb.customer || 'Customer'}${cb.queue ? ` · ${cb.queue}` : ''} · talked ${Math.round(talk / 1000)} s`)),
        running ? h('div', { class: 'wrapup-countdown', role: 'timer', 'aria-label': 'Wrap-up closes by itself in' },
          'Closes by itself in ', countdownText(running, key, { class: 'big', 'data-testid': 'wrapup-countdown' })) : null),
      running ? countdownBar(running, key) : null,
      h('form', { class: 'modal-body', onsubmit: (e) => {
        e.preventDefault();
        act(submit, () => ctx.call('callback.wrapup', {
          callback: cb.callback, reason: draft.reason || null, notes: draft.notes || null, disposition: draft.disposition || null,
        }));
      } },
        h('label', { for: 'wrapup-reason' }, 'Reason'), reason,
        h('datalist', { id: 'wrapup-reasons' }, REASONS.map((r) => h('option', { value: r }))),
        h('label', { for: 'wrapup-disposition' }, 'Disposition'), disposition,
        h('label', { for: 'wrapup-notes' }, 'Notes'), notes,
        h('footer', { class: 'modal-actions' },
          h('button', { type: 'button', disabled: !!cb.call || !ctx.allows('callback.retry'),
            onclick: (e) => act(e.currentTarget, () => ctx.call('callback.retry', { callback: cb.callback })) }, 'Retry call'),
          running ? h('button', { type: 'button', class: 'ghost', disabled: !ctx.allows('callback.countdown.cancel'),
            onclick: (e) => act(e.currentTarget, () => ctx.call('callback.countdown.cancel', { callback: cb.callback })) }, 'Keep open') : null,
          h('span', { class: 'spacer' }),
          submit))));
  };
}
