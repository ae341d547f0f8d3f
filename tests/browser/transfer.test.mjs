// Transfers clicked in the workspace page, judged by what the customer's
// sipp (tests/sipp/uas_transferee.xml) and the colleague's sipp received:
// Blind transfer (a REFER to the typed URI, with Referred-By), Consult
// then Leave & transfer (a REFER whose Refer-To names the colleague with a
// Replaces for the exact consult dialog, read off the colleague's own
// log), and Consult then Cancel transfer (the colleague gets our BYE, the
// customer a sendrecv re-INVITE). The transferee's sipp answers the REFER
// with 202 and NOTIFYs 100 then 200, as a customer whose phone reached the
// target would; the daemon then hangs up, and the page must show it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sipp, freePortPair } from './lib/sipp.mjs';
import { shot, layoutProblems } from './lib/browser.mjs';
import { openDesk } from './lib/desk.mjs';

const NAME = 'transfer';

let work;
let daemon;
let page;
let desk;

before(async () => {
  desk = await openDesk('transfer', { tone: true, extra: '[media]\ncodecs = ["pcmu"]' });
  ({ work, daemon, page } = desk);
});

after(() => desk?.close());

/**
 * sipp's -message_file as [{dir: 'sent'|'received', first, text}], in
 * order: each message follows a "----... <time>" line and a "UDP message
 * sent/received" line.
 */
function messages(log) {
  return log.split(/^-{10,}.*$/m).map((chunk) => {
    const m = /UDP message (sent|received)[^\n]*\n+([\s\S]*)/.exec(chunk);
    if (!m) return null;
    const text = m[2].trim();
    return { dir: m[1], first: text.split(/\r?\n/)[0], text };
  }).filter(Boolean);
}

/** A header's value in one message's text (first occurrence). */
function header(text, name) {
  const m = new RegExp(`^${name}:\\s*(.*)$`, 'mi').exec(text);
  return m ? m[1].trim() : null;
}

function tag(value) {
  return /;\s*tag=([^;>\s]+)/i.exec(value || '')?.[1];
}

/** The order of `what` (predicates over messages) in `list`, each after the last. */
function assertInOrder(list, what) {
  let at = -1;
  for (const [label, match] of what) {
    const next = list.findIndex((m, i) => i > at && match(m));
    assert.ok(next > at, `${label} after message ${at}; sipp saw:\n${list.map((m) => `${m.dir} ${m.first}`).join('\n')}`);
    at = next;
  }
}

/** Poll `check` (what a peer logged) every 50 ms until true, at most `ms`. */
async function until(check, what, ms = 10000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`no ${what} within ${ms} ms`);
    await sleep(50);
  }
}

/** Dial `uri` from the dialpad; the call's card once connected. */
async function dial(uri) {
  await page.getByLabel('Number to dial').fill(uri);
  await page.getByRole('button', { name: 'Call', exact: true }).click();
  const card = page.locator('.call-card[data-state="connected"]').first();
  await card.waitFor({ timeout: 10000 });
  return { card, id: await card.getAttribute('data-call') };
}

/** Transfer → type `to` → click `button` ('Blind transfer' or 'Consult'). */
async function transfer(card, to, button) {
  await card.getByRole('button', { name: 'Transfer', exact: true }).click();
  await card.getByLabel('Transfer to').fill(to);
  await card.getByRole('button', { name: button, exact: true }).click();
}

/** The daemon's `call.state` ended event for `call` (its own account). */
function ended(call) {
  return daemon.rpc.waitEvent((m, p) => m === 'call.state' && p.call === call && p.state === 'ended', 15000, `${call} ended`);
}

/** The customer held for a consult and the colleague connected in the card. */
async function consult(customer, colleague) {
  const { card, id } = await dial(customer.uri());
  await transfer(card, colleague.uri('colleague'), 'Consult');
  await customer.waitLog('a=sendonly');
  await colleague.waitLog('INVITE sip:colleague@');
  const block = page.locator(`.call-card[data-call="${id}"]`).getByLabel('Consult call');
  await block.getByTestId('consult-state').filter({ hasText: 'Connected' }).waitFor({ timeout: 10000 });
  const consultId = (await daemon.rpc.waitEvent((m, p) => m === 'call.state' && p.consult_for === id, 5000, 'the consult call')).params.call;
  return { id, block, consultId };
}

test('Blind transfer: the customer gets a REFER to the typed target, reports 200, and the call ends', { timeout: 60000 }, async () => {
  const customer = await Sipp.start(work, 'uas_transferee.xml', await freePortPair(), await freePortPair());
  const target = 'sip:queue-billing@127.0.0.1:5999';
  const { card, id } = await dial(customer.uri());
  await shot(page, NAME, '01-blind-connected');

  await transfer(card, target, 'Blind transfer');
  // The daemon ends the call itself once the customer reports 200; the page follows.
  const end = await ended(id);
  await page.getByText('No active call.').waitFor();
  await shot(page, NAME, '02-blind-done');
  assert.equal(end.params.reason, 'transferred');
  assert.equal(end.params.sip_code, 200);

  const log = await customer.expectSuccess();
  const seen = messages(log);
  const refer = seen.find((m) => m.dir === 'received' && m.first.startsWith('REFER sip:'));
  assert.ok(refer, `sipp got a REFER:\n${log.slice(-3000)}`);
  assert.equal(header(refer.text, 'Refer-To'), `<${target}>`, 'Refer-To is what was typed');
  assert.match(header(refer.text, 'Referred-By') || '', /^<sip:agent@127\.0\.0\.1:\d+/, 'Referred-By names the agent');
  assert.equal(header(refer.text, 'Call-ID'), header(seen[0].text, 'Call-ID'), 'the REFER is inside the call');
  assertInOrder(seen, [
    ['REFER', (m) => m.dir === 'received' && m.first.startsWith('REFER ')],
    ['202', (m) => m.dir === 'sent' && m.first === 'SIP/2.0 202 Accepted'],
    ['NOTIFY 100', (m) => m.dir === 'sent' && m.first.startsWith('NOTIFY ') && m.text.includes('SIP/2.0 100 Trying')],
    ['NOTIFY 200', (m) => m.dir === 'sent' && m.first.startsWith('NOTIFY ') && /\n\s*SIP\/2\.0 200 OK/.test(m.text)],
    ['our BYE', (m) => m.dir === 'received' && m.first.startsWith('BYE ')],
  ]);
  // Its 200 may come after the BYE (the daemon answers and hangs up at once).
  assert.ok(seen.some((m) => m.dir === 'received' && m.first === 'SIP/2.0 200 OK' && /CSeq:\s*2 NOTIFY/i.test(m.text)), 'the final NOTIFY was answered');
  assert.ok(!seen.some((m) => m.dir === 'received' && m.first.startsWith('INVITE ') && m !== seen[0]), 'a blind transfer holds nobody');
  assert.deepEqual(await layoutProblems(page), []);
  assert.deepEqual(page.problems, []);
});

test('Consult, then Leave & transfer: the customer is REFERred to the colleague, replacing the consult dialog', { timeout: 60000 }, async () => {
  const customer = await Sipp.start(work, 'uas_transferee.xml', await freePortPair(), await freePortPair());
  const colleague = await Sipp.start(work, 'uas_tone.xml', await freePortPair(), await freePortPair());
  const { id, block, consultId } = await consult(customer, colleague);
  await shot(page, NAME, '03-consulting');
  assert.deepEqual(await layoutProblems(page), []);

  await block.getByRole('button', { name: 'Leave & transfer' }).click();
  const ends = [ended(id), ended(consultId)];
  await page.getByText('No active call.').waitFor({ timeout: 15000 });
  await shot(page, NAME, '04-left');
  for (const end of await Promise.all(ends)) assert.equal(end.params.reason, 'transferred', JSON.stringify(end.params));

  // The consult dialog as the colleague saw it: its Call-ID, our From tag,
  // and the To tag its own 200 gave.
  const colleagueLog = await colleague.expectSuccess();
  const theirs = messages(colleagueLog);
  const invite = theirs.find((m) => m.dir === 'received' && m.first.startsWith('INVITE '));
  const ok = theirs.find((m) => m.dir === 'sent' && m.first === 'SIP/2.0 200 OK' && /CSeq:\s*\d+ INVITE/i.test(m.text));
  const dialog = { callId: header(invite.text, 'Call-ID'), fromTag: tag(header(invite.text, 'From')), toTag: tag(header(ok.text, 'To')) };
  assert.ok(dialog.callId && dialog.fromTag && dialog.toTag, JSON.stringify(dialog));
  assert.ok(theirs.some((m) => m.dir === 'received' && m.first.startsWith('BYE ')), 'sipp does not act on Replaces: we end the consult');

  const log = await customer.expectSuccess();
  const seen = messages(log);
  const refer = seen.find((m) => m.dir === 'received' && m.first.startsWith('REFER sip:'));
  assert.ok(refer, `the customer got a REFER:\n${log.slice(-3000)}`);
  const referTo = header(refer.text, 'Refer-To');
  const m = /^<([^?>]+)\?([^>]*)>$/.exec(referTo || '');
  assert.ok(m, `Refer-To <uri?headers>: ${referTo}`);
  assert.equal(m[1], colleague.uri('colleague'), 'Refer-To names the colleague we consulted');
  const replaces = new URLSearchParams(m[2]).get('Replaces');
  assert.ok(replaces, `a Replaces header in ${referTo}`);
  const [callId, ...params] = replaces.split(';');
  const p = Object.fromEntries(params.map((x) => x.trim().split('=')));
  console.log(`Refer-To: ${referTo}\nconsult dialog at the colleague: ${JSON.stringify(dialog)}`);
  // RFC 3891: to-tag is the tag of the UA that will receive the INVITE with
  // Replaces (the colleague), from-tag the other end's (ours).
  assert.deepEqual({ callId, toTag: p['to-tag'], fromTag: p['from-tag'] }, dialog);
  assert.match(header(refer.text, 'Referred-By') || '', /^<sip:agent@/);
  assertInOrder(seen, [
    ['the hold', (m) => m.dir === 'received' && m.first.startsWith('INVITE ') && m.text.includes('a=sendonly')],
    ['REFER', (m) => m === refer],
    ['NOTIFY 200', (m) => m.dir === 'sent' && m.first.startsWith('NOTIFY ') && /\n\s*SIP\/2\.0 200 OK/.test(m.text)],
    ['our BYE', (m) => m.dir === 'received' && m.first.startsWith('BYE ')],
  ]);
  assert.deepEqual(page.problems, []);
});

test('Consult, then Cancel transfer: the colleague is hung up and the customer resumed', { timeout: 60000 }, async () => {
  const customer = await Sipp.start(work, 'uas_transferee.xml', await freePortPair(), await freePortPair());
  const colleague = await Sipp.start(work, 'uas_tone.xml', await freePortPair(), await freePortPair());
  const { id, block } = await consult(customer, colleague);

  await block.getByRole('button', { name: 'Cancel transfer' }).click();
  // The colleague's sipp ends only on our BYE; the customer hears a resume.
  const colleagueLog = await colleague.expectSuccess();
  assert.ok(colleagueLog.includes('BYE sip:'), 'the colleague got our BYE');
  // The first INVITE offered sendrecv too: wait for a re-INVITE that does.
  const reinvites = () => messages(customer.log()).filter((m) => m.dir === 'received' && m.first.startsWith('INVITE ')).slice(1);
  await until(() => reinvites().some((m) => m.text.includes('a=sendrecv')), 'a sendrecv re-INVITE at the customer');
  const card = page.locator(`.call-card[data-call="${id}"]`);
  await page.locator(`.call-card[data-call="${id}"][data-state="connected"]`).waitFor();
  assert.equal(await card.getByLabel('Consult call').count(), 0, 'the consult is gone from the card');
  assert.equal(await page.locator('.call-card').count(), 1, 'one call left: the customer');
  await shot(page, NAME, '05-cancelled');
  assert.deepEqual(await layoutProblems(page), []);

  await card.getByRole('button', { name: 'Hang up' }).click();
  await page.getByText('No active call.').waitFor();
  const log = await customer.expectSuccess();
  const seen = messages(log);
  assertInOrder(seen, [
    ['the hold', (m) => m.dir === 'received' && m.first.startsWith('INVITE ') && m.text.includes('a=sendonly')],
    ['the resume', (m) => m.dir === 'received' && m.first.startsWith('INVITE ') && m.text.includes('a=sendrecv')],
    ['our BYE', (m) => m.dir === 'received' && m.first.startsWith('BYE ')],
  ]);
  assert.ok(!seen.some((m) => m.first.startsWith('REFER ')), 'no REFER after a cancelled consult');
  assert.deepEqual(page.problems, []);
});
