// The callback context card: who the customer is, why they want a call
// back, the contact center's free-form context (ticket, account, ...),
// and the reason and notes the agent may correct before and during the
// call (ServiceNow's "Reason for the call"). Editing goes through
// `callback.update`, which came after the first daemons: without it the
// card stays read-only and says so.

import { h, fill, act, toast, prettyNumber, localTime } from './dom.js';
import { customerTime } from './my-callbacks.js';

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
          : h('p', { class: 'hint' }, ctx.features.has('callback.update') ? 'This workspace may not edit callbacks.' : 'Editing needs a softphoned with callback.update.')),
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
