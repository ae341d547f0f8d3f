// Debian's Chromium, driven by playwright-core (which never downloads a
// browser), with the launch flags issue 16 names and a fresh profile per
// launch; the workspace page served from the project; screenshots kept in
// one known folder.

import { chromium } from 'playwright-core';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '../../../examples/workspace/serve.mjs';
import { REPO } from './daemon.mjs';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/** Where the screenshots go (printed by each test). */
export const SHOTS = process.env.SHOTS_DIR || join(REPO, 'target', 'browser-shots');

export const VIEWPORT = { width: 1280, height: 800 };

/**
 * Launch Chromium headless. `extraArgs`: e.g. --host-resolver-rules for
 * the DNS-rebinding test. Returns {context, close}.
 */
export async function launch(extraArgs = []) {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: bash tests/deps.sh chromium`);
  const profile = mkdtempSync(join(tmpdir(), 'chromium-profile-'));
  // headless: false here only stops playwright from choosing its own
  // headless flags: --headless below is ours, as the issue lists them.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: false,
    viewport: VIEWPORT,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic', ...extraArgs],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Serve examples/workspace (plus `files`) on a free loopback port. */
export function servePage(files = {}) {
  return serve({ files });
}

/**
 * A new tab on `url` with the bridge address and (unless null) the token
 * in localStorage before any script runs, as a paired workspace has them.
 * Console errors and page errors are collected in page.problems.
 */
export async function openWorkspace(context, url, { bridgeUrl, token }) {
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') page.problems.push(`console: ${m.text()}`); });
  await page.addInitScript(({ bridgeUrl, token }) => {
    localStorage.setItem('softphoned.bridge.url', bridgeUrl);
    if (token) localStorage.setItem('softphoned.bridge.token', token);
    else localStorage.removeItem('softphoned.bridge.token');
  }, { bridgeUrl, token });
  await page.goto(url);
  return page;
}

/** Screenshot into SHOTS/`test`/`step`.png; returns (and logs) the path. */
export async function shot(page, test, step) {
  const dir = join(SHOTS, test);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${step}.png`);
  await page.screenshot({ path });
  console.log(`screenshot: ${path}`);
  return path;
}

/** Wait until the page says it is connected to the bridge. */
export async function waitConnected(page, timeout = 10000) {
  await page.locator('#conn[data-state="ready"]').waitFor({ timeout });
}

/**
 * Layout check on the live DOM: no visible element sticks out of the
 * window horizontally, and no two panels overlap. Returns the problems.
 */
export async function layoutProblems(page) {
  return page.evaluate(() => {
    const problems = [];
    const width = document.documentElement.clientWidth;
    for (const el of document.querySelectorAll('body *')) {
      const r = el.getBoundingClientRect();
      if (!r.width || !r.height || getComputedStyle(el).visibility === 'hidden') continue;
      if (r.right > width + 1 && !el.closest('.col')) problems.push(`${el.tagName}.${el.className} sticks out (right ${Math.round(r.right)} > ${width})`);
    }
    const panels = [...document.querySelectorAll('.col')].map((c) => c.getBoundingClientRect());
    for (let i = 0; i < panels.length; i++) {
      for (let j = i + 1; j < panels.length; j++) {
        const a = panels[i];
        const b = panels[j];
        if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) problems.push(`columns ${i} and ${j} overlap`);
      }
    }
    // Inside a column nothing should be wider than the column itself.
    for (const col of document.querySelectorAll('.col')) {
      if (col.scrollWidth > col.clientWidth + 1) problems.push(`column ${col.className} scrolls sideways (${col.scrollWidth} > ${col.clientWidth})`);
    }
    return problems;
  });
}
