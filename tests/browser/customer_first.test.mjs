// Customer-first: a customer's call rings the agent (a sipp UAC), the
// contact center attaches the callback context to it (`callback.offer`
// with `call`, over the Unix socket), and the page shows the inbound
// notice with "Accept (00:0N)" counting down and the context card; at
// zero the daemon answers by itself (sipp gets its 200), the agent talks,
// hangs up from the page (sipp gets the BYE) and wraps up.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sipp, Capture, freePortPair, rtpEvents } from './lib/sipp.mjs';
import { shot, layoutProblems } from './lib/browser.mjs';
import { openDesk } from './lib/desk.mjs';

const NAME = 'customer-first';
const AUTO_ANSWER_MS = 5000;

let work;
let daemon;
let page;

let desk;

before(async () => {
  desk = await openDesk('customer-first', { extra: `[agent]\nauto_answer_after_ms = ${AUTO_ANSWER_MS}` });
  ({ work, daemon, page } = desk);
});

after(() => desk?.close());

test('an inbound call shows "Accept (00:0N)" counting down with its context card, and is answered at zero', { timeout: 90000 }, async () => {
  const callerMedia = await freePortPair();
  const caller = await Sipp.start(work, 'uac_call_wait_bye.xml', await freePortPair(), callerMedia, [`127.0.0.1:${daemon.sipPort}`, '-s', 'agent']);
  const capture = await Capture.start(work, callerMedia);
  const incoming = await daemon.rpc.waitEvent((m, p) => m === 'call.state' && p.state === 'incoming', 10000, 'the incoming call');
  const call = incoming.params.call;
  // The contact center attaches the customer's context to the ringing call.
  const { callback } = await daemon.rpc.call('callback.offer', {
    call, customer: 'Alan Turing', queue: 'cards', type: 'asap', reason: 'Card blocked abroad',
    numbers: [{ label: 'caller', number: incoming.params.remote }], context: { card: '•••• 4242', country: 'Japan' },
  });

  const notice = page.locator(`article.inbound[data-call="${call}"]`);
  await notice.waitFor();
  const accept = notice.getByRole('button', { name: /^Accept \(\d\d:\d\d\)$/ });
  const first = Number(/\((\d\d):(\d\d)\)/.exec(await accept.textContent())[2]);
  assert.ok(first >= 1 && first <= AUTO_ANSWER_MS / 1000, `Accept (00:0${first})`);
  assert.ok((await notice.innerText()).includes('Alan Turing'), 'the notice names the customer');
  // The context card is attached to the ringing call.
  const context = page.locator('#context-card');
  await context.getByText('Alan Turing').waitFor();
  assert.ok((await context.innerText()).includes('Japan'), await context.innerText());
  assert.equal(await page.locator('#ctx-reason').inputValue(), 'Card blocked abroad');
  await shot(page, NAME, '01-accept-countdown');
  assert.deepEqual(await layoutProblems(page), []);
  await sleep(1200);
  const second = Number(/\((\d\d):(\d\d)\)/.exec(await accept.textContent())[2]);
  assert.ok(second < first, `the count goes down: ${first} then ${second}`);
  assert.ok(!caller.log().includes('SIP/2.0 200 OK'), 'not answered before zero');

  // At zero the daemon answers: sipp gets the 200 with our SDP.
  await caller.waitLog('SIP/2.0 200 OK', AUTO_ANSWER_MS + 5000);
  await page.locator(`.call-card[data-call="${call}"][data-state="connected"]`).waitFor({ timeout: 5000 });
  assert.equal(await notice.count(), 0, 'the notice is gone');
  assert.equal(await page.getByTestId('callback-state').textContent(), 'On call');
  const stop = await daemon.rpc.waitEvent((m, p) => m === 'call.countdown' && p.call === call && p.stopped, 1000, 'the countdown stop');
  assert.equal(stop.params.stopped, 'elapsed');
  await shot(page, NAME, '02-answered-with-context');

  // The dialpad sends keys to the call: RFC 4733 events on the wire.
  await page.getByRole('button', { name: 'Key 4' }).click();
  await page.getByRole('button', { name: 'Key #' }).click();
  assert.equal(await page.getByTestId('dtmf-sent').textContent(), '4#');

  // Schedule a follow-up from the live call: customer and numbers come
  // from the call's callback; the agent gives the customer's time and zone.
  await page.locator(`.call-card[data-call="${call}"]`).getByRole('button', { name: 'Schedule' }).click();
  const form = page.getByRole('form', { name: 'Schedule callback' });
  await form.getByLabel("Customer's date and time").fill('2030-01-15T09:30');
  await form.getByLabel("Customer's time zone").selectOption('Asia/Tokyo');
  await form.getByLabel('Instructions for the agent who calls').fill('Confirm the new card arrived');
  assert.match(await form.getByTestId('schedule-preview').innerText(), /2030-01-15 09:30 \(Asia\/Tokyo\)/);
  await shot(page, NAME, '03-schedule-from-call');
  await form.getByRole('button', { name: 'Schedule' }).click();
  await form.waitFor({ state: 'detached' });
  const { callbacks } = await daemon.rpc.call('callback.list', {});
  const followUp = callbacks.find((c) => c.state === 'scheduled');
  assert.equal(followUp.customer, 'Alan Turing', 'taken from the call');
  assert.equal(followUp.schedule.due_at.replace(/(\.0+)?Z$/, 'Z'), '2030-01-15T00:30:00Z', '09:30 in Tokyo is 00:30 UTC');
  assert.equal(followUp.schedule.instructions, 'Confirm the new card arrived');

  await sleep(300);
  await page.locator(`.call-card[data-call="${call}"]`).getByRole('button', { name: 'Hang up' }).click();
  const log = await caller.expectSuccess();
  assert.match(log, /m=audio \d+ RTP\/AVP/, 'our answer had audio');
  await capture.stop();
  assert.equal(rtpEvents(capture), '4#', 'the caller received the keys as RFC 4733 events');
  assert.ok(log.includes('BYE sip:'), 'sipp got our BYE');
  const modal = page.getByRole('dialog', { name: 'Wrap-up' });
  await modal.waitFor();
  await modal.getByLabel('Reason').fill('Card unblocked');
  await shot(page, NAME, '04-wrapup');
  await modal.getByRole('button', { name: 'Submit & close' }).click();
  await modal.waitFor({ state: 'detached' });
  await page.getByRole('tab', { name: 'History' }).click();
  const entry = page.locator(`[data-testid="history-entry"][data-callback="${callback}"]`);
  await entry.waitFor();
  assert.match(await entry.innerText(), /Alan Turing[\s\S]*Completed[\s\S]*1 attempt \(answered\)/);
  assert.deepEqual(page.problems, []);
});

test('My callbacks: Reschedule in the customer\'s time zone and Cancel; Not ready refuses a call, Ready takes it', { timeout: 60000 }, async () => {
  // The follow-up booked from the call in the test before.
  await page.getByRole('tab', { name: 'Open' }).click();
  const row = page.locator('.cb-row').filter({ hasText: 'Alan Turing' });
  await row.getByTestId('due').waitFor();
  assert.match(await row.innerText(), /Due Tue 15 Jan 09:30 \(Asia\/Tokyo\)/);
  assert.match(await row.innerText(), /Instructions: Confirm the new card arrived/);
  await row.getByRole('button', { name: 'Reschedule' }).click();
  const form = page.getByRole('form', { name: 'Reschedule callback' });
  await form.getByLabel("Customer's date and time").fill('2030-01-16T18:45');
  await form.getByLabel("Customer's time zone").selectOption('America/New_York');
  await form.getByRole('button', { name: 'Reschedule' }).click();
  await form.waitFor({ state: 'detached' });
  await row.filter({ hasText: 'America/New_York' }).waitFor();
  assert.match(await row.innerText(), /Due Wed 16 Jan 18:45 \(America\/New_York\)/);
  const id = await row.getAttribute('data-callback');
  const { callbacks } = await daemon.rpc.call('callback.list', {});
  assert.equal(callbacks.find((c) => c.callback === id).schedule.due_at.replace(/(\.0+)?Z$/, 'Z'), '2030-01-16T23:45:00Z');
  await shot(page, NAME, '05-rescheduled');
  await row.getByRole('button', { name: 'Cancel' }).click();
  await row.waitFor({ state: 'detached' });
  const closed = await daemon.rpc.waitEvent((m, p) => m === 'callback.state' && p.callback === id && p.state === 'closed', 5000, 'the cancel');
  assert.equal(closed.params.closed, 'cancelled');

  // Not ready: a customer's call is refused without ringing (sipp sees the code).
  await page.getByRole('button', { name: 'Not ready' }).click();
  await page.locator('.seg.not_ready.on').waitFor();
  assert.equal((await daemon.rpc.call('daemon.status', {})).agent_state, 'not_ready');
  const refused = await Sipp.call(work, 'uac_call_rejected.xml', `127.0.0.1:${daemon.sipPort}`, 'agent');
  const refusedLog = await refused.expectSuccess();
  assert.match(refusedLog, /SIP\/2.0 4(80|86) /, 'sipp was refused while not ready');
  await shot(page, NAME, '06-not-ready');
  // Ready: the next call rings the agent again.
  await page.getByRole('button', { name: 'Ready', exact: true }).click();
  await page.locator('.seg.ready.on').waitFor();
  const caller = await Sipp.call(work, 'uac_call_wait_bye.xml', `127.0.0.1:${daemon.sipPort}`, 'agent');
  const notice = page.locator('article.inbound');
  await notice.waitFor();
  await notice.getByRole('button', { name: /^Accept/ }).click();
  await page.locator('.call-card[data-state="connected"]').waitFor();
  await page.getByRole('button', { name: 'Hang up' }).click();
  await caller.expectSuccess();
  assert.deepEqual(page.problems, []);
});
