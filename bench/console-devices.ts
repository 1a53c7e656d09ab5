/**
 * Web console benchmark: the device list at 100,000 devices. Starts a real `gatehouse
 * server` (built-in SSH gateway off), fills its embedded database through the CSV import
 * API, signs in with Debian's Chromium (playwright-core) and measures, over several page
 * reloads: the time from navigation start to the first device row on screen, a search, a
 * sort toggle and paging; the device list API measured directly; the queries behind it on
 * the SQLite file; the console's bundle size; and, as the peer, the same 50 rows rendered
 * by Chromium from a static HTML page served by a plain node:https server. Prints figures
 * and ratios, never asserts. See bench/README.md.
 *
 *   npm run bench:console -- [--devices 100000] [--projects 100] [--runs 5] [--api-runs 10]
 *     [--chunk 10000] [--keep]
 *
 * Needs /usr/bin/chromium (Debian's `chromium` package). Runs on the built packages and the
 * built console: `tsc -b` and `npm run build -w @gatehouse/web` first, then this file
 * compiled by bench/tsconfig.json into bench/dist.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { Agent, createServer as createHttpsServer, request, type Server as HttpsServer } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import SQLite from 'better-sqlite3';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM, launchChromium } from './chromium.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const GATEHOUSE_BIN = path.join(ROOT, 'packages', 'cli', 'bin', 'gatehouse.js');
const WEB_DIST = path.join(ROOT, 'packages', 'web', 'dist');
const PAGE_SIZE = 50; // the console's page (packages/web/src/pages/Devices.tsx)
const SEARCH_DEBOUNCE_MS = 250; // the console's search box waits this long after the last key
const ROW = 'table.data tbody tr a';

const { values: opts } = parseArgs({
  options: {
    devices: { type: 'string', default: '100000' },
    projects: { type: 'string', default: '100' },
    runs: { type: 'string', default: '5' },
    'api-runs': { type: 'string', default: '10' },
    /** Rows per import request (one transaction each). */
    chunk: { type: 'string', default: '10000' },
    /** Keeps the data directory and prints how to start the server on it again. */
    keep: { type: 'boolean', default: false },
  },
});
const DEVICES = Number(opts.devices);
const PROJECTS = Number(opts.projects);
const RUNS = Number(opts.runs);
const API_RUNS = Number(opts['api-runs']);
const CHUNK = Number(opts.chunk);
if (![DEVICES, PROJECTS, RUNS, API_RUNS, CHUNK].every((n) => Number.isInteger(n) && n > 0))
  throw new Error('--devices, --projects, --runs, --api-runs and --chunk take positive whole numbers');
if (DEVICES < 2 * PAGE_SIZE) throw new Error(`--devices must be at least ${2 * PAGE_SIZE} (two pages)`);
/** Device names are `host-000000`…: a prefix one digit short of a name matches ten devices. */
const NAME_DIGITS = Math.max(6, String(DEVICES - 1).length);
const deviceName = (d: number) => `host-${String(d).padStart(NAME_DIGITS, '0')}`;

// ---------------------------------------------------------------------------------------
// Cleanup: every child this script starts is tracked by PID and stopped on exit or Ctrl-C;
// the browser (Playwright's child) and the static server are closed too.

const children = new Set<ChildProcess>();
const cleanups: (() => void)[] = [];
let browser: Browser | undefined;
/** A launch in progress (Ctrl-C may come while Chromium starts). */
let launching: Promise<Browser> | undefined;
let staticServer: HttpsServer | undefined;
let agent: Agent | undefined;
let stopping = false;

function track<T extends ChildProcess>(c: T): T {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

/** Synchronous last resort (process 'exit'): signals the children, removes the temporary files. */
function cleanup(): void {
  stopping = true;
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  staticServer?.closeAllConnections();
  staticServer?.close();
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
}

const within = <T>(ms: number, p: Promise<T>) =>
  Promise.race([p.catch(() => undefined), new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref())]);

/** The orderly stop: the browser, the static server, our sockets, then each child with SIGTERM (SIGKILL after 5 s), then the files. */
async function shutdown(): Promise<void> {
  stopping = true;
  const b = browser ?? (launching ? await within(30_000, launching) : undefined);
  browser = undefined;
  launching = undefined;
  if (b) await within(5_000, b.close());
  agent?.destroy();
  if (staticServer) {
    staticServer.closeAllConnections();
    await new Promise((r) => staticServer?.close(r));
    staticServer = undefined;
  }
  await Promise.all(
    [...children].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const timer = setTimeout(() => {
            console.error(`pid ${c.pid} did not stop within 5 s of SIGTERM: SIGKILL`);
            c.kill('SIGKILL');
          }, 5_000);
          c.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          c.kill('SIGTERM');
        }),
    ),
  );
  cleanup();
}

process.once('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the browser and the server and removing the temporary files`);
    void shutdown().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------
// Helpers

const median = (xs: number[]) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const percentile = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
};
const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '–');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const int = (n: number) => n.toLocaleString('en-US');

function vmKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? NaN);
}

// ---------------------------------------------------------------------------------------
// The Gatehouse server (as bench/ssh-gateway.ts starts it), with the built-in gateway off.

interface Gatehouse {
  pid: number;
  url: string;
  cert: string;
  key: string;
  dataDir: string;
}

function gatehouseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GATEHOUSE_') && k !== 'DATABASE_URL') env[k] = v;
  return { ...env, ...extra };
}

async function startGatehouse(dataDir: string): Promise<Gatehouse> {
  const args = ['server', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir];
  // GATEHOUSE_GATEWAY_PORT=0: no SSH gateway (the console is what is measured).
  const child = track(
    spawn(process.execPath, [GATEHOUSE_BIN, ...args], {
      cwd: path.dirname(dataDir),
      env: gatehouseEnv({ GATEHOUSE_GATEWAY_PORT: '0' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-20_000)));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-20_000)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gatehouse server was not ready within 60 s:\n${out}`)), 60_000);
    const look = () => {
      const found = /^Gatehouse (https:\/\/\S+)$/m.exec(out);
      if (found) {
        clearTimeout(timer);
        resolve(found[1] as string);
      }
    };
    child.stdout.on('data', look);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gatehouse server exited (${code}) before it was ready:\n${out}`));
    });
  });
  child.once('exit', (code, signal) => {
    if (!stopping) console.error(`gatehouse server exited early: ${code ?? signal}\n${out}`);
  });
  if (/SSH gateway port/.test(out)) throw new Error('the built-in SSH gateway started although GATEHOUSE_GATEWAY_PORT=0');
  return {
    pid: child.pid as number,
    url,
    cert: readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8'),
    key: readFileSync(path.join(dataDir, 'tls', 'server.key'), 'utf8'),
    dataDir,
  };
}

function runGatehouseCli(args: string[], env: Record<string, string>, stdin: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = track(spawn(process.execPath, [GATEHOUSE_BIN, ...args], { env: gatehouseEnv(env), stdio: ['pipe', 'pipe', 'pipe'] }));
    let out = '';
    c.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    c.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
    c.stdin.end(stdin);
    c.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`gatehouse ${args[0]} exited ${code}: ${out}`))));
  });
}

interface Answer {
  status: number;
  text: string;
  headers: Record<string, string | string[] | undefined>;
  /** From writing the request to the end of the body (the connection is kept alive, so no TLS handshake). */
  ms: number;
  bytes: number;
}

/** One HTTPS request to the server, trusting only its certificate. */
function call(
  agent: Agent,
  base: string,
  method: string,
  route: string,
  opts: { token?: string; body?: string | Buffer; type?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.type) headers['content-type'] = opts.type;
    const started = performance.now();
    const req = request(new URL(route, base), { method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          text: body.toString('utf8'),
          headers: res.headers,
          ms: performance.now() - started,
          bytes: body.length,
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function callJson<T>(agent: Agent, base: string, token: string, route: string): Promise<T> {
  const res = await call(agent, base, 'GET', route, { token });
  if (res.status !== 200) throw new Error(`GET ${route}: ${res.status} ${res.text.slice(0, 500)}`);
  return JSON.parse(res.text) as T;
}

// ---------------------------------------------------------------------------------------
// The fill: the CSV import API, CHUNK rows per request (one transaction each).

const INVENTORY_HEADER =
  'project,device,provider,protocols,public_ip,private_ip,url_port,access_type,tags,account,password,private_key,pem_file_name,passphrase,extra_credential';
const PROVIDERS = ['aws', 'azure', 'gcp', 'on-prem', 'other'];
const PROTOCOLS = ['ssh', 'ssh;sftp', 'rdp', 'https', 'ssh', 'vnc', 'database', 'ssh;https'];

/** One device with one account (a random password), as an operator's inventory file would have it. */
function inventoryLine(d: number): string {
  const project = `project-${String(d % PROJECTS).padStart(3, '0')}`;
  const privateIp = `10.${(d >> 16) & 255}.${(d >> 8) & 255}.${d & 255}`;
  const publicIp = d % 4 === 0 ? `198.${18 + ((d >> 16) & 1)}.${(d >> 8) & 255}.${d & 255}` : '';
  const tags = d % 10 === 0 ? 'prod;linux' : d % 10 === 1 ? 'staging' : '';
  const password = randomBytes(15).toString('base64url');
  return `${project},${deviceName(d)},${PROVIDERS[d % PROVIDERS.length]},${PROTOCOLS[d % PROTOCOLS.length]},${publicIp},${privateIp},,gateway,${tags},admin,${password},,,,`;
}

async function fill(agent: Agent, g: Gatehouse, token: string): Promise<{ seconds: number; chunkMs: number[] }> {
  const chunkMs: number[] = [];
  const started = performance.now();
  for (let from = 0; from < DEVICES; from += CHUNK) {
    const to = Math.min(DEVICES, from + CHUNK);
    const lines = [INVENTORY_HEADER];
    for (let d = from; d < to; d++) lines.push(inventoryLine(d));
    const body = Buffer.from(`${lines.join('\n')}\n`);
    const res = await call(agent, g.url, 'POST', '/api/v1/inventory/import', { token, body, type: 'text/csv' });
    if (res.status !== 200) throw new Error(`import of rows ${from}–${to - 1}: ${res.status} ${res.text.slice(0, 500)}`);
    const result = JSON.parse(res.text) as { devicesCreated: number };
    if (result.devicesCreated !== to - from) throw new Error(`import of rows ${from}–${to - 1} created ${result.devicesCreated} devices`);
    chunkMs.push(res.ms);
    console.log(
      `  rows ${int(from)}–${int(to - 1)}: ${kib(body.length)} in ${f0(res.ms)} ms; server RSS ${f0(vmKiB(g.pid, 'VmRSS') / 1024)} MiB, peak so far ${f0(vmKiB(g.pid, 'VmHWM') / 1024)} MiB`,
    );
  }
  return { seconds: (performance.now() - started) / 1000, chunkMs };
}

// ---------------------------------------------------------------------------------------
// The queries behind GET /devices, run on the SQLite file directly (a read-only connection
// while the server runs). Copies of Devices.list's SQL (packages/db/src/devices.ts).

interface QueryFigure {
  name: string;
  ms: number[];
  plan: string;
  rows: number;
}

function sqliteQueries(dataDir: string, term: string, lastOffset: number): QueryFigure[] {
  const db = new SQLite(path.join(dataDir, 'gatehouse.sqlite'), { readonly: true, fileMustExist: true });
  try {
    const like = `%${term.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    const search =
      "(lower(name) like ? escape '\\' or lower(coalesce(public_ip, '')) like ? escape '\\' or lower(coalesce(private_ip, '')) like ? escape '\\')";
    const queries: { name: string; sql: string; params: unknown[] }[] = [
      { name: 'count(*) of all devices', sql: 'select count(*) as "n" from "devices"', params: [] },
      { name: 'page 1 by name', sql: 'select * from "devices" order by "name" asc, "id" limit ? offset ?', params: [PAGE_SIZE, 0] },
      {
        name: `last page by name (offset ${int(lastOffset)})`,
        sql: 'select * from "devices" order by "name" asc, "id" limit ? offset ?',
        params: [PAGE_SIZE, lastOffset],
      },
      { name: 'page 1 by -name', sql: 'select * from "devices" order by "name" desc, "id" limit ? offset ?', params: [PAGE_SIZE, 0] },
      {
        name: 'page 1 by createdAt',
        sql: 'select * from "devices" order by "created_at" asc, "id" limit ? offset ?',
        params: [PAGE_SIZE, 0],
      },
      {
        name: `search "${term}": count(*)`,
        sql: `select count(*) as "n" from "devices" where ${search}`,
        params: [like, like, like],
      },
      {
        name: `search "${term}": page 1 by name`,
        sql: `select * from "devices" where ${search} order by "name" asc, "id" limit ? offset ?`,
        params: [like, like, like, PAGE_SIZE, 0],
      },
    ];
    return queries.map(({ name, sql, params }) => {
      const plan = (db.prepare(`explain query plan ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail).join('; ');
      const statement = db.prepare(sql);
      let rows = 0;
      const ms: number[] = [];
      for (let i = 0; i < 1 + API_RUNS; i++) {
        const t = performance.now();
        rows = statement.all(...params).length;
        if (i > 0) ms.push(performance.now() - t); // the first one warms the page cache
      }
      return { name, ms, plan, rows };
    });
  } finally {
    db.close();
  }
}

// ---------------------------------------------------------------------------------------
// The browser side. This script installs itself in every document before the page's own
// scripts (addInitScript): a MutationObserver notes when the first device row is in the
// DOM with a size, and takes the time in the frame after (requestAnimationFrame, then a
// task: the frame that shows it has been produced). `performance.now()` counts from the
// navigation's start. For an action, `__bench.arm(event, watches)` starts the clock at the
// action's own DOM event (capture phase, before React sees it) and stops each watch when
// its element's text differs from what it was when armed (or the element went away).
// Plain JavaScript in a string: this folder is compiled without the DOM types.

const IN_PAGE = `(() => {
  const b = { firstRow: null, firstRowText: null, pending: false, armed: null };
  window.__bench = b;
  const after = (fn) => requestAnimationFrame(() => setTimeout(fn, 0));
  const textOf = (selector) => {
    const el = document.querySelector(selector);
    return el ? el.textContent : null;
  };
  const check = () => {
    if (b.firstRow === null && !b.pending) {
      const a = document.querySelector(${JSON.stringify(ROW)});
      if (a) {
        const r = a.getBoundingClientRect();
        if (r.width > 0 && r.height > 0) {
          b.pending = true;
          b.firstRowText = a.textContent;
          after(() => (b.firstRow = performance.now()));
        }
      }
    }
    const w = b.armed;
    if (w && w.start !== null) {
      for (const watch of w.watches) {
        if (watch.pending) continue;
        const text = textOf(watch.selector);
        if (text !== watch.before) {
          watch.pending = true;
          watch.after = text;
          after(() => {
            watch.end = performance.now();
            if (w.watches.every((x) => x.end !== null)) w.done = true;
          });
        }
      }
    }
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
  for (const type of ['click', 'input'])
    document.addEventListener(
      type,
      () => {
        const w = b.armed;
        if (w && w.event === type && w.start === null) {
          w.start = performance.now();
          check();
        }
      },
      true,
    );
  b.arm = (event, watches) => {
    performance.clearResourceTimings();
    b.armed = {
      event,
      start: null,
      done: false,
      watches: watches.map(([name, selector]) => ({ name, selector, before: textOf(selector), after: null, pending: false, end: null })),
    };
  };
  b.result = () => {
    const w = b.armed;
    const api = performance
      .getEntriesByType('resource')
      .filter((e) => e.name.includes('/api/v1/devices') && e.startTime >= w.start)
      .map((e) => e.responseEnd - e.startTime);
    return {
      start: w.start,
      watches: w.watches.map((x) => ({ name: x.name, ms: x.end - w.start, before: x.before, after: x.after })),
      api,
    };
  };
  b.load = () => {
    const nav = performance.getEntriesByType('navigation')[0];
    const res = performance.getEntriesByType('resource');
    const find = (part) => res.find((e) => e.name.includes(part));
    const span = (e) => (e ? { start: e.startTime, end: e.responseEnd } : null);
    return {
      firstRow: b.firstRow,
      firstRowText: b.firstRowText,
      html: nav ? nav.responseEnd : null,
      script: span(res.find((e) => /\\/assets\\/[^/]+\\.js$/.test(e.name))),
      me: span(find('/api/v1/auth/me')),
      devices: span(find('/api/v1/devices')),
      assets: res
        .filter((e) => e.name.includes('/assets/'))
        .map((e) => ({ name: e.name.slice(e.name.lastIndexOf('/') + 1), transfer: e.transferSize, body: e.encodedBodySize })),
      visible: document.visibilityState,
    };
  };
})();`;

interface Span {
  start: number;
  end: number;
}
interface LoadFigures {
  firstRow: number;
  firstRowText: string;
  html: number | null;
  script: Span | null;
  me: Span | null;
  devices: Span | null;
  /** The console's files this load fetched (transfer 0: from the cache). */
  assets: { name: string; transfer: number; body: number }[];
  visible: string;
}
interface ActionFigures {
  start: number;
  watches: { name: string; ms: number; before: string | null; after: string | null }[];
  api: number[];
}

/**
 * The page's global object as the functions passed to page.evaluate and waitForFunction see
 * it. Playwright serialises those functions and runs them in the page through the DevTools
 * protocol, which the console's CSP allows (a string predicate would be eval'd, which the
 * CSP forbids); so they use nothing from this module, only a cast of globalThis.
 */
interface InPage {
  __bench?: {
    firstRow: number | null;
    armed: { done: boolean } | null;
    arm: (event: string, watches: readonly (readonly [string, string])[]) => void;
    result: () => ActionFigures;
    load: () => LoadFigures;
  };
}

async function newInstrumentedPage(context: BrowserContext): Promise<{ page: Page; problems: string[]; deviceRequests: () => number }> {
  await context.addInitScript({ content: IN_PAGE });
  const page = await context.newPage();
  const problems: string[] = [];
  let requests = 0;
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // "Failed to load resource" repeats a response below, which names the URL.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText ?? ''}`));
  page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/api/v1/devices') requests += 1;
  });
  return { page, problems, deviceRequests: () => requests };
}

/** Loads `url` (or reloads the page) and returns when the first device row has been on screen for a frame. */
async function measureLoad(page: Page, url?: string): Promise<LoadFigures> {
  await page.bringToFront();
  if (url === undefined) await page.reload({ waitUntil: 'commit' });
  else await page.goto(url, { waitUntil: 'commit' });
  await page.waitForFunction(() => typeof (globalThis as unknown as InPage).__bench?.firstRow === 'number', null, { timeout: 120_000 });
  return page.evaluate(() => (globalThis as unknown as InPage).__bench?.load() as LoadFigures);
}

/** Arms the in-page clock, runs the action and returns when every watched text has changed. */
async function measureAction(page: Page, event: 'click' | 'input', watches: [string, string][], act: () => Promise<void>) {
  await page.evaluate(([e, w]) => (globalThis as unknown as InPage).__bench?.arm(e, w), [event, watches] as const);
  await act();
  await page.waitForFunction(() => (globalThis as unknown as InPage).__bench?.armed?.done === true, null, { timeout: 120_000 });
  return page.evaluate(() => (globalThis as unknown as InPage).__bench?.result() as ActionFigures);
}

// ---------------------------------------------------------------------------------------
// The peer: the same 50 rows as a static HTML page (what a server-rendered table costs),
// with the console's own stylesheet, from a plain node:https server with the same key.

interface DeviceRow {
  id: string;
  projectId: string;
  name: string;
  publicIp: string | null;
  privateIp: string | null;
  urlPort: string | null;
  protocols: string[];
  tags: string[];
  createdAt: string;
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

function staticPage(rows: DeviceRow[], projectName: Map<string, string>, total: number, css: string | undefined): string {
  const body = rows
    .map(
      (d) =>
        `<tr><td><a href="/devices/${d.id}">${escapeHtml(d.name)}</a></td><td>${escapeHtml(projectName.get(d.projectId) ?? '…')}</td>` +
        `<td class="mono">${escapeHtml(d.privateIp ?? d.publicIp ?? d.urlPort ?? '—')}</td>` +
        `<td class="hide-narrow">${escapeHtml(d.protocols.join(', ') || '—')}</td>` +
        `<td class="hide-narrow">${d.tags.map((t) => `<span class="tag">${escapeHtml(t)}</span>`).join('')}</td>` +
        `<td class="hide-narrow">${escapeHtml(new Date(d.createdAt).toLocaleDateString('en-US'))}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Devices</title>
${css ? `<link rel="stylesheet" href="/assets/${css}">` : ''}</head>
<body><div class="shell"><header class="topbar"><span class="brand">Gatehouse</span></header>
<main id="main"><section><h1>Devices</h1>
<div class="toolbar"><span class="count">${int(total)} devices</span></div>
<div class="table-wrap"><table class="data">
<thead><tr><th>Name</th><th>Project</th><th>Address</th><th class="hide-narrow">Protocols</th><th class="hide-narrow">Tags</th><th class="hide-narrow">Created</th></tr></thead>
<tbody>
${body}
</tbody></table></div>
<nav class="pager" aria-label="Pages"><span>1–${PAGE_SIZE} of ${int(total)}</span></nav>
</section></main></div></body></html>
`;
}

async function startStaticServer(g: Gatehouse, html: string, cssFile: string | undefined): Promise<string> {
  const css = cssFile ? readFileSync(path.join(WEB_DIST, 'assets', cssFile)) : undefined;
  const server = createHttpsServer({ cert: g.cert, key: g.key }, (req, res) => {
    const url = req.url ?? '/';
    if (css && url === `/assets/${cssFile}`) {
      res.writeHead(200, { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'public, max-age=31536000, immutable' });
      res.end(css);
    } else if (url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    } else {
      res.writeHead(404).end();
    }
  });
  staticServer = server;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `https://127.0.0.1:${(server.address() as { port: number }).port}/`;
}

// ---------------------------------------------------------------------------------------
// The bundle: what the console's page loads (every .js and .css under dist/assets).

function bundle(): { files: { name: string; bytes: number; gzip: number }[]; bytes: number; gzip: number } {
  const dir = path.join(WEB_DIST, 'assets');
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.js') || f.endsWith('.css'))
    .sort()
    .map((name) => {
      const data = readFileSync(path.join(dir, name));
      return { name, bytes: data.length, gzip: gzipSync(data).length };
    });
  return { files, bytes: files.reduce((s, f) => s + f.bytes, 0), gzip: files.reduce((s, f) => s + f.gzip, 0) };
}

// ---------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (apt-get install chromium)`);
  if (!existsSync(path.join(ROOT, 'packages', 'server', 'dist'))) throw new Error('build first: npx tsc -b');
  if (!existsSync(path.join(WEB_DIST, 'index.html'))) throw new Error('build the console first: npm run build -w @gatehouse/web');

  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-console-'));
  if (opts.keep) console.log(`temporary directory (kept): ${dir}`);
  else cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = path.join(dir, 'data');

  console.log(`Console device list benchmark: ${int(DEVICES)} devices over ${PROJECTS} projects, ${RUNS} runs; API ${API_RUNS} runs`);
  console.log(`${os.cpus().length} CPUs, Node ${process.version}, load ${os.loadavg().map(f2).join(' ')}`);

  const g = await startGatehouse(dataDir);
  const http = new Agent({ keepAlive: true, maxSockets: 1, ca: g.cert });
  agent = http;
  const credentials = path.join(dir, 'credentials.json');
  const adminPassword = `admin-${randomBytes(9).toString('hex')}`;
  await runGatehouseCli(
    ['setup', '--data-dir', dataDir, '--url', g.url, '--password-stdin'],
    { GATEHOUSE_CREDENTIALS: credentials },
    `${adminPassword}\n`,
  );
  const token = (JSON.parse(readFileSync(credentials, 'utf8')) as { profiles: { default: { token: string } } }).profiles.default.token;
  console.log(`server ${g.url} (pid ${g.pid}), RSS ${f0(vmKiB(g.pid, 'VmRSS') / 1024)} MiB`);

  // 1. Fill
  console.log(`\nFilling through POST /api/v1/inventory/import (text/csv), ${int(CHUNK)} rows per request…`);
  const filled = await fill(http, g, token);
  const total = (await callJson<{ total: number }>(http, g.url, token, '/api/v1/devices?limit=1')).total;
  if (total !== DEVICES) throw new Error(`the server lists ${total} devices, not ${DEVICES}`);
  const dbBytes = ['', '-wal']
    .map((s) => path.join(dataDir, `gatehouse.sqlite${s}`))
    .filter((f) => existsSync(f))
    .reduce((sum, f) => sum + statSync(f).size, 0);
  console.log(
    `filled ${int(DEVICES)} devices (one account each) in ${f1(filled.seconds)} s (${int(Math.round(DEVICES / filled.seconds))} rows/s); ` +
      `requests ${f0(filled.chunkMs[0] ?? NaN)} ms first, ${f0(filled.chunkMs.at(-1) ?? NaN)} ms last; ` +
      `database ${f1(dbBytes / 1024 / 1024)} MiB; server RSS ${f0(vmKiB(g.pid, 'VmRSS') / 1024)} MiB, peak ${f0(vmKiB(g.pid, 'VmHWM') / 1024)} MiB`,
  );

  // Search terms: a name prefix one digit short matches ten devices; a different one each run.
  const term = (i: number) => deviceName(Math.floor((DEVICES * (i + 1)) / (RUNS + 2))).slice(0, -1);
  const lastOffset = DEVICES - PAGE_SIZE;

  // 2. The API, measured directly (keep-alive, so no TLS handshake in the figures).
  const apiRoutes: [string, string][] = [
    ['page 1 by name', `/api/v1/devices?limit=${PAGE_SIZE}&sort=name`],
    [`search "${term(0)}"`, `/api/v1/devices?limit=${PAGE_SIZE}&sort=name&search=${encodeURIComponent(term(0))}`],
    [`offset ${int(lastOffset)} (last page)`, `/api/v1/devices?limit=${PAGE_SIZE}&sort=name&offset=${lastOffset}`],
    ['page 1 by -name', `/api/v1/devices?limit=${PAGE_SIZE}&sort=-name`],
    ['page 1 by createdAt', `/api/v1/devices?limit=${PAGE_SIZE}&sort=createdAt`],
    ['GET /projects', '/api/v1/projects'],
  ];
  const api: { name: string; route: string; ms: number[]; bytes: number; items: number }[] = [];
  for (const [name, route] of apiRoutes) {
    const ms: number[] = [];
    let bytes = 0;
    let items = 0;
    for (let i = 0; i < 1 + API_RUNS; i++) {
      const res = await call(http, g.url, 'GET', route, { token });
      if (res.status !== 200) throw new Error(`GET ${route}: ${res.status} ${res.text.slice(0, 300)}`);
      if (i > 0) ms.push(res.ms);
      bytes = res.bytes;
      items = (JSON.parse(res.text) as { items: unknown[] }).items.length;
    }
    api.push({ name, route, ms, bytes, items });
  }
  const queries = sqliteQueries(dataDir, term(0), lastOffset);

  // What the server sends for the bundle (does it compress?).
  const assets = bundle();
  const entry = /<script[^>]+src="\/assets\/([^"]+)"/.exec(readFileSync(path.join(WEB_DIST, 'index.html'), 'utf8'))?.[1];
  const mainJs = assets.files.find((f) => f.name === entry) ?? assets.files.find((f) => f.name.endsWith('.js'));
  const served = mainJs
    ? await call(http, g.url, 'GET', `/assets/${mainJs.name}`, { headers: { 'accept-encoding': 'gzip, deflate, br' } })
    : undefined;

  // 3. The browser
  launching = launchChromium(g.cert, { handleSignals: false });
  browser = await launching;
  if (stopping) return;
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  const { page, problems, deviceRequests } = await newInstrumentedPage(context);
  await page.goto(g.url);
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password').fill(adminPassword);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Devices' }).waitFor();
  await page.locator(ROW).first().waitFor();
  console.log(`\nChromium ${browser.version()} (headless), signed in as admin; ${page.url()}`);

  // The peer's page: the first 50 rows by name, as the console shows them after a load.
  const firstPage = await callJson<{ items: DeviceRow[] }>(http, g.url, token, `/api/v1/devices?limit=${PAGE_SIZE}&sort=name`);
  const projects = await callJson<{ items: { id: string; name: string }[] }>(http, g.url, token, '/api/v1/projects');
  const cssFile = assets.files.find((f) => f.name.endsWith('.css'))?.name;
  const html = staticPage(firstPage.items, new Map(projects.items.map((p) => [p.id, p.name])), total, cssFile);
  const staticUrl = await startStaticServer(g, html, cssFile);
  const staticContext = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  const peer = await newInstrumentedPage(staticContext);

  // Warm-up (not measured): one load of each, so both have their assets cached.
  await measureLoad(page);
  await measureLoad(peer.page, staticUrl);

  const loads: LoadFigures[] = [];
  const cold: LoadFigures[] = [];
  const statics: number[] = [];
  const actions: Record<'next' | 'sort' | 'search', { figures: ActionFigures; requests: number }[]> = { next: [], sort: [], search: [] };
  const storage = await context.storageState();
  const seen = new Set<string>();
  for (let run = 0; run < RUNS; run++) {
    // The console, reloaded (its hashed assets come from the cache, as for a returning user).
    const load = await measureLoad(page);
    loads.push(load);
    seen.add(load.visible);

    // Paging: Next; the range text changes at once, the rows when the next page has come.
    let before = deviceRequests();
    const next = await measureAction(
      page,
      'click',
      [
        ['range', 'nav.pager span'],
        ['rows', ROW],
      ],
      () => page.getByRole('button', { name: 'Next' }).click(),
    );
    actions.next.push({ figures: next, requests: deviceRequests() - before });

    // Sort toggle: Name ▲ → Name ▼ (from page 2: the console goes back to page 1).
    before = deviceRequests();
    const sort = await measureAction(page, 'click', [['rows', ROW]], () => page.getByRole('button', { name: /^Name/ }).click());
    actions.sort.push({ figures: sort, requests: deviceRequests() - before });

    // Search: a name prefix that matches ten devices; the count changes when the answer has come.
    before = deviceRequests();
    const search = await measureAction(
      page,
      'input',
      [
        ['count', '.count'],
        ['rows', ROW],
      ],
      () => page.getByLabel('Search devices').fill(term(run)),
    );
    actions.search.push({ figures: search, requests: deviceRequests() - before });

    // The peer, in the same run.
    const s = await measureLoad(peer.page, staticUrl);
    statics.push(s.firstRow);
    seen.add(s.visible);

    // The console in a new browser context with the session cookie but an empty cache (a first visit).
    const fresh = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', storageState: storage });
    const coldPage = await newInstrumentedPage(fresh);
    cold.push(await measureLoad(coldPage.page, new URL('/devices', g.url).href));
    problems.push(...coldPage.problems);
    await fresh.close();

    console.log(
      `  run ${run + 1}: first render ${f0(load.firstRow)} ms (cold ${f0(cold.at(-1)?.firstRow ?? NaN)}), static page ${f0(s.firstRow)} ms; ` +
        `Next ${next.watches.map((w) => `${w.name} ${f0(w.ms)}`).join(', ')} ms; sort ${f0(sort.watches[0]?.ms ?? NaN)} ms ` +
        `(${actions.sort.at(-1)?.requests} requests); search "${term(run)}" ${search.watches.map((w) => `${w.name} ${f0(w.ms)}`).join(', ')} ms ` +
        `(${search.watches[0]?.before} → ${search.watches[0]?.after})`,
    );
  }
  const counted = new Map<string, number>();
  for (const p of [...problems, ...peer.problems]) counted.set(p, (counted.get(p) ?? 0) + 1);
  if (counted.size > 0)
    console.log(
      `page problems (the 401 of GET /auth/me before signing in is expected):\n  ${[...counted].map(([p, n]) => `${p}${n > 1 ? ` (×${n})` : ''}`).join('\n  ')}`,
    );
  if ([...seen].some((v) => v !== 'visible')) console.log(`note: a measured page was not visible (${[...seen].join(', ')})`);

  // 4. Report
  const firstRender = loads.map((l) => l.firstRow);
  const watch = (a: 'next' | 'sort' | 'search', name: string) =>
    actions[a].map((x) => x.figures.watches.find((w) => w.name === name)?.ms ?? NaN);
  const apiIn = (a: 'next' | 'sort' | 'search') => actions[a].map((x) => x.figures.api.at(-1) ?? NaN);
  const requests = (a: 'next' | 'sort' | 'search') => [...new Set(actions[a].map((x) => x.requests))].join('/');
  const row = (what: string, xs: number[], note = '') =>
    console.log(`| ${what} | ${f0(median(xs))} | ${f0(percentile(xs, 90))} | ${xs.length} | ${note} |`);

  console.log(`\n### Console, ${int(DEVICES)} devices (Chromium headless, 1280×900; ${RUNS} runs)\n`);
  console.log('| measure | median ms | p90 ms | runs | note |');
  console.log('|---|---|---|---|---|');
  row('**first render of the device list** (reload, navigation start → first row on screen)', firstRender, 'assets from the cache');
  row(
    'first render, cold (new context: session cookie, empty cache)',
    cold.map((l) => l.firstRow),
  );
  row(`static page, the same ${PAGE_SIZE} rows (node:https, reload)`, statics, 'the peer');
  row(
    'search → count changed',
    watch('search', 'count'),
    `includes the ${SEARCH_DEBOUNCE_MS} ms debounce; ${requests('search')} /devices request(s)`,
  );
  row('search → rows changed', watch('search', 'rows'));
  row(
    'search, after the debounce (count − 250 ms)',
    watch('search', 'count').map((x) => x - SEARCH_DEBOUNCE_MS),
  );
  row('sort toggle (Name, from page 2) → first row changed', watch('sort', 'rows'), `${requests('sort')} /devices request(s)`);
  row('Next → range text changed', watch('next', 'range'), 'before the page has come');
  row('Next → rows changed', watch('next', 'rows'), `${requests('next')} /devices request(s)`);
  row('  /devices fetch in the page during search', apiIn('search'), 'resource timing, last request');
  row('  /devices fetch in the page during sort', apiIn('sort'));
  row('  /devices fetch in the page during Next', apiIn('next'));

  const ratio = median(firstRender) / median(statics);
  console.log(
    `\n**console ÷ static page** (first render, medians): ${f2(ratio)}× (${f0(median(firstRender))} ms ÷ ${f0(median(statics))} ms); cold console ÷ static page ${f2(median(cold.map((l) => l.firstRow)) / median(statics))}×`,
  );

  const mid = (pick: (l: LoadFigures) => number | null | undefined) => f0(median(loads.map((l) => pick(l) ?? NaN)));
  console.log(
    `\nWhere the first render goes (reload, medians, ms from navigation start): HTML received ${mid((l) => l.html)}, ` +
      `script loaded ${mid((l) => l.script?.end)}, /auth/me ${mid((l) => l.me?.start)}–${mid((l) => l.me?.end)}, ` +
      `/devices ${mid((l) => l.devices?.start)}–${mid((l) => l.devices?.end)}, first row on screen ${mid((l) => l.firstRow)}`,
  );
  const coldMid = (pick: (l: LoadFigures) => number | null | undefined) => f0(median(cold.map((l) => pick(l) ?? NaN)));
  console.log(
    `cold: HTML ${coldMid((l) => l.html)}, script ${coldMid((l) => l.script?.start)}–${coldMid((l) => l.script?.end)}, ` +
      `/auth/me ${coldMid((l) => l.me?.start)}–${coldMid((l) => l.me?.end)}, /devices ${coldMid((l) => l.devices?.start)}–${coldMid((l) => l.devices?.end)}, ` +
      `first row ${coldMid((l) => l.firstRow)}`,
  );

  console.log(`\n### API, measured directly (node:https, keep-alive, token; ${API_RUNS} runs after one warm-up)\n`);
  console.log('| request | median ms | p90 ms | items | bytes |');
  console.log('|---|---|---|---|---|');
  for (const a of api)
    console.log(
      `| \`GET ${a.route.replace('/api/v1', '')}\` (${a.name}) | ${f1(median(a.ms))} | ${f1(percentile(a.ms, 90))} | ${a.items} | ${int(a.bytes)} |`,
    );

  console.log(`\n### The queries behind GET /devices, on the SQLite file (read-only connection, ${API_RUNS} runs)\n`);
  console.log('| query | median ms | p90 ms | rows | plan |');
  console.log('|---|---|---|---|---|');
  for (const q of queries) console.log(`| ${q.name} | ${f2(median(q.ms))} | ${f2(percentile(q.ms, 90))} | ${q.rows} | ${q.plan} |`);

  console.log(`\n### Bundle (packages/web/dist/assets)\n`);
  console.log('| file | bytes | gzip bytes |');
  console.log('|---|---|---|');
  for (const f of assets.files) console.log(`| ${f.name} | ${int(f.bytes)} | ${int(f.gzip)} |`);
  console.log(`| **total** | **${int(assets.bytes)}** (${kib(assets.bytes)}) | **${int(assets.gzip)}** (${kib(assets.gzip)}) |`);
  const loaded = cold[0]?.assets ?? [];
  if (loaded.length > 0)
    console.log(
      `\nThe device list page loads ${loaded.map((a) => a.name).join(' and ')}: ` +
        `${int(loaded.reduce((sum, a) => sum + a.body, 0))} bytes of body, ${int(loaded.reduce((sum, a) => sum + a.transfer, 0))} transferred on a cold load ` +
        `(the other files are loaded later, when a page needs them)`,
    );
  if (served && mainJs)
    console.log(
      `\nThe server sends ${mainJs.name} with content-encoding ${String(served.headers['content-encoding'] ?? 'none')} ` +
        `(${int(served.bytes)} bytes on the wire for an Accept-Encoding: gzip, deflate, br request), cache-control ${String(served.headers['cache-control'])}`,
    );
  console.log(
    `\nserver RSS at the end ${f0(vmKiB(g.pid, 'VmRSS') / 1024)} MiB, peak ${f0(vmKiB(g.pid, 'VmHWM') / 1024)} MiB; load ${os.loadavg().map(f2).join(' ')}`,
  );
  if (opts.keep)
    console.log(
      `kept: GATEHOUSE_GATEWAY_PORT=0 node ${path.relative(process.cwd(), GATEHOUSE_BIN)} server --data-dir ${dataDir}   (admin password ${adminPassword})`,
    );
}

main()
  .then(() => shutdown())
  .catch(async (error: unknown) => {
    // After Ctrl-C the browser is closed under the running step: that is not a failure to show.
    if (stopping) return;
    console.error(error);
    process.exitCode = 1;
    await shutdown();
  });
