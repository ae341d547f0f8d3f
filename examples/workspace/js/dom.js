// Small DOM helpers shared by the components: building elements without a
// framework, the countdown ticker, and the formats agents read.

/**
 * h('button', {class: 'primary', onclick}, 'Accept') -> <button>.
 * Attributes starting with "on" become listeners; `dataset`, `style`
 * objects are spread; null/false children and attributes are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'style' && typeof value === 'object') Object.assign(el.style, value);
    else if (key === 'class') el.className = value;
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// Small line icons (24×24 paths), drawn inline: no icon font, no emoji
// font needed on the agent's machine.
const ICONS = {
  mic: 'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5 11a7 7 0 0 0 14 0M12 18v3',
  micOff: 'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5 11a7 7 0 0 0 14 0M12 18v3M4 4l16 16',
  pause: 'M8 5v14M16 5v14',
  play: 'M7 5l12 7-12 7z',
  rec: 'M12 7a5 5 0 1 0 0 10a5 5 0 1 0 0-10z',
  transfer: 'M4 8h14l-4-4M20 16H6l4 4',
  hangup: 'M3 14c5-5 13-5 18 0l-2 3-4-1v-3a10 10 0 0 0-6 0v3l-4 1z',
  phone: 'M5 4h4l2 5-3 2a11 11 0 0 0 5 5l2-3 5 2v4a2 2 0 0 1-2 2A16 16 0 0 1 3 6a2 2 0 0 1 2-2z',
  callback: 'M4 12a8 8 0 1 0 3-6.2M4 4v5h5',
  incoming: 'M17 7L7 17M7 9v8h8',
  outgoing: 'M7 17L17 7M9 7h8v8',
  flag: 'M5 21V4h11l-2 4 2 4H5',
  keypad: 'M6 5h.01M12 5h.01M18 5h.01M6 11h.01M12 11h.01M18 11h.01M6 17h.01M12 17h.01M18 17h.01',
};

/** An inline SVG icon by name (aria-hidden: the button's text says it). */
export function icon(name, cls = '') {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', `svg-icon ${cls}`.trim());
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name] || '');
  svg.append(path);
  return svg;
}

/** Replace everything inside `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** 9400 ms -> "00:10": what a countdown shows (rounded up, as a clock does). */
export function clock(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  return `${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
}

/** 83000 -> "1:23" (a duration someone talked or waited). */
export function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  const total = Math.round(ms / 1000);
  const m = Math.floor(total / 60);
  const s = total % 60;
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, '0')}:${String(s).padStart(2, '0')}` : `${m}:${String(s).padStart(2, '0')}`;
}

/** An RFC 3339 time as the agent's local "Tue 14:05". */
export function localTime(rfc3339) {
  if (!rfc3339) return '';
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  return d.toLocaleString([], { weekday: 'short', hour: '2-digit', minute: '2-digit' });
}

/** sip:customer@127.0.0.1:5070 -> "customer@127.0.0.1:5070"; numbers unchanged. */
export function prettyNumber(uri) {
  return String(uri || '').replace(/^sips?:/, '');
}

/**
 * A countdown element: its text is redrawn by the ticker from a deadline
 * on the page's monotonic clock, so it moves smoothly between the
 * daemon's once-a-second events. `key` ("call:ID" / "callback:ID") lets
 * syncCountdowns() move the deadline when the daemon's next event comes,
 * without redrawing the card around it.
 */
export function countdownText(countdown, key, attrs = {}) {
  return h('span', { ...attrs, class: `countdown ${attrs.class || ''}`.trim(), dataset: { deadline: String(countdown.deadline), countdownKey: key } },
    clock(countdown.deadline - performance.now()));
}

/** A bar that empties as the deadline comes. */
export function countdownBar(countdown, key) {
  return h('div', { class: 'countdown-bar', role: 'presentation' },
    h('div', { class: 'countdown-bar-fill', dataset: { deadline: String(countdown.deadline), total: String(countdown.total), countdownKey: key } }));
}

/** Give every countdown on the page the deadline the daemon last said. */
export function syncCountdowns(store) {
  for (const el of document.querySelectorAll('[data-countdown-key]')) {
    const [kind, id] = splitKey(el.dataset.countdownKey);
    const countdown = kind === 'call' ? store.callCountdowns.get(id) : store.callbackCountdowns.get(id);
    if (countdown) el.dataset.deadline = String(countdown.deadline);
  }
}

function splitKey(key) {
  const at = key.indexOf(':');
  return [key.slice(0, at), key.slice(at + 1)];
}

/** Redraw every countdown on the page five times a second. */
export function startTicker() {
  const tick = () => {
    const now = performance.now();
    for (const el of document.querySelectorAll('[data-deadline]')) {
      const left = Number(el.dataset.deadline) - now;
      if (el.classList.contains('countdown-bar-fill')) {
        const total = Number(el.dataset.total) || 1;
        el.style.width = `${Math.max(0, Math.min(100, (left / total) * 100))}%`;
      } else {
        const text = clock(left);
        if (el.textContent !== text) el.textContent = text;
      }
    }
    for (const el of document.querySelectorAll('[data-since]')) {
      const text = duration(now - Number(el.dataset.since));
      if (el.textContent !== text) el.textContent = text;
    }
  };
  setInterval(tick, 200);
}

/** A short message at the bottom right (errors, confirmations). */
export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const item = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/**
 * Run a daemon call from a button: disable it meanwhile (no double dial
 * from a double click), toast the daemon's own words on failure.
 */
export async function act(button, action) {
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    toast(error.message || String(error), 'error');
    return undefined;
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}
