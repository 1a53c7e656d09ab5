/**
 * Import stall benchmark: how long a 100,000-row inventory import stops the event loop of
 * the process that also relays every SSH session. Runs the real API in process on a fresh
 * database, listening on 127.0.0.1, sends the CSV over HTTP (a dry run, then the import,
 * then the same file again: every row an update) and, while each runs, records the event
 * loop's delay (perf_hooks.monitorEventLoopDelay) and, from a child process, probes GET
 * /healthz (no database) and GET /api/v1/auth/me (a token lookup: the database) every
 * 20 ms. Prints figures and never asserts. See bench/README.md.
 *
 *   npm run bench:import -- [--rows 100000] [--projects 100] [--db sqlite|postgres|sqlite,postgres]
 *     [--postgres-url URL]
 *
 * Runs on the built packages (packages/*\/dist): `tsc -b` first, then this file compiled
 * by bench/tsconfig.json into bench/dist.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { API_TOKEN_PREFIX } from '@gatehouse/core';
import { openDatabase, openVault, type Db } from '@gatehouse/db';
import { buildApp, createLogger, hashPassword, inventoryColumns, loadServerConfig } from '@gatehouse/server';
import pg from 'pg';

const TARGET_STALL_MS = 100;
const PROBE_EVERY_MS = 20;

const { values: opts } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    projects: { type: 'string', default: '100' },
    db: { type: 'string', default: 'sqlite' },
    'postgres-url': {
      type: 'string',
      default: process.env.BENCH_POSTGRES_URL ?? process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    },
    /** Internal: run as the prober child of this port with this token. */
    'probe-port': { type: 'string' },
    'probe-token': { type: 'string' },
  },
});
const ROWS = Number(opts.rows);
const PROJECTS = Number(opts.projects);
if (![ROWS, PROJECTS].every((n) => Number.isInteger(n) && n > 0)) throw new Error('--rows and --projects take positive whole numbers');
const dialects = opts.db.split(',').map((d) => d.trim());
for (const d of dialects) if (d !== 'sqlite' && d !== 'postgres') throw new Error(`--db: unknown database ${d}`);

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const int = (n: number) => n.toLocaleString('en-US');

/** One account per device, a random password each; a tenth of the devices have a public address too. */
function inventoryCsv(rows: number, projects: number): string {
  const lines = [inventoryColumns.join(',')];
  for (let i = 0; i < rows; i++) {
    const cells: Record<(typeof inventoryColumns)[number], string> = {
      project: `project-${i % projects}`,
      device: `host-${String(i).padStart(6, '0')}`,
      provider: ['aws', 'azure', 'gcp', 'on-prem'][i % 4] as string,
      protocols: i % 3 === 0 ? 'ssh;sftp' : 'ssh',
      public_ip: i % 10 === 0 ? `203.0.113.${i % 250}` : '',
      private_ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      url_port: '',
      access_type: 'gateway',
      tags: i % 2 === 0 ? 'bench;linux' : 'bench',
      account: 'root',
      password: randomBytes(15).toString('base64url'),
      private_key: '',
      pem_file_name: '',
      passphrase: '',
      extra_credential: '',
    };
    lines.push(inventoryColumns.map((c) => cells[c]).join(','));
  }
  return `${lines.join('\n')}\n`;
}

interface Database {
  db: Db;
  dataDir: string;
  cleanup(): Promise<void>;
}

async function freshDatabase(dialect: string): Promise<Database> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-import-'));
  if (dialect === 'sqlite') {
    const db = await openDatabase({ dataDir });
    return { db, dataDir, cleanup: async () => (await db.close(), rmSync(dataDir, { recursive: true, force: true })) };
  }
  const name = `gh_bench_import_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: opts['postgres-url'] });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(opts['postgres-url']);
  url.pathname = `/${name}`;
  const db = await openDatabase({ dataDir, databaseUrl: url.toString() });
  return {
    db,
    dataDir,
    async cleanup() {
      await db.close();
      const c = new pg.Client({ connectionString: opts['postgres-url'] });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name}`);
      await c.end();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

interface Probe {
  count: number;
  maxMs: number;
}

/** GETs `url` every PROBE_EVERY_MS, one at a time, forever; the slowest answer since the last reset is the figure. */
function probeLoop(agent: Agent, port: number, url: string, result: Probe, token?: string): void {
  const once = () =>
    new Promise<void>((resolve, reject) => {
      const start = performance.now();
      const req = request(
        { host: '127.0.0.1', port, path: url, agent, headers: token ? { authorization: `Bearer ${token}` } : {} },
        (res) => {
          res.resume();
          res.once('end', () => {
            if (res.statusCode !== 200) return reject(new Error(`${url} answered ${res.statusCode}`));
            result.count += 1;
            result.maxMs = Math.max(result.maxMs, performance.now() - start);
            resolve();
          });
        },
      );
      req.once('error', reject);
      req.end();
    });
  void (async () => {
    for (;;) {
      await once();
      await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
    }
  })();
}

/**
 * The prober: a child process, so a stalled server shows as a slow answer (a prober in the
 * stalled process would only start its request after the stall). On "report" it sends the
 * figures since the last report.
 */
function runProber(port: number, token: string): void {
  const agent = new Agent({ keepAlive: true, maxSockets: 2 });
  const healthz: Probe = { count: 0, maxMs: 0 };
  const me: Probe = { count: 0, maxMs: 0 };
  probeLoop(agent, port, '/healthz', healthz);
  probeLoop(agent, port, '/api/v1/auth/me', me, token);
  process.on('message', (message) => {
    if (message !== 'report') return;
    process.send?.({ healthz: { ...healthz }, me: { ...me } });
    Object.assign(healthz, { count: 0, maxMs: 0 });
    Object.assign(me, { count: 0, maxMs: 0 });
  });
  process.on('disconnect', () => process.exit(0));
}

function post(agent: Agent, port: number, url: string, token: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: url,
        method: 'POST',
        agent,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => (text += s));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

interface Figures {
  dialect: string;
  run: string;
  seconds: number;
  stallMs: number;
  p99Ms: number;
  healthz: Probe;
  me: Probe;
}

async function benchDialect(dialect: string, csv: string): Promise<Figures[]> {
  const database = await freshDatabase(dialect);
  const config = loadServerConfig({
    env: {},
    flags: { dataDir: database.dataDir, port: 0, logLevel: 'warn', bodyLimit: 1024 * 1024 * 1024 },
  });
  const vault = await openVault(database.db, randomBytes(32));
  const built = await buildApp({ config, db: database.db, vault, logger: createLogger('warn'), https: null });
  const { app, services } = built;
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const user = await services.users.create({ username: 'bench-admin', role: 'admin', passwordHash: await hashPassword('bench') });
  const token = `${API_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
  await services.users.createToken({ userId: user.id, name: 'bench', token, expiresAt: null });
  const importAgent = new Agent({ keepAlive: true });
  const prober = fork(fileURLToPath(import.meta.url), ['--probe-port', String(port), '--probe-token', token]);
  const report = () =>
    new Promise<{ healthz: Probe; me: Probe }>((resolve) => {
      prober.once('message', (m) => resolve(m as { healthz: Probe; me: Probe }));
      prober.send('report');
    });
  const figures: Figures[] = [];
  try {
    for (const run of ['dry run', 'import', 'again (updates)']) {
      const url = `/api/v1/inventory/import?dryRun=${run === 'dry run'}`;
      const histogram = monitorEventLoopDelay({ resolution: 1 });
      await report();
      histogram.enable();
      const start = performance.now();
      const res = await post(importAgent, port, url, token, csv);
      const seconds = (performance.now() - start) / 1000;
      histogram.disable();
      const probes = await report();
      if (res.status !== 200) throw new Error(`${run} answered ${res.status}: ${res.body.slice(0, 500)}`);
      figures.push({
        dialect,
        run,
        seconds,
        stallMs: histogram.max / 1e6,
        p99Ms: histogram.percentile(99) / 1e6,
        healthz: probes.healthz,
        me: probes.me,
      });
      const f = figures.at(-1) as Figures;
      console.log(
        `${dialect} ${run}: ${f1(seconds)} s, longest stall ${f1(f.stallMs)} ms, /healthz max ${f1(f.healthz.maxMs)} ms (${f.healthz.count}), /auth/me max ${f1(f.me.maxMs)} ms (${f.me.count})`,
      );
    }
  } finally {
    importAgent.destroy();
    prober.disconnect();
    await app.close();
    await database.cleanup();
  }
  return figures;
}

async function main(): Promise<void> {
  const started = performance.now();
  const csv = inventoryCsv(ROWS, PROJECTS);
  console.log(
    `${int(ROWS)} rows over ${PROJECTS} projects, ${f1(Buffer.byteLength(csv) / 1024 / 1024)} MiB of CSV (made in ${f1((performance.now() - started) / 1000)} s); Node ${process.version}, ${os.cpus().length} CPUs, load ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  const all: Figures[] = [];
  for (const dialect of dialects) all.push(...(await benchDialect(dialect, csv)));

  console.log('');
  console.log('| database | run | wall s | longest stall ms | p99 delay ms | /healthz max ms (n) | /auth/me max ms (n) |');
  console.log('|---|---|--:|--:|--:|--:|--:|');
  for (const f of all) {
    console.log(
      `| ${f.dialect} | ${f.run} | ${f1(f.seconds)} | ${f1(f.stallMs)} | ${f1(f.p99Ms)} | ${f1(f.healthz.maxMs)} (${f.healthz.count}) | ${f1(f.me.maxMs)} (${f.me.count}) |`,
    );
  }
  const worst = Math.max(...all.map((f) => f.stallMs));
  console.log(`\nLongest stall ${f1(worst)} ms; target < ${TARGET_STALL_MS} ms: ${worst < TARGET_STALL_MS ? 'met' : 'NOT met'}.`);
}

if (opts['probe-port'] !== undefined) runProber(Number(opts['probe-port']), opts['probe-token'] ?? '');
else await main();
