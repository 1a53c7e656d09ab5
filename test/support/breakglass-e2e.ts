import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import path from 'node:path';
import { S3rver } from '../../bench/s3rver.js';
import { gatehouseBin } from './server.js';
import { freePort } from './storage.js';

export { s3rverBreakGlassSettings } from '../../bench/s3rver-settings.js';

/**
 * Helpers for the break-glass e2e tests: the Debian aws CLI, a restartable s3rver, an
 * alert webhook receiver, and stand-ins for storage that refuses or never answers.
 */

/** The Debian package's aws CLI: what a break-glass holder has on the day, not the SDK the server uses. */
export const AWS_CLI = '/usr/bin/aws';

/** s3rver accepts any signature made with the key pair S3RVER / S3RVER. */
const awsEnv = (): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_DEFAULT_REGION: 'us-east-1',
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  AWS_PAGER: '',
});

/** `aws s3 cp s3://bucket/key dest` against an S3-compatible endpoint (http://host:port). */
export function awsDownload(endpointUrl: string, bucket: string, key: string, dest: string): Buffer {
  execFileSync(AWS_CLI, ['--endpoint-url', endpointUrl, 's3', 'cp', '--only-show-errors', `s3://${bucket}/${key}`, dest], {
    env: awsEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  });
  return readFileSync(dest);
}

/** An s3rver in `dir/data` that a test stops and starts again on the same port and objects. */
export class RestartableS3rver {
  private constructor(
    readonly dir: string,
    private readonly s3: S3rver,
    private readonly buckets: string[],
  ) {}

  static async start(dir: string, buckets: string[]): Promise<RestartableS3rver> {
    mkdirSync(dir, { recursive: true });
    const s3 = await S3rver.start({ dataDir: path.join(dir, 'data'), buckets, port: await freePort() });
    return new RestartableS3rver(dir, s3, buckets);
  }

  get port(): number {
    return this.s3.port;
  }

  /** host:port, as the `url` setting takes it. */
  get endpoint(): string {
    return this.s3.endpoint;
  }

  get endpointUrl(): string {
    return `http://${this.endpoint}`;
  }

  get running(): boolean {
    return this.s3.running;
  }

  /** The multipart uploads s3rver holds unfinished, in every bucket (s3rver keeps each in `<bucket>/._S3rver_uploads/<id>`). */
  multipartUploads(): string[] {
    const root = path.join(this.dir, 'data');
    return this.buckets.flatMap((bucket) => {
      const uploads = path.join(root, bucket, '._S3rver_uploads');
      return existsSync(uploads) ? readdirSync(uploads).map((id) => `${bucket}/${id}`) : [];
    });
  }

  restart(): Promise<void> {
    return this.s3.restart();
  }

  stop(): Promise<void> {
    return this.s3.stop();
  }
}

export interface Alert {
  event: string;
  message: string;
  at: string;
  run: { id: string; error: string | null; stage: string | null } | null;
}

/** A webhook receiver standing in for the on-call system: keeps every JSON POST it gets. */
export class AlertHook {
  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly received: Alert[],
  ) {}

  static async start(): Promise<AlertHook> {
    const received: Alert[] = [];
    const server = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        try {
          received.push(JSON.parse(body) as Alert);
          res.end('ok');
        } catch {
          res.statusCode = 400;
          res.end();
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new AlertHook(server, `http://127.0.0.1:${(server.address() as { port: number }).port}/alerts`, received);
  }

  /** The alerts about one run. */
  forRun(id: string): Alert[] {
    return this.received.filter((a) => a.run?.id === id);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** A local listener that is closed with `close()`, and whatever it was asked. */
export interface StandIn {
  endpoint: string;
  requests: string[];
  close(): Promise<void>;
}

/** Answers as S3 does to a request its bucket policy denies: 403 with an AccessDenied XML error body. */
function denyAccess(req: IncomingMessage, res: ServerResponse): void {
  const body =
    req.method === 'HEAD'
      ? ''
      : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>${randomBytes(8).toString('hex')}</RequestId></Error>`;
  res.writeHead(403, { 'content-type': 'application/xml', 'x-amz-request-id': 'standin' });
  res.end(body);
}

/**
 * Stand-in for an S3 endpoint whose bucket policy denies the key: s3rver cannot refuse a
 * request (it accepts every signature and has no policies), so this answers every request
 * the way S3 does then, 403 with an AccessDenied XML error body.
 */
export async function startAccessDeniedS3(): Promise<StandIn> {
  const requests: string[] = [];
  const server = createHttpServer((req: IncomingMessage, res) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => denyAccess(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `127.0.0.1:${(server.address() as { port: number }).port}`,
    requests,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A TCP listener that accepts connections and never says a word: a storage endpoint that hangs. */
export async function startSilentTcp(): Promise<StandIn> {
  const sockets = new Set<Socket>();
  const requests: string[] = [];
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    requests.push('connection');
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `127.0.0.1:${(server.address() as { port: number }).port}`,
    requests,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Sends a request on to the storage server (its body as it streams in, or whole) and its answer back. */
function passOn(upstream: { host: string; port: number }, req: IncomingMessage, res: ServerResponse, body?: Buffer, onAnswer?: () => void) {
  const headers = { ...req.headers };
  if (body) delete headers.expect;
  const out = httpRequest({ host: upstream.host, port: upstream.port, method: req.method, path: req.url, headers }, (answer) => {
    onAnswer?.();
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  out.on('error', () => res.destroy());
  if (body) out.end(body);
  else req.pipe(out);
}

/**
 * An HTTP proxy in front of a storage server that holds back the requests `hold` picks
 * until `release()`: a run that reaches its upload then stays in progress for as long
 * as a test needs, whatever the speed of the machine. Headers go through untouched, so
 * request signatures still verify. The requests `deny` picks are answered as a bucket
 * policy that denies them (403 AccessDenied), as S3 would.
 */
export async function startHoldingProxy(
  upstream: { host: string; port: number },
  hold: (method: string, url: string) => boolean,
  deny: (method: string, url: string) => boolean = () => false,
): Promise<StandIn & { held: () => number; release(): void }> {
  const requests: string[] = [];
  let open: (() => void) | undefined;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let held = 0;
  const server = createHttpServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const forward = () => passOn(upstream, req, res);
    if (deny(req.method ?? '', req.url ?? '')) {
      req.resume();
      req.on('end', () => denyAccess(req, res));
    } else if (hold(req.method ?? '', req.url ?? '')) {
      held += 1;
      req.pause();
      void gate.then(forward);
    } else forward();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `127.0.0.1:${(server.address() as { port: number }).port}`,
    requests,
    held: () => held,
    release: () => open?.(),
    close: () => {
      open?.();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * An s3rver in `dir/s3rver` with the bucket `breakglass`, behind a proxy that holds the
 * workbook's upload until `proxy.release()`: a run against `proxy.endpoint` is surely still
 * going on while the test does something else. `close()` stops both.
 */
export async function startHeldWorkbookUpload(dir: string): Promise<{
  s3: RestartableS3rver;
  proxy: Awaited<ReturnType<typeof startHoldingProxy>>;
  close(): Promise<void>;
}> {
  const s3 = await RestartableS3rver.start(path.join(dir, 's3rver'), ['breakglass']);
  const proxy = await startHoldingProxy(
    { host: '127.0.0.1', port: s3.port },
    (method, url) => method === 'PUT' && url.includes('breakglass.xlsx.age'),
  );
  return {
    s3,
    proxy,
    async close() {
      await proxy.close();
      await s3.stop();
    },
  };
}

/** One request body the throttling proxy is taking in slowly. */
export interface ThrottledUpload {
  method: string;
  url: string;
  /** Bytes of the body taken in so far. */
  received: number;
  /** The whole body arrived (and was then passed on). */
  complete: boolean;
  /** The client went away before the whole body arrived: nothing was passed on. */
  cutOff: boolean;
  /** The storage answered the whole body passed on (the upload took effect). */
  answered: boolean;
}

/**
 * An HTTP proxy in front of a storage server that takes in the bodies of the requests
 * `throttle` picks at `bytesPerSecond`, and passes each on only once it is whole, as S3
 * and Azure replace an object only when its upload completes (s3rver itself would write
 * a cut-off PUT into the object). An upload then lasts long enough for a test to kill
 * the uploader in the middle of it, on any machine. (Bytes the uploader had already
 * handed to the kernel still arrive after a kill: when they are the whole body, the
 * upload takes effect, as it would on S3.) Headers go through untouched.
 */
export async function startThrottlingProxy(
  upstream: { host: string; port: number },
  throttle: (method: string, url: string) => boolean,
  bytesPerSecond: number,
): Promise<StandIn & { uploads: ThrottledUpload[]; throttling: boolean }> {
  const requests: string[] = [];
  const uploads: ThrottledUpload[] = [];
  const state = { throttling: true };
  const forward = (req: IncomingMessage, res: ServerResponse, body?: Buffer, upload?: ThrottledUpload) =>
    passOn(upstream, req, res, body, () => upload && (upload.answered = true));
  const server = createHttpServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (!state.throttling || !throttle(req.method ?? '', req.url ?? '')) return forward(req, res);
    const upload: ThrottledUpload = {
      method: req.method ?? '',
      url: req.url ?? '',
      received: 0,
      complete: false,
      cutOff: false,
      answered: false,
    };
    uploads.push(upload);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      upload.received += chunk.length;
      req.pause();
      setTimeout(() => req.resume(), (chunk.length / bytesPerSecond) * 1000);
    });
    req.on('end', () => {
      upload.complete = true;
      forward(req, res, Buffer.concat(chunks), upload);
    });
    req.on('close', () => {
      if (!upload.complete) upload.cutOff = true;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `127.0.0.1:${(server.address() as { port: number }).port}`,
    requests,
    uploads,
    get throttling() {
      return state.throttling;
    },
    set throttling(on: boolean) {
      state.throttling = on;
    },
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A TCP proxy in front of a storage server that takes in what clients send only up to an
 * allowance the test sets (`limit`, `allow`) or lifts (`unlimit`), passing on at once what
 * it took in; answers flow freely. A throttled storage whose upload a test can watch
 * part-way, whatever the machine's speed.
 */
export async function startGatedProxy(upstream: { host: string; port: number }): Promise<
  StandIn & {
    /** From now on take in about `bytes` more (a read may pass the allowance by one chunk). */
    limit(bytes: number): void;
    allow(bytes: number): void;
    unlimit(): void;
    /** Whether a client is held back now (the allowance is used up). */
    holding(): boolean;
  }
> {
  let taken = 0;
  let allowance = Number.POSITIVE_INFINITY;
  const held = new Set<Socket>();
  const sockets = new Set<Socket>();
  const requests: string[] = [];
  const server = createTcpServer((client) => {
    requests.push('connection');
    const up = connect(upstream.port, upstream.host);
    sockets.add(client).add(up);
    client.on('data', (d: Buffer) => {
      taken += d.length;
      up.write(d);
      if (taken >= allowance) {
        client.pause();
        held.add(client);
      }
    });
    up.pipe(client);
    for (const s of [client, up]) {
      s.on('error', () => undefined);
      s.on('close', () => {
        held.delete(client);
        sockets.delete(s);
        client.destroy();
        up.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const release = () => {
    if (taken >= allowance) return;
    for (const c of held) c.resume();
    held.clear();
  };
  return {
    endpoint: `127.0.0.1:${(server.address() as { port: number }).port}`,
    requests,
    limit: (bytes) => {
      allowance = taken + bytes;
    },
    allow: (bytes) => {
      allowance += bytes;
      release();
    },
    unlimit: () => {
      allowance = Number.POSITIVE_INFINITY;
      release();
    },
    holding: () => held.size > 0,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** `age-keygen -o <dir>/identity.txt`; the recipient is what `age-keygen -y` prints. */
export function ageKeygen(dir: string, name = 'identity.txt'): { identityFile: string; recipient: string } {
  const identityFile = path.join(dir, name);
  execFileSync('age-keygen', ['-o', identityFile], { stdio: 'ignore' });
  const recipient = execFileSync('age-keygen', ['-y', identityFile], { encoding: 'utf8' }).trim();
  return { identityFile, recipient };
}

export const inventoryHeader =
  'project,device,provider,protocols,public_ip,private_ip,url_port,access_type,tags,account,password,private_key,pem_file_name,passphrase,extra_credential';

/** One CSV field, quoted when it has to be. */
export const csvField = (v: string): string => (/[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

/** An inventory CSV of `devices` devices with one account each and a random password, spread over `projects` projects. */
export function writeBulkInventory(file: string, devices: number, prefix: string, projects = 5, passwordLength = 24): void {
  const lines = [inventoryHeader];
  for (let d = 0; d < devices; d++) {
    const password = randomBytes(passwordLength).toString('base64url').slice(0, passwordLength);
    lines.push(
      `${prefix}-project-${d % projects},${prefix}-host-${String(d).padStart(6, '0')},aws,ssh,,10.${(d >> 16) & 255}.${(d >> 8) & 255}.${d & 255},,gateway,,admin,${password},,,,`,
    );
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}

/** Polls `check` until it returns something other than undefined, or throws naming `what`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface OfflineResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
}

/**
 * Runs the `gatehouse` executable as the break-glass holder would on the day: no
 * Gatehouse setting but a GATEHOUSE_URL that points nowhere, no credentials, and (with
 * `isolateNetwork`) inside a network namespace of its own, where no address is reachable.
 */
export function runOffline(args: string[], opts: { cwd: string; isolateNetwork: boolean; stdin?: string }): Promise<OfflineResult> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GATEHOUSE_') && k !== 'DATABASE_URL') env[k] = v;
  env.GATEHOUSE_URL = 'https://gatehouse.invalid:8443';
  env.GATEHOUSE_CREDENTIALS = path.join(opts.cwd, 'no-such-credentials.json');
  const command = opts.isolateNetwork
    ? ['unshare', '-rn', process.execPath, gatehouseBin, ...args]
    : [process.execPath, gatehouseBin, ...args];
  const started = performance.now();
  const child = spawn(command[0] ?? '', command.slice(1), { cwd: opts.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdin.end(opts.stdin ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** Whether this machine lets us run a command in a network namespace of its own (no interface but a down loopback). */
export function canIsolateNetwork(): boolean {
  return spawnSync('unshare', ['-rn', 'true'], { stdio: 'ignore' }).status === 0;
}

export interface FinishedExport {
  id: string;
  result: string;
  error: string | null;
  counts: { accounts?: number };
}

/** Starts a break-glass export (`POST /breakglass/runs`) and waits until it is no longer running. */
export async function runBreakGlassExport(
  call: <T>(method: string, path: string, body?: unknown) => Promise<T>,
  timeoutMs = 60_000,
): Promise<FinishedExport> {
  const { id } = await call<{ id: string }>('POST', '/breakglass/runs');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await call<FinishedExport>('GET', `/breakglass/runs/${id}`);
    if (run.result !== 'running') return { ...run, id };
    if (Date.now() > deadline) throw new Error(`The break-glass export ${id} still runs after ${timeoutMs} ms.`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
