// One agent's desk for a browser test file: a scratch folder (with the
// tone sipp plays, when asked), the workspace page served on loopback, a
// daemon whose bridge allows that page, the page paired, Chromium open on
// it and connected; `close()` takes it all down.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from './daemon.mjs';
import { killPeers, writeToneFile } from './sipp.mjs';
import { launch, servePage, openWorkspace, waitConnected } from './browser.mjs';

export async function openDesk(name, { extra = '', tone = false, env = {} } = {}) {
  const work = mkdtempSync(join(tmpdir(), `browser-${name}-`));
  if (tone) writeToneFile(work);
  const site = await servePage();
  const daemon = await startDaemon({ bridge: { origins: [site.url] }, extra, env });
  const { token } = await daemon.pair(site.url);
  const browser = await launch();
  const page = await openWorkspace(browser.context, `${site.url}/`, { bridgeUrl: daemon.bridgeUrl, token });
  await waitConnected(page);
  const close = async () => {
    killPeers();
    await browser.close();
    await daemon.stop();
    site.server.close();
  };
  return { work, site, daemon, browser, page, token, close };
}
