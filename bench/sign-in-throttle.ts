/**
 * Sign-in under a brute force: how many sign-ins per second legitimate users of other
 * accounts get from a real `gatehouse server` (built-in SSH gateway off), alone and while
 * 50 connections guess one user's password as fast as the server answers them, with the
 * throttles on. Prints both rates and their ratio (the target: legitimate users slowed by
 * at most 2×), the attackers' answers and the latencies; never asserts. See bench/README.md.
 *
 *   npm run bench:sign-in -- [--seconds 20] [--users 4] [--connections 50] [--sources 1,50]
 *
 * Every legitimate sign-in comes from an address of its own in 127.1.0.0/16 (a new TLS
 * connection each, so the route's per-address request limit, 30 a minute, never
 * applies to them); the attackers come from 127.0.0.2 (`--sources 1`) or from one
 * address per connection (`--sources 50`, a distributed guesser), over kept-alive
 * connections. Linux routes all of 127.0.0.0/8 to the loopback interface.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const GATEHOUSE_BIN = path.join(ROOT, 'packages', 'cli', 'bin', 'gatehouse.js');

const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    users: { type: 'string', default: '4' },
    connections: { type: 'string', default: '50' },
    sources: { type: 'string', default: '1,50' },
  },
});
const SECONDS = Number(opts.seconds);
const USERS = Number(opts.users);
const CONNECTIONS = Number(opts.connections);
const SOURCES = opts.sources.split(',').map(Number);
if (![SECONDS, USERS, CONNECTIONS, ...SOURCES].every((n) => Number.isInteger(n) && n > 0))
  throw new Error('--seconds, --users, --connections and --sources take positive whole numbers');

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGTERM');
});
process.once('SIGINT', () => process.exit(130));

function gatehouseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GATEHOUSE_') && k !== 'DATABASE_URL') env[k] = v;
  return { ...env, ...extra };
}

function run(args: string[], env: Record<string, string>, stdin = ''): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, [GATEHOUSE_BIN, ...args], { env: gatehouseEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-20_000)));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-20_000)));
  child.stdin.end(stdin);
  return Object.assign(child, { output: () => out });
}

/** Starts `gatehouse server` on a fresh data directory; resolves with its URL and certificate. */
async function startServer(dataDir: string): Promise<{ url: string; ca: string; pid: number }> {
  const child = run(['server', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir], { GATEHOUSE_GATEWAY_PORT: '0' });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gatehouse server was not ready within 60 s:\n${child.output()}`)), 60_000);
    child.stdout?.on('data', () => {
      const found = /^Gatehouse (https:\/\/\S+)$/m.exec(child.output());
      if (found) {
        clearTimeout(timer);
        resolve(found[1] as string);
      }
    });
    child.once('exit', (code) => reject(new Error(`gatehouse server exited (${code}):\n${child.output()}`)));
  });
  return { url, ca: readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8'), pid: child.pid as number };
}

interface Answer {
  status: number;
  ms: number;
}

/** POST /api/v1/auth/login (or any JSON call) with an agent, which picks the connection and its local address. */
function post(base: string, agent: Agent, route: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(route, base),
      { method: 'POST', agent, headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        res.resume();
        res.once('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
      },
    );
    req.once('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** CPU seconds a process has used (user + system), from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN;
const f1 = (n: number) => n.toFixed(1);

/** Legitimate users sign in one after another, each sign-in from a new address, for SECONDS. */
async function legitimate(base: string, ca: string, users: { username: string; password: string }[], next: () => string) {
  const answers: Answer[] = [];
  const until = performance.now() + SECONDS * 1000;
  await Promise.all(
    users.map(async (user) => {
      while (performance.now() < until) {
        const agent = new Agent({ ca, keepAlive: false, localAddress: next() });
        answers.push(await post(base, agent, '/api/v1/auth/login', user));
        agent.destroy();
      }
    }),
  );
  const ok = answers.filter((a) => a.status === 200);
  const other = answers.filter((a) => a.status !== 200).map((a) => a.status);
  if (other.length > 0) console.log(`  legitimate sign-ins that failed: ${other.length} (${[...new Set(other)].join(', ')})`);
  return {
    perSecond: ok.length / SECONDS,
    p50: percentile(
      ok.map((a) => a.ms),
      0.5,
    ),
    p95: percentile(
      ok.map((a) => a.ms),
      0.95,
    ),
  };
}

/** CONNECTIONS connections guess `victim`'s password, each sending the next guess when the last is answered. */
function bruteForce(base: string, ca: string, victim: string, sources: number) {
  const statuses = new Map<number, number>();
  let stop = false;
  const agents = Array.from(
    { length: sources },
    (_, i) =>
      new Agent({
        ca,
        keepAlive: true,
        maxSockets: Math.ceil(CONNECTIONS / sources),
        localAddress: `127.0.${2 + Math.floor(i / 250)}.${1 + (i % 250)}`,
      }),
  );
  const done = Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, c) => {
      const agent = agents[c % sources] as Agent;
      for (let i = 0; !stop; i++) {
        const { status } = await post(base, agent, '/api/v1/auth/login', { username: victim, password: `guess-${c}-${i}` });
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    }),
  );
  return {
    async stop() {
      stop = true;
      await done;
      for (const a of agents) a.destroy();
      return statuses;
    },
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-sign-in-'));
  try {
    const dataDir = path.join(dir, 'data');
    console.log(`Sign-in under a ${CONNECTIONS}-connection brute force: ${USERS} legitimate users, ${SECONDS} s per phase`);
    console.log(`${os.cpus().length} CPUs, Node ${process.version}, load ${os.loadavg().map(f1).join(' ')}`);
    const server = await startServer(dataDir);
    const credentials = path.join(dir, 'credentials.json');
    const adminPassword = `admin-${randomBytes(9).toString('hex')}`;
    const setup = run(
      ['setup', '--data-dir', dataDir, '--url', server.url, '--password-stdin'],
      { GATEHOUSE_CREDENTIALS: credentials },
      `${adminPassword}\n`,
    );
    const setupCode = await new Promise((resolve) => setup.once('exit', resolve));
    if (setupCode !== 0) throw new Error(`gatehouse setup failed:\n${setup.output()}`);
    const token = (JSON.parse(readFileSync(credentials, 'utf8')) as { profiles: { default: { token: string } } }).profiles.default.token;
    const admin = new Agent({ ca: server.ca, keepAlive: true, maxSockets: 1 });
    const users = Array.from({ length: USERS }, (_, i) => ({
      username: `user-${i}`,
      password: `password-${randomBytes(9).toString('hex')}`,
    }));
    for (const [username, password] of [
      ...users.map((u) => [u.username, u.password]),
      ['victim', `victim-${randomBytes(9).toString('hex')}`],
    ]) {
      const made = await post(
        server.url,
        admin,
        '/api/v1/users',
        { username, role: 'operator', password },
        { authorization: `Bearer ${token}` },
      );
      if (made.status !== 201) throw new Error(`creating ${username} answered ${made.status}`);
    }
    let address = 0;
    const next = () => `127.1.${Math.floor(address / 250) % 250}.${1 + (address++ % 250)}`;

    let cpu = cpuSeconds(server.pid);
    const serverCpu = () => {
      const used = cpuSeconds(server.pid) - cpu;
      cpu += used;
      return `server CPU ${f1((100 * used) / SECONDS)} %`;
    };
    const base = await legitimate(server.url, server.ca, users, next);
    console.log(`\nalone: ${f1(base.perSecond)} sign-ins/s, p50 ${f1(base.p50)} ms, p95 ${f1(base.p95)} ms; ${serverCpu()}`);
    for (const sources of SOURCES) {
      const attack = bruteForce(server.url, server.ca, 'victim', sources);
      const during = await legitimate(server.url, server.ca, users, next);
      const statuses = await attack.stop();
      const answers = [...statuses].map(([s, n]) => `${n} × ${s}`).join(', ');
      console.log(
        `with ${CONNECTIONS} guessing connections from ${sources} address${sources === 1 ? '' : 'es'}: ` +
          `${f1(during.perSecond)} sign-ins/s, p50 ${f1(during.p50)} ms, p95 ${f1(during.p95)} ms; ` +
          `slowed ${(base.perSecond / during.perSecond).toFixed(2)}× (target ≤ 2×); ${serverCpu()}; the guesses got ${answers}`,
      );
    }
    admin.destroy();
  } finally {
    for (const c of children) c.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
