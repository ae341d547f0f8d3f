// The inbox: what waits for the agent's yes or no.
// - A callback offer card (agent-first): customer, queue, ASAP/Scheduled,
//   reason; Accept / Reject.
// - An inbound-call notice (customer-first): who calls, "Accept (00:09)"
//   counting down when the daemon will auto-answer, Reject. When the
//   contact center sent the callback context for that call
//   (`callback.offer` with `call`), the notice carries it, and Accept /
//   Reject act on the callback (which answers or refuses the call).

import { customerTime } from './my-callbacks.js';
import { h, fill, countdownText, countdownBar, act, prettyNumber, localTime, icon } from './dom.js';

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
