// Headset selection and speaker volume, clicked in the page, judged by
// where the customer's voice really went. The daemon runs with two
// software headsets (lib/alsa.mjs: ALSA `file` taps into FIFOs this test
// drains at the card's rate) listed by `audio.devices`; the agent picks
// Headset A in the Speaker drop-down, calls a sipp customer who streams
// 1 kHz, switches to Headset B mid-call, then sets the speaker volume to
// 50 %. What each FIFO carried says which headset played the customer and
// how loud; the daemon's `audio.device` events and daemon.status say what
// it thinks is in use. The microphone stays the daemon's test tone: the
// page's Microphone drop-down is not exercised here (see README.md).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sipp, freePortPair, toneAmplitude } from './lib/sipp.mjs';
import { shot, layoutProblems } from './lib/browser.mjs';
import { openDesk } from './lib/desk.mjs';
import { softwareHeadsets, PacedSpeaker, CARD_RATE } from './lib/alsa.mjs';

const NAME = 'headset';
// 1 kHz from the customer, in one headset's left channel (full scale 32767).
const PRESENT = 2000;
const ABSENT = 100;

let alsaDir;
let speakers;
let work;
let daemon;
let page;
let desk;

before(async () => {
  alsaDir = mkdtempSync(join(tmpdir(), 'browser-alsa-'));
  const { config, fifos } = softwareHeadsets(alsaDir, { headset_a: 'Headset A', headset_b: 'Headset B' });
  // Draining before the daemon starts: ALSA blocks opening a FIFO nobody reads.
  speakers = { a: new PacedSpeaker(fifos.headset_a), b: new PacedSpeaker(fifos.headset_b) };
  desk = await openDesk('headset', { tone: true, extra: '[media]\ncodecs = ["pcmu"]', env: { ALSA_CONFIG_PATH: config } });
  ({ work, daemon, page } = desk);
});

after(async () => {
  await desk?.close();
  for (const s of Object.values(speakers || {})) s.stop();
  if (alsaDir && !process.env.KEEP) rmSync(alsaDir, { recursive: true, force: true });
});

/** Choose `label` in the Speaker drop-down; the daemon's audio.device event that follows. */
async function chooseSpeaker(label, device) {
  const seen = daemon.rpc.events.length;
  await page.getByLabel('Speaker', { exact: true }).selectOption({ label });
  // Only an event that came after the choice counts.
  const after = (p) => daemon.rpc.events.slice(seen).some((e) => e.params === p);
  const event = await daemon.rpc.waitEvent((m, p) => m === 'audio.device' && p.audio?.sink?.device === device && after(p),
    10000, `audio.device for ${device}`);
  assert.equal(event.params.change, 'selected');
  assert.equal(event.params.audio.sink.kind, 'device');
  // The header says so too: what the daemon reports, not what was clicked.
  await page.locator('#headset-summary').filter({ hasText: `Speaker: ${device}` }).waitFor();
  return Date.now();
}

/**
 * 1 kHz in what `speaker` played between epoch ms `from` and `to`: the
 * median over 100 ms windows (a device just opened may start with a few
 * hundred ms of silence from before the call's audio reached it: start-up,
 * not evidence), the loudest window, and how many samples.
 */
function heard(speaker, from, to) {
  const samples = speaker.between(from, to);
  const step = CARD_RATE / 10;
  const windows = [];
  for (let at = 0; at + step <= samples.length; at += step) windows.push(toneAmplitude(samples.subarray(at, at + step), CARD_RATE, 1000));
  windows.sort((x, y) => x - y);
  const median = windows.length ? windows[Math.floor(windows.length / 2)] : 0;
  return { level: Math.round(median), loudest: Math.round(windows.at(-1) || 0), samples: samples.length };
}

test('Speaker: Headset A, then Headset B mid-call, then 50 % volume: the customer is heard where and as loud as chosen', { timeout: 90000 }, async () => {
  // The drop-downs list what the daemon found (audio.devices). The page asks
  // once it is connected, and ALSA's probe of every PCM can take seconds on a
  // loaded machine: wait for the list rather than read it at once.
  const speakerOptions = page.getByLabel('Speaker', { exact: true }).locator('option');
  await speakerOptions.filter({ hasText: 'Headset B' }).waitFor({ state: 'attached', timeout: 20000 }).catch(() => {});
  const options = await speakerOptions.allInnerTexts();
  if (!(options.includes('Headset A') && options.includes('Headset B'))) {
    const listed = await daemon.rpc.call('audio.devices', {});
    assert.fail(`the software headsets are offered: page [${options}], daemon ${JSON.stringify(listed)}`);
  }

  const onA = await chooseSpeaker('Headset A', 'headset_a');
  const customer = await Sipp.start(work, 'uas_tone.xml', await freePortPair(), await freePortPair());
  await page.getByLabel('Number to dial').fill(customer.uri());
  await page.getByRole('button', { name: 'Call', exact: true }).click();
  await page.locator('.call-card[data-state="connected"]').waitFor({ timeout: 10000 });
  const connectedAt = Date.now();
  await sleep(1500); // a second and a half of the customer on Headset A
  await shot(page, NAME, '01-headset-a');

  // Mid-call, Headset B.
  const switchClicked = Date.now();
  const onB = await chooseSpeaker('Headset B', 'headset_b');
  const status = await daemon.rpc.call('daemon.status', {});
  assert.equal(status.audio.sink.device, 'headset_b', `daemon.status: ${JSON.stringify(status.audio)}`);
  await sleep(1500);
  await shot(page, NAME, '02-headset-b');

  // Speaker volume 50 % (audio.volume output 0.5).
  const halfClicked = Date.now();
  await page.getByLabel('Speaker volume').fill('50');
  await page.waitForFunction(() => window.workspace.store.audio?.volume?.output === 0.5);
  const halvedAt = Date.now();
  await sleep(1500);
  const endAt = Date.now();
  await shot(page, NAME, '03-speaker-50');
  assert.deepEqual(await layoutProblems(page), []);

  await page.getByRole('button', { name: 'Hang up' }).click();
  await page.getByText('No active call.').waitFor();
  assert.ok((await customer.expectSuccess()).includes('BYE sip:'), 'the customer got our BYE');

  // What each headset played. The FIFO and ALSA's buffer hold a few
  // hundred ms, so each window starts well after the change it follows.
  const aTalking = heard(speakers.a, connectedAt + 700, switchClicked);
  const aAfter = heard(speakers.a, onB + 700, endAt);
  const bBefore = heard(speakers.b, onA, switchClicked);
  const bFull = heard(speakers.b, onB + 700, halfClicked);
  const bHalf = heard(speakers.b, halvedAt + 700, endAt);
  console.log(`1 kHz played: A during the call ${JSON.stringify(aTalking)}, A after the switch ${JSON.stringify(aAfter)}, ` +
    `B before ${JSON.stringify(bBefore)}, B at 100% ${JSON.stringify(bFull)}, B at 50% ${JSON.stringify(bHalf)}`);
  assert.ok(aTalking.samples >= CARD_RATE / 2 && aTalking.level > PRESENT, `Headset A played the customer: ${JSON.stringify(aTalking)}`);
  assert.ok(aAfter.loudest < ABSENT, `Headset A is silent once B is chosen: ${JSON.stringify(aAfter)}`);
  assert.ok(bBefore.loudest < ABSENT, `Headset B played nothing before it was chosen: ${JSON.stringify(bBefore)}`);
  assert.ok(bFull.samples >= CARD_RATE / 2 && bFull.level > PRESENT, `Headset B plays the customer: ${JSON.stringify(bFull)}`);
  const ratio = bHalf.level / bFull.level;
  assert.ok(ratio > 0.4 && ratio < 0.6, `half the level at 50 %: ${bHalf.level} of ${bFull.level}`);
  assert.ok(daemon.alive());
  assert.deepEqual(page.problems, []);
});
