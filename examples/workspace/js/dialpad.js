// The dialpad does two jobs, like a desk phone's: during an answered call
// each key is sent at once as DTMF (`call.dtmf`: RFC 4733 or SIP INFO, the
// daemon chooses), and with no call the keys compose a number that Call
// dials (`call.dial`). Which one it does is written above the keys, so
// the agent never sends a customer's number as tones by mistake.

import { h, fill, act, toast, prettyNumber } from './dom.js';

const KEYS = [['1', ''], ['2', 'ABC'], ['3', 'DEF'], ['4', 'GHI'], ['5', 'JKL'], ['6', 'MNO'], ['7', 'PQRS'], ['8', 'TUV'], ['9', 'WXYZ'], ['*', ''], ['0', '+'], ['#', '']];

export function mountDialpad(el, ctx) {
  const { store } = ctx;
  const state = { number: '', sent: '' };
  let last = '';

  /** The call keys go to: the selected one, else the one the agent talks on. */
  function target() {
    const answered = store.liveCalls().filter((c) => c.state === 'connected');
    return answered.find((c) => c.call === store.selectedCall) || answered[0] || null;
  }

  async function press(key, button) {
    const call = target();
    if (call) {
      state.sent = (state.sent + key).slice(-24);
      shown.textContent = state.sent;
      await act(button, () => ctx.call('call.dtmf', { call: call.call, digits: key }));
    } else {
      state.number += key;
      input.value = state.number;
    }
  }

  const input = h('input', { id: 'dial-number', inputmode: 'tel', autocomplete: 'off', spellcheck: 'false', placeholder: 'Number or sip:…', 'aria-label': 'Number to dial',
    oninput: (e) => { state.number = e.currentTarget.value; } });
  const shown = h('div', { class: 'dtmf-sent', 'aria-label': 'Keys sent', 'data-testid': 'dtmf-sent' });

  return function render() {
    const call = target();
    const signature = JSON.stringify([call && [call.call, call.remote, call.display_name], ctx.allows('call.dial'), ctx.allows('call.dtmf')]);
    if (signature === last) return;
    last = signature;
    if (!call) state.sent = '';
    shown.textContent = state.sent;
    const dial = h('form', { class: 'dial-form', onsubmit: (e) => {
      e.preventDefault();
      const to = state.number.trim();
      if (!to) { toast('Type a number to dial', 'error'); return; }
      act(e.submitter, async () => {
        await ctx.call('call.dial', { to });
        state.number = '';
        input.value = '';
      });
    } }, input, h('button', { type: 'submit', class: 'primary', disabled: !ctx.allows('call.dial') }, 'Call'));
    fill(el,
      h('h2', {}, 'Dialpad'),
      call ? h('p', { class: 'dial-mode dtmf' }, 'Keys go to ', h('strong', {}, call.display_name || prettyNumber(call.remote)), ' as tones')
        : h('p', { class: 'dial-mode' }, 'Dial a number'),
      call ? shown : dial,
      h('div', { class: 'keys', role: 'group', 'aria-label': 'Keypad' }, KEYS.map(([key, letters]) =>
        h('button', { type: 'button', class: 'key', 'aria-label': `Key ${key}`, disabled: call ? !ctx.allows('call.dtmf') : false,
          onclick: (e) => press(key, e.currentTarget) }, h('span', { class: 'digit' }, key), h('span', { class: 'letters' }, letters)))));
  };
}
