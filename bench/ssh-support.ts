/**
 * What the SSH benchmarks share (`ssh-gateway.ts`, `agent.ts`): their children and the
 * clean-up on exit or Ctrl-C, free ports, statistics, `/proc` readings, the private sshd
 * (the device), `gatehouse` processes and the API, and OpenSSH clients with one `-F` config.
 * Importing it installs the exit and signal handlers that stop every tracked child.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, createWriteStream, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSystemUser, waitForPort } from './host.js';
import { S3rver } from './s3rver.js';

export { waitForPort };

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const GATEHOUSE_BIN = path.join(ROOT, 'packages', 'cli', 'bin', 'gatehouse.js');
export const MiB = 1024 * 1024;
export const BENCH_USER = 'gh-bench';
export const CIPHER = 'aes128-gcm@openssh.com';
export const KEX = 'curve25519-sha256';

// ---------------------------------------------------------------------------------------
// Cleanup: every child a benchmark starts is tracked by PID and stopped on exit or Ctrl-C.

const children = new Set<ChildProcess>();
const cleanups: (() => void)[] = [];
let stopping = false;

export function track<T extends ChildProcess>(c: T): T {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

/** Runs `fn` at clean-up (last registered, first run). */
export function onCleanup(fn: () => void): void {
  cleanups.push(fn);
}

/** True once the benchmark is stopping: children exiting then are not reported as exiting early. */
export const isStopping = (): boolean => stopping;

/** Stops every tracked child (SIGTERM) and runs the clean-ups. */
export function cleanup(): void {
  stopping = true;
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  children.clear();
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
}
process.once('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the servers and removing the temporary files`);
    cleanup();
    process.exit(130);
  });
}

/** Runs a benchmark's main: clean-up after it, a failure printed and the exit code 1. */
export function runMain(main: () => Promise<void>): void {
  main()
    .then(cleanup)
    .catch((error: unknown) => {
      stopping = true;
      console.error(error);
      cleanup();
      process.exitCode = 1;
    });
}

// ---------------------------------------------------------------------------------------
// Ports, statistics, /proc

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
export const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
};
export const f1 = (x: number): string => x.toFixed(1);
export const f2 = (x: number): string => x.toFixed(2);

/** Peak resident set (VmHWM) of a process so far, in KiB. */
export function peakRssKiB(pid: number): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0);
}

export function rssKiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match?.[1]) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]);
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const { user, system } = processStat(pid);
  return user + system;
}

/** CPU seconds (user + system) of each thread of a process so far, by thread id and name. */
export function threadSeconds(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const { name, user, system } = procStat(`/proc/${pid}/task/${tid}/stat`);
      out.set(`${tid === String(pid) ? 'main' : name}#${tid}`, user + system);
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** A process's CPU seconds (user, system) and minor page faults so far, from /proc/<pid>/stat. */
export function processStat(pid: number): { user: number; system: number; minorFaults: number } {
  return procStat(`/proc/${pid}/stat`);
}

/** A /proc stat file (a process's or a thread's): its name, CPU seconds and minor faults. */
function procStat(file: string): { name: string; user: number; system: number; minorFaults: number } {
  const stat = readFileSync(file, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime, stime in clock ticks (USER_HZ = 100); minflt
  return {
    name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
    user: Number(fields[11]) / 100,
    system: Number(fields[12]) / 100,
    minorFaults: Number(fields[7]),
  };
}

/**
 * The whole machine's CPU so far, in seconds (USER_HZ ticks / 100) from /proc/stat: busy
 * (everything but idle and iowait, summed over the CPUs) and steal (time the hypervisor gave
 * this VM's CPUs to someone else).
 */
export function machineCpuSeconds(): { busy: number; steal: number; perCpu: number[] } {
  const lines = readFileSync('/proc/stat', 'utf8').split('\n');
  const busy = (line: string) => {
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
    return { busy: (user + nice + system + irq + softirq) / 100, steal: steal / 100 };
  };
  // `cpu0`, `cpu1`…: with --pin, whether the CPU of the peers or the gateway's was the one kept busy.
  const perCpu = lines.filter((l) => /^cpu\d+ /.test(l)).map((l) => busy(l).busy);
  return { ...busy(lines[0] ?? ''), perCpu };
}

// ---------------------------------------------------------------------------------------
// The peers: a private sshd (the device), the Gatehouse server with its gateway.

/** The throwaway system user `gh-bench` (created once, kept), with this password. */
export function ensureUser(password: string): void {
  ensureSystemUser(BENCH_USER, { password });
}

export interface Sshd {
  port: number;
  log: string;
}

/** A private sshd on 127.0.0.1 in `dir/name` that lets `gh-bench` in with `publicKey`. */
export async function startSshd(dir: string, name: string, logLevel: string, publicKey: string): Promise<Sshd> {
  const home = path.join(dir, name);
  mkdirSync(path.join(home, 'authorized_keys'), { recursive: true });
  chmodSync(home, 0o711);
  chmodSync(path.join(home, 'authorized_keys'), 0o755);
  writeFileSync(path.join(home, 'authorized_keys', BENCH_USER), `${publicKey}\n`, { mode: 0o644 });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(home, 'host_key')]);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const port = await freePort();
  const log = path.join(home, 'sshd.log');
  writeFileSync(
    path.join(home, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(home, 'host_key')}`,
      `PidFile ${path.join(home, 'sshd.pid')}`,
      'UsePAM no',
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      `AuthorizedKeysFile ${path.join(home, 'authorized_keys', '%u')}`,
      'StrictModes no',
      'PermitRootLogin no',
      'AllowTcpForwarding yes',
      // The console's file browser (screenshots) and sftp through the gateway need it.
      'Subsystem sftp internal-sftp',
      'UseDNS no',
      'MaxStartups 400',
      'MaxSessions 400',
      `LogLevel ${logLevel}`,
      '',
    ].join('\n'),
  );
  const child = track(spawn('/usr/sbin/sshd', ['-D', '-f', path.join(home, 'sshd_config'), '-E', log], { stdio: 'ignore' }));
  child.once('exit', (code, signal) => {
    if (!stopping) console.error(`sshd (${name}) exited early: ${code ?? signal}\n${readFileSync(log, 'utf8').slice(-2000)}`);
  });
  await waitForPort(port, 15_000);
  return { port, log };
}

/** The benchmark's environment without any GATEHOUSE_* or DATABASE_URL, plus `extra`. */
export function gatehouseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GATEHOUSE_') && k !== 'DATABASE_URL') env[k] = v;
  return { ...env, ...extra };
}

/**
 * The Node flags `gatehouse` itself starts with (its `#!/usr/bin/env -S node …` line), so
 * the processes measured here run as a user's do (`--no-memory-reducer`, see bench/README).
 */
export function launcherFlags(): string[] {
  const shebang = readFileSync(GATEHOUSE_BIN, 'utf8').split('\n', 1)[0] ?? '';
  return /^#!\/usr\/bin\/env -S node(?: (.*))?$/.exec(shebang)?.[1]?.split(' ') ?? [];
}

export interface GatehouseProcessOptions {
  /** Node's flags for the process (default: the launcher's). */
  nodeFlags?: string[];
  /** Appends the process's whole output to this file (readable by its owner only). */
  log?: string;
  /** Runs the process, all its threads, on this CPU only (`taskset -c`; `bench:ssh --pin`). */
  cpu?: number;
  /** Called with each piece of the process's output (stdout and stderr) as it comes. */
  onOutput?: (text: string) => void;
}

/** Pins this process, all its threads, and so every child it starts from now on, to one CPU (`taskset -a -p -c`). */
export function pinSelf(cpu: number): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
}

/** The CPUs a process's threads may run on, as `taskset -p` says it (e.g. `0` or `0,1`), for the output. */
export function cpusOf(pid: number): string {
  const threads = readdirSync(`/proc/${pid}/task`);
  const lists = new Set(
    threads.map((t) => /^Cpus_allowed_list:\s+(\S+)$/m.exec(readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8'))?.[1] ?? '?'),
  );
  return `${[...lists].join(' | ')} (${threads.length} threads)`;
}

/**
 * Starts a long-running `gatehouse <args>` and resolves with the first match of `ready` in
 * its output; an exit before that, or later while the benchmark runs, is reported with it.
 */
export async function startGatehouseProcess(
  args: string[],
  cwd: string,
  env: Record<string, string>,
  ready: RegExp,
  options: GatehouseProcessOptions = {},
): Promise<{ pid: number; match: RegExpExecArray; stop: () => Promise<void> }> {
  const what = `gatehouse ${args[0]}`;
  const flags = options.nodeFlags ?? launcherFlags();
  // taskset execs node, so the PID is node's; threads node starts later inherit the CPU.
  const [file, argv] =
    options.cpu === undefined
      ? [process.execPath, [...flags, GATEHOUSE_BIN, ...args]]
      : ['taskset', ['-c', String(options.cpu), process.execPath, ...flags, GATEHOUSE_BIN, ...args]];
  const child = track(spawn(file, argv, { cwd, env: gatehouseEnv(env), stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-20_000)));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-20_000)));
  if (options.onOutput) {
    child.stdout.on('data', options.onOutput);
    child.stderr.on('data', options.onOutput);
  }
  if (options.log) {
    // The whole output of every gatehouse process (e.g. --trace-gc lines), for reading afterwards;
    // readable by its owner only, as the server's own files are.
    const log = createWriteStream(options.log, { flags: 'a', mode: 0o600 });
    child.stdout.on('data', (s: string) => log.write(s));
    child.stderr.on('data', (s: string) => log.write(s));
    child.once('exit', () => log.end());
  }
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} was not ready within 60 s:\n${out}`)), 60_000);
    const look = () => {
      const found = ready.exec(out);
      if (found) {
        clearTimeout(timer);
        resolve(found);
      }
    };
    child.stdout.on('data', look);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before it was ready:\n${out}`));
    });
  });
  let stopped = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', (code, signal) => {
    if (!stopping && !stopped) console.error(`${what} exited early: ${code ?? signal}\n${out}`);
  });
  /** Stops it (SIGTERM) before the benchmark ends, as expected: resolves once it exited. */
  const stop = () => {
    stopped = true;
    child.kill('SIGTERM');
    return exited;
  };
  return { pid: child.pid as number, match, stop };
}

/** s3rver in `dir/s3` with the bucket `breakglass`, on a free port (answered); stopped at clean-up. */
export async function startS3rver(dir: string): Promise<number> {
  const s3 = await S3rver.start({ dataDir: path.join(dir, 's3'), buckets: ['breakglass'], port: await freePort() });
  onCleanup(() => void s3.stop());
  return s3.port;
}

/** A fresh age identity in `dir/identity.txt`; answers its recipient (age1…). */
export function ageRecipient(dir: string): string {
  execFileSync('age-keygen', ['-o', path.join(dir, 'identity.txt')], { stdio: 'ignore' });
  return execFileSync('age-keygen', ['-y', path.join(dir, 'identity.txt')], { encoding: 'utf8' }).trim();
}

export interface Gatehouse {
  pid: number;
  url: string;
  gatewayPort: number;
  cert: string;
}

/** `gatehouse server` on 127.0.0.1 with its built-in SSH gateway on a free port, and `env` added. */
export async function startGatehouse(
  dataDir: string,
  env: Record<string, string> = {},
  options: GatehouseProcessOptions = {},
): Promise<Gatehouse> {
  const gatewayPort = await freePort();
  const { pid, match } = await startGatehouseProcess(
    ['server', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir],
    path.dirname(dataDir),
    { GATEHOUSE_GATEWAY_PORT: String(gatewayPort), ...env },
    /^Gatehouse (https:\/\/\S+)$/m,
    options,
  );
  await waitForPort(gatewayPort, 15_000);
  return { pid, url: match[1] as string, gatewayPort, cert: readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8') };
}

/** A `gatehouse` command to completion with `stdin`; resolves with its output, rejects on a non-zero exit. */
export function runGatehouseCli(args: string[], env: Record<string, string>, stdin: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = track(spawn(process.execPath, [GATEHOUSE_BIN, ...args], { env: gatehouseEnv(env), stdio: ['pipe', 'pipe', 'pipe'] }));
    let out = '';
    c.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    c.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
    c.stdin.end(stdin);
    c.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`gatehouse ${args[0]} exited ${code}: ${out}`))));
  });
}

/** `gatehouse setup` with this admin password; resolves with the admin's API token. */
export async function setUpGatehouse(g: Gatehouse, dataDir: string, adminPassword: string): Promise<string> {
  const credentials = path.join(path.dirname(dataDir), 'credentials.json');
  await runGatehouseCli(
    ['setup', '--data-dir', dataDir, '--url', g.url, '--password-stdin'],
    { GATEHOUSE_CREDENTIALS: credentials },
    `${adminPassword}\n`,
  );
  return (JSON.parse(readFileSync(credentials, 'utf8')) as { profiles: { default: { token: string } } }).profiles.default.token;
}

/** A device on the private sshd at `port` whose account `gh-bench` has `privateKey` as its vaulted credential. */
export async function addSshDevice(
  g: Gatehouse,
  token: string,
  d: { projectId: string; name: string; port: number; privateKey: string; extra?: Record<string, unknown> },
): Promise<string> {
  const { id } = await api<{ id: string }>(g, token, 'POST', '/devices', {
    projectId: d.projectId,
    name: d.name,
    provider: 'on-prem',
    protocols: ['ssh'],
    privateIp: '127.0.0.1',
    urlPort: String(d.port),
    ...d.extra,
  });
  await api(g, token, 'POST', '/accounts', { deviceId: id, username: BENCH_USER, privateKey: d.privateKey });
  return id;
}

export function api<T>(g: Gatehouse, token: string, method: string, route: string, body?: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(`/api/v1${route}`, g.url),
      {
        method,
        ca: g.cert,
        agent: false,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => (text += s));
        res.on('end', () => {
          if ((res.statusCode ?? 500) >= 300) reject(new Error(`${method} ${route}: ${res.statusCode} ${text}`));
          else resolve((text === '' ? undefined : JSON.parse(text)) as T);
        });
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

// ---------------------------------------------------------------------------------------
// The clients: OpenSSH with one -F config for all paths.

/**
 * The `-F` config: the given `Host` blocks, then for all of them the user `gh-bench` with
 * `clientKey`, one cipher and key exchange, no host key checks, no multiplexing.
 */
export function sshConfig(hosts: string[][], clientKey: string): string {
  return [
    ...hosts.flat(),
    'Host *',
    `  User ${BENCH_USER}`,
    `  IdentityFile ${clientKey}`,
    '  IdentitiesOnly yes',
    '  PreferredAuthentications publickey',
    '  BatchMode yes',
    `  Ciphers ${CIPHER}`,
    `  KexAlgorithms ${KEX}`,
    '  Compression no',
    '  StrictHostKeyChecking no',
    '  UserKnownHostsFile /dev/null',
    '  GlobalKnownHostsFile /dev/null',
    '  ControlMaster no',
    '  ControlPath none',
    '  LogLevel ERROR',
    '',
  ].join('\n');
}

/** A `Host` block reaching `user` (`admin:<device>`) through the built-in gateway, signed in by password. */
export function gatehouseHost(host: string, gatewayPort: number, user: string): string[] {
  return [
    `Host ${host}`,
    '  HostName 127.0.0.1',
    `  Port ${gatewayPort}`,
    `  User ${user}`,
    '  PubkeyAuthentication no',
    '  PreferredAuthentications keyboard-interactive,password',
    '  BatchMode no',
    '  NumberOfPasswordPrompts 1',
  ];
}

export interface SshCommand {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/** `ssh -F config <extra> host remote`; with a password, through `sshpass -e`. */
export function sshCommand(config: string, host: string, remote: string, extra: string[], password?: string): SshCommand {
  const ssh = ['ssh', '-F', config, ...extra, host, remote];
  if (password === undefined) return { file: 'ssh', args: ssh.slice(1), env: process.env };
  return { file: 'sshpass', args: ['-e', ...ssh], env: { ...process.env, SSHPASS: password } };
}

export interface Run {
  code: number | null;
  ms: number;
  stderr: string;
}

/** A command to completion, stdin closed; its wall time from spawn to exit. */
export function runCommand({ file, args, env }: SshCommand): Promise<Run> {
  const started = performance.now();
  const child = track(spawn(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, ms: performance.now() - started, stderr }));
  });
}

export function check(run: Run, what: string): Run {
  if (run.code !== 0) throw new Error(`${what} exited ${run.code}: ${run.stderr.slice(-2000)}`);
  return run;
}

/** The key exchange and ciphers a connection negotiated, from the stderr of `ssh -v`. */
export function negotiatedOf(run: Run): string {
  const kex = /kex: algorithm: (\S+)/.exec(run.stderr)?.[1];
  const cipher = /kex: client->server cipher: (\S+)/.exec(run.stderr)?.[1];
  return `${kex} / ${cipher}`;
}

/**
 * One transfer of `size` bytes, in MiB/s. Upload: `echo go; exec cat > /dev/null` on the
 * device; the clock starts when `go` arrives (the session is up) and stops when ssh exits
 * after stdin's EOF, so connection setup is not in the figure. Download: `cat <dataFile>`;
 * from the first byte to the exit, the byte count checked. `ssh` gives the command line
 * for a remote command.
 */
export async function transfer(
  ssh: (remote: string) => SshCommand,
  what: string,
  direction: 'up' | 'down',
  dataFile: string,
  size: number,
): Promise<number> {
  const remote = direction === 'up' ? 'echo go; exec cat > /dev/null' : `exec cat ${dataFile}`;
  const { file, args, env } = ssh(remote);
  const child = track(spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] }));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  let t0 = 0;
  let received = 0;
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (direction === 'up') {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      void exited.then((code) => reject(new Error(`ssh ${what} exited ${code} before the session started: ${stderr}`)));
    });
    child.stdout.resume();
    t0 = performance.now();
    const chunk = Buffer.alloc(MiB, 0x61);
    for (let sent = 0; sent < size; sent += chunk.length) {
      if (!child.stdin.write(chunk)) await new Promise((r) => child.stdin.once('drain', r));
    }
    child.stdin.end();
  } else {
    child.stdin.end();
    child.stdout.on('data', (d: Buffer) => {
      if (received === 0) t0 = performance.now();
      received += d.length;
    });
  }
  const code = await exited;
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`ssh ${what} (${direction}) exited ${code}: ${stderr.slice(-2000)}`);
  if (direction === 'down' && received !== size) throw new Error(`ssh ${what} (down) delivered ${received} of ${size} bytes`);
  return size / MiB / seconds;
}

/**
 * Writes `size` bytes of terminal-like text (base64 lines) for the download, so the
 * recording stores it as plain JSON strings rather than \u escapes.
 */
export function writeTextFile(file: string, size: number): void {
  const line = (n: number) => `${randomBytes(n).toString('base64').slice(0, 79)}\n`;
  let block = '';
  while (block.length < MiB) block += line(60);
  const chunk = Buffer.from(block.slice(0, MiB));
  const fd = openSync(file, 'w', 0o644);
  try {
    for (let i = 0; i < size / MiB; i++) writeSync(fd, chunk);
  } finally {
    closeSync(fd);
  }
}
