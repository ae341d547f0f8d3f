// Consult and Merge, clicked in the page, against two real peers: the
// agent dials the customer from the dialpad, opens Transfer → Consult to
// a colleague (the customer is held: sendonly at sipp), then Merge calls
// (the customer is resumed and, on the wire, hears the colleague's
// 1 kHz along with the agent's 440 Hz), then hangs both up. Meanwhile a
// second tab and a reload of this one get the live calls first.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sipp, Capture, freePortPair, toneAmplitude, window } from './lib/sipp.mjs';
import { openWorkspace, shot, waitConnected, layoutProblems } from './lib/browser.mjs';
import { openDesk } from './lib/desk.mjs';

const NAME = 'consult-merge';
const PRESENT = 3000;
const ABSENT = 600;

let work;
let site;
let daemon;
let browser;
let page;
let token;

let desk;

before(async () => {
  desk = await openDesk('consult', { tone: true, extra: '[media]\ncodecs = ["pcmu"]' });
  ({ work, site, daemon, browser, page, token } = desk);
});

after(() => desk?.close());

test('Consult a colleague, then Merge calls: the customer hears the colleague', { timeout: 90000 }, async () => {
  const customerMedia = await freePortPair();
  // The customer answers every re-INVITE (hold, resume) and streams 1 kHz;
  // so does the colleague, who is never held.
  const customer = await Sipp.start(work, 'uas_slow_reinvite.xml', await freePortPair(), customerMedia);
  const colleague = await Sipp.start(work, 'uas_tone.xml', await freePortPair(), await freePortPair());
  const capture = await Capture.start(work, customerMedia);

  // Dial the customer from the dialpad.
  await page.getByLabel('Number to dial').fill(customer.uri());
  await page.getByRole('button', { name: 'Call', exact: true }).click();
  const card = page.locator('.call-card').first();
  await page.locator('.call-card[data-state="connected"]').waitFor({ timeout: 10000 });
  const customerCall = await card.getAttribute('data-call');

  // Transfer → Consult the colleague: the customer is held.
  await card.getByRole('button', { name: 'Transfer' }).click();
  await card.getByLabel('Transfer to').fill(colleague.uri('colleague'));
  await card.getByRole('button', { name: 'Consult' }).click();
  await customer.waitLog('a=sendonly');
  await colleague.waitLog('INVITE sip:colleague@');
  const consult = card.getByLabel('Consult call');
  await consult.getByTestId('consult-state').filter({ hasText: 'Connected' }).waitFor({ timeout: 10000 });
  const consultingAt = Date.now() / 1000;
  await shot(page, NAME, '01-consulting');
  assert.deepEqual(await layoutProblems(page), []);

  // A second tab, and this tab reloaded, get the live calls first (the
  // subscription's snapshot): the customer held, the consult connected.
  const second = await openWorkspace(browser.context, `${site.url}/`, { bridgeUrl: daemon.bridgeUrl, token });
  await waitConnected(second);
  await second.locator(`.call-card[data-call="${customerCall}"][data-state="held"]`).getByLabel('Consult call').waitFor();
  await second.close();
  await page.reload();
  await waitConnected(page);
  await page.locator(`.call-card[data-call="${customerCall}"][data-state="held"]`).getByLabel('Consult call')
    .getByTestId('consult-state').filter({ hasText: 'Connected' }).waitFor();
  // Held long enough to judge what the customer is sent: the tabs above may
  // take anything from a quarter of a second to a few.
  await sleep(Math.max(300, (consultingAt + 1.6) * 1000 - Date.now()));

  // Merge calls: both in the conference, the customer resumed.
  const mergeClicked = Date.now() / 1000;
  await page.getByLabel('Consult call').getByRole('button', { name: 'Merge calls' }).click();
  await page.locator('.call-card .badge.conf').nth(1).waitFor();
  const reinvites = () => customer.log().split('INVITE sip:').slice(2);
  for (let i = 0; i < 100 && !reinvites().some((r) => r.includes('a=sendrecv')); i++) await sleep(50);
  assert.ok(reinvites().some((r) => /a=sendrecv/.test(r)), 'the customer was resumed');
  const mergedAt = Date.now() / 1000;
  await sleep(1500);
  await shot(page, NAME, '02-merged');

  // Hang both up from their cards.
  const hangups = page.getByRole('button', { name: 'Hang up' });
  for (let left = await hangups.count(); left > 0; left--) {
    await hangups.first().click();
    await page.waitForFunction((n) => document.querySelectorAll('.call-card').length < n, left);
  }
  const customerLog = await customer.expectSuccess();
  const colleagueLog = await colleague.expectSuccess();
  assert.ok(customerLog.includes('BYE sip:') && colleagueLog.includes('BYE sip:'), 'both got our BYE');
  await page.getByText('No active call.').waitFor();

  // What the customer was sent: silence while held for the consult; after
  // the merge the colleague's 1 kHz (it can only come from the colleague:
  // a party never gets its own audio back) and the agent's 440 Hz.
  const packets = await capture.stop();
  if (process.env.DEBUG_RTP) for (const p of packets.filter((p) => p.t > consultingAt - 1 && p.t < mergedAt + 0.5)) console.log((p.t - consultingAt).toFixed(3), Math.round(toneAmplitude(p.samples, 8000, 440)), p.t < mergeClicked ? 'before-merge' : '');
  // From half a second into the consult: until the customer's sipp answers
  // the hold re-INVITE (300 ms, uas_slow_reinvite.xml) the agent's audio
  // still reaches the customer (reported; not asserted here).
  const held = window(packets, consultingAt + 0.5, mergeClicked - 0.1);
  const merged = window(packets, mergedAt + 0.3, mergedAt + 1.3);
  const heard = (samples) => [440, 1000].map((hz) => Math.round(toneAmplitude(samples, 8000, hz)));
  console.log(`customer was sent (440 Hz, 1 kHz): held ${heard(held)}, merged ${heard(merged)}`);
  assert.ok(merged.length >= 4000, `a second after the merge captured: ${merged.length}`);
  const [agentMerged, colleagueMerged] = heard(merged);
  assert.ok(agentMerged > PRESENT && colleagueMerged > PRESENT, 'merged: the customer hears the agent and the colleague');
  assert.ok(held.length >= 2000 && heard(held).every((a) => a < ABSENT), `held: the customer is sent silence (${held.length} samples, ${heard(held)})`);
  assert.ok(customerCall);
  assert.deepEqual(page.problems, []);
});
