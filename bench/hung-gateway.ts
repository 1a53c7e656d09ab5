/**
 * What a hung remote gateway costs new connections: a segment of two `gatehouse gateway`
 * processes, one of them stopped with SIGSTOP (it accepts TCP and answers nothing), and
 * N new `ssh` connections through the built-in gateway to a device of that segment, one
 * at a time and then `--parallel` at a time. Prints, per round, how many connections
 * waited on the hung gateway (from their `gateway.select` audit events), the stall they
 * added (connection time over the median with both gateways up) and when the server
 * marked the gateway offline. Never asserts. See bench/README.md.
 *
 *   npm run bench:hung-gateway -- [--connections 20] [--parallel 4] [--baseline 10]
 *
 * Needs root (a throwaway user `gh-bench`, /run/sshd), /usr/sbin/sshd, ssh, ssh-keygen and
 * sshpass. Runs on the built packages: `tsc -b` first, then this file compiled by
 * bench/tsconfig.json into bench/dist.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect, createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const GATEHOUSE_BIN = path.join(ROOT, 'packages', 'cli', 'bin', 'gatehouse.js');
const BENCH_USER = 'gh-bench';
const SEGMENT = 'gateway-bench';
const DEVICE = 'seg-box';

const { values: opts } = parseArgs({
  options: {
    connections: { type: 'string', default: '20' },
    parallel: { type: 'string', default: '4' },
    baseline: { type: 'string', default: '10' },
  },
});
const CONNECTIONS = Number(opts.connections);
const PARALLEL = Number(opts.parallel);
const BASELINE = Number(opts.baseline);
if (![CONNECTIONS, PARALLEL, BASELINE].every((n) => Number.isInteger(n) && n > 0))
  throw new Error('--connections, --parallel and --baseline take positive whole numbers');

const children = new Set<ChildProcess>();
const cleanups: (() => void)[] = [];
function cleanup(): void {
  for (const c of children) {
    c.kill('SIGTERM');
    c.kill('SIGCONT');
  }
  for (const fn of cleanups.splice(0)) fn();
}
process.once('exit', cleanup);
process.once('SIGINT', () => process.exit(130));

function start(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess & { output: () => string } {
  const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-20_000)));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-20_000)));
  return Object.assign(child, { output: () => out });
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const listening = (port: number) =>
  new Promise<true | undefined>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(undefined));
  });

function gatehouseEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GATEHOUSE_') && k !== 'DATABASE_URL') env[k] = v;
  return { ...env, ...extra };
}

/** A long-running `gatehouse <args>`, resolved with the first match of `ready` in its output. */
async function gatehouse(args: string[], ready: RegExp, env: Record<string, string> = {}) {
  const child = start(process.execPath, [GATEHOUSE_BIN, ...args], gatehouseEnv(env));
  const match = await until(`gatehouse ${args[0]} ready`, () => {
    if (child.exitCode !== null) throw new Error(`gatehouse ${args[0]} exited:\n${child.output()}`);
    return ready.exec(child.output()) ?? undefined;
  });
  return { child, match };
}

/** A private sshd on 127.0.0.1 (the device) that lets `gh-bench` in with `publicKey`. */
async function startSshd(dir: string, publicKey: string): Promise<number> {
  try {
    execFileSync('id', [BENCH_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', BENCH_USER]);
  }
  execFileSync('usermod', ['-p', '*', BENCH_USER]);
  writeFileSync(path.join(dir, 'authorized_keys'), `${publicKey}\n`, { mode: 0o644 });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_key')]);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const port = await freePort();
  const config = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${path.join(dir, 'host_key')}`,
    'UsePAM no',
    'PasswordAuthentication no',
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
    'StrictModes no',
    'UseDNS no',
    'MaxStartups 200',
    '',
  ].join('\n');
  writeFileSync(path.join(dir, 'sshd_config'), config);
  start('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(dir, 'sshd_config')]);
  await until('sshd listening', () => listening(port));
  return port;
}

interface AuditEvent {
  seq: number;
  action: string;
  details: { gateway?: string; failedOver?: { gateway: string }[]; circuit?: string };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark makes a throwaway user and starts sshd');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-hung-'));
  chmodSync(dir, 0o711);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'client_key')]);
  const sshdPort = await startSshd(dir, readFileSync(path.join(dir, 'client_key.pub'), 'utf8').trim());

  const dataDir = path.join(dir, 'data');
  const gatewayPort = await freePort();
  const server = await gatehouse(['server', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir], /^Gatehouse (https:\/\/\S+)$/m, {
    GATEHOUSE_GATEWAY_PORT: String(gatewayPort),
  });
  const url = server.match[1] as string;
  const ca = readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8');
  const password = `admin-${randomBytes(9).toString('hex')}`;
  const credentials = path.join(dir, 'credentials.json');
  execFileSync(process.execPath, [GATEHOUSE_BIN, 'setup', '--data-dir', dataDir, '--url', url, '--password-stdin'], {
    env: gatehouseEnv({ GATEHOUSE_CREDENTIALS: credentials }),
    input: `${password}\n`,
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  const token = (JSON.parse(readFileSync(credentials, 'utf8')) as { profiles: { default: { token: string } } }).profiles.default.token;
  const api = <T>(method: string, route: string, body?: unknown) =>
    new Promise<T>((resolve, reject) => {
      const headers = { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
      const req = request(new URL(`/api/v1${route}`, url), { method, ca, agent: false, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => (text += s));
        res.on('end', () =>
          (res.statusCode ?? 500) >= 300
            ? reject(new Error(`${method} ${route}: ${res.statusCode} ${text}`))
            : resolve((text === '' ? undefined : JSON.parse(text)) as T),
        );
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });

  const serverKey = (await api<{ publicKey: string }>('GET', '/gateways/server-key')).publicKey;
  const remotes: Record<string, { child: ChildProcess; id: string }> = {};
  for (const name of ['steady', 'hung']) {
    const port = await freePort();
    const { child, match } = await gatehouse(
      ['gateway', '--host', '127.0.0.1', '--management-port', String(port), '--data-dir', path.join(dir, name)].concat([
        '--server-key',
        serverKey,
        '--ssh-port',
        '0',
        '--agent-port',
        '0',
        '--log-level',
        'warn',
      ]),
      /^Public key:\s+(\S+)$[\s\S]*^Management:/m,
    );
    const registered = await api<{ id: string; status: string }>('POST', '/gateways', {
      name,
      segment: SEGMENT,
      address: `127.0.0.1:${port}`,
      publicKey: match[1],
    });
    if (registered.status !== 'online') throw new Error(`gateway ${name} is ${registered.status}`);
    remotes[name] = { child, id: registered.id };
  }
  const hung = remotes.hung as { child: ChildProcess; id: string };
  const project = await api<{ id: string }>('POST', '/projects', { name: 'Bench' });
  const device = await api<{ id: string }>('POST', '/devices', {
    projectId: project.id,
    name: DEVICE,
    provider: 'on-prem',
    protocols: ['ssh'],
    privateIp: '127.0.0.1',
    urlPort: String(sshdPort),
    tags: [SEGMENT],
  });
  await api('POST', '/accounts', {
    deviceId: device.id,
    username: BENCH_USER,
    privateKey: readFileSync(path.join(dir, 'client_key'), 'utf8'),
  });

  const ssh = () =>
    new Promise<number>((resolve, reject) => {
      const started = performance.now();
      const args = ['-e', 'ssh', '-p', String(gatewayPort), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null']
        .concat(['-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=keyboard-interactive,password', '-o', 'BatchMode=no'])
        .concat(['-o', 'LogLevel=ERROR', `admin:${DEVICE}@127.0.0.1`, 'true']);
      const child = start('sshpass', args, { ...process.env, SSHPASS: password });
      child.once('close', (code) =>
        code === 0 ? resolve(performance.now() - started) : reject(new Error(`ssh exited ${code}: ${child.output()}`)),
      );
    });
  const lastSeq = async () => (await api<{ items: AuditEvent[] }>('GET', '/audit/events?limit=1')).items[0]?.seq ?? 0;
  const eventsSince = async (seq: number) =>
    (await api<{ items: AuditEvent[] }>('GET', `/audit/events?afterSeq=${seq}&order=asc&limit=1000`)).items;
  const statusOfHung = async () => (await api<{ status: string }>('GET', `/gateways/${hung.id}`)).status;

  /** `n` connections, `parallel` at a time: how long each took, in ms. */
  const connections = async (n: number, parallel: number) => {
    const times: number[] = [];
    for (let i = 0; i < n; i += parallel)
      times.push(...(await Promise.all(Array.from({ length: Math.min(parallel, n - i) }, () => ssh()))));
    return times;
  };
  console.log(`hung gateway: ${CONNECTIONS} new connections after SIGSTOP of one gateway of two in the segment`);
  console.log(
    `${os.cpus().length} CPUs, Node ${process.version}, load ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
  console.log(
    '| at a time | connection, both up (median ms) | connections | waited on the hung gateway | stall, total s | stall, worst s | offline after s |',
  );
  console.log('|---|---|---|---|---|---|---|');

  for (const parallel of [...new Set([1, PARALLEL])]) {
    if ((await statusOfHung()) !== 'online') {
      hung.child.kill('SIGCONT');
      await api('POST', `/gateways/${hung.id}/sync`);
      await until('the hung gateway online again', async () => ((await statusOfHung()) === 'online' ? true : undefined));
    }
    // What a connection takes at this parallelism with both gateways up: the stall is what comes on top.
    const baseline = (await connections(BASELINE, parallel)).sort((a, b) => a - b);
    const typical = baseline[Math.floor(baseline.length / 2)] as number;
    const seq = await lastSeq();
    hung.child.kill('SIGSTOP');
    const stoppedAt = performance.now();
    let offlineAt: number | undefined;
    const watcher = setInterval(() => {
      void statusOfHung().then((s) => (offlineAt ??= s === 'offline' ? performance.now() : undefined));
    }, 100);
    const times = await connections(CONNECTIONS, parallel);
    clearInterval(watcher);
    const waited = (await eventsSince(seq)).filter(
      (e) => e.action === 'gateway.select' && e.details.failedOver?.some((t) => t.gateway === 'hung'),
    ).length;
    const stalls = times.map((ms) => Math.max(0, ms - typical));
    const total = stalls.reduce((a, b) => a + b, 0) / 1000;
    const offline = offlineAt === undefined ? 'later' : ((offlineAt - stoppedAt) / 1000).toFixed(1);
    console.log(
      `| ${parallel} | ${typical.toFixed(0)} | ${CONNECTIONS} | ${waited} | ${total.toFixed(1)} | ${(Math.max(...stalls) / 1000).toFixed(1)} | ${offline} |`,
    );
  }
  hung.child.kill('SIGCONT');
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
