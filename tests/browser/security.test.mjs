// The bridge's defences, seen from a real browser: each refusal is
// asserted on what the page saw (the socket never opening, the close code
// and reason, the error code) and on the daemon's log line, and "nothing
// dialled" is asserted on a SIP socket that counts INVITEs.
//
// Origins in play, all on this machine:
//   allowed    http://127.0.0.1:P      the workspace, may call everything
//   read-only  http://localhost:P      the same page, limited by [bridge.methods]
//   rebound    http://rebind.test:P   allowed, but its name resolves to
//                                      127.0.0.1 only through the browser's
//                                      resolver rules (a DNS rebinding)
//   foreign    http://127.0.0.1:Q      another site, not on the list

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDaemon } from './lib/daemon.mjs';
import { Sipp, Capture, killPeers, freePortPair, writeToneFile } from './lib/sipp.mjs';
import { launch, servePage, openWorkspace, shot, waitConnected } from './lib/browser.mjs';

const NAME = 'security';
const READ_ONLY = ['daemon.status', 'events.subscribe', 'call.list', 'callback.list', 'history.list', 'audio.devices'];

let work;
let site; // the workspace's own server: allowed, read-only and rebound origins
let evil; // a foreign site
let daemon;
let browser;
let allowed;
let readOnly;
let rebound;
let token; // paired to `allowed`
let phone; // a SIP "customer" that only counts INVITEs

/** A UDP socket posing as a phone: counts the INVITEs that reach it. */
function countingPhone() {
  return new Promise((ok) => {
    const socket = createSocket('udp4');
    const seen = { invites: 0 };
    socket.on('message', (m) => { if (m.toString().startsWith('INVITE ')) seen.invites++; });
    socket.bind(0, '127.0.0.1', () => ok({ socket, seen, uri: `sip:customer@127.0.0.1:${socket.address().port}` }));
  });
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'browser-security-'));
  writeToneFile(work);
  site = await servePage({ '/probe.html': { body: '<!doctype html><title>probe</title>' } });
  evil = await servePage({ '/evil.html': { body: '<!doctype html><title>Free prizes</title><h1>Free prizes</h1>' } });
  allowed = site.url;
  readOnly = `http://localhost:${site.port}`;
  rebound = `http://rebind.test:${site.port}`;
  daemon = await startDaemon({ bridge: { origins: [allowed, readOnly, rebound], methods: { [readOnly]: READ_ONLY } } });
  ({ token } = await daemon.pair(allowed));
  phone = await countingPhone();
  // rebind.test resolves to 127.0.0.1 in this browser only, as an
  // attacker's DNS would make it after the page loaded.
  browser = await launch(['--host-resolver-rules=MAP rebind.test 127.0.0.1']);
});

after(async () => {
  killPeers();
  phone?.socket.close();
  await browser?.close();
  await daemon?.stop();
  site?.server.close();
  evil?.server.close();
});

/**
 * From `page` (so with its Origin), open the bridge, send `frames` once
 * open, and report what the browser saw: opened or not, the answers, the
 * close code and reason.
 */
function rawBridge(page, url, frames, { protocol = 'softphoned.v1', waitMs = 4000 } = {}) {
  return page.evaluate(({ url, frames, protocol, waitMs }) => new Promise((done) => {
    const seen = { opened: false, messages: [], code: null, reason: null };
    let ws;
    try {
      ws = protocol ? new WebSocket(url, protocol) : new WebSocket(url);
    } catch (e) {
      done({ ...seen, thrown: String(e) });
      return;
    }
    ws.onopen = () => {
      seen.opened = true;
      for (const frame of frames) {
        if (frame && frame.flood) for (let i = 0; i < frame.flood; i++) ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1000 + i, method: 'call.list' }));
        else if (frame && frame.bytes) ws.send(`{"jsonrpc":"2.0","id":9,"method":"call.list","params":{"pad":"${'x'.repeat(frame.bytes)}"}}`);
        else ws.send(JSON.stringify(frame));
      }
    };
    ws.onmessage = (m) => seen.messages.push(JSON.parse(m.data));
    ws.onclose = (e) => done({ ...seen, code: e.code, reason: e.reason });
    setTimeout(() => { done({ ...seen, stillOpen: true }); ws.close(); }, waitMs);
  }), { url, frames, protocol, waitMs });
}

const auth = (t) => ({ jsonrpc: '2.0', id: 1, method: 'bridge.auth', params: { token: t } });
const dial = (to) => ({ jsonrpc: '2.0', id: 2, method: 'call.dial', params: { to } });

async function assertNothingDialled() {
  await sleep(800);
  assert.equal(phone.seen.invites, 0, 'no INVITE reached the customer');
  const { calls } = await daemon.rpc.call('call.list', {});
  assert.deepEqual(calls, [], 'no call in the daemon');
}

test('a page from an origin not on the list cannot open the bridge, nor dial (even with a stolen token)', { timeout: 60000 }, async () => {
  const from = daemon.log().length;
  // The workspace page itself, copied to a foreign site with a stolen token.
  const page = await openWorkspace(browser.context, `${evil.url}/`, { bridgeUrl: daemon.bridgeUrl, token });
  await page.locator('#conn[data-state="unreachable"]').waitFor({ timeout: 10000 });
  await shot(page, NAME, '01-foreign-origin-workspace');
  // A hostile page trying by hand: the socket never opens.
  const hostile = await browser.context.newPage();
  await hostile.goto(`${evil.url}/evil.html`);
  const seen = await rawBridge(hostile, daemon.bridgeUrl, [auth(token), dial(phone.uri)]);
  assert.equal(seen.opened, false, JSON.stringify(seen));
  assert.equal(seen.code, 1006, 'the browser only sees the handshake fail');
  assert.deepEqual(seen.messages, []);
  const lines = await daemon.waitLog(['bridge upgrade refused (403)', evil.url, 'is not in bridge.allowed_origins'], from);
  console.log(`daemon: ${lines[0]}`);
  await assertNothingDialled();
  await page.close();
  await hostile.close();
});

test('a DNS-rebound name is refused by its Host header, even from an allowed origin', { timeout: 60000 }, async () => {
  const from = daemon.log().length;
  const bridgeUrl = `ws://rebind.test:${daemon.bridgePort}/`;
  const rebindToken = (await daemon.pair(rebound)).token;
  // The workspace page's own CSP already refuses a bridge that is not on loopback...
  const workspace = await openWorkspace(browser.context, `${rebound}/`, { bridgeUrl, token: rebindToken });
  await workspace.waitForFunction(() => document.getElementById('conn').dataset.state !== 'ready');
  await sleep(500);
  assert.ok(workspace.problems.some((p) => p.includes('Content Security Policy')), workspace.problems.join('\n'));
  await workspace.close();
  // ...so the rebound page here is one without a CSP, as an attacker's would be.
  const page = await browser.context.newPage();
  await page.goto(`${rebound}/probe.html`);
  const seen = await rawBridge(page, bridgeUrl, [auth(rebindToken), dial(phone.uri)]);
  assert.equal(seen.opened, false, JSON.stringify(seen));
  assert.equal(seen.code, 1006);
  const lines = await daemon.waitLog(['bridge upgrade refused (403)', `rebind.test:${daemon.bridgePort}`, 'DNS rebinding'], from);
  console.log(`daemon: ${lines[0]}`);
  // The same page through a loopback name gets in: only the Host was wrong.
  const fine = await rawBridge(page, daemon.bridgeUrl, [auth(rebindToken)], { waitMs: 1500 });
  assert.equal(fine.opened, true, JSON.stringify(fine));
  assert.equal(fine.messages[0]?.result?.origin, rebound);
  await assertNothingDialled();
  await page.close();
});

test('a missing, wrong, revoked or other-origin token is refused with 1008', { timeout: 60000 }, async () => {
  const page = await openWorkspace(browser.context, `${allowed}/`, { bridgeUrl: daemon.bridgeUrl, token: null });
  // Missing: the page asks to be paired; by hand, a dial as first frame closes the socket.
  await page.locator('#pairing').waitFor();
  await shot(page, NAME, '02-pairing');
  let from = daemon.log().length;
  let seen = await rawBridge(page, daemon.bridgeUrl, [dial(phone.uri)]);
  assert.equal(seen.code, 1008, JSON.stringify(seen));
  assert.ok(!seen.messages.some((m) => m.result), `nothing answered: ${JSON.stringify(seen.messages)}`);
  await daemon.waitLog(['bridge token refused (1008)', 'no token'], from);

  // Wrong: typed into the pairing form, refused, said so on the page.
  from = daemon.log().length;
  await page.getByLabel('Token').fill('not-a-real-token');
  await page.getByRole('button', { name: 'Pair' }).click();
  await page.locator('#conn[data-state="refused"][data-close-code="1008"]').waitFor();
  assert.match(await page.locator('#pairing-error').innerText(), /1008/);
  await daemon.waitLog(['bridge token refused (1008)', 'token not paired with this origin'], from);
  await shot(page, NAME, '03-wrong-token');

  // Other origin: a genuine token, paired to the read-only origin.
  from = daemon.log().length;
  const { token: otherToken } = await daemon.pair(readOnly);
  seen = await rawBridge(page, daemon.bridgeUrl, [auth(otherToken), dial(phone.uri)]);
  assert.equal(seen.code, 1008, JSON.stringify(seen));
  assert.equal(seen.messages[0]?.error?.code, -32004, JSON.stringify(seen.messages));
  assert.equal(seen.messages.length, 1, 'the dial got no answer');
  await daemon.waitLog(['bridge token refused (1008)', `origin=${allowed}`], from);

  // Revoked: a connected workspace is closed the moment its token is revoked.
  const paired = await daemon.pair(allowed);
  await page.getByLabel('Token').fill(paired.token);
  await page.getByRole('button', { name: 'Pair' }).click();
  await waitConnected(page);
  from = daemon.log().length;
  await daemon.rpc.call('bridge.revoke', { id: paired.id });
  await page.locator('#conn[data-state="refused"][data-close-code="1008"]').waitFor();
  assert.match(await page.locator('#conn').innerText(), /token revoked/);
  await daemon.waitLog(['bridge page closed (1008)', 'token revoked'], from);
  await shot(page, NAME, '04-revoked');
  seen = await rawBridge(page, daemon.bridgeUrl, [auth(paired.token), dial(phone.uri)]);
  assert.equal(seen.code, 1008, 'and it does not get back in');
  await assertNothingDialled();
  await page.close();
});

test('a read-only origin cannot dial, nor pair itself a token', { timeout: 60000 }, async () => {
  const { token: roToken } = await daemon.pair(readOnly);
  const page = await openWorkspace(browser.context, `${readOnly}/`, { bridgeUrl: daemon.bridgeUrl, token: roToken });
  await waitConnected(page);
  // The page knows what it may do: the dial and callback buttons are off.
  assert.equal(await page.getByRole('button', { name: 'Call', exact: true }).isDisabled(), true);
  assert.equal(await page.getByRole('button', { name: 'Ready', exact: true }).isDisabled(), true);
  await shot(page, NAME, '05-read-only');
  const from = daemon.log().length;
  const answers = await page.evaluate(async (to) => {
    const tried = {};
    for (const [method, params] of [['call.dial', { to }], ['bridge.pair', { origin: location.origin }], ['call.list', {}]]) {
      try {
        tried[method] = { result: await window.workspace.ctx.bridge.call(method, params) };
      } catch (e) {
        tried[method] = { code: e.code, message: e.message };
      }
    }
    return tried;
  }, phone.uri);
  assert.equal(answers['call.dial'].code, -32004, JSON.stringify(answers));
  assert.equal(answers['bridge.pair'].code, -32004, JSON.stringify(answers));
  assert.deepEqual(answers['call.list'].result, { calls: [] }, 'what it may do still works');
  await daemon.waitLog(['method refused on this connection (-32004)', 'call.dial'], from);
  await daemon.waitLog(['method refused on this connection (-32004)', 'bridge.pair'], from);
  await assertNothingDialled();
  await page.close();
});

test('an oversized frame and a flood get the policy close; the daemon, its call and other tabs carry on', { timeout: 90000 }, async () => {
  const port = await freePortPair();
  const media = await freePortPair();
  // Streams a tone and answers every re-INVITE (our hold and resume).
  const customer = await Sipp.start(work, 'uas_slow_reinvite.xml', port, media);
  const page = await openWorkspace(browser.context, `${allowed}/`, { bridgeUrl: daemon.bridgeUrl, token });
  await waitConnected(page);
  // A call up, dialled from the page; the RTP to the customer captured.
  const capture = await Capture.start(work, media);
  await page.getByLabel('Number to dial').fill(customer.uri());
  await page.getByRole('button', { name: 'Call', exact: true }).click();
  await page.locator('.call-card[data-state="connected"]').waitFor({ timeout: 10000 });
  const calmFrom = Date.now() / 1000;
  await sleep(1500);
  const attackFrom = Date.now() / 1000;

  // Three rounds, so the attack lasts long enough to see the call through it.
  for (let round = 0; round < 3; round++) {
    let from = daemon.log().length;
    const big = await rawBridge(page, daemon.bridgeUrl, [auth(token), { bytes: 70 * 1024 }]);
    assert.equal(big.code, 1008, JSON.stringify({ ...big, messages: big.messages.length }));
    assert.match(big.reason, /frame too large/);
    await daemon.waitLog(['bridge page closed (1008)', 'frame too large'], from);

    from = daemon.log().length;
    const flood = await rawBridge(page, daemon.bridgeUrl, [auth(token), { flood: 400 }]);
    assert.equal(flood.code, 1008, JSON.stringify({ ...flood, messages: flood.messages.length }));
    assert.match(flood.reason, /too many frames/);
    assert.ok(flood.messages.length < 400, `not every frame was served: ${flood.messages.length}`);
    await daemon.waitLog(['bridge page closed (1008)', 'too many frames'], from);
  }
  const attackTo = Date.now() / 1000;

  // Unaffected: the daemon answers, the workspace tab is still connected
  // and drives the call, the call is up and its audio never stopped.
  assert.ok(daemon.alive(), 'the daemon is running');
  const status = await daemon.rpc.call('daemon.status', {});
  assert.equal(status.calls, 1);
  assert.equal(await page.locator('#conn').getAttribute('data-state'), 'ready');
  await page.getByRole('button', { name: 'Hold', exact: true }).click();
  await page.locator('.call-card[data-state="held"]').waitFor();
  await customer.waitLog('a=sendonly');
  await shot(page, NAME, '06-after-attacks-call-held');
  await page.getByRole('button', { name: 'Resume', exact: true }).click();
  await page.locator('.call-card[data-state="connected"]').waitFor();
  await page.getByRole('button', { name: 'Hang up' }).click();
  const log = await customer.expectSuccess();
  assert.ok(log.includes('BYE sip:'), 'the customer got our BYE');
  // The attack and the half second after it, against the calm before it.
  const all = await capture.stop();
  const largestGap = (from, to) => {
    const packets = all.filter((p) => p.t >= from && p.t <= to);
    let gap = 0;
    for (let i = 1; i < packets.length; i++) gap = Math.max(gap, packets[i].t - packets[i - 1].t);
    return { packets: packets.length, gap };
  };
  const calm = largestGap(calmFrom + 0.3, attackFrom);
  const attacked = largestGap(attackFrom, attackTo + 0.5);
  console.log(`RTP to the customer: calm ${calm.packets} packets, largest gap ${(calm.gap * 1000).toFixed(0)} ms; ` +
    `during the attacks ${attacked.packets} packets over ${(attackTo + 0.5 - attackFrom).toFixed(2)} s, largest gap ${(attacked.gap * 1000).toFixed(0)} ms`);
  assert.ok(attacked.packets >= 40 * (attackTo + 0.5 - attackFrom), `RTP kept flowing: ${attacked.packets}`);
  // A debug build on two shared cores: a gap is a real stall only well past 20 ms pacing.
  assert.ok(attacked.gap < 0.15, `no gap over 150 ms: ${attacked.gap}`);
  await page.close();
});
