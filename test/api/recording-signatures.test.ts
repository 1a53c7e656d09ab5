import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { GatewaySession, RecordingSigningKey } from '@gatehouse/api';
import { checkRecordingSignature } from '@gatehouse/core';
import type { GatewaySessionInput } from '@gatehouse/db';
import { RecordingSignatures, signatureFileOf } from '@gatehouse/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API } from '../support/api-helpers.js';
import type { TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';
import { createSessionsApp, sessionRow } from '../support/session-rows.js';

/** Each finished recording signed once, in its row and beside its file, with the key the API shows. */
describe.each(dialects)('recording signatures on %s', (dialect) => {
  let t: TestApp;
  let auditor: string;
  let deviceId: string;
  const recordingsDir = () => path.join(t.services.config.dataDir, 'recordings');
  const row = (over: Partial<GatewaySessionInput>) => sessionRow(deviceId, over);
  /** A session with a recording of `text`, ended unless `live`; the file is written unless `absent`. */
  const recorded = async (text: string, opts: { live?: boolean; absent?: boolean } = {}) => {
    const id = randomUUID();
    const relative = path.join('2026-12-07', `${id}.cast`);
    if (!opts.absent) {
      mkdirSync(path.join(recordingsDir(), '2026-12-07'), { recursive: true });
      writeFileSync(path.join(recordingsDir(), relative), text);
    }
    await t.gatewaySessions.start(row({ id, recording: relative }));
    if (!opts.live) {
      const end = { endedAt: new Date().toISOString(), bytesIn: 1, bytesOut: 1, result: 'success', exitStatus: 0, reason: null } as const;
      await t.gatewaySessions.end(id, end);
    }
    return { id, file: path.join(recordingsDir(), relative) };
  };
  const shown = async (id: string) => (await t.request('GET', `${API}/sessions/${id}`, { token: auditor })).json<GatewaySession>();

  beforeAll(async () => {
    ({ t, auditor, deviceId } = await createSessionsApp(dialect));
  });
  afterAll(() => t.close());

  it('signs a recording once however many signers race (two replicas), in the row and beside the file', async () => {
    const { id, file } = await recorded('{"version":2,"width":80,"height":24}\n[0.5,"o","hello\\r\\n"]\n');
    // Another replica: its own signer on the same database and key.
    const replica = new RecordingSignatures({
      sessions: t.gatewaySessions,
      recordingsDir: recordingsDir(),
      key: {
        publicKeyPem: t.auditCheckpoints.publicKeyPem,
        keyId: t.auditCheckpoints.keyId,
        privateKeyPem: readFileSync(path.join(t.services.config.dataDir, 'audit-checkpoint.key'), 'utf8'),
      },
      logger: t.services.logger,
    });
    const results = await Promise.all(Array.from({ length: 5 }).flatMap(() => [t.recordingSignatures.sign(id), replica.sign(id)]));
    const first = results[0];
    expect(first).toBeDefined();
    for (const r of results) expect(r).toEqual(first);

    const session = await shown(id);
    expect(session.recordingSignature).toEqual(first);
    expect(session.recordingSha256).toBe(first?.sha256);
    expect(JSON.parse(readFileSync(signatureFileOf(file), 'utf8'))).toEqual(first);

    // The key the API shows is the audit checkpoint key, and it verifies the file as it is.
    const key = (await t.request('GET', `${API}/sessions/signing-key`, { token: auditor })).json<RecordingSigningKey>();
    expect(key.publicKeyPem).toBe(t.auditCheckpoints.publicKeyPem);
    expect(key.keyId).toBe(first?.keyId);
    expect(key.publicKeyFingerprint).toBe(first?.publicKeyFingerprint);
    const bytes = readFileSync(file);
    const hash = { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
    expect(checkRecordingSignature(hash, session.recordingSignature, key.publicKeyPem)).toMatchObject({ ok: true });
  });

  it("signs with the writer's hash as written, and reads the file back when it is no longer that long (cut back after a crash)", async () => {
    const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
    const text = '{"version":2,"width":80,"height":24}\n[0.5,"o","hi"]\n';
    const whole = await recorded(text);
    const signed = await t.recordingSignatures.sign(whole.id, { sha256: sha256(text), size: text.length });
    expect(signed).toMatchObject({ sessionId: whole.id, sha256: sha256(text), size: text.length });
    expect(JSON.parse(readFileSync(signatureFileOf(whole.file), 'utf8'))).toEqual(signed);

    // The writer saw a longer file than is there now: the signature covers the file as it is.
    const cut = await recorded(text);
    const longer = `${text}[0.9,"o","torn`;
    expect(await t.recordingSignatures.sign(cut.id, { sha256: sha256(longer), size: longer.length })).toMatchObject({
      sha256: sha256(text),
      size: text.length,
    });
  });

  it('leaves a live session and a recording not here yet unsigned, and signs the latter once it arrives', async () => {
    const live = await recorded('live', { live: true });
    expect(await t.recordingSignatures.sign(live.id)).toBeUndefined();
    const remote = await recorded('fetched later', { absent: true });
    expect(await t.recordingSignatures.sign(remote.id)).toBeUndefined();
    expect((await shown(remote.id)).recordingSignature).toBeNull();

    mkdirSync(path.dirname(remote.file), { recursive: true });
    writeFileSync(remote.file, 'fetched later');
    await t.recordingSignatures.signPending();
    expect((await shown(remote.id)).recordingSignature).toMatchObject({ sessionId: remote.id, size: 'fetched later'.length });
    expect((await shown(live.id)).recordingSignature).toBeNull();
  });
});
