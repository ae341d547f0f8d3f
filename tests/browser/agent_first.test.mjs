// The agent-first callback, clicked through the workspace page in real
// Chromium against real sipp customers: the contact center's offer (sent
// over the Unix socket) → the card → Accept → the countdown visibly
// decreasing → the daemon dials → sipp answers; Mute (silence on the
// wire) and Hold (sendonly re-INVITE at sipp); Record → hang up → the
// file on disk; Submit & close → the history with its preview duration.
// Then Retry on the second number after a busy customer; and a wrap-up
// nobody touches, closed by its own countdown.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, readFileSync, existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sipp, Capture, freePortPair, toneAmplitude, window } from './lib/sipp.mjs';
import { shot, layoutProblems } from './lib/browser.mjs';
import { openDesk } from './lib/desk.mjs';

const NAME = 'agent-first';
const COUNTDOWN_MS = 4000;
// A tone this loud is heard; below ABSENT it is not (as tests/conference.rs).
const PRESENT = 3000;
const ABSENT = 600;

let work;
let daemon;
let page;

let desk;

before(async () => {
  desk = await openDesk('agent-first', {
    tone: true,
    // PCMU only, so what the customer is sent decodes from the capture.
    extra: '[media]\ncodecs = ["pcmu"]\nquality_interval_ms = 1000\n[callback]\nno_answer_timeout_ms = 15000',
  });
  ({ work, daemon, page } = desk);
});

after(() => desk?.close());

/** "00:03" -> 3 */
function seconds(text) {
  const m = /(\d+):(\d+)/.exec(text || '');
  assert.ok(m, `a countdown like 00:03, got ${JSON.stringify(text)}`);
  return Number(m[1]) * 60 + Number(m[2]);
}

function offer(numbers, extra = {}) {
  return daemon.rpc.call('callback.offer', {
    customer: 'Ada Lovelace', queue: 'billing', type: 'asap', reason: 'Invoice 4711 charged twice',
    numbers, dial_mode: 'automatic', countdown_ms: COUNTDOWN_MS, wrapup_ms: 60000,
    context: { ticket: 4711, account: 'ACME-22', tier: 'gold' }, ...extra,
  });
}

const callState = () => page.locator('.call-card [data-testid="call-state"]').first();

test('offer → Accept → countdown → automatic dial → sipp answers; mute and hold on the wire; record; wrap-up; history', { timeout: 120000 }, async () => {
  const port = await freePortPair();
  const media = await freePortPair();
  const customer = await Sipp.start(work, 'uas_hold.xml', port, media);
  const capture = await Capture.start(work, media);

  // The contact center offers the callback.
  const { callback } = await offer([{ label: 'mobile', number: customer.uri() }]);
  const card = page.locator(`article.offer[data-callback="${callback}"]`);
  await card.waitFor();
  const cardText = await card.innerText();
  for (const words of ['Ada Lovelace', 'billing', 'ASAP', 'Invoice 4711 charged twice']) assert.ok(cardText.includes(words), `${words} on the card:\n${cardText}`);
  await shot(page, NAME, '01-offer-card');

  // Accept: the countdown shows and visibly decreases.
  await card.getByRole('button', { name: 'Accept', exact: true }).click();
  const countdown = page.getByTestId('dial-countdown');
  await countdown.waitFor();
  const first = seconds(await countdown.textContent());
  await shot(page, NAME, '02-dial-countdown');
  await sleep(1300);
  const second = seconds(await countdown.textContent());
  assert.ok(first <= COUNTDOWN_MS / 1000 && second < first, `the countdown decreases: ${first} then ${second}`);
  assert.deepEqual(await layoutProblems(page), []);

  // At zero the daemon dials by itself; sipp receives the INVITE and answers.
  await customer.waitLog(`INVITE sip:customer@127.0.0.1:${port}`, 10000);
  await page.locator('.call-card[data-state="connected"]').waitFor({ timeout: 10000 });
  assert.equal(await page.getByTestId('callback-state').textContent(), 'On call');
  assert.equal(await countdown.count(), 0, 'the countdown is gone once dialled');
  const connectedAt = Date.now() / 1000;
  await shot(page, NAME, '03-connected');

  // Record.
  await page.getByRole('button', { name: 'Record', exact: true }).click();
  await page.getByTestId('recording-status').filter({ hasText: 'Recording' }).waitFor();
  const recordingPath = await page.getByTestId('recording-status').getAttribute('title');
  assert.ok(recordingPath && recordingPath.startsWith(daemon.recordingDir), `recording under ${daemon.recordingDir}: ${recordingPath}`);

  // Mute for a second and a half, then unmute: silence on the wire meanwhile.
  await sleep(1000);
  const muteClicked = Date.now() / 1000;
  await page.getByRole('button', { name: 'Mute', exact: true }).click();
  await page.getByRole('button', { name: 'Unmute', exact: true }).waitFor();
  const mutedAt = Date.now() / 1000;
  await shot(page, NAME, '04-muted-recording');
  await sleep(1500);
  const unmuteClicked = Date.now() / 1000;
  await page.getByRole('button', { name: 'Unmute', exact: true }).click();
  await page.getByRole('button', { name: 'Mute', exact: true }).waitFor();

  // Mic volume to half (audio.volume): what the customer is sent halves;
  // the meter (audio.level) moves.
  await page.getByLabel('Mic volume').fill('50');
  await page.waitForFunction(() => window.workspace.store.audio?.volume?.input === 0.5);
  const halvedAt = Date.now() / 1000;
  assert.ok(await page.locator('#meter-fill').evaluate((e) => parseFloat(e.style.width) > 20), 'the microphone meter moves');
  await sleep(1000);
  const holdClicked = Date.now() / 1000;

  // Escalate (call.flag) and a corrected reason for the call (callback.update).
  await page.getByRole('button', { name: 'Escalate' }).click();
  await page.getByRole('button', { name: 'Escalated' }).waitFor();
  await page.locator('#ctx-reason').fill('Invoice 4711 charged twice, refund promised');
  await page.locator('#ctx-notes').fill('Customer calm; prefers email');
  await page.locator('#context-card').getByRole('button', { name: 'Save' }).click();
  await page.getByText('Context saved').waitFor();
  const { callbacks } = await daemon.rpc.call('callback.list', {});
  const edited = callbacks.find((c) => c.callback === callback);
  assert.equal(edited.reason, 'Invoice 4711 charged twice, refund promised');
  assert.equal(edited.notes, 'Customer calm; prefers email');

  // Hold: sipp receives a re-INVITE whose offer is sendonly.
  await page.getByRole('button', { name: 'Hold', exact: true }).click();
  await page.locator('.call-card[data-state="held"]').waitFor();
  await customer.waitLog('a=sendonly');
  await shot(page, NAME, '05-on-hold');
  await page.getByRole('button', { name: 'Resume', exact: true }).click();
  await page.locator('.call-card[data-state="connected"]').waitFor();

  // The quality indicator shows what call.quality reports.
  const quality = page.getByTestId('call-quality');
  await quality.waitFor();
  assert.match(await quality.innerText(), /^MOS \d\.\d · loss \d+\.\d%$/);

  // Pause and resume the recording, then hang up: the file is saved.
  await page.getByRole('button', { name: 'Pause recording' }).click();
  await page.getByTestId('recording-status').filter({ hasText: 'Paused' }).waitFor();
  await page.getByRole('button', { name: 'Resume recording' }).click();
  await page.getByTestId('recording-status').filter({ hasText: 'Recording' }).waitFor();
  await sleep(500);
  await page.getByRole('button', { name: 'Hang up' }).click();

  // Wrap-up: the modal with its auto-close countdown.
  const modal = page.getByRole('dialog', { name: 'Wrap-up' });
  await modal.waitFor();
  const wrapupLeft = seconds(await page.getByTestId('wrapup-countdown').textContent());
  assert.ok(wrapupLeft > 50 && wrapupLeft <= 60, `wrap-up closes by itself in ${wrapupLeft} s`);
  const saved = page.getByTestId('recording-saved').first();
  await saved.waitFor({ timeout: 10000 });
  await modal.getByLabel('Reason').fill('Resolved');
  await modal.getByLabel('Notes').fill('Refunded the duplicate charge');
  await modal.getByLabel('Disposition').selectOption('success');
  await shot(page, NAME, '06-wrapup');

  // What sipp saw: the call, the hold (sendonly), the resume (sendrecv), our BYE.
  const log = await customer.expectSuccess();
  const reinvites = log.split('INVITE sip:').slice(2);
  assert.ok(reinvites.length >= 2, `a hold and a resume re-INVITE:\n${log.slice(-3000)}`);
  assert.match(reinvites[0], /a=sendonly/);
  assert.match(reinvites[1], /a=sendrecv/);
  assert.ok(log.includes('BYE sip:'), 'sipp got our BYE');

  // What the customer was sent: the agent's 440 Hz, silence while muted.
  const packets = await capture.stop();
  assert.ok(packets.length > 100, `RTP captured: ${packets.length} packets`);
  const talking = window(packets, connectedAt + 0.3, muteClicked - 0.1);
  const muted = window(packets, mutedAt + 0.2, unmuteClicked - 0.1);
  const talk = toneAmplitude(talking, 8000, 440);
  const quiet = toneAmplitude(muted, 8000, 440);
  console.log(`440 Hz on the wire: ${talk.toFixed(0)} before mute (${talking.length} samples), ${quiet.toFixed(0)} while muted (${muted.length} samples)`);
  assert.ok(talking.length >= 4000 && talk > PRESENT, `the customer heard the agent before mute: ${talk}`);
  assert.ok(muted.length >= 4000 && quiet < ABSENT, `silence while muted: ${quiet}`);
  const half = toneAmplitude(window(packets, halvedAt + 0.3, holdClicked - 0.1), 8000, 440);
  console.log(`440 Hz on the wire at mic volume 50%: ${half.toFixed(0)}`);
  assert.ok(half > 0.4 * talk && half < 0.6 * talk, `half the level at 50%: ${half} of ${talk}`);

  // The recording is on disk, closed, with its sidecar.
  const file = await saved.getAttribute('title');
  assert.equal(file, recordingPath);
  const size = statSync(file).size;
  assert.ok(size > 44 + 4 * 8000, `a WAV of at least half a second: ${size} bytes`);
  assert.equal(readFileSync(file).subarray(0, 4).toString(), 'RIFF');
  assert.ok(existsSync(file.replace(/\.wav$/, '.json')), 'its sidecar');

  // Submit & close → the history shows it with its preview duration.
  await modal.getByRole('button', { name: 'Submit & close' }).click();
  await modal.waitFor({ state: 'detached' });
  await page.getByRole('tab', { name: 'History' }).click();
  const entry = page.locator(`[data-testid="history-entry"][data-callback="${callback}"]`);
  await entry.waitFor();
  const entryText = await entry.innerText();
  assert.ok(entryText.includes('Ada Lovelace') && entryText.includes('Completed'), entryText);
  assert.match(await entry.getByTestId('preview-duration').innerText(), /^Preview 0:0[45]$/, 'accept to dial: the 4 s countdown');
  const history = await daemon.rpc.call('history.list', { kind: 'callback', limit: 5 });
  const stored = history.entries.find((e) => e.callback === callback);
  assert.equal(stored.wrapup.notes, 'Refunded the duplicate charge');
  assert.equal(stored.reason, 'Invoice 4711 charged twice, refund promised', 'the corrected reason is kept');
  const calls = await daemon.rpc.call('history.list', { kind: 'call', limit: 5 });
  assert.ok(calls.entries.some((e) => (e.flags || []).includes('escalate')), `the call record carries the flag: ${JSON.stringify(calls.entries.map((e) => e.flags))}`);
  assert.ok(stored.preview_ms >= COUNTDOWN_MS && stored.preview_ms < COUNTDOWN_MS + 600, `preview ${stored.preview_ms} ms`);
  await shot(page, NAME, '07-history');
  assert.deepEqual(page.problems, []);
});

test('Retry after a busy customer, on the second number chosen in the drop-down', { timeout: 90000 }, async () => {
  const busyPort = await freePortPair();
  const homePort = await freePortPair();
  const busy = await Sipp.start(work, 'uas_busy.xml', busyPort, await freePortPair());
  const home = await Sipp.start(work, 'uas_tone.xml', homePort, await freePortPair());
  const { callback } = await offer(
    [{ label: 'mobile', number: busy.uri() }, { label: 'home', number: home.uri() }],
    { customer: 'Grace Hopper', reason: 'Router keeps rebooting', countdown_ms: 1000 },
  );
  const card = page.locator(`article.offer[data-callback="${callback}"]`);
  await card.getByRole('button', { name: 'Accept', exact: true }).click();

  // The countdown dials the first number; the customer is busy.
  const busyLog = await busy.expectSuccess();
  assert.ok(busyLog.includes('SIP/2.0 486 Busy Here'), 'sipp answered 486');
  const attempt = page.locator('.attempt.busy');
  await attempt.waitFor();
  assert.match(await attempt.innerText(), /busy \(486\)/);
  const retry = page.getByRole('button', { name: 'Retry call' });
  await retry.waitFor();
  assert.ok(await retry.isEnabled(), 'Retry call is offered after the busy attempt');
  await shot(page, NAME, '08-busy-retry');

  // The second number, then Retry call: that number rings and answers.
  await page.getByLabel('Number to call').selectOption({ label: `home — customer@127.0.0.1:${homePort}` });
  await page.waitForFunction(([cb, port]) => window.workspace.store.callbacks.get(cb)?.selected.endsWith(`:${port}`), [callback, homePort]);
  await retry.click();
  await home.waitLog(`INVITE sip:customer@127.0.0.1:${homePort}`);
  await page.locator('.call-card[data-state="connected"]').waitFor({ timeout: 10000 });
  await shot(page, NAME, '09-retry-connected');
  await sleep(500);
  await page.getByRole('button', { name: 'Hang up' }).click();
  const modal = page.getByRole('dialog', { name: 'Wrap-up' });
  await modal.waitFor();
  await modal.getByRole('button', { name: 'Submit & close' }).click();
  await modal.waitFor({ state: 'detached' });

  const homeLog = await home.expectSuccess();
  assert.ok(homeLog.includes('BYE sip:'), 'the second number got our BYE');
  assert.equal(busyLog.split('\nINVITE sip:').length - 1, 1, 'the busy number was dialled once');
  await page.getByRole('tab', { name: 'History' }).click();
  const entry = page.locator(`[data-testid="history-entry"][data-callback="${callback}"]`);
  await entry.waitFor();
  assert.match(await entry.innerText(), /2 attempts \(busy, answered\)/);
  await shot(page, NAME, '10-history-two-attempts');
  assert.deepEqual(page.problems, []);
});

test('Cancel countdown, Transfer callback to a queue ("please wait…"), Cancel callback transfer, Close callback', { timeout: 60000 }, async () => {
  const { callback } = await offer([{ label: 'mobile', number: 'sip:nobody@127.0.0.1:9' }], { customer: 'Katherine Johnson', countdown_ms: 30000 });
  await page.locator(`article.offer[data-callback="${callback}"]`).getByRole('button', { name: 'Accept', exact: true }).click();
  // The automatic countdown, stopped by the agent: nothing will dial by itself.
  await page.getByTestId('dial-countdown').waitFor();
  await page.getByRole('button', { name: 'Cancel countdown' }).click();
  await page.getByTestId('dial-countdown').waitFor({ state: 'detached' });
  const stopped = await daemon.rpc.waitEvent((m, p) => m === 'callback.countdown' && p.callback === callback && p.stopped, 3000, 'the countdown stop');
  assert.equal(stopped.params.stopped, 'cancelled');

  // Transfer callback to a queue: the banner until the contact center answers.
  await page.getByRole('button', { name: 'Transfer callback' }).click();
  const form = page.getByRole('form', { name: 'Transfer callback' });
  await form.getByLabel('Queue name').fill('billing-tier2');
  await form.getByRole('button', { name: 'Transfer', exact: true }).click();
  await page.getByText('Transferring callback, please wait…').waitFor();
  assert.equal(await page.getByTestId('callback-state').textContent(), 'Transferring');
  const { callbacks } = await daemon.rpc.call('callback.list', {});
  assert.deepEqual(callbacks.find((c) => c.callback === callback).transfer, { queue: 'billing-tier2' });
  await shot(page, NAME, '11-transferring');
  await page.getByRole('button', { name: 'Cancel callback transfer' }).click();
  await page.getByText('Transferring callback, please wait…').waitFor({ state: 'detached' });
  assert.equal(await page.getByTestId('callback-state').textContent(), 'Preview');

  // Close callback without calling.
  await page.getByRole('button', { name: 'Close callback' }).click();
  const closed = await daemon.rpc.waitEvent((m, p) => m === 'callback.state' && p.callback === callback && p.state === 'closed', 3000, 'the close');
  assert.equal(closed.params.closed, 'closed_by_agent');
  assert.equal(closed.params.attempts.length, 0, 'nothing was dialled');
  await page.getByText('No callback in progress.', { exact: false }).waitFor();
  assert.deepEqual(page.problems, []);
});

test('Wrap-up closes by itself when its countdown reaches zero, nothing clicked', { timeout: 60000 }, async () => {
  const WRAPUP_MS = 3000;
  const customer = await Sipp.start(work, 'uas_tone.xml', await freePortPair(), await freePortPair());
  const { callback } = await offer([{ label: 'mobile', number: customer.uri() }],
    { customer: 'Hedy Lamarr', reason: 'Spread-spectrum router', countdown_ms: 1000, wrapup_ms: WRAPUP_MS });
  await page.locator(`article.offer[data-callback="${callback}"]`).getByRole('button', { name: 'Accept', exact: true }).click();
  await page.locator('.call-card[data-state="connected"]').waitFor({ timeout: 10000 });
  await page.getByRole('button', { name: 'Hang up' }).click();

  // The modal with its countdown: read twice, it goes down.
  const modal = page.getByRole('dialog', { name: 'Wrap-up' });
  await modal.waitFor();
  const shownAt = Date.now();
  const countdown = page.getByTestId('wrapup-countdown');
  const first = seconds(await countdown.textContent());
  assert.ok(first >= 1 && first <= WRAPUP_MS / 1000, `wrap-up closes by itself in ${first} s`);
  await shot(page, NAME, '12-wrapup-autoclose');
  await page.waitForFunction((f) => {
    const m = /(\d+):(\d+)/.exec(document.querySelector('[data-testid="wrapup-countdown"]')?.textContent || '');
    return m && Number(m[1]) * 60 + Number(m[2]) < f;
  }, first, { timeout: WRAPUP_MS });

  // Nothing clicked: at zero the daemon closes the callback and the modal goes.
  await modal.waitFor({ state: 'detached', timeout: WRAPUP_MS + 3000 });
  const open = Date.now() - shownAt;
  assert.ok(open > WRAPUP_MS - 1500, `the modal stayed until the countdown ran out (${open} ms)`);
  const closed = await daemon.rpc.waitEvent((m, p) => m === 'callback.state' && p.callback === callback && p.state === 'closed', 3000, 'the close');
  assert.equal(closed.params.closed, 'completed');
  const stop = await daemon.rpc.waitEvent((m, p) => m === 'callback.countdown' && p.callback === callback && p.kind === 'wrapup' && p.stopped, 3000, 'the wrap-up countdown stop');
  assert.equal(stop.params.stopped, 'elapsed', 'it ran out; nobody stopped it');

  // The store says so too, and the History view shows it.
  const history = await daemon.rpc.call('history.list', { kind: 'callback', limit: 5 });
  const stored = history.entries.find((e) => e.callback === callback);
  assert.equal(stored.closed, 'completed', JSON.stringify(stored));
  assert.equal(stored.wrapup?.auto_closed, true, `the record says the wrap-up closed by itself: ${JSON.stringify(stored.wrapup)}`);
  await page.getByRole('tab', { name: 'History' }).click();
  const entry = page.locator(`[data-testid="history-entry"][data-callback="${callback}"]`);
  await entry.waitFor();
  const text = await entry.innerText();
  assert.ok(text.includes('Hedy Lamarr') && text.includes('Completed'), text);
  await shot(page, NAME, '13-history-autoclosed');
  assert.ok((await customer.expectSuccess()).includes('BYE sip:'), 'the customer got our BYE');
  assert.deepEqual(await layoutProblems(page), []);
  assert.deepEqual(page.problems, []);
});
