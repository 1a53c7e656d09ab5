/**
 * One `gatehouse server` against two on one PostgreSQL, under the same fixed load: API
 * p50/p99 latency and requests per second on an authenticated GET /api/v1/devices, and
 * sign-ins per second, with the 2-vs-1 ratios, in one run. Each replica count gets a fresh
 * database. Prints figures and never asserts. See bench/README.md.
 *
 *   npm run bench:replicas -- [--seconds 15] [--connections 20] [--sign-in-connections 8] [--rounds 2]
 *
 * The load goes through a small round-robin TCP proxy started here (node:net), as a load
 * balancer would spread it: each client connection goes to the next replica, and the proxy
 * connects to it from an address of its own in 127.1.0.0/16. Every sign-in opens a new
 * connection (autocannon's reconnectRate 1), so it comes from a new address and the route's
 * per-address limit (30 a minute, now shared by the replicas) never refuses it.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';
import { freeLowPort } from './host.js';
import {
  api,
  cpuSeconds,
  f1,
  f2,
  onCleanup,
  percentile,
  runMain,
  setUpGatehouse,
  startGatehouseProcess,
  type Gatehouse,
} from './ssh-support.js';

const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string', default: '15' },
    connections: { type: 'string', default: '20' },
    'sign-in-connections': { type: 'string', default: '8' },
    rounds: { type: 'string', default: '2' },
    'postgres-url': { type: 'string' },
  },
});
const SECONDS = Number(opts.seconds);
const CONNECTIONS = Number(opts.connections);
const SIGN_IN_CONNECTIONS = Number(opts['sign-in-connections']);
const ROUNDS = Number(opts.rounds);
if (![SECONDS, CONNECTIONS, SIGN_IN_CONNECTIONS, ROUNDS].every((n) => Number.isInteger(n) && n > 0))
  throw new Error('--seconds, --connections, --sign-in-connections and --rounds take positive whole numbers');
const ADMIN_URL =
  opts['postgres-url'] ?? process.env.BENCH_POSTGRES_URL ?? process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A new PostgreSQL database, and how to drop it (done at clean-up too). */
async function createDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `gatehouse_bench_${randomBytes(6).toString('hex')}`;
  const admin = async (statement: string) => {
    const client = new pg.Client({ connectionString: ADMIN_URL });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await admin(`create database ${name}`);
  const drop = () => admin(`drop database if exists ${name} with (force)`);
  onCleanup(() => void drop().catch(() => undefined));
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop };
}

/** A replica on a port below 32768 with every listener but HTTPS off. */
async function startReplica(
  dataDir: string,
  env: Record<string, string>,
): Promise<Gatehouse & { port: number; stop: () => Promise<void> }> {
  const port = await freeLowPort();
  mkdirSync(path.dirname(dataDir), { recursive: true });
  const off = { GATEHOUSE_GATEWAY_PORT: '0', GATEHOUSE_VNC_PORT: '0', GATEHOUSE_AGENT_PORT: '0', GATEHOUSE_RDP_PORT: '0' };
  const { pid, match, stop } = await startGatehouseProcess(
    ['server', '--port', String(port), '--host', '127.0.0.1', '--data-dir', dataDir],
    path.dirname(dataDir),
    { ...off, ...env },
    /^Gatehouse (https:\/\/\S+)$/m,
  );
  const cert = readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8');
  return { pid, port, url: match[1] as string, gatewayPort: 0, cert, stop };
}

/** Round-robin TCP proxy: each connection to the next replica, from the next address of 127.1.0.0/16. */
async function startProxy(ports: number[]): Promise<number> {
  let connections = 0;
  const server = net.createServer((client) => {
    const n = connections++;
    const upstream = net.connect({
      host: '127.0.0.1',
      port: ports[n % ports.length] as number,
      localAddress: `127.1.${Math.floor(n / 250) % 250}.${1 + (n % 250)}`,
    });
    for (const s of [client, upstream]) s.on('error', () => (client.destroy(), upstream.destroy()));
    client.pipe(upstream).pipe(client);
  });
  const port = await freeLowPort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  onCleanup(() => server.close());
  return port;
}

interface Figures {
  perSecond: number;
  p50: number;
  p99: number;
  statuses: string;
  cpu: string;
}

/** The replicas' CPU (% of one core each), and this process's (the load and the proxy), while `run` runs for SECONDS. */
async function withCpu<T>(pids: number[], run: () => Promise<T>): Promise<T & { cpu: string }> {
  const before = pids.map(cpuSeconds);
  const bench = process.cpuUsage();
  const result = await run();
  const used = process.cpuUsage(bench);
  const cpu =
    pids.map((pid, i) => `${f1((100 * (cpuSeconds(pid) - (before[i] as number))) / SECONDS)} %`).join(' + ') +
    `; client and proxy ${f1((used.user + used.system) / 1e4 / SECONDS)} %`;
  return { ...result, cpu };
}

/** autocannon for SECONDS. */
async function load(options: autocannon.Options): Promise<Omit<Figures, 'cpu'>> {
  const result = await autocannon({ duration: SECONDS, ...options });
  const statuses = Object.entries(result.statusCodeStats ?? {})
    .map(([status, { count }]) => `${count ?? 0} × ${status}`)
    .join(', ');
  return {
    perSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    statuses: `${statuses}${result.errors > 0 ? `, ${result.errors} errors` : ''}${result.timeouts > 0 ? `, ${result.timeouts} timeouts` : ''}`,
  };
}

/**
 * Sign-ins for SECONDS from SIGN_IN_CONNECTIONS loops, each sign-in on a new TLS connection.
 * Not autocannon: with reconnectRate it drops the answer of the request after which it
 * reconnects, so it counts no sign-in at all at reconnectRate 1.
 */
async function signIns(url: string, ca: string, user: { username: string; password: string }): Promise<Omit<Figures, 'cpu'>> {
  const ms: number[] = [];
  const statuses = new Map<string, number>();
  const body = JSON.stringify(user);
  const until = performance.now() + SECONDS * 1000;
  const signIn = () =>
    new Promise<string>((resolve) => {
      const req = request(url, { method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.once('end', () => resolve(String(res.statusCode)));
      });
      req.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: SIGN_IN_CONNECTIONS }, async () => {
      while (performance.now() < until) {
        const started = performance.now();
        const status = await signIn();
        ms.push(performance.now() - started);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    }),
  );
  return {
    perSecond: (statuses.get('200') ?? 0) / SECONDS,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    statuses: [...statuses].map(([status, n]) => `${n} × ${status}`).join(', '),
  };
}

async function measure(replicas: number, round: number, dir: string): Promise<{ api: Figures; signIn: Figures }> {
  const database = await createDatabase();
  const env = { DATABASE_URL: database.url, GATEHOUSE_MASTER_KEY: randomBytes(32).toString('hex') };
  const dataDirs = Array.from({ length: replicas }, (_, i) => path.join(dir, `round-${round}-${replicas}-replicas`, `data-${i}`));
  const first = await startReplica(dataDirs[0] as string, env);
  const token = await setUpGatehouse(first, dataDirs[0] as string, `admin-${randomBytes(9).toString('hex')}`);
  // One certificate for the address the clients see: the others take the first one's.
  const tls = path.join(dataDirs[0] as string, 'tls');
  const started = [first];
  for (const dataDir of dataDirs.slice(1)) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    cpSync(tls, path.join(dataDir, 'tls'), { recursive: true });
    started.push(await startReplica(dataDir, env));
  }
  const { id: projectId } = await api<{ id: string }>(first, token, 'POST', '/projects', { name: 'bench' });
  for (let i = 0; i < 20; i++) {
    await api(first, token, 'POST', '/devices', {
      projectId,
      name: `device-${i}`,
      protocols: ['ssh'],
      provider: 'on-prem',
      privateIp: `10.0.0.${i + 1}`,
      urlPort: '22',
    });
  }
  const user = { username: 'bench-user', password: `password-${randomBytes(9).toString('hex')}` };
  await api(first, token, 'POST', '/users', { ...user, role: 'operator' });

  const proxy = `https://127.0.0.1:${await startProxy(started.map((r) => r.port))}`;
  const pids = started.map((r) => r.pid);
  const tlsOptions = { ca: first.cert };
  const devices = { url: `${proxy}/api/v1/devices`, headers: { authorization: `Bearer ${token}` }, tlsOptions };
  await autocannon({ ...devices, connections: CONNECTIONS, duration: 3 }); // warm-up
  const apiFigures = await withCpu(pids, () => load({ ...devices, connections: CONNECTIONS }));
  const signIn = await withCpu(pids, () => signIns(`${proxy}/api/v1/auth/login`, first.cert, user));
  await Promise.all(started.map((r) => r.stop()));
  await database.drop();
  return { api: apiFigures, signIn };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-replicas-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  console.log(
    `1 vs 2 gatehouse server replicas on PostgreSQL behind a round-robin TCP proxy, ${SECONDS} s per load: ` +
      `GET /api/v1/devices (20 devices, API token) over ${CONNECTIONS} connections, sign-ins over ${SIGN_IN_CONNECTIONS} (a new TLS connection each)`,
  );
  console.log(`${os.cpus().length} CPUs, Node ${process.version}, load ${os.loadavg().map(f1).join(' ')}`);
  const runs = new Map<number, { api: Figures; signIn: Figures }[]>([
    [1, []],
    [2, []],
  ]);
  // Rounds alternate the order (1 then 2, 2 then 1, …) so a machine getting busier or
  // quieter during the run does not favour one side.
  for (let round = 0; round < ROUNDS; round++) {
    for (const replicas of round % 2 === 0 ? [1, 2] : [2, 1]) {
      const figures = await measure(replicas, round, dir);
      runs.get(replicas)?.push(figures);
      for (const [what, f] of [
        ['GET /devices', figures.api],
        ['sign-ins', figures.signIn],
      ] as const) {
        console.log(
          `${replicas} replica${replicas === 1 ? ' ' : 's'}  ${what.padEnd(12)} ${f1(f.perSecond).padStart(7)} req/s  ` +
            `p50 ${f1(f.p50)} ms  p99 ${f1(f.p99)} ms  CPU: server ${f.cpu}  (${f.statuses})`,
        );
      }
    }
  }
  const mean = (replicas: number, pick: (r: { api: Figures; signIn: Figures }) => number) => {
    const xs = (runs.get(replicas) ?? []).map(pick);
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  const ratio = (pick: (r: { api: Figures; signIn: Figures }) => number) => f2(mean(2, pick) / mean(1, pick));
  console.log(
    `\n2 / 1 (means over ${ROUNDS} round${ROUNDS === 1 ? '' : 's'}): GET /devices ${ratio((r) => r.api.perSecond)}× req/s, ` +
      `p50 ${ratio((r) => r.api.p50)}×, p99 ${ratio((r) => r.api.p99)}×; sign-ins ${ratio((r) => r.signIn.perSecond)}×/s, ` +
      `p99 ${ratio((r) => r.signIn.p99)}×; load now ${os.loadavg().map(f1).join(' ')}`,
  );
}

runMain(main);
