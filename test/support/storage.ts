import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopChild, waitForPort as waitForListener } from '../../bench/host.js';
import { S3rver } from '../../bench/s3rver.js';

/** A command installed by npm in node_modules/.bin. */
export const bin = (name: string) => fileURLToPath(new URL(`../../node_modules/.bin/${name}`, import.meta.url));

/** A port that was free a moment ago, on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Waits until something accepts connections on 127.0.0.1:`port`, failing early if `child` exits. */
export function waitForPort(port: number, child: ChildProcess, what: string, log: () => string): Promise<void> {
  return waitForListener(port, 30_000, { child, what, log });
}

export { stopChild };

/** A throwaway self-signed certificate for 127.0.0.1, made with openssl. */
export function selfSignedCert(dir: string): { cert: string; key: string; certPem: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'ignore' },
  );
  return { cert, key, certPem: readFileSync(cert, 'utf8') };
}

export interface RunningPeer {
  port: number;
  dir: string;
  /** The server's process, for SIGSTOP/SIGCONT (a server that accepts connections and stops answering). */
  pid: number;
  certPem?: string;
  stop(): Promise<void>;
}

/** s3rver (npm), an S3-protocol server that keeps objects in a temporary directory. */
export async function startS3rver(opts: { buckets: string[]; tls?: boolean }): Promise<RunningPeer & { endpoint: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-s3rver-'));
  const tls = opts.tls ? selfSignedCert(dir) : undefined;
  const s3 = await S3rver.start({ dataDir: path.join(dir, 'data'), buckets: opts.buckets, port: await freePort(), tls });
  return {
    port: s3.port,
    dir,
    pid: s3.pid,
    certPem: tls?.certPem,
    endpoint: s3.endpoint,
    async stop() {
      await s3.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Azurite's well-known development account (public, documented by Microsoft: not a secret). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** Azurite's blob service, in memory. */
export async function startAzurite(opts: { tls?: boolean } = {}): Promise<RunningPeer & { blobEndpoint: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-azurite-'));
  const port = await freePort();
  const args = [
    '--inMemoryPersistence',
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    String(port),
    '--disableTelemetry',
    '--skipApiVersionCheck',
    '--silent',
  ];
  let certPem: string | undefined;
  if (opts.tls) {
    const tls = selfSignedCert(dir);
    args.push('--cert', tls.cert, '--key', tls.key);
    certPem = tls.certPem;
  }
  let log = '';
  const child = spawn(bin('azurite-blob'), args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  await waitForPort(port, child, 'azurite', () => log);
  return {
    port,
    dir,
    pid: child.pid ?? 0,
    certPem,
    blobEndpoint: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/${AZURITE_ACCOUNT}`,
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A SAS for one container of Azurite's development account, valid for an hour (`cw`: the writer's create and write only). */
export async function azuriteContainerSas(container: string, permissions = 'cw'): Promise<string> {
  const { ContainerSASPermissions, StorageSharedKeyCredential, generateBlobSASQueryParameters } = await import('@azure/storage-blob');
  return generateBlobSASQueryParameters(
    {
      containerName: container,
      permissions: ContainerSASPermissions.parse(permissions),
      startsOn: new Date(Date.now() - 5 * 60_000),
      expiresOn: new Date(Date.now() + 3_600_000),
    },
    new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
  ).toString();
}
