import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AZURITE_ACCOUNT,
  AZURITE_KEY,
  freePort,
  selfSignedCert,
  startAzurite,
  startS3rver,
  type RunningPeer,
} from '../../../../test/support/storage.js';
import { BlobTarget } from './blob.js';
import { S3Target } from './s3.js';
import type { StorageTarget } from './target.js';

/**
 * The Test's stages say OK only when the storage server said so (issue 16, item 5): a port
 * where no storage server answers (nothing, or something that is not HTTP, or an HTTP server
 * that is not storage) reports no container or authentication success, with or without a
 * CA bundle; a real server over HTTP with a CA bundle passes all three.
 */
const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-stages-'));
let caBundle: string;
let azurite: RunningPeer & { blobEndpoint: string };
let s3: RunningPeer & { endpoint: string };
/** Answers every connection with an SSH banner: something listens, but not HTTP. */
let banner: Server;
/** An HTTP server that is not storage: 403 and a web page to everything. */
let web: ReturnType<typeof createHttpServer>;
let deadPort: number;
const portOf = (s: { address(): unknown }) => (s.address() as { port: number }).port;

beforeAll(async () => {
  caBundle = selfSignedCert(dir).certPem;
  [azurite, s3] = await Promise.all([startAzurite(), startS3rver({ buckets: ['stages'] })]);
  await new ContainerClient(`${azurite.blobEndpoint}/stages`, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).create();
  banner = createTcpServer((socket) => {
    socket.on('error', () => undefined);
    socket.end('SSH-2.0-OpenSSH_9.2p1\r\n', () => socket.destroy());
  });
  web = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(403, { 'content-type': 'text/html' }).end(req.method === 'HEAD' ? undefined : '<h1>Forbidden</h1>'));
  });
  await Promise.all([banner, web].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
  deadPort = await freePort();
}, 60_000);
afterAll(async () => {
  await Promise.all([azurite?.stop(), s3?.stop()]);
  web?.closeAllConnections();
  await Promise.all([banner, web].map((s) => new Promise((resolve) => (s ? s.close(resolve) : resolve(undefined)))));
  rmSync(dir, { recursive: true, force: true });
});

const blob = (port: number, extra: { caBundle?: string } = {}) =>
  new BlobTarget({
    accountName: AZURITE_ACCOUNT,
    accountKey: AZURITE_KEY,
    container: 'stages',
    protocol: 'http',
    endpointSuffix: 'core.windows.net',
    blobEndpoint: `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`,
    timeoutSeconds: 20,
    ...extra,
  });
const bucket = (port: number, extra: { caBundle?: string } = {}) =>
  new S3Target({
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    bucket: 'stages',
    protocol: 'http',
    url: `127.0.0.1:${port}`,
    pathStyle: true,
    acl: 'none',
    timeoutSeconds: 20,
    ...extra,
  });

const targets: [string, (port: number, extra?: { caBundle?: string }) => StorageTarget][] = [
  ['Azure Blob', blob],
  ['S3', bucket],
];

describe.each(targets)('the Test of %s', (_name, make) => {
  it('says no stage is OK where no storage server answers: a dead port (with a CA bundle), a port that is not HTTP, a web server', async () => {
    const cases: [string, number, { caBundle?: string }][] = [
      ['dead port, http endpoint with a CA bundle', deadPort, { caBundle }],
      ['not HTTP', portOf(banner), {}],
      ['not HTTP, with a CA bundle', portOf(banner), { caBundle }],
      ['a web server, not storage', portOf(web), {}],
    ];
    for (const [what, port, extra] of cases) {
      const report = await make(port, extra).test('gatehouse/probe.txt');
      expect(report.ok, what).toBe(false);
      expect(
        report.stages.filter((s) => s.ok === true).map((s) => s.stage),
        `${what}: ${JSON.stringify(report.stages)}`,
      ).toEqual([]);
      const failed = report.stages.find((s) => s.ok === false);
      expect(failed?.message, what).toContain(`127.0.0.1:${port}`);
      expect(report.stages.map((s) => s.stage)).toEqual(['container', 'authentication', 'connection']);
    }
  });

  it('passes all three stages against the real server over HTTP with a CA bundle set', async () => {
    const port = make === blob ? azurite.port : s3.port;
    const report = await make(port, { caBundle }).test('gatehouse/probe.txt');
    expect(report.stages.map((s) => [s.stage, s.ok])).toEqual([
      ['container', true],
      ['authentication', true],
      ['connection', true],
    ]);
  });
});
