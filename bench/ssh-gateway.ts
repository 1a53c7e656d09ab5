/**
 * SSH gateway benchmark: throughput, connection setup, idle-session memory, new sessions
 * per second and echo latency under load through the built-in Gatehouse gateway
 * (recording on), and through the built-in gateway relaying over a registered remote
 * gateway (`gatehouse gateway`, the "segment" path), each against OpenSSH measured in the
 * same run: `ssh` straight to a private sshd (the device) and `ssh` with ProxyJump through
 * a second private sshd (the bastion). Prints figures and ratios, never asserts. See
 * bench/README.md.
 *
 *   npm run bench:ssh -- [--size-mib 1024] [--runs 3] [--setup-runs 20] [--idle 100]
 *     [--rate-sessions 40] [--concurrency 4] [--active 100] [--active-seconds 15]
 *     [--active-interval-ms 100] [--no-segment] [--keep] [--keep-recordings] [--cpu-prof DIR]
 *     [--node-arg=--trace-gc] [--server-log FILE] [--warm-page-cache] [--threads]
 *
 * Needs root (a throwaway user `gh-bench`, /run/sshd), /usr/sbin/sshd, ssh, ssh-keygen and
 * sshpass. Runs on the built packages: `tsc -b` first, then this file compiled by
 * bench/tsconfig.json into bench/dist.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import ssh2 from 'ssh2';
import type { RelayDirectionStats, RelayStatsSummary } from '@gatehouse/gateway';
import {
  addSshDevice,
  api,
  check,
  CIPHER,
  cpuSeconds,
  ensureUser,
  f1,
  f2,
  freePort,
  gatehouseHost,
  KEX,
  launcherFlags,
  machineCpuSeconds,
  median,
  MiB,
  negotiatedOf,
  onCleanup,
  cpusOf,
  percentile,
  pinSelf,
  peakRssKiB,
  processStat,
  ROOT,
  rssKiB,
  runCommand,
  runMain,
  setUpGatehouse,
  sshCommand as sshLine,
  sshConfig,
  startGatehouse,
  startGatehouseProcess,
  startSshd,
  threadSeconds,
  track,
  transfer as transferThrough,
  writeTextFile,
  type Gatehouse,
  type Run,
  type SshCommand,
  type Sshd,
} from './ssh-support.js';

const DEVICE = 'bench-box';
/** The device reached through the remote gateway: the same sshd, tagged with the gateway's segment. */
const SEGMENT_DEVICE = 'bench-seg';
const SEGMENT = 'gateway-bench';
const REMOTE_GATEWAY = 'bench-remote';

const { values: opts } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    runs: { type: 'string', default: '3' },
    'setup-runs': { type: 'string', default: '20' },
    idle: { type: 'string', default: '100' },
    'rate-sessions': { type: 'string', default: '40' },
    concurrency: { type: 'string', default: '4' },
    active: { type: 'string', default: '100' },
    'active-seconds': { type: 'string', default: '15' },
    'active-interval-ms': { type: 'string', default: '100' },
    'no-segment': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'keep-recordings': { type: 'boolean', default: false },
    /** Writes a V8 CPU profile of each `gatehouse` process into DIR when it stops (open in Chrome DevTools). */
    'cpu-prof': { type: 'string' },
    'node-arg': { type: 'string', multiple: true },
    'warm-page-cache': { type: 'boolean' },
    'server-log': { type: 'string' },
    /** Prints the CPU each thread of the server used per MiB of each Gatehouse transfer. */
    threads: { type: 'boolean', default: false },
    /**
     * As in production, where the gateway has its own host: the server (all its threads) on
     * CPU 1; this benchmark, ssh, both sshds and the remote gateway on CPU 0.
     */
    pin: { type: 'boolean', default: false },
    /** Sessions opened by the in-process load generator (ssh2 clients) per path; 0 skips. */
    'load-sessions': { type: 'string', default: '400' },
    /** How many of the load generator's sessions are being opened at once. */
    'load-concurrency': { type: 'string', default: '32' },
  },
});
const SIZE = Number(opts['size-mib']) * MiB;
const RUNS = Number(opts.runs);
const SETUP_RUNS = Number(opts['setup-runs']);
const IDLE = Number(opts.idle);
const RATE_SESSIONS = Number(opts['rate-sessions']);
const CONCURRENCY = Number(opts.concurrency);
const ACTIVE = Number(opts.active);
const ACTIVE_SECONDS = Number(opts['active-seconds']);
const ACTIVE_INTERVAL_MS = Number(opts['active-interval-ms']);
const WITH_SEGMENT = !opts['no-segment'];
const LOAD_SESSIONS = Number(opts['load-sessions']);
const LOAD_CONCURRENCY = Number(opts['load-concurrency']);
const CPU_PROF_DIR = opts['cpu-prof'] ? path.resolve(opts['cpu-prof']) : undefined;
const NODE_ARGS = opts['node-arg'] ?? [];
const PIN = opts.pin;
/** With --pin: the server's CPU, and everyone else's. */
const SERVER_CPU = 1;
const OTHERS_CPU = 0;
const SERVER_LOG = opts['server-log'] ? path.resolve(opts['server-log']) : undefined;
/** Lines the benchmark adds to --server-log at each transfer's start and end, to find its part of the log. */
const serverLogMarks = SERVER_LOG ? createWriteStream(SERVER_LOG, { flags: 'a', mode: 0o600 }) : undefined;

/**
 * Node's own flags for a `gatehouse` child: the launcher's, `--node-arg`s, and a CPU profile when asked
 * (NODE_OPTIONS refuses --cpu-prof and most V8 flags).
 */
function nodeFlags(): string[] {
  const flags = [...launcherFlags(), ...NODE_ARGS];
  if (!CPU_PROF_DIR) return flags;
  mkdirSync(CPU_PROF_DIR, { recursive: true });
  return [...flags, '--cpu-prof', '--cpu-prof-dir', CPU_PROF_DIR];
}

interface RemoteGateway {
  pid: number;
  address: string;
  publicKey: string;
}

/** `gatehouse gateway` (a remote gateway) trusting the server's key; it prints its own key when ready. */
async function startRemoteGateway(dataDir: string, serverKey: string): Promise<RemoteGateway> {
  const port = await freePort();
  const { pid, match } = await startGatehouseProcess(
    [
      'gateway',
      '--host',
      '127.0.0.1',
      '--management-port',
      String(port),
      '--data-dir',
      dataDir,
      '--server-key',
      serverKey,
      // Measured as a relay for the built-in gateway; its own SSH entry stays off.
      '--ssh-port',
      '0',
      '--agent-port',
      '0',
      '--log-level',
      'warn',
    ],
    path.dirname(dataDir),
    {},
    /^Public key:\s+(\S+)$[\s\S]*^Management:/m,
    { nodeFlags: nodeFlags(), log: SERVER_LOG, cpu: PIN ? OTHERS_CPU : undefined },
  );
  return { pid, address: `127.0.0.1:${port}`, publicKey: match[1] as string };
}

// ---------------------------------------------------------------------------------------
// The clients: OpenSSH with one -F config for all paths.

type PathName = 'direct' | 'jump' | 'gateway' | 'segment';
/** The paths measured: `segment` is the built-in gateway relaying through the remote gateway (unless --no-segment). */
const PATHS: PathName[] = WITH_SEGMENT ? ['direct', 'jump', 'gateway', 'segment'] : ['direct', 'jump', 'gateway'];
/** The paths through Gatehouse (signed in by password, recorded), which get ratios against the OpenSSH ones. */
const GATEHOUSE_PATHS: PathName[] = PATHS.filter((p) => p === 'gateway' || p === 'segment');
const LABEL: Record<PathName, string> = {
  direct: 'OpenSSH direct',
  jump: 'OpenSSH ProxyJump',
  gateway: 'Gatehouse gateway',
  segment: 'Gatehouse via remote gw',
};
/** One empty list per path. */
const perPath = <T = number>(): Record<PathName, T[]> => ({ direct: [], jump: [], gateway: [], segment: [] });

interface Clients {
  config: string;
  adminPassword: string;
}

/** The ssh command line for a path; the Gatehouse paths sign in with the admin's password through sshpass (-e). */
function sshCommand(c: Clients, p: PathName, remote: string, extra: string[] = []): SshCommand {
  return sshLine(c.config, p, remote, extra, GATEHOUSE_PATHS.includes(p) ? c.adminPassword : undefined);
}

/** `ssh <path> <remote>` to completion, stdin closed. */
function runSsh(c: Clients, p: PathName, remote: string, extra: string[] = []): Promise<Run> {
  return runCommand(sshCommand(c, p, remote, extra));
}

/**
 * Checks the recording a transfer left (a v2 header, a last line that is a whole event; a
 * download's recording holds at least its bytes) and removes it, and any other, so a run
 * does not leave GiBs of recordings in the page cache: on this VM, memory the guest has not
 * used before is slow to touch the first time, and a recorder micro-benchmark writing
 * 512 MiB recordings one after the other fell from 480 to 210 MiB/s from the fourth file on
 * when they were kept (and stayed at 480 when each was removed).
 */
async function checkAndRemoveRecordings(dir: string, direction: 'up' | 'down'): Promise<void> {
  // The gateway closes the recording as the session ends, around when ssh exits.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.cast'))
    .map((f) => path.join(dir, f));
  if (files.length === 0) throw new Error(`the transfer left no recording in ${dir}`);
  for (const file of files) {
    const { size } = statSync(file);
    const fd = openSync(file, 'r');
    const head = Buffer.alloc(Math.min(size, 4096));
    const tail = Buffer.alloc(Math.min(size, 256 * 1024));
    readSync(fd, head, 0, head.length, 0);
    readSync(fd, tail, 0, tail.length, size - tail.length);
    closeSync(fd);
    const header = JSON.parse(head.toString('utf8').split('\n')[0] ?? '') as { version?: number };
    const lines = tail.toString('utf8').trimEnd().split('\n');
    const last = JSON.parse(lines[lines.length - 1] ?? '') as unknown;
    const whole = (lines.length === 1 && size === tail.length) || (Array.isArray(last) && typeof last[0] === 'number');
    if (header.version !== 2 || !whole) {
      throw new Error(`the recording ${file} is not a whole asciicast v2 file`);
    }
    if (direction === 'down' && files.length === 1 && size < SIZE)
      throw new Error(`the recording ${file} has ${size} bytes, less than the download`);
    rmSync(file);
  }
}

/**
 * Writes `bytes` of zeros to a file and removes it, so the next file written lands in page
 * cache this VM has already backed (`--warm-page-cache`). The VM backs guest memory lazily
 * and its balloon reports freed pages back to the host after a few seconds: writing into
 * pages the guest had not touched (or had freed a while ago) cost 2.1 ms of system time per
 * MiB here, and 0.22 ms into pages a file removed just before had left. Only the recorded
 * path writes a file, so by default its recording pays for those first touches.
 */
function warmPageCache(dir: string, bytes: number): void {
  const file = path.join(dir, 'warm-page-cache');
  const chunk = Buffer.alloc(MiB);
  const fd = openSync(file, 'w', 0o600);
  try {
    for (let done = 0; done < bytes; done += MiB) writeSync(fd, chunk);
  } finally {
    closeSync(fd);
    rmSync(file);
  }
}

/** One upload or download of SIZE bytes on a path, in MiB/s (see `transfer` in ssh-support.ts). */
function transfer(c: Clients, p: PathName, direction: 'up' | 'down', dataFile: string): Promise<number> {
  return transferThrough((remote) => sshCommand(c, p, remote), p, direction, dataFile, SIZE);
}

/** The key exchange and ciphers a path negotiated, from `ssh -v`. */
async function negotiated(c: Clients, p: PathName): Promise<string> {
  return negotiatedOf(check(await runSsh(c, p, 'true', ['-v']), `ssh -v ${p}`));
}

/** What the device's sshd logged about the key exchanges after `offset` (LogLevel DEBUG1). */
function deviceKex(log: string, offset: number): string[] {
  const text = readFileSync(log, 'utf8').slice(offset);
  const found = new Set<string>();
  for (const m of text.matchAll(/kex: algorithm: (\S+)[\s\S]*?kex: client->server cipher: (\S+) MAC: (\S+)/g)) {
    found.add(`${m[1]} / ${m[2]}${m[3] === '<implicit>' ? '' : ` + ${m[3]}`}`);
  }
  return [...found];
}

/** `count` runs of `job`, at most `concurrency` at a time; resolves to the wall time in ms. */
async function pool(count: number, concurrency: number, job: (i: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await job(next++);
    }),
  );
  return performance.now() - started;
}

/** SIGTERM to each session's process; resolves once all have exited (SIGKILL after 5 s). */
function stopAll(sessions: ChildProcess[]): Promise<void> {
  return Promise.all(
    sessions.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.exitCode !== null || s.signalCode !== null) return resolve();
          const timer = setTimeout(() => s.kill('SIGKILL'), 5000);
          s.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          s.kill('SIGTERM');
        }),
    ),
  ).then(() => undefined);
}

/**
 * An idle session: `echo up; exec cat > /dev/null` with stdin held open; resolves once `up`
 * arrived. `cat` ends with the session (its stdin closes); a `sleep 3600` here outlived its
 * session by an hour, and the benchmark's 1,000 of them made every later run on this VM
 * slower (OpenSSH direct 70–105 MiB/s instead of 290–320, most of it system time).
 */
function idleSession(c: Clients, p: PathName): Promise<ChildProcess> {
  const { file, args, env } = sshCommand(c, p, 'echo up; exec cat > /dev/null');
  const child = track(spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] }));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve(child));
    child.once('close', (code) => reject(new Error(`idle ssh ${p} exited ${code}: ${stderr}`)));
  });
}

/** An active interactive session: numbered lines written to `cat` in a pty and timed until they come back. */
interface EchoSession {
  child: ChildProcess;
  /** Line number → `performance.now()` when it was written, until its echo arrives. */
  pending: Map<number, number>;
  rtts: number[];
}

/**
 * `ssh -tt <path> 'stty -echo; echo ready; exec cat'`: a pty on the device as for a
 * terminal, with the pty's own echo off so each line comes back once, from `cat` (as
 * `line\r\n`). Resolves once `ready` arrived; from then on every line that comes back
 * with a number in `pending` adds a round trip.
 */
function echoSession(c: Clients, p: PathName): Promise<EchoSession> {
  const { file, args, env } = sshCommand(c, p, 'stty -echo; echo ready; exec cat', ['-tt', '-e', 'none']);
  const child = track(spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] }));
  const session: EchoSession = { child, pending: new Map(), rtts: [] };
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdin.on('error', () => undefined); // EPIPE when it is stopped
  return new Promise((resolve, reject) => {
    let ready = false;
    let buffered = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      const now = performance.now();
      buffered += s;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl).replace(/\r$/, '');
        buffered = buffered.slice(nl + 1);
        if (!ready) {
          if (line === 'ready') {
            ready = true;
            resolve(session);
          }
          continue;
        }
        const seq = Number.parseInt(line, 10);
        const sentAt = session.pending.get(seq);
        if (sentAt === undefined) continue;
        session.rtts.push(now - sentAt);
        session.pending.delete(seq);
      }
    });
    child.once('close', (code) => reject(new Error(`active ssh ${p} exited ${code}: ${stderr}`)));
  });
}

/**
 * One session as the load generator opens it: an ssh2 client connects, signs in (the
 * client key, or the admin's password through Gatehouse), runs `true` and waits for its
 * exit; resolves once the connection closed.
 */
function ssh2Session(target: { port: number; username: string; password?: string; privateKey?: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let ok = false;
    client.on('error', reject);
    client.on('close', () => (ok ? resolve() : reject(new Error('the connection closed before `true` exited'))));
    client.on('ready', () =>
      client.exec('true', (error, channel) => {
        if (error) return reject(error);
        channel.resume();
        channel.on('exit', (code: number | null) => {
          ok = code === 0;
          if (!ok) reject(new Error(`\`true\` exited ${code}`));
        });
        channel.on('close', () => client.end());
      }),
    );
    client.connect({
      host: '127.0.0.1',
      port: target.port,
      username: target.username,
      ...(target.password !== undefined ? { password: target.password } : {}),
      ...(target.privateKey !== undefined ? { privateKey: target.privateKey } : {}),
      algorithms: { kex: [KEX], cipher: [CIPHER] },
      readyTimeout: 60_000,
    });
  });
}

interface SessionRate {
  perSecond: number;
  /** CPU of the Gatehouse server while the sessions ran, in cores. */
  serverCores: number;
  /** Server CPU per session, ms. */
  serverMsPerSession: number;
}

/** `LOAD_SESSIONS` sessions, `LOAD_CONCURRENCY` at a time, from this process (no `ssh` processes). */
async function sessionRate(open: () => Promise<void>, serverPid?: number): Promise<SessionRate> {
  const cpu0 = serverPid === undefined ? 0 : cpuSeconds(serverPid);
  const ms = await pool(LOAD_SESSIONS, LOAD_CONCURRENCY, open);
  const serverSeconds = serverPid === undefined ? 0 : cpuSeconds(serverPid) - cpu0;
  return {
    perSecond: LOAD_SESSIONS / (ms / 1000),
    serverCores: serverSeconds / (ms / 1000),
    serverMsPerSession: (serverSeconds * 1000) / LOAD_SESSIONS,
  };
}

interface EchoResult {
  rtts: number[];
  sent: number;
  /** Lines whose echo had not arrived 3 s after the last one was sent. */
  missing: number;
  opened: number;
  /** CPU of the Gatehouse server (and the remote gateway) while measuring, in cores. */
  serverCores: number;
  remoteCores: number;
}

/**
 * `ACTIVE` sessions on one path, opened `CONCURRENCY` at a time; then each writes one
 * short numbered line every `ACTIVE_INTERVAL_MS` (each session at its own random phase)
 * for `ACTIVE_SECONDS`, and the write → echo times of all are pooled.
 */
async function echoLatency(c: Clients, p: PathName, serverPid: number, remotePid: number | undefined): Promise<EchoResult> {
  const sessions: EchoSession[] = [];
  try {
    const openedMs = await pool(ACTIVE, CONCURRENCY, async () => sessions.push(await echoSession(c, p)));
    await new Promise((r) => setTimeout(r, 1000));
    let seq = 0;
    let sent = 0;
    const timers: NodeJS.Timeout[] = [];
    const send = (s: EchoSession) => {
      const n = ++seq;
      s.pending.set(n, performance.now());
      s.child.stdin?.write(`${n} the quick brown fox\n`);
      sent++;
    };
    const cpu0 = cpuSeconds(serverPid);
    const remote0 = remotePid === undefined ? 0 : cpuSeconds(remotePid);
    const t0 = performance.now();
    for (const s of sessions) {
      timers.push(
        setTimeout(() => {
          send(s);
          timers.push(setInterval(() => send(s), ACTIVE_INTERVAL_MS));
        }, Math.random() * ACTIVE_INTERVAL_MS),
      );
    }
    await new Promise((r) => setTimeout(r, ACTIVE_SECONDS * 1000));
    for (const t of timers) clearTimeout(t);
    const seconds = (performance.now() - t0) / 1000;
    const serverCores = (cpuSeconds(serverPid) - cpu0) / seconds;
    const remoteCores = remotePid === undefined ? 0 : (cpuSeconds(remotePid) - remote0) / seconds;
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && sessions.some((s) => s.pending.size > 0)) await new Promise((r) => setTimeout(r, 50));
    return {
      rtts: sessions.flatMap((s) => s.rtts),
      sent,
      missing: sessions.reduce((n, s) => n + s.pending.size, 0),
      opened: openedMs,
      serverCores,
      remoteCores,
    };
  } finally {
    await stopAll(sessions.map((s) => s.child));
  }
}

/**
 * Raises this process's open-file limit (children inherit it: sshd, the server, ssh) for
 * many sessions at once: the soft limit up to the hard one, and the hard one too where
 * that is allowed (CAP_SYS_RESOURCE; not in every container).
 */
function raiseOpenFiles(wanted: number): void {
  const match = /^Max open files\s+(\d+)\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const soft = Number(match?.[1] ?? 0);
  const hard = match?.[2] === 'unlimited' ? Infinity : Number(match?.[2] ?? 0);
  if (soft >= wanted) return;
  const set = (limit: string) =>
    spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${limit}`], { stdio: 'ignore' }).status === 0;
  const reachable = Math.min(wanted, hard);
  if (hard < wanted && set(`${wanted}:${wanted}`)) console.log(`open files limit raised from ${soft} to ${wanted}`);
  else if (reachable > soft && set(`${reachable}:${hard === Infinity ? 'unlimited' : hard}`))
    console.log(`open files limit raised from ${soft} to ${reachable}${reachable < wanted ? ` (the hard limit; ${wanted} wanted)` : ''}`);
  else console.log(`open files limit ${soft}: could not raise it to the ${wanted} wanted`);
}

// ---------------------------------------------------------------------------------------
// Main

/** What every step measures through: the peers, the server, the clients' config. */
interface Bench {
  dir: string;
  dataFile: string;
  recordingsDir: string;
  device: Sshd;
  gatehouse: Gatehouse;
  token: string;
  adminPassword: string;
  publicKey: string;
  clientKey: string;
  clients: Clients;
  remote: RemoteGateway | undefined;
}

/** Checks what the benchmark needs, then starts both sshds and the server, and adds the devices. */
async function setUp(): Promise<Omit<Bench, 'clients' | 'remote'> & { bastion: Sshd; addDevice: AddDevice }> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark makes a throwaway user and starts sshd');
  for (const bin of ['/usr/sbin/sshd', '/usr/bin/sshpass'])
    if (!existsSync(bin)) throw new Error(`${bin} is missing (apt-get install openssh-server sshpass)`);
  if (!existsSync(path.join(ROOT, 'packages', 'server', 'dist'))) throw new Error('build first: npx tsc -b');
  // Several descriptors per session in this process (ssh's pipes), the server (client and
  // device sockets, the recording) and the remote gateway: raise the limit before starting them.
  raiseOpenFiles(8 * Math.max(IDLE, ACTIVE) + 4096);
  if (PIN) {
    if (os.cpus().length < 2) throw new Error('--pin needs 2 CPUs: the server on CPU 1, everything else on CPU 0');
    // Before any child starts: sshd, ssh, sshpass and cat inherit it.
    pinSelf(OTHERS_CPU);
  }

  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-ssh-'));
  chmodSync(dir, 0o711);
  if (opts.keep) console.log(`temporary directory (kept): ${dir}`);
  else onCleanup(() => rmSync(dir, { recursive: true, force: true }));

  console.log(`SSH gateway benchmark: ${SIZE / MiB} MiB per transfer, ${RUNS} runs each; setup median of ${SETUP_RUNS}`);
  console.log(
    `cipher ${CIPHER}, key exchange ${KEX}; ${os.cpus().length} CPUs, Node ${process.version}, load ${os.loadavg().map(f2).join(' ')}`,
  );
  console.log(spawnSync('ssh', ['-V'], { encoding: 'utf8' }).stderr.trim());

  ensureUser(`pw-${randomBytes(12).toString('hex')}`);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'gatehouse-bench', '-f', path.join(dir, 'client_key')]);
  const publicKey = readFileSync(path.join(dir, 'client_key.pub'), 'utf8').trim();
  const device = await startSshd(dir, 'device', 'DEBUG1', publicKey);
  const bastion = await startSshd(dir, 'bastion', 'VERBOSE', publicKey);

  const dataFile = path.join(dir, 'data.txt');
  writeTextFile(dataFile, SIZE);

  const adminPassword = `admin-${randomBytes(9).toString('hex')}`;
  const gatehouse = await startGatehouse(
    path.join(dir, 'data'),
    // No listeners on fixed ports (host agents, VNC, RDP: unused here), so two runs at once do not collide.
    { GATEHOUSE_RELAY_STATS: '1', GATEHOUSE_AGENT_PORT: '0', GATEHOUSE_VNC_PORT: '0', GATEHOUSE_RDP_PORT: '0' },
    { nodeFlags: nodeFlags(), log: SERVER_LOG, cpu: PIN ? SERVER_CPU : undefined, onOutput: readRelayStats() },
  );
  const recordingsDir = path.join(dir, 'data', 'recordings');
  const token = await setUpGatehouse(gatehouse, path.join(dir, 'data'), adminPassword);
  const project = await api<{ id: string }>(gatehouse, token, 'POST', '/projects', { name: 'Bench' });
  const clientKey = readFileSync(path.join(dir, 'client_key'), 'utf8');
  const addDevice = (name: string, extra: Record<string, unknown>) =>
    addSshDevice(gatehouse, token, { projectId: project.id, name, port: device.port, privateKey: clientKey, extra });
  // Access type `tunnel`: an untagged device may otherwise be carried by any online gateway,
  // the remote one included; this keeps the `gateway` path on the built-in gateway alone.
  await addDevice(DEVICE, { accessType: 'tunnel' });
  return { dir, dataFile, recordingsDir, device, bastion, gatehouse, token, adminPassword, publicKey, clientKey, addDevice };
}

type AddDevice = (name: string, extra: Record<string, unknown>) => Promise<unknown>;

/**
 * The segment path: a remote gateway trusting the server's key, registered for the
 * segment, and a device tagged with it (the same sshd), so the built-in gateway relays to it.
 */
async function addRemoteGateway(dir: string, gatehouse: Gatehouse, token: string, addDevice: AddDevice): Promise<RemoteGateway> {
  const serverKey = (await api<{ publicKey: string }>(gatehouse, token, 'GET', '/gateways/server-key')).publicKey;
  const remote = await startRemoteGateway(path.join(dir, 'remote-gateway'), serverKey);
  const registered = await api<{ status: string; statusReason: string | null }>(gatehouse, token, 'POST', '/gateways', {
    name: REMOTE_GATEWAY,
    segment: SEGMENT,
    address: remote.address,
    publicKey: remote.publicKey,
  });
  if (registered.status !== 'online') throw new Error(`the remote gateway is ${registered.status}: ${registered.statusReason}`);
  await addDevice(SEGMENT_DEVICE, { tags: [SEGMENT] });
  return remote;
}

/** The clients' config for every path, a warm-up on each, and what each negotiated. */
async function connectClients(
  b: Omit<Bench, 'clients' | 'remote'> & { bastion: Sshd },
  remote: RemoteGateway | undefined,
): Promise<Clients> {
  const { dir, device, bastion, gatehouse, token } = b;

  const config = path.join(dir, 'ssh_config');
  writeFileSync(
    config,
    sshConfig(
      [
        ['Host direct', '  HostName 127.0.0.1', `  Port ${device.port}`],
        ['Host bastion', '  HostName 127.0.0.1', `  Port ${bastion.port}`],
        ['Host jump', '  HostName 127.0.0.1', `  Port ${device.port}`, '  ProxyJump bastion'],
        gatehouseHost('gateway', gatehouse.gatewayPort, `admin:${DEVICE}`),
        gatehouseHost('segment', gatehouse.gatewayPort, `admin:${SEGMENT_DEVICE}`),
      ],
      path.join(dir, 'client_key'),
    ),
    { mode: 0o600 },
  );
  const clients: Clients = { config, adminPassword: b.adminPassword };

  // Warm-up (also the gateway's trust on first use of the device's host key) and what was negotiated.
  check(await runSsh(clients, 'direct', 'true'), 'warm-up direct');
  check(await runSsh(clients, 'jump', 'true'), 'warm-up ProxyJump');
  const logOffset = readFileSync(device.log, 'utf8').length;
  check(await runSsh(clients, 'gateway', 'true'), 'warm-up gateway');
  const gatewayLeg = deviceKex(device.log, logOffset).join(', ') || '? (not in the device log)';
  if (WITH_SEGMENT) {
    check(await runSsh(clients, 'segment', 'true'), 'warm-up segment');
    // Which gateway carried each: the sessions list says so.
    const { items } = await api<{ items: { deviceName: string; gateway: string; segment: string | null }[] }>(
      gatehouse,
      token,
      'GET',
      '/sessions?limit=10',
    );
    const carried = (name: string) => items.find((s) => s.deviceName === name);
    if (carried(DEVICE)?.gateway !== 'default' || carried(SEGMENT_DEVICE)?.gateway !== REMOTE_GATEWAY)
      throw new Error(`the sessions went another way than intended: ${JSON.stringify(items)}`);
    console.log(
      `\nsessions: ${DEVICE} through gateway ${carried(DEVICE)?.gateway}; ${SEGMENT_DEVICE} through ${carried(SEGMENT_DEVICE)?.gateway} ` +
        `(segment ${carried(SEGMENT_DEVICE)?.segment}, remote gateway at ${remote?.address})`,
    );
  }
  console.log(
    PIN
      ? `\npinned (--pin): the Gatehouse server on CPU ${SERVER_CPU} [${cpusOf(gatehouse.pid)}]; this benchmark, ssh, sshpass, ` +
          `both sshds${remote ? ' and the remote gateway' : ''} on CPU ${OTHERS_CPU} [benchmark ${cpusOf(process.pid)}` +
          `${remote ? `, remote gateway ${cpusOf(remote.pid)}` : ''}]. Other work on the machine is not pinned.`
      : '\nnot pinned: every process may run on every CPU (--pin puts the server on a CPU of its own)',
  );
  console.log('\nnegotiated (key exchange / cipher):');
  for (const p of PATHS) console.log(`  ${(LABEL[p] + ', client leg').padEnd(38)} ${await negotiated(clients, p)}`);
  console.log(`  ${'gateway → device (ssh2)'.padEnd(38)} ${gatewayLeg}`);
  return clients;
}

/** Step 1: `ssh <path> true`, SETUP_RUNS times each, interleaved; ms per run. */
async function measureSetup(clients: Clients): Promise<Record<PathName, number[]>> {
  console.log(`\n1. Connection setup: \`ssh <path> true\`, ${SETUP_RUNS} runs each, interleaved`);
  const setup = perPath();
  for (let i = 0; i < SETUP_RUNS; i++) {
    for (const p of PATHS) setup[p].push(check(await runSsh(clients, p, 'true'), `setup ${p}`).ms);
  }
  return setup;
}

interface Throughput {
  mibs: Record<'up' | 'down', Record<PathName, number[]>>;
  /** CPU cores the server (and for the segment path the remote gateway) used during each Gatehouse transfer. */
  cpu: Record<'up' | 'down', Record<PathName, number[]>>;
  remoteCpu: Record<'up' | 'down', number[]>;
  /** The whole machine's CPU per MiB moved (ms), every path: what a path costs, whatever the VM's speed. */
  machineMsPerMiB: Record<'up' | 'down', Record<PathName, number[]>>;
  stealSeconds: number;
  /** The server's "relay stats" of each Gatehouse transfer, the transfer's direction. */
  relay: Record<'up' | 'down', Record<PathName, RelayDirectionStats[]>>;
}

/** "relay stats" lines of the server's output not yet matched with a transfer. */
const relayStatsQueue: RelayStatsSummary[] = [];

/** Reads the server's output for "relay stats" lines (GATEHOUSE_RELAY_STATS=1), JSON or text log format. */
function readRelayStats(): (text: string) => void {
  let partial = '';
  return (text) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes('relay stats')) continue;
      try {
        const json = line.startsWith('{') ? line : / relay=(\{.*\})\s*$/.exec(line)?.[1];
        if (!json) continue;
        const parsed = JSON.parse(json) as { relay?: RelayStatsSummary } & Partial<RelayStatsSummary>;
        const summary = parsed.relay ?? (parsed as RelayStatsSummary);
        if (summary.up && summary.down) relayStatsQueue.push(summary);
      } catch {
        // Not a line of ours: the transfer then says it had none.
      }
    }
  };
}

/**
 * The transfer's relay stats: its channel's, logged once its session ended, shortly after
 * ssh exited (the queue was emptied as it started: a channel of an earlier step may end late).
 */
async function nextRelayStats(direction: 'up' | 'down'): Promise<RelayStatsSummary | undefined> {
  const transfer = () => relayStatsQueue.find((s) => s[direction].bytes >= SIZE);
  for (let waited = 0; waited < 5000 && !transfer(); waited += 50) await sleep(50);
  const found = transfer();
  relayStatsQueue.length = 0;
  return found;
}

const s2 = (ms: number) => `${f2(ms / 1000)} s`;

/** One direction's relay figures on one line: where the relay waited during `durationMs`. */
function describeRelay(d: RelayDirectionStats, durationMs: number): string {
  const kib = (n: number) => `${Math.round(n / 1024)} KiB`;
  return (
    `${f1(d.bytes / MiB)} MiB in ${s2(durationMs)}; destination window 0 ${s2(d.windowZeroMs)} (${d.windowZeroCount}×), ` +
    `destination stream full ${s2(d.destinationFullMs)} (${d.destinationFullCount}×), recorder ${s2(d.recorderMs)} (${d.recorderCount}×); ` +
    `adjusts received ${d.adjustsReceived} at ${kib(d.windowLeftAtAdjustMean)} left (min ${kib(d.windowLeftAtAdjustMin)}), ` +
    `sent ${d.adjustsSent} at ${kib(d.windowUsedAtAdjustMean)} used; source peer's window min ${kib(d.sourceWindowMin)}`
  );
}

/** Step 2: RUNS uploads and downloads of SIZE on every path, interleaved. */
async function measureThroughput(b: Bench): Promise<Throughput> {
  const { clients, dir, dataFile, gatehouse, remote, recordingsDir } = b;

  const throughput: Record<'up' | 'down', Record<PathName, number[]>> = { up: perPath(), down: perPath() };
  const cpu: Record<'up' | 'down', Record<PathName, number[]>> = { up: perPath(), down: perPath() };
  const remoteCpu: Record<'up' | 'down', number[]> = { up: [], down: [] };
  const machineMsPerMiB: Record<'up' | 'down', Record<PathName, number[]>> = { up: perPath(), down: perPath() };
  let stealSeconds = 0;
  const relay: Throughput['relay'] = { up: perPath<RelayDirectionStats>(), down: perPath<RelayDirectionStats>() };
  console.log(`\n2. Throughput, ${SIZE / MiB} MiB (MiB/s, from the session start to ssh's exit)`);
  for (let r = 0; r < RUNS; r++) {
    for (const direction of ['up', 'down'] as const) {
      // Interleaved, so a burst of load elsewhere on the machine hits every path alike.
      for (const p of PATHS) {
        if (opts['warm-page-cache'] && direction === 'down' && GATEHOUSE_PATHS.includes(p)) warmPageCache(dir, SIZE + 64 * MiB);
        const via = GATEHOUSE_PATHS.includes(p);
        const server0 = processStat(gatehouse.pid);
        const threads0 = opts.threads && via ? threadSeconds(gatehouse.pid) : undefined;
        const remote0 = remote ? cpuSeconds(remote.pid) : 0;
        const machine0 = machineCpuSeconds();
        const what = `run ${r + 1} ${direction === 'up' ? 'upload  ' : 'download'} ${LABEL[p].padEnd(24)}`;
        serverLogMarks?.write(`--- bench: ${what} starts\n`);
        relayStatsQueue.length = 0;
        const t0 = performance.now();
        const mibs = await transfer(clients, p, direction, dataFile);
        const seconds = (performance.now() - t0) / 1000;
        const machine1 = machineCpuSeconds();
        const server1 = processStat(gatehouse.pid);
        const mib = SIZE / MiB;
        const machineBusy = machine1.busy - machine0.busy;
        machineMsPerMiB[direction][p].push((machineBusy * 1000) / mib);
        stealSeconds += machine1.steal - machine0.steal;
        const serverSeconds = server1.user + server1.system - (server0.user + server0.system);
        if (via) cpu[direction][p].push(serverSeconds / seconds);
        if (p === 'segment' && remote) remoteCpu[direction].push((cpuSeconds(remote.pid) - remote0) / seconds);
        throughput[direction][p].push(mibs);
        serverLogMarks?.write(`--- bench: ${what} ends, ${f1(mibs)} MiB/s\n`);
        console.log(
          `  ${what} ${f1(mibs).padStart(6)}` +
            `   machine ${f2(machineBusy / seconds)} cores (${machine1.perCpu.map((b, i) => `CPU ${i} ${f2((b - (machine0.perCpu[i] ?? 0)) / seconds)}`).join(', ')}), ` +
            `${f2((machineBusy * 1000) / mib)} ms CPU/MiB` +
            (via
              ? `; server ${f2((serverSeconds * 1000) / mib)} ms CPU/MiB (system ${f2(((server1.system - server0.system) * 1000) / mib)}), ` +
                `${f1((server1.minorFaults - server0.minorFaults) / mib)} page faults/MiB`
              : ''),
        );
        if (via) {
          const stats = await nextRelayStats(direction);
          const d = stats?.[direction];
          if (stats && d) {
            relay[direction][p].push(d);
            console.log(`    relay ${direction === 'up' ? 'user → device' : 'device → user'}: ${describeRelay(d, stats.durationMs)}`);
          } else console.log('    relay: no "relay stats" line from the server within 5 s');
        }
        if (threads0) {
          const busy = [...threadSeconds(gatehouse.pid)]
            .map(([t, sec]) => [t, ((sec - (threads0.get(t) ?? 0)) * 1000) / mib] as const)
            .filter(([, ms]) => ms >= 0.05)
            .sort((a, b) => b[1] - a[1]);
          console.log(`    server threads, ms CPU/MiB: ${busy.map(([t, ms]) => `${t} ${f2(ms)}`).join(', ')}`);
        }
        if (GATEHOUSE_PATHS.includes(p) && !opts['keep-recordings']) await checkAndRemoveRecordings(recordingsDir, direction);
      }
    }
  }

  return { mibs: throughput, cpu, remoteCpu, machineMsPerMiB, stealSeconds, relay };
}

interface IdleFigures {
  before: number;
  after: number;
  released: number;
  ms: number;
}

/** Step 3a: IDLE idle sessions through the gateway: the server's RSS before, with them, and after. */
async function measureIdle(clients: Clients, serverPid: number): Promise<IdleFigures | undefined> {
  let idle: IdleFigures | undefined;
  if (IDLE > 0) {
    console.log(`\n3a. ${IDLE} idle exec sessions through the gateway, ${CONCURRENCY} opened at a time`);
    await new Promise((r) => setTimeout(r, 2000));
    const before = rssKiB(serverPid);
    const sessions: ChildProcess[] = [];
    try {
      const ms = await pool(IDLE, CONCURRENCY, async () => sessions.push(await idleSession(clients, 'gateway')));
      await new Promise((r) => setTimeout(r, 3000));
      const after = rssKiB(serverPid);
      idle = { before, after, released: 0, ms };
    } finally {
      await stopAll(sessions);
    }
    await new Promise((r) => setTimeout(r, 5000));
    idle.released = rssKiB(serverPid);
  }
  return idle;
}

/** Step 3b: new sessions per second, `ssh <path> true` processes. */
async function measureRate(clients: Clients): Promise<Partial<Record<PathName, number>>> {
  const rate: Partial<Record<PathName, number>> = {};
  if (RATE_SESSIONS > 0) {
    console.log(`\n3b. New sessions per second: ${RATE_SESSIONS} \`ssh <path> true\`, ${CONCURRENCY} at a time`);
    for (const p of PATHS) {
      const ms = await pool(RATE_SESSIONS, CONCURRENCY, async () => check(await runSsh(clients, p, 'true'), `rate ${p}`));
      rate[p] = RATE_SESSIONS / (ms / 1000);
    }
  }
  return rate;
}

interface LoadFigures {
  direct?: SessionRate;
  password?: SessionRate;
  gateway?: SessionRate;
}

/** Step 3c: new sessions per second from ssh2 clients in this process: sshd direct, the gateway by password and by key. */
async function measureLoad(b: Bench): Promise<LoadFigures> {
  const { device, clientKey, gatehouse, adminPassword, token, publicKey } = b;

  const load: LoadFigures = {};
  if (LOAD_SESSIONS > 0) {
    console.log(
      `\n3c. New sessions per second from an in-process load generator: ${LOAD_SESSIONS} ssh2 clients ` +
        `(${KEX}, ${CIPHER}; sign in, exec \`true\`, wait for its exit), ${LOAD_CONCURRENCY} at a time`,
    );
    load.direct = await sessionRate(() => ssh2Session({ port: device.port, username: 'gh-bench', privateKey: clientKey }));
    console.log(`  OpenSSH sshd direct                      ${f1(load.direct.perSecond)} sessions/s`);
    load.password = await sessionRate(
      () => ssh2Session({ port: gatehouse.gatewayPort, username: `admin:${DEVICE}`, password: adminPassword }),
      gatehouse.pid,
    );
    console.log(
      `  Gatehouse gateway, password (argon2id)   ${f1(load.password.perSecond)} sessions/s, server ${f2(load.password.serverCores)} cores, ` +
        `${f1(load.password.serverMsPerSession)} ms server CPU per session`,
    );
    // The admin's SSH key, for this step only: the OpenSSH paths' figures stay password sign-ins.
    const key = await api<{ id: string }>(gatehouse, token, 'POST', '/ssh-keys', { publicKey, name: 'bench load generator' });
    try {
      load.gateway = await sessionRate(
        () => ssh2Session({ port: gatehouse.gatewayPort, username: `admin:${DEVICE}`, privateKey: clientKey }),
        gatehouse.pid,
      );
    } finally {
      await api(gatehouse, token, 'DELETE', `/ssh-keys/${key.id}`);
    }
    console.log(
      `  Gatehouse gateway, SSH key               ${f1(load.gateway.perSecond)} sessions/s, server ${f2(load.gateway.serverCores)} cores, ` +
        `${f1(load.gateway.serverMsPerSession)} ms server CPU per session (each also opens the gateway's own connection to the device)`,
    );
  }

  return load;
}

/** Step 4: echo latency with ACTIVE sessions at once, one path after the other. */
async function measureEcho(
  clients: Clients,
  serverPid: number,
  remote: RemoteGateway | undefined,
): Promise<Partial<Record<PathName, EchoResult>>> {
  const echo: Partial<Record<PathName, EchoResult>> = {};
  if (ACTIVE > 0) {
    console.log(
      `\n4. Echo latency: ${ACTIVE} interactive sessions (pty, \`cat\`) per path, one line each every ${ACTIVE_INTERVAL_MS} ms ` +
        `for ${ACTIVE_SECONDS} s`,
    );
    for (const p of PATHS) {
      const r = await echoLatency(clients, p, serverPid, p === 'segment' ? remote?.pid : undefined);
      echo[p] = r;
      console.log(
        `  ${LABEL[p].padEnd(24)} p50 ${f1(percentile(r.rtts, 50))} ms, p99 ${f1(percentile(r.rtts, 99))} ms ` +
          `(${r.rtts.length} echoes of ${r.sent}, ${r.missing} missing; opened in ${f1(r.opened / 1000)} s)`,
      );
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }

  return echo;
}

/** Everything measured, for the report. */
interface Results {
  throughput: Throughput;
  setup: Record<PathName, number[]>;
  idle: IdleFigures | undefined;
  rate: Partial<Record<PathName, number>>;
  load: LoadFigures;
  echo: Partial<Record<PathName, EchoResult>>;
  peakRss: number;
}

const best = (xs: number[]) => Math.max(...xs);
const ratio = (x: number, base: number) => `**${f2(x / base)}×**`;

/** The throughput table: MiB/s, ratios, CPU per path. */
function printThroughput({ mibs, cpu, remoteCpu, machineMsPerMiB, stealSeconds, relay }: Throughput): void {
  const spread = (xs: number[]) => `${f1(Math.min(...xs))}–${f1(Math.max(...xs))}`;
  console.log(
    `\n## Results (${SIZE / MiB} MiB, ${RUNS} runs; best and spread; ` +
      `${PIN ? `pinned: server on CPU ${SERVER_CPU}, the rest on CPU ${OTHERS_CPU}` : 'not pinned'}; load ${os.loadavg().map(f2).join(' ')})\n`,
  );
  console.log(
    '| direction | path | MiB/s | ÷ direct | ÷ ProxyJump | CPU (cores) | machine ms CPU/MiB (median) | ÷ ProxyJump | ' +
      'relay waited (median s): destination window 0 / stream full / recorder |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const direction of ['up', 'down'] as const) {
    const t = mibs[direction];
    const name = direction === 'up' ? 'upload (stdin → `cat > /dev/null`)' : 'download (`cat` text → stdout, recorded)';
    for (const p of PATHS) {
      const via = GATEHOUSE_PATHS.includes(p);
      const cores = !via
        ? ''
        : p === 'segment'
          ? `server ${f2(median(cpu[direction][p]))} + remote gw ${f2(median(remoteCpu[direction]))}`
          : `server ${f2(median(cpu[direction][p]))}`;
      const perMiB = median(machineMsPerMiB[direction][p]);
      console.log(
        `| ${name} | ${LABEL[p]} | ${f1(best(t[p]))} (${spread(t[p])}) | ${via ? ratio(best(t[p]), best(t.direct)) : ''} | ` +
          `${via ? ratio(best(t[p]), best(t.jump)) : ''} | ${cores} | ${f2(perMiB)} | ` +
          `${via ? `${f2(perMiB / median(machineMsPerMiB[direction].jump))}×` : ''} | ${via ? relayWaits(relay[direction][p]) : ''} |`,
      );
    }
  }
  console.log(
    `\nMachine CPU per MiB counts every process (ssh, sshd, cat, Gatehouse, this benchmark reading ssh's output); ` +
      `lower is cheaper. The hypervisor took ${f1(stealSeconds)} s of CPU (steal) during the transfers.`,
  );
}

/** The median seconds a relay direction waited on each thing, over a path's transfers. */
function relayWaits(stats: RelayDirectionStats[]): string {
  if (stats.length === 0) return 'n/a';
  const m = (key: 'windowZeroMs' | 'destinationFullMs' | 'recorderMs') => f2(median(stats.map((d) => d[key])) / 1000);
  return `${m('windowZeroMs')} / ${m('destinationFullMs')} / ${m('recorderMs')}`;
}

/** The setup and echo latency tables. */
function printLatencies(setup: Record<PathName, number[]>, echo: Partial<Record<PathName, EchoResult>>): void {
  console.log('\n| setup `ssh … true` | median ms | p10–p90 ms | ÷ direct | ÷ ProxyJump |');
  console.log('|---|---|---|---|---|');
  for (const p of PATHS) {
    const m = median(setup[p]);
    const via = GATEHOUSE_PATHS.includes(p);
    console.log(
      `| ${LABEL[p]} | ${m.toFixed(0)} | ${percentile(setup[p], 10).toFixed(0)}–${percentile(setup[p], 90).toFixed(0)} | ` +
        `${via ? ratio(m, median(setup.direct)) : ''} | ${via ? ratio(m, median(setup.jump)) : ''} |`,
    );
  }
  if (ACTIVE <= 0) return;
  console.log(
    `\n| echo latency, ${ACTIVE} active sessions | p50 ms | p99 ms | max ms | echoes (missing) | p50, p99 ÷ direct | p50, p99 ÷ ProxyJump | CPU (cores) |`,
  );
  console.log('|---|---|---|---|---|---|---|---|');
  const at = (p: PathName, q: number) => percentile(echo[p]?.rtts ?? [], q);
  for (const p of PATHS) {
    const r = echo[p] as EchoResult;
    const via = GATEHOUSE_PATHS.includes(p);
    const against = (base: PathName) => (via ? `${ratio(at(p, 50), at(base, 50))}, ${ratio(at(p, 99), at(base, 99))}` : '');
    const cores = !via
      ? ''
      : p === 'segment'
        ? `server ${f2(r.serverCores)} + remote gw ${f2(r.remoteCores)}`
        : `server ${f2(r.serverCores)}`;
    console.log(
      `| ${LABEL[p]} | ${f1(at(p, 50))} | ${f1(at(p, 99))} | ${f1(Math.max(...r.rtts))} | ${r.rtts.length} (${r.missing}) | ` +
        `${against('direct')} | ${against('jump')} | ${cores} |`,
    );
  }
}

/** Idle sessions' memory, the server's peak RSS, and new sessions per second. */
function printSessions({ idle, peakRss, rate, load }: Results, b: Bench): void {
  if (idle) {
    const perSession = (idle.after - idle.before) / IDLE;
    console.log(
      `\nidle sessions: server RSS ${(idle.before / 1024).toFixed(0)} MiB → ${(idle.after / 1024).toFixed(0)} MiB with ${IDLE} idle ` +
        `(**${(perSession / 1024).toFixed(2)} MiB per session**), ${(idle.released / 1024).toFixed(0)} MiB 5 s after they closed; ` +
        `opened in ${(idle.ms / 1000).toFixed(1)} s`,
    );
  }
  console.log(
    `server peak RSS (VmHWM) over the whole run: ${(peakRss / 1024).toFixed(0)} MiB, ${(rssKiB(b.gatehouse.pid) / 1024).toFixed(0)} MiB now` +
      (b.remote ? `; remote gateway peak ${(peakRssKiB(b.remote.pid) / 1024).toFixed(0)} MiB` : ''),
  );
  if (RATE_SESSIONS > 0) {
    console.log(
      `new sessions per second (${CONCURRENCY} concurrent): ` +
        PATHS.map((p) => `${LABEL[p]} ${f1(rate[p] ?? 0)}`).join(', ') +
        '; ' +
        GATEHOUSE_PATHS.map((p) => `${p}/ProxyJump ${f2((rate[p] ?? 0) / (rate.jump ?? 1))}×`).join(', '),
    );
  }
  if (load.gateway && load.direct) {
    const capacity = 1000 / load.gateway.serverMsPerSession;
    console.log(
      `new sessions per second, in-process ssh2 load generator (${LOAD_CONCURRENCY} concurrent, ${KEX}): ` +
        `OpenSSH sshd direct ${f1(load.direct.perSecond)}, Gatehouse gateway ${f1(load.gateway.perSecond)} by key ` +
        `(${f1(load.password?.perSecond ?? 0)} by password) ` +
        `(server ${f2(load.gateway.serverCores)} cores; **${f1(capacity)} sessions/s per core of server CPU**)`,
    );
  }
}

/** Each target of the issues, met or not. */
function printTargets({ throughput, setup, echo, load, idle }: Results): void {
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  console.log('\nTargets (issue 4), on the best runs:');
  for (const p of GATEHOUSE_PATHS) {
    for (const [name, t] of [
      ['upload', throughput.mibs.up],
      ['download (recorded)', throughput.mibs.down],
    ] as const) {
      console.log(
        `  ${p}: throughput ${name}: ≥ 1.0× ProxyJump ${verdict(best(t[p]) >= best(t.jump))} (${f2(best(t[p]) / best(t.jump))}×), ` +
          `≥ 0.9× direct ${verdict(best(t[p]) >= 0.9 * best(t.direct))} (${f2(best(t[p]) / best(t.direct))}×)`,
      );
    }
    const setupRatio = median(setup[p]) / median(setup.jump);
    console.log(`  ${p}: setup ≤ 1.0× ProxyJump: ${verdict(setupRatio <= 1)} (${f2(setupRatio)}×)`);
    if (ACTIVE > 0) {
      const p99 = percentile(echo[p]?.rtts ?? [], 99);
      const jump99 = percentile(echo.jump?.rtts ?? [], 99);
      console.log(
        `  ${p}: p99 echo latency with ${ACTIVE} active: ${f1(p99)} ms, ${f2(p99 / jump99)}× ProxyJump (the issue sets no figure)`,
      );
    }
  }
  if (load.gateway) {
    const capacity = 1000 / load.gateway.serverMsPerSession;
    console.log(
      `  gateway: ≥ 200 new sessions/s (${KEX}) on its core: ${verdict(load.gateway.perSecond >= 200)} ` +
        `(${f1(load.gateway.perSecond)} measured; ${f1(capacity)} per core of server CPU)`,
    );
  }
  if (idle) {
    const perSession = (idle.after - idle.before) / IDLE / 1024;
    console.log(`  gateway: ≤ 1 MiB RSS per idle session (${IDLE}): ${verdict(perSession <= 1)} (${perSession.toFixed(2)} MiB)`);
  }
}

async function main(): Promise<void> {
  const started = await setUp();
  const remote = WITH_SEGMENT ? await addRemoteGateway(started.dir, started.gatehouse, started.token, started.addDevice) : undefined;
  const b: Bench = { ...started, remote, clients: await connectClients(started, remote) };
  const serverPid = b.gatehouse.pid;
  const setup = await measureSetup(b.clients);
  // Throughput before the idle sessions: after thousands of processes came and went, this
  // VM's throughput was lower on every path (OpenSSH direct 190–420 MiB/s instead of 450–800).
  const throughput = await measureThroughput(b);
  const idle = await measureIdle(b.clients, serverPid);
  const rate = await measureRate(b.clients);
  const load = await measureLoad(b);
  const echo = await measureEcho(b.clients, serverPid, remote);
  const results: Results = { throughput, setup, idle, rate, load, echo, peakRss: peakRssKiB(serverPid) };
  printThroughput(throughput);
  printLatencies(setup, echo);
  printSessions(results, b);
  printTargets(results);
}

runMain(main);
