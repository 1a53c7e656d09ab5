/**
 * s3rver (npm), the S3-protocol server that both the e2e tests and the benchmarks start: one
 * starter for both. The tests import it through `test/support/storage.ts` and
 * `test/support/breakglass-e2e.ts`; bench/tsconfig.json compiles only this folder, so it lives
 * here, like `host.ts`. No side effects on import.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeLowPort, stopChild, waitForPort } from './host.js';

/** s3rver accepts any signature made with this key ID and secret (it checks only the key ID). */
export const S3RVER_KEY = 'S3RVER';

/** The repository's node_modules/.bin/s3rver, whether this runs from bench/ (tests) or bench/dist/ (benchmarks). */
function s3rverBin(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', '.bin', 's3rver');
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new Error('s3rver is not in node_modules/.bin: run npm ci at the repository root');
  }
}

export interface S3rverOptions {
  /** Where s3rver keeps the buckets and their objects. */
  dataDir: string;
  /** Buckets created at start. */
  buckets: string[];
  /** A free port below 32768 unless given. */
  port?: number;
  /** PEM certificate and key files: s3rver then answers HTTPS only. */
  tls?: { cert: string; key: string };
}

/** One s3rver on 127.0.0.1 (path-style buckets), which can be stopped and started again on the same port and data. */
export class S3rver {
  private child: ChildProcess | undefined;
  private output = '';

  private constructor(
    readonly port: number,
    private readonly args: string[],
  ) {}

  /** Starts it; resolves once it accepts connections. */
  static async start(opts: S3rverOptions): Promise<S3rver> {
    const port = opts.port ?? (await freeLowPort());
    const args = ['-d', opts.dataDir, '-a', '127.0.0.1', '-p', String(port), '-s', '--no-vhost-buckets'];
    for (const bucket of opts.buckets) args.push('--configure-bucket', bucket);
    if (opts.tls) args.push('--cert', opts.tls.cert, '--key', opts.tls.key);
    const s3 = new S3rver(port, args);
    await s3.restart();
    return s3;
  }

  /** host:port, as the break-glass `url` setting takes it. */
  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The running process's id (0 before the first start), for SIGSTOP/SIGCONT. */
  get pid(): number {
    return this.child?.pid ?? 0;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts it again unless it is running; resolves once it accepts connections. */
  async restart(): Promise<void> {
    if (this.running) return;
    this.output = '';
    const child = spawn(s3rverBin(), this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (this.output += d.toString()));
    this.child = child;
    await waitForPort(this.port, 30_000, { child, what: 's3rver', log: () => this.output });
  }

  /** SIGTERM, then SIGKILL after 5 s; resolves once it exited. */
  async stop(): Promise<void> {
    if (this.child) await stopChild(this.child);
  }
}
