#!/usr/bin/env node
// Serves the workspace page for the demo and the browser tests: static
// files from this folder, on loopback, with no dependencies.
//
//   node examples/workspace/serve.mjs [--port 8080] [--host 127.0.0.1]
//
// The page's origin is then http://127.0.0.1:8080: put exactly that in
// softphoned's [bridge] allowed_origins and pair it with
// `softphonectl bridge pair http://127.0.0.1:8080`.
//
// The Content-Security-Policy lets the page load only its own files and
// open WebSockets only to loopback, so even an injected script could not
// send the bridge token anywhere else. The bridge's `[::1]` address cannot
// be listed: CSP's host-source grammar has no IPv6 literals (Chromium
// ignores such a source with a console error), so the page reaches a bridge
// on `[::1]` through `localhost`.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

const HEADERS = {
  'Content-Security-Policy': [
    "default-src 'self'",
    "connect-src 'self' ws://127.0.0.1:* ws://localhost:*",
    "img-src 'self' data:",
    "style-src 'self'",
    "script-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; '),
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

/**
 * Serve `root` on `host:port` (port 0: any free one). Resolves with
 * {server, url, port}; `files` may map extra paths to {type, body}
 * (tests use it for a hostile page served from another origin).
 */
export function serve({ root = HERE, host = '127.0.0.1', port = 0, files = {} } = {}) {
  const base = resolve(root);
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (files[path]) {
      res.writeHead(200, { 'Content-Type': files[path].type || 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(files[path].body);
      return;
    }
    const file = normalize(join(base, path.endsWith('/') ? `${path}index.html` : path));
    // Never outside the folder, whatever ../ or %2e%2e the URL carries.
    if (file !== base && !file.startsWith(base + sep)) {
      res.writeHead(403).end('forbidden');
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream', ...HEADERS });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
    }
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      const bound = server.address().port;
      ok({ server, port: bound, url: `http://${host}:${bound}` });
    });
  });
}

// Run from the command line: serve until interrupted.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name, fallback) => {
    const at = process.argv.indexOf(`--${name}`);
    return at > 0 ? process.argv[at + 1] : fallback;
  };
  const host = arg('host', '127.0.0.1');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) {
    console.error(`refusing to serve on ${host}: the workspace is for this computer only (127.0.0.1, localhost, ::1)`);
    process.exit(2);
  }
  const { url } = await serve({ host, port: Number(arg('port', 8080)) });
  console.log(`workspace page at ${url}/`);
  console.log(`allow it in softphoned:  [bridge] allowed_origins = ["${url}"]`);
  console.log(`then pair it:            softphonectl bridge pair ${url}`);
}
