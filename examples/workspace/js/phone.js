// The agent's phone hardware on the page: the dialpad (keys as DTMF or a
// number to dial) and the headset (devices, volume, level meter). Both
// act through the daemon, which owns the sound card.

import { h, fill, act, toast, prettyNumber } from './dom.js';

// ---- dialpad ----
// The dialpad does two jobs, like a desk phone's: during an answered call
// each key is sent at once as DTMF (`call.dtmf`: RFC 4733 or SIP INFO, the
// daemon chooses), and with no call the keys compose a number that Call
// dials (`call.dial`). Which one it does is written above the keys, so
// the agent never sends a customer's number as tones by mistake.

const KEYS = [['1', ''], ['2', 'ABC'], ['3', 'DEF'], ['4', 'GHI'], ['5', 'JKL'], ['6', 'MNO'], ['7', 'PQRS'], ['8', 'TUV'], ['9', 'WXYZ'], ['*', ''], ['0', '+'], ['#', '']];

export function mountDialpad(el, ctx) {
  const { store } = ctx;
  const state = { number: '', sent: '' };
  let last = '';

  /**
   * The call keys go to: the one the agent selected, else the consult
   * (during a consult the agent talks to the colleague, and the customer
   * is being held), else the one answered call.
   */
  function target() {
    const answered = store.liveCalls().filter((c) => c.state === 'connected');
    return answered.find((c) => c.call === store.selectedCall) || answered.find((c) => c.consult_for) || answered[0] || null;
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

// ---- devices ----
// Headset selection and volume. The daemon owns the sound card (the page
// never touches getUserMedia): `audio.devices` lists what the system
// offers, `audio.select` switches (also mid-call) and answers with an
// `audio.device` event saying what is really in use, which may be a
// fallback; `audio.volume` (gain 0.0–2.0) sets microphone and speaker
// gain (called with nothing, it tells the gains now set), and
// `audio.level` events (dBFS) drive the microphone meter.
// A daemon running on a tone, a WAV file or null says so here instead of
// pretending to have a headset.

function describe(backend) {
  if (!backend) return '–';
  if (backend.kind === 'device') return backend.device || 'default device';
  if (backend.kind === 'tone') return `test tone (${backend.spec.replace('tone:', '')} Hz)`;
  if (backend.kind === 'wav') return `file ${backend.spec.replace(/^wav:.*\//, '')}`;
  return backend.fallback ? `none (${backend.fallback})` : 'none';
}

export function mountDevices(el, ctx, summary) {
  const { store } = ctx;
  const gains = { input: 1, output: 1 };
  let timer = null;
  let pending = false;
  let last = '';

  function sendVolume() {
    clearTimeout(timer);
    pending = true;
    // A slider fires many input events: send the value it settles on.
    timer = setTimeout(() => {
      ctx.call('audio.volume', { input: gains.input, output: gains.output })
        .then((now) => { if (store.audio) store.audio.volume = now; })
        .catch((e) => toast(`Volume: ${e.message}`, 'error'))
        .finally(() => { pending = false; });
    }, 150);
  }

  function slider(which, label) {
    const value = Math.round(gains[which] * 100);
    const out = h('output', { class: 'vol-value' }, `${value}%`);
    const input = h('input', { type: 'range', min: 0, max: 200, step: 5, value, 'aria-label': `${label} volume`, disabled: !ctx.has('audio.volume'),
      oninput: (e) => { gains[which] = Number(e.currentTarget.value) / 100; out.textContent = `${e.currentTarget.value}%`; sendVolume(); } });
    return h('div', { class: 'field-row vol' }, h('span', { class: 'label' }, label), input, out);
  }

  function picker(which, list, current) {
    const id = `dev-${which}`;
    const select = h('select', { id, disabled: !ctx.allows('audio.select') || !list.length,
      onchange: (e) => act(e.currentTarget, () => ctx.call('audio.select', { [which]: e.currentTarget.value })) },
      list.length ? null : h('option', {}, 'No devices'),
      list.map((d) => h('option', { value: d.name, selected: current === d.name || (!current && d.is_default) }, d.description || d.name)));
    return h('div', { class: 'field-row' }, h('label', { for: id }, which === 'input' ? 'Microphone' : 'Speaker'), select);
  }

  return function render() {
    const audio = store.audio;
    const inUse = audio?.in_use;
    const signature = JSON.stringify([audio, ctx.has('audio.volume'), store.lastAudioChange]);
    if (summary) {
      const real = inUse && inUse.source.kind === 'device' && inUse.sink.kind === 'device';
      summary.className = `headset ${real ? '' : 'warn'}`;
      summary.textContent = inUse ? `Mic: ${describe(inUse.source)} · Speaker: ${describe(inUse.sink)}` : '';
    }
    if (signature !== last) {
      last = signature;
      // The daemon's gains, unless the agent is moving a slider right now.
      if (audio?.volume && !pending) Object.assign(gains, audio.volume);
      fill(el,
        h('h2', {}, 'Headset'),
        audio ? [picker('input', audio.inputs || [], inUse?.source.device), picker('output', audio.outputs || [], inUse?.sink.device)] : h('p', { class: 'empty' }, 'Loading devices…'),
        inUse && (inUse.source.kind !== 'device' || inUse.sink.kind !== 'device')
          ? h('p', { class: 'hint warn-text' }, `In use: microphone ${describe(inUse.source)}, speaker ${describe(inUse.sink)}.`) : null,
        slider('input', 'Mic'),
        slider('output', 'Speaker'),
        h('div', { class: 'meter', 'aria-label': 'Microphone level' }, h('div', { class: 'meter-fill', id: 'meter-fill' })),
        ctx.has('audio.volume') ? null : h('p', { class: 'hint' }, ctx.allows('audio.volume') ? 'Volume needs a softphoned with audio.volume.' : 'This workspace may not change the volume.'),
        store.lastAudioChange?.change === 'select_failed' ? h('p', { class: 'hint warn-text' }, `Could not switch: ${store.lastAudioChange.error || 'device refused'}`) : null);
    }
    // The meter moves on every audio.level (dBFS, about four a second
    // during a call) without a redraw: -60 dBFS empty, 0 dBFS full.
    const fillEl = el.querySelector('#meter-fill');
    if (fillEl && store.level) {
      const dbfs = store.level.input_dbfs ?? -60;
      fillEl.style.width = `${Math.max(0, Math.min(100, ((dbfs + 60) / 60) * 100))}%`;
    }
  };
}
