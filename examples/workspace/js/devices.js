// Headset selection and volume. The daemon owns the sound card (the page
// never touches getUserMedia): `audio.devices` lists what the system
// offers, `audio.select` switches (also mid-call) and answers with an
// `audio.device` event saying what is really in use, which may be a
// fallback; `audio.volume` (gain 0.0–2.0) sets microphone and speaker
// gain (called with nothing, it tells the gains now set), and
// `audio.level` events (dBFS) drive the microphone meter.
// A daemon running on a tone, a WAV file or null says so here instead of
// pretending to have a headset.

import { h, fill, act, toast } from './dom.js';

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
        ctx.has('audio.volume') ? null : h('p', { class: 'hint' }, 'Volume needs a softphoned with audio.volume.'),
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
