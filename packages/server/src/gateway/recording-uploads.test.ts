import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { S3Target } from '@gatehouse/breakglass/s3';
import { checkRecordingSignature, hashRecording, signRecording } from '@gatehouse/core';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startS3rver } from '../../../../test/support/storage.js';
import { signatureFileOf } from './recording-signatures.js';
import { RecordingUploads } from './recording-uploads.js';

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
    const target = new S3Target({
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
      bucket: 'recordings',
      protocol: 'http',
      url: s3.endpoint,
      pathStyle: true,
      acl: 'none',
      timeoutSeconds: 1,
    });
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
