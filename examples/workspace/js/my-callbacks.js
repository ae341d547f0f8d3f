// My callbacks: the agent's open callbacks (scheduled ones with their due
// time in the customer's own clock), the recent history with each
// callback's preview duration (accept to first dial), attempts and
// outcome, and the forms to Schedule a new callback or Reschedule one.
//
// Times are entered as the customer says them ("9:30 my time") with the
// customer's IANA time zone; the daemon (jiff, its own zone database)
// turns that into UTC. The page only previews it in the agent's clock.

import { h, fill, act, toast, duration, localTime, prettyNumber } from './dom.js';

const ZONES = ['America/New_York', 'America/Chicago', 'America/Denver', 'America/Los_Angeles', 'America/Sao_Paulo',
  'Europe/London', 'Europe/Paris', 'Europe/Berlin', 'Africa/Johannesburg', 'Asia/Kolkata', 'Asia/Singapore', 'Asia/Tokyo', 'Australia/Sydney', 'UTC'];

const STATE_WORDS = { scheduled: 'Scheduled', offered: 'Offered', preview: 'Preview', dialing: 'Dialing', in_call: 'On call', wrapup: 'Wrap-up', transferring: 'Transferring' };
const CLOSED_WORDS = { completed: 'Completed', rejected: 'Rejected', transferred: 'Transferred', closed_by_agent: 'Closed', cancelled: 'Cancelled' };

/**
 * A schedule as the customer lives it: "Mon 23 Nov 09:30 (America/New_York)".
 * `local` is the due time in the customer's clock with its offset.
 */
export function customerTime(schedule) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(schedule.local || '');
  if (!m) return schedule.local || '';
  const day = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
  const date = day.toLocaleDateString('en-GB', { weekday: 'short', day: 'numeric', month: 'short', timeZone: 'UTC' });
  return `${date} ${m[4]}:${m[5]}${schedule.tz ? ` (${schedule.tz})` : ''}`;
}

/** The instant a wall-clock time (YYYY-MM-DDTHH:MM) is in `tz`, or null. */
export function zonedInstant(local, tz) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(local || '');
  if (!m) return null;
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  const offset = (instant) => {
    const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' })
      .formatToParts(new Date(instant)).map((p) => [p.type, p.value]));
    return Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute) - instant;
  };
  try {
    const first = wall - offset(wall);
    return new Date(wall - offset(first)); // twice: right across a DST change
  } catch {
    return null;
  }
}

export function mountMyCallbacks(el, ctx) {
  const { store } = ctx;
  const agentZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const ui = { tab: 'open', form: null }; // form: {mode: 'schedule'|'reschedule', callback?, fields}
  let last = '';

  function zoneSelect(id, value, onchange) {
    const zones = ZONES.includes(value) || !value ? ZONES : [value, ...ZONES];
    return h('select', { id, onchange }, zones.map((z) => h('option', { value: z, selected: z === (value || agentZone) }, z)));
  }

  function preview(fields) {
    const at = zonedInstant(fields.at, fields.tz);
    return at ? `Customer's ${fields.at.replace('T', ' ')} (${fields.tz}) is ${at.toLocaleString([], { weekday: 'short', hour: '2-digit', minute: '2-digit' })} for you.` : '';
  }

  function scheduleForm(redraw) {
    const f = ui.form.fields;
    const hint = h('p', { class: 'hint', 'data-testid': 'schedule-preview' }, preview(f));
    const field = (key, label, attrs = {}) => [h('label', { for: `sch-${key}` }, label),
      h('input', { id: `sch-${key}`, value: f[key] || '', ...attrs, oninput: (e) => { f[key] = e.currentTarget.value; hint.textContent = preview(f); } })];
    const rescheduling = ui.form.mode === 'reschedule';
    const fromCall = ui.form.fromCall;
    return h('form', { class: 'inline-form schedule-form', 'aria-label': rescheduling ? 'Reschedule callback' : 'Schedule callback',
      onsubmit: (e) => {
        e.preventDefault();
        act(e.submitter, async () => {
          const common = { at: f.at, tz: f.tz, notes: f.notes || null, instructions: f.instructions || null };
          if (rescheduling) await ctx.call('callback.reschedule', { callback: ui.form.callback, ...common, number: f.alternate || null });
          else {
            await ctx.call('callback.schedule', {
              ...common, number: f.number || null, customer: f.customer || null, reason: f.reason || null, from_call: fromCall || null,
              numbers: f.alternate ? [{ label: 'alternate', number: f.alternate }] : null,
            });
          }
          toast(rescheduling ? 'Callback rescheduled' : 'Callback scheduled');
          ui.form = null;
          ui.tab = 'open';
          redraw();
        });
      } },
      h('h3', {}, rescheduling ? `Reschedule ${f.customer || ''}` : fromCall ? 'Schedule a callback from this call' : 'Schedule a callback'),
      fromCall ? h('p', { class: 'hint' }, "The customer, queue, reason and numbers come from the call; fill in what should change.") : null,
      rescheduling ? null : [field('customer', 'Customer'), field('number', 'Number', fromCall ? { placeholder: 'the call\'s number' } : { required: true, placeholder: '5551000 or sip:…' })],
      field('alternate', rescheduling ? 'Dial this number instead' : 'Alternate number', { placeholder: 'optional' }),
      field('at', "Customer's date and time", { type: 'datetime-local', required: true }),
      h('label', { for: 'sch-tz' }, "Customer's time zone"),
      zoneSelect('sch-tz', f.tz, (e) => { f.tz = e.currentTarget.value; hint.textContent = preview(f); }),
      hint,
      rescheduling ? null : field('reason', 'Reason'),
      field('instructions', 'Instructions for the agent who calls', { placeholder: 'What to do, what was promised' }),
      field('notes', 'Notes'),
      h('div', { class: 'row end' },
        h('button', { type: 'button', class: 'ghost small', onclick: () => { ui.form = null; redraw(); } }, 'Cancel'),
        h('button', { type: 'submit', class: 'primary small' }, rescheduling ? 'Reschedule' : 'Schedule')));
  }

  function openRow(cb, redraw) {
    const canReschedule = ['scheduled', 'offered', 'preview'].includes(cb.state) && !cb.call;
    return h('li', { class: 'cb-row', dataset: { callback: cb.callback } },
      h('div', { class: 'grow' },
        h('div', { class: 'row-title' }, cb.customer || prettyNumber(cb.selected), h('span', { class: `state-chip ${cb.state}` }, STATE_WORDS[cb.state] || cb.state)),
        h('div', { class: 'card-sub' },
          cb.schedule ? h('span', { 'data-testid': 'due' }, `Due ${customerTime(cb.schedule)} · ${localTime(cb.schedule.due_at)} yours`) : `${cb.queue || 'Callback'} · offered ${localTime(cb.offered_at)}`),
        cb.schedule?.instructions ? h('div', { class: 'card-sub instructions' }, `Instructions: ${cb.schedule.instructions}`) : null),
      h('div', { class: 'row' },
        !['scheduled', 'offered'].includes(cb.state) ? h('button', { type: 'button', class: 'ghost small', onclick: () => { store.focus = cb.callback; store.changed('focus'); } }, 'Open') : null,
        canReschedule ? h('button', { type: 'button', class: 'ghost small', disabled: !ctx.allows('callback.reschedule'), onclick: () => {
          ui.form = { mode: 'reschedule', callback: cb.callback, fields: { customer: cb.customer, at: '', tz: cb.schedule?.tz || agentZone, notes: '', instructions: '', alternate: '' } };
          redraw();
        } }, 'Reschedule') : null,
        cb.state === 'scheduled' ? h('button', { type: 'button', class: 'danger-ghost small', disabled: !ctx.allows('callback.cancel'),
          onclick: (e) => act(e.currentTarget, () => ctx.call('callback.cancel', { callback: cb.callback })) }, 'Cancel') : null));
  }

  function historyRow(entry) {
    const attempts = entry.attempts || [];
    const talk = attempts.reduce((sum, a) => sum + (a.talk_ms || 0), 0);
    const lastAttempt = attempts.at(-1);
    return h('li', { class: 'cb-row history', dataset: { callback: entry.callback }, 'data-testid': 'history-entry' },
      h('div', { class: 'grow' },
        h('div', { class: 'row-title' }, entry.customer || prettyNumber(entry.selected),
          h('span', { class: `state-chip closed ${entry.closed || ''}` }, CLOSED_WORDS[entry.closed] || entry.closed || entry.state)),
        h('div', { class: 'card-sub' },
          h('span', { 'data-testid': 'preview-duration' }, `Preview ${duration(entry.preview_ms)}`),
          ` · ${attempts.length} attempt${attempts.length === 1 ? '' : 's'}`,
          lastAttempt?.outcome ? ` (${attempts.map((a) => a.outcome).join(', ')})` : '',
          talk ? ` · talk ${duration(talk)}` : '',
          entry.wrapup?.disposition ? ` · ${entry.wrapup.disposition}` : '')),
      h('span', { class: 'muted small-text' }, localTime(entry.closed_at || entry.created_at)));
  }

  const render = () => {
    // "Schedule" pressed on a live call: the form, filled from that call.
    if (store.scheduleFromCall) {
      ui.form = { mode: 'schedule', fromCall: store.scheduleFromCall, fields: { customer: '', number: '', at: '', tz: agentZone, reason: '', notes: '', instructions: '', alternate: '' } };
      store.scheduleFromCall = null;
      last = '';
    }
    const open = [...store.callbacks.values()];
    const signature = JSON.stringify([ui.tab, !!ui.form, ui.form?.callback, open.map((c) => [c.callback, c.state, c.schedule, c.customer]), store.history]);
    if (signature === last) return;
    last = signature;
    const redraw = () => { last = ''; render(); };
    const tab = (name, label, count) => h('button', { type: 'button', role: 'tab', class: ui.tab === name ? 'on' : '', 'aria-selected': String(ui.tab === name),
      onclick: () => { ui.tab = name; redraw(); if (name === 'history') ctx.refreshHistory(); } }, label, count != null ? h('span', { class: 'count' }, String(count)) : null);
    open.sort((a, b) => (a.schedule?.due_at || a.offered_at).localeCompare(b.schedule?.due_at || b.offered_at));
    fill(el,
      h('div', { class: 'panel-head' },
        h('h2', { id: 'mycb-title' }, 'My callbacks'),
        h('button', { type: 'button', class: 'small', disabled: !ctx.allows('callback.schedule'),
          onclick: () => { ui.form = { mode: 'schedule', fields: { customer: '', number: '', at: '', tz: agentZone, reason: '', notes: '', instructions: '', alternate: '' } }; redraw(); } }, 'Schedule')),
      ui.form ? scheduleForm(redraw) : null,
      h('div', { class: 'tabs', role: 'tablist' }, tab('open', 'Open', open.length || null), tab('history', 'History')),
      ui.tab === 'open'
        ? (open.length ? h('ul', { class: 'cb-list' }, open.map((cb) => openRow(cb, redraw))) : h('p', { class: 'empty' }, 'No open callbacks.'))
        : (store.history.length ? h('ul', { class: 'cb-list', 'aria-label': 'Callback history' }, store.history.map(historyRow)) : h('p', { class: 'empty' }, 'No callbacks yet.')));
  };
  return render;
}
