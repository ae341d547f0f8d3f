// The wrap-up modal: after the customer's call ends the callback is in
// `wrapup` and the agent writes what happened (reason, notes,
// disposition), then Submit & close (`callback.wrapup`). When the offer
// set a wrap-up time the daemon runs the auto-close countdown and this
// shows it; "Keep open" stops it (`callback.countdown.cancel`). If the
// line dropped, Retry call dials the customer again from here.

import { h, fill, act, countdownText, countdownBar } from './dom.js';

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
