import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { DialectName } from '@gatehouse/db';
import { onTestFailed } from 'vitest';
import { createEmptyPostgresDatabase } from './db.js';

/** The built executable the e2e tests run (`npx tsc -b` builds it). */
export const gatehouseBin = fileURLToPath(new URL('../../packages/cli/bin/gatehouse.js', import.meta.url));

export type Env = Record<string, string | undefined>;

/**
 * The environment children start from: this process's, without any Gatehouse setting or
 * DATABASE_URL that would make a test depend on the machine it runs on.
 */
export function baseEnv(extra: Env = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GATEHOUSE_') && k !== 'DATABASE_URL') env[k] = v;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

const tempDirs: string[] = [];
/** The CLI's working directory and credentials file, made on first use. */
let scratch: string | undefined;

/** A fresh temporary directory, removed by `removeTempDirs`. */
export function tempDir(prefix = 'gatehouse-e2e-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  scratch = undefined;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Collects a child's output and its exit. */
class Watched {
  readonly out: string[] = [];
  readonly err: string[] = [];
  readonly exited: Promise<ExitStatus>;
  status: ExitStatus | undefined;

  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (s: string) => this.out.push(s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => this.err.push(s));
    this.exited = new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => {
        this.status = { code, signal };
        resolve(this.status);
      });
    });
  }

  get stdout(): string {
    return this.out.join('');
  }

  get stderr(): string {
    return this.err.join('');
  }
}

export interface StartOptions {
  dataDir: string;
  /** Added to (or, when undefined, removed from) the child's environment. */
  env?: Env;
  /** Arguments after `server --port 0 --host 127.0.0.1 --data-dir <dataDir>`. */
  args?: string[];
  /** Pass `--port 0 --host 127.0.0.1` (default true); false leaves both to the environment and config file. */
  ephemeralPort?: boolean;
  /** How long to wait for the URL line (default 30 s). */
  timeoutMs?: number;
}

/**
 * The server last started on each data directory. A restart listens on its port again, so it
 * comes back at the same URL, as a real server does, and the CLI profiles saved for that URL
 * still apply (a saved API token goes to no other origin).
 */
const lastStarted = new Map<string, GatehouseServer>();

export interface HttpsResponse {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  /** SHA-256 fingerprint of the certificate the server presented. */
  peerFingerprint: string;
}

const running = new Set<GatehouseServer>();
// Should the test process itself end early, leave no server behind.
process.once('exit', () => killServers());

/** A `gatehouse server` child process that printed its URL. */
export class GatehouseServer {
  readonly certFile: string;

  constructor(
    private readonly watched: Watched,
    readonly dataDir: string,
    readonly url: string,
    /** Milliseconds from spawn to the URL line. */
    readonly startupMs: number,
  ) {
    this.certFile = path.join(dataDir, 'tls', 'server.crt');
  }

  get pid(): number {
    return this.watched.child.pid as number;
  }

  get stdout(): string {
    return this.watched.stdout;
  }

  get stderr(): string {
    return this.watched.stderr;
  }

  get exited(): Promise<ExitStatus> {
    return this.watched.exited;
  }

  /** The pino JSON lines of stdout, parsed. */
  get logs(): Record<string, unknown>[] {
    return this.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** Resident memory of the process, from /proc/<pid>/status, in KiB. */
  rssKiB(): number {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    if (!match?.[1]) throw new Error(`No VmRSS for process ${this.pid}`);
    return Number(match[1]);
  }

  /**
   * Sends SIGTERM and waits for the exit; SIGKILLs and throws when it takes longer than
   * `timeoutMs`. Resolves to the exit code and how long the shutdown took.
   */
  async stop(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const started = performance.now();
    if (this.watched.status === undefined) this.watched.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const result = await Promise.race([this.watched.exited, timeout]);
    clearTimeout(timer);
    running.delete(this);
    if (result === 'timeout') {
      this.kill();
      throw new Error(`gatehouse server (pid ${this.pid}) did not exit within ${timeoutMs} ms of SIGTERM`);
    }
    return { ...result, ms: performance.now() - started };
  }

  /** Its port, once its process has exited (a restart listens there again). */
  async portAfterExit(): Promise<number> {
    await this.exited.catch(() => undefined);
    return Number(new URL(this.url).port);
  }

  /** SIGKILL, for a test that failed with the server still running. */
  kill(): void {
    running.delete(this);
    if (this.watched.status === undefined) this.watched.child.kill('SIGKILL');
  }

  /** An API call (`/api/v1` + route) with a bearer token; throws with the answer unless it succeeded. */
  async api<T>(token: string, method: string, route: string, body?: unknown): Promise<T> {
    const res = await this.request(`/api/v1${route}`, { method, body, headers: { authorization: `Bearer ${token}` } });
    if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${res.body}`);
    return (res.body === '' ? undefined : JSON.parse(res.body)) as T;
  }

  /** An HTTPS request that verifies the server's certificate against `<data-dir>/tls/server.crt`. */
  request(route: string, opts: { method?: string; body?: unknown; headers?: Record<string, string>; ca?: string | null } = {}) {
    const ca = opts.ca === undefined ? readFileSync(this.certFile, 'utf8') : opts.ca;
    return httpsRequest(new URL(route, this.url), {
      method: opts.method ?? 'GET',
      headers: { ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }), ...opts.headers },
      ...(ca === null ? {} : { ca }),
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
  }
}

function httpsRequest(url: URL, opts: RequestOptions & { body?: string | undefined }): Promise<HttpsResponse> {
  return new Promise((resolve, reject) => {
    // No agent: a kept-alive socket would hold the server open during shutdown tests.
    const req = request(url, { ...opts, agent: false, rejectUnauthorized: true }, (res) => {
      const peer = (res.socket as TLSSocket).getPeerCertificate();
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          headers: res.headers,
          peerFingerprint: peer.fingerprint256,
        }),
      );
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

function spawnGatehouse(args: string[], opts: { env?: Env; cwd?: string; stdin?: string }): Watched {
  const child = spawn(process.execPath, [gatehouseBin, ...args], {
    cwd: opts.cwd ?? os.tmpdir(),
    env: baseEnv(opts.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const watched = new Watched(child);
  child.stdin?.end(opts.stdin ?? '');
  return watched;
}

const serverArgs = (o: StartOptions, port = 0) => [
  'server',
  ...(o.ephemeralPort === false ? [] : ['--port', String(port), '--host', '127.0.0.1']),
  '--data-dir',
  o.dataDir,
  ...(o.args ?? []),
];

/**
 * The built-in SSH gateway and the agent listener are off unless a test sets
 * GATEHOUSE_GATEWAY_PORT (GATEHOUSE_AGENT_PORT): their default ports (7993, 7996) are one
 * per machine, and most tests start several servers.
 */
const serverEnv = (o: StartOptions): Env => ({
  GATEHOUSE_GATEWAY_PORT: '0',
  GATEHOUSE_AGENT_PORT: '0',
  GATEHOUSE_VNC_PORT: '0',
  GATEHOUSE_RDP_PORT: '0',
  ...o.env,
});

/**
 * Starts `gatehouse server` and resolves once it printed `Gatehouse https://…`. Rejects,
 * with what it wrote, when it exits first or does not get there in time. A server started
 * inside a test is killed if that test fails; `killServers` kills whatever is left.
 */
export async function startServer(opts: StartOptions): Promise<GatehouseServer> {
  const previous = lastStarted.get(path.resolve(opts.dataDir));
  // Two servers at once on one data directory (a test of that) each take a new port.
  const port = previous === undefined || running.has(previous) ? 0 : await previous.portAfterExit();
  const started = performance.now();
  const watched = spawnGatehouse(serverArgs(opts, port), { env: serverEnv(opts), cwd: path.dirname(opts.dataDir) });
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      watched.child.kill('SIGKILL');
      reject(new Error(`gatehouse server printed no URL within ${timeoutMs} ms.\nstdout:\n${watched.stdout}\nstderr:\n${watched.stderr}`));
    }, timeoutMs);
    const look = () => {
      const match = /^Gatehouse (https:\/\/\S+)$/m.exec(watched.stdout);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    watched.child.stdout?.on('data', look);
    void watched.exited.then(
      (status) => {
        clearTimeout(timer);
        reject(
          new Error(
            `gatehouse server exited (${status.code ?? status.signal}) before listening.\nstdout:\n${watched.stdout}\nstderr:\n${watched.stderr}`,
          ),
        );
      },
      (error: Error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
  const server = new GatehouseServer(watched, opts.dataDir, url, performance.now() - started);
  running.add(server);
  if (opts.ephemeralPort !== false) lastStarted.set(path.resolve(opts.dataDir), server);
  try {
    onTestFailed(() => server.kill());
  } catch {
    // Started outside a test (beforeAll): killServers in afterAll takes care of it.
  }
  return server;
}

/** Runs `gatehouse server` expecting it to refuse to start; resolves to how it exited and what it wrote. */
export async function startServerExpectingFailure(opts: StartOptions): Promise<CliResult> {
  const watched = spawnGatehouse(serverArgs(opts), { env: serverEnv(opts), cwd: path.dirname(opts.dataDir) });
  const timer = setTimeout(() => watched.child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  const status = await watched.exited;
  clearTimeout(timer);
  return { code: status.code, stdout: watched.stdout, stderr: watched.stderr };
}

/** SIGKILLs every server still running (afterAll). */
export function killServers(): void {
  for (const server of [...running]) server.kill();
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  stdin?: string;
  env?: Env;
  cwd?: string;
  timeoutMs?: number;
}

/**
 * Runs the `gatehouse` CLI to completion, in a temporary working directory. Its
 * GATEHOUSE_CREDENTIALS is a temporary file (one per test file, unless `env` names
 * another), so `setup` and `login` never touch the home directory.
 */
export async function cli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  scratch ??= tempDir('gatehouse-cli-');
  const watched = spawnGatehouse(args, {
    env: { GATEHOUSE_CREDENTIALS: path.join(scratch, 'credentials.json'), ...opts.env },
    cwd: opts.cwd ?? scratch,
    stdin: opts.stdin,
  });
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const timer = setTimeout(() => watched.child.kill('SIGKILL'), timeoutMs);
  const status = await watched.exited;
  clearTimeout(timer);
  if (status.signal === 'SIGKILL') throw new Error(`gatehouse ${args.join(' ')} did not finish within ${timeoutMs} ms`);
  return { code: status.code, stdout: watched.stdout, stderr: watched.stderr };
}

/** Runs the CLI with --json and parses its output; throws with its stderr when it fails. */
export async function cliJson<T = Record<string, unknown>>(args: string[], opts: CliOptions = {}): Promise<T> {
  const result = await cli([...args, '--json'], opts);
  if (result.code !== 0) throw new Error(`gatehouse ${args.join(' ')} exited ${result.code}:\n${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** The API token `gatehouse setup` or `login` saved in a credentials file, in `profile`. */
export function savedToken(credentialsFile: string, profile = 'default'): string {
  const saved = JSON.parse(readFileSync(credentialsFile, 'utf8')) as { profiles: Record<string, { token: string }> };
  const token = saved.profiles[profile]?.token;
  if (token === undefined) throw new Error(`${credentialsFile} has no profile ${profile}`);
  return token;
}

/** The SHA-256 fingerprint of a PEM certificate file, as the server prints it. */
export function fingerprintOfFile(file: string): string {
  return new X509Certificate(readFileSync(file)).fingerprint256;
}

export interface E2eDatabase {
  /** What `gatehouse server` needs in its environment to use this database. */
  env: Env;
  /** What offline commands (`audit verify`, `vault rotate-master-key`) need besides --data-dir. */
  offlineArgs: string[];
  drop(): Promise<void>;
}

/** The embedded database (in the data directory), or a new PostgreSQL database passed as DATABASE_URL. */
export async function e2eDatabase(dialect: DialectName): Promise<E2eDatabase> {
  if (dialect === 'sqlite') return { env: {}, offlineArgs: [], drop: async () => undefined };
  const pg = await createEmptyPostgresDatabase();
  return { env: { DATABASE_URL: pg.url }, offlineArgs: ['--database-url', pg.url], drop: () => pg.drop() };
}

/** `gatehouse setup` with a password on standard input; throws with its output when it fails. */
export async function setupAdmin(server: GatehouseServer, password: string, opts: CliOptions = {}): Promise<CliResult> {
  const result = await cli(['setup', '--data-dir', server.dataDir, '--url', server.url, '--password-stdin'], {
    ...opts,
    stdin: `${password}\n`,
  });
  if (result.code !== 0) throw new Error(`gatehouse setup exited ${result.code}:\n${result.stderr}`);
  return result;
}
