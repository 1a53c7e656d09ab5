import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { StorageTarget } from '@gatehouse/breakglass';
import { BlobTarget } from '@gatehouse/breakglass/blob';
import { S3Target } from '@gatehouse/breakglass/s3';
import { ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { checkRecordingSignature, hashRecording, signRecording, type RecordingSignature } from '@gatehouse/core';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, startS3rver } from '../../../../test/support/storage.js';
import { signatureFileOf } from './recording-signatures.js';
import { MIN_PART_BYTES, partsFileOf } from './recording-stream.js';
import { RecordingUploads } from './recording-uploads.js';

/** The bucket `recordings` of an s3rver. */
const s3rverTarget = (endpoint: string, timeoutSeconds: number) =>
  new S3Target({
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    bucket: 'recordings',
    protocol: 'http',
    url: endpoint,
    pathStyle: true,
    acl: 'none',
    timeoutSeconds,
  });

/** Recordings uploaded to an S3 bucket of their own: the store down for a while loses nothing. */
describe('recording uploads to S3 (s3rver)', () => {
  let s3: Awaited<ReturnType<typeof startS3rver>>;
  let dir: string;
  const key = generateKeyPairSync('ed25519');
  const privateKeyPem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const publicKeyPem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();

  beforeAll(async () => {
    s3 = await startS3rver({ buckets: ['recordings'] });
    dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-uploads-'));
  });
  afterAll(async () => {
    process.kill(s3.pid, 'SIGCONT');
    await s3.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A signed recording on disk, as the signer leaves it. */
  const recording = async (id: string, text: string) => {
    const file = path.join(dir, 'recordings', '2026-12-07', `${id}.cast`);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
    const signature = signRecording({ sessionId: id, ...(await hashRecording([Buffer.from(text)])) }, privateKeyPem);
    writeFileSync(signatureFileOf(file), JSON.stringify(signature));
    return file;
  };

  it('keeps the local copies while the store does not answer, uploads them when it is back, then removes them', async () => {
    const target = s3rverTarget(s3.endpoint, 1);
    const stored = new Map<string, string>();
    const backlog: number[] = [];
    const tries = vi.fn();
    const logger = pino({ level: 'silent' });
    const uploads = new RecordingUploads({
      target,
      recordingsDir: path.join(dir, 'recordings'),
      prefix: 'gatehouse/',
      keepLocal: false,
      retryDelaysMs: [50, 100, 200],
      stored: (id, name) => {
        stored.set(id, name);
        return Promise.resolve();
      },
      logger: Object.assign(logger, { warn: tries }),
      onBacklog: (n) => backlog.push(n),
    });

    // The store hangs (accepts connections, answers nothing) while three sessions end.
    process.kill(s3.pid, 'SIGSTOP');
    const files = [];
    for (const id of ['a', 'b', 'c']) {
      const file = await recording(id, `{"version":2}\n[0.1,"o","session ${id}"]\n`);
      files.push(file);
      uploads.add(id, file);
      uploads.add(id, file); // queued once
    }
    expect(uploads.backlog).toBe(3);
    await vi.waitFor(() => expect(tries.mock.calls.length).toBeGreaterThanOrEqual(2), { timeout: 30_000 });
    for (const f of files) expect(existsSync(f) && existsSync(signatureFileOf(f))).toBe(true);
    expect(stored.size).toBe(0);

    process.kill(s3.pid, 'SIGCONT');
    await uploads.idle();
    expect(uploads.backlog).toBe(0);
    expect(backlog.at(-1)).toBe(0);
    expect([...stored.entries()]).toEqual([
      ['a', 'gatehouse/2026-12-07/a.cast'],
      ['b', 'gatehouse/2026-12-07/b.cast'],
      ['c', 'gatehouse/2026-12-07/c.cast'],
    ]);
    for (const f of files) expect(existsSync(f) || existsSync(signatureFileOf(f))).toBe(false);

    // What the store holds verifies offline against the signature beside it.
    for (const id of ['a', 'b', 'c']) {
      const read = await target.open(`gatehouse/2026-12-07/${id}.cast`);
      const sig = await target.open(`gatehouse/2026-12-07/${id}.cast.sig`);
      if (read.state !== 'found' || sig.state !== 'found') throw new Error(`object ${id} is ${read.state}, its signature ${sig.state}`);
      const hash = await hashRecording(read.body);
      const chunks: Buffer[] = [];
      for await (const c of sig.body) chunks.push(c as Buffer);
      expect(checkRecordingSignature(hash, JSON.parse(Buffer.concat(chunks).toString('utf8')), publicKeyPem)).toMatchObject({ ok: true });
    }
    // s3rver's own copy, byte for byte.
    expect(readFileSync(path.join(s3.dir, 'data', 'recordings', 'gatehouse', '2026-12-07', 'a.cast._S3rver_object')).toString()).toContain(
      'session a',
    );
    await uploads.stop();
  });
});

const MiB = 1024 * 1024;
const streamKey = generateKeyPairSync('ed25519');
const streamPrivateKey = streamKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const streamPublicKey = streamKey.publicKey.export({ type: 'spki', format: 'pem' }).toString();

async function readAll(target: StorageTarget, name: string): Promise<Buffer> {
  const read = await target.open(name);
  if (read.state !== 'found') throw new Error(`object ${name} is ${read.state}`);
  const chunks: Buffer[] = [];
  for await (const c of read.body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * A recording written in steps as the gateway's writer appends, streamed to `target`:
 * parts are in the store (`pendingParts`, the store's own listing) while the session runs,
 * the object appears only once the signed recording is committed, byte for byte.
 */
function streamedRecordingTests(
  storeName: string,
  start: () => Promise<{
    target: StorageTarget;
    pendingParts: (name: string) => Promise<number>;
    stop: () => Promise<void>;
    /** Makes the store hang (takes connections, answers nothing), and answer again. */
    freeze: (frozen: boolean) => void;
  }>,
  opts: { abortChecked: boolean },
) {
  describe(`recordings streamed in parts while written (${storeName})`, () => {
    let store: Awaited<ReturnType<typeof start>>;
    let dir: string;
    beforeAll(async () => {
      store = await start();
      dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-streamed-'));
    });
    afterAll(async () => {
      await store.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    const uploadsFor = (stored: Map<string, string>, warn = vi.fn()) =>
      new RecordingUploads({
        target: store.target,
        recordingsDir: path.join(dir, 'recordings'),
        prefix: 'gatehouse/',
        keepLocal: false,
        retryDelaysMs: [50, 100],
        stored: (id, name) => {
          stored.set(id, name);
          return Promise.resolve();
        },
        logger: Object.assign(pino({ level: 'silent' }), { warn }),
        partPollMs: 25,
      });
    const relativeOf = (id: string) => `2026-12-07/${id}.cast`;
    const fileOf = (id: string) => path.join(dir, 'recordings', relativeOf(id));
    const sign = async (id: string, bytes: Buffer) => {
      const signature = signRecording({ sessionId: id, ...(await hashRecording([bytes])) }, streamPrivateKey);
      writeFileSync(signatureFileOf(fileOf(id)), JSON.stringify(signature));
    };
    const checkStored = async (id: string, written: Buffer) => {
      const name = `gatehouse/${relativeOf(id)}`;
      const object = await readAll(store.target, name);
      expect(object.length).toBe(written.length);
      expect(object.equals(written)).toBe(true);
      const signature = JSON.parse((await readAll(store.target, `${name}.sig`)).toString('utf8')) as RecordingSignature;
      expect(checkRecordingSignature(await hashRecording([object]), signature, streamPublicKey)).toMatchObject({ ok: true });
    };

    it('sends parts while the session runs and commits the object, equal to the local file, once signed', async () => {
      const id = 'streamed';
      const file = fileOf(id);
      mkdirSync(path.dirname(file), { recursive: true });
      const stored = new Map<string, string>();
      const uploads = uploadsFor(stored);
      const written: Buffer[] = [];
      const append = (bytes: Buffer) => {
        written.push(bytes);
        appendFileSync(file, bytes);
      };
      uploads.started(id, relativeOf(id));
      append(Buffer.from('{"version":2,"width":80,"height":24}\n'));
      append(randomBytes(MIN_PART_BYTES + MiB));
      await vi.waitFor(() => expect(uploads.partsSent(id)).toBe(1), { timeout: 30_000 });
      expect(await store.pendingParts(`gatehouse/${relativeOf(id)}`)).toBe(1);
      append(randomBytes(MIN_PART_BYTES));
      await vi.waitFor(() => expect(uploads.partsSent(id)).toBe(2), { timeout: 30_000 });
      expect(await store.pendingParts(`gatehouse/${relativeOf(id)}`)).toBe(2);
      // Nothing readable while the session runs.
      expect((await store.target.open(`gatehouse/${relativeOf(id)}`)).state).toBe('missing');
      append(randomBytes(MiB / 2));

      const all = Buffer.concat(written);
      await sign(id, all);
      uploads.add(id, file);
      await uploads.idle();
      expect([...stored.entries()]).toEqual([[id, `gatehouse/${relativeOf(id)}`]]);
      await checkStored(id, all);
      expect(await store.pendingParts(`gatehouse/${relativeOf(id)}`)).toBe(0);
      for (const f of [file, signatureFileOf(file), partsFileOf(file)]) expect(existsSync(f)).toBe(false);
      await uploads.stop();
    }, 120_000);

    it('retries a part while the store hangs and catches up once it answers', async () => {
      const id = 'retried';
      const file = fileOf(id);
      const warn = vi.fn();
      const uploads = uploadsFor(new Map(), warn);
      uploads.started(id, relativeOf(id));
      store.freeze(true);
      const bytes = randomBytes(MIN_PART_BYTES + MiB);
      writeFileSync(file, bytes);
      const partFailures = () => warn.mock.calls.filter(([, msg]) => String(msg).startsWith('could not upload a part')).length;
      await vi.waitFor(() => expect(partFailures()).toBeGreaterThanOrEqual(2), { timeout: 60_000 });
      expect(uploads.partsSent(id)).toBe(0);
      store.freeze(false);
      await vi.waitFor(() => expect(uploads.partsSent(id)).toBe(1), { timeout: 30_000 });
      await sign(id, bytes);
      uploads.add(id, file);
      await uploads.idle();
      await checkStored(id, bytes);
      await uploads.stop();
    }, 120_000);

    it('uploads a recording shorter than a part whole', async () => {
      const id = 'short';
      const stored = new Map<string, string>();
      const uploads = uploadsFor(stored);
      uploads.started(id, relativeOf(id));
      const bytes = Buffer.from('{"version":2}\n[0.1,"o","short"]\n');
      writeFileSync(fileOf(id), bytes);
      await sign(id, bytes);
      uploads.add(id, fileOf(id));
      await uploads.idle();
      expect(uploads.partsSent(id)).toBe(0);
      await checkStored(id, bytes);
      await uploads.stop();
    });

    it.runIf(opts.abortChecked)(
      'after a stop mid-session, the next start aborts the open parts and sends the recording again in new parts',
      async () => {
        const id = 'cut-off';
        const file = fileOf(id);
        const first = uploadsFor(new Map());
        first.started(id, relativeOf(id));
        const bytes = randomBytes(MIN_PART_BYTES + MiB);
        writeFileSync(file, bytes);
        await vi.waitFor(() => expect(first.partsSent(id)).toBe(1), { timeout: 30_000 });
        // The process goes away: its upload in parts stays open, named beside the recording.
        await first.stop();
        expect(existsSync(partsFileOf(file))).toBe(true);
        expect(await store.pendingParts(`gatehouse/${relativeOf(id)}`)).toBe(1);

        const stored = new Map<string, string>();
        const next = uploadsFor(stored);
        await sign(id, bytes);
        next.add(id, file);
        await next.idle();
        expect(stored.get(id)).toBe(`gatehouse/${relativeOf(id)}`);
        await checkStored(id, bytes);
        expect(await store.pendingParts(`gatehouse/${relativeOf(id)}`)).toBe(0);
        expect(existsSync(partsFileOf(file))).toBe(false);
        await next.stop();
      },
      120_000,
    );
  });
}

/** A store run by `peer`, hung with SIGSTOP. */
const frozenBy = (
  peer: { pid: number; stop: () => Promise<void> },
  target: StorageTarget,
  pendingParts: (name: string) => Promise<number>,
) => ({
  target,
  pendingParts,
  freeze: (frozen: boolean) => process.kill(peer.pid, frozen ? 'SIGSTOP' : 'SIGCONT'),
  stop: () => {
    process.kill(peer.pid, 'SIGCONT');
    return peer.stop();
  },
});

streamedRecordingTests(
  's3rver',
  async () => {
    const s3 = await startS3rver({ buckets: ['recordings'] });
    const target = s3rverTarget(s3.endpoint, 3);
    // s3rver keeps an open upload's parts as files named by their number.
    const uploadsDir = path.join(s3.dir, 'data', 'recordings', '._S3rver_uploads');
    const pendingParts = () =>
      Promise.resolve(
        existsSync(uploadsDir)
          ? readdirSync(uploadsDir).reduce((n, u) => n + readdirSync(path.join(uploadsDir, u)).filter((f) => /^\d+$/.test(f)).length, 0)
          : 0,
      );
    return frozenBy(s3, target, pendingParts);
  },
  // s3rver answers no AbortMultipartUpload: that is checked against Ceph RGW (packages/breakglass/src/rgw.test.ts).
  { abortChecked: false },
);

streamedRecordingTests(
  'Azurite',
  async () => {
    const azurite = await startAzurite();
    const credential = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
    const container = new ContainerClient(`${azurite.blobEndpoint}/recordings`, credential);
    await container.create();
    const target = new BlobTarget({
      accountName: AZURITE_ACCOUNT,
      accountKey: AZURITE_KEY,
      container: 'recordings',
      protocol: 'http',
      endpointSuffix: 'core.windows.net',
      blobEndpoint: azurite.blobEndpoint,
      timeoutSeconds: 3,
    });
    // Staged blocks not committed yet.
    const pendingParts = async (name: string) => {
      const list = await container
        .getBlockBlobClient(name)
        .getBlockList('uncommitted')
        .catch((error: { statusCode?: number }) => {
          if (error.statusCode === 404) return { uncommittedBlocks: [] };
          throw error;
        });
      return list.uncommittedBlocks?.length ?? 0;
    };
    return frozenBy(azurite, target, pendingParts);
  },
  { abortChecked: true },
);
