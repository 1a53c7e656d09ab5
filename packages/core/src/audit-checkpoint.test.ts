import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkAuditCheckpoint, readAuditCheckpoint, signAuditCheckpoint, signingKeyFingerprint } from './audit-checkpoint.js';

function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

const head = { seq: 42, hash: 'c'.repeat(64) };

describe('audit checkpoint', () => {
  it('verifies with the public key of the key that signed it', () => {
    const key = keyPair();
    const signed = signAuditCheckpoint(head, key.privateKeyPem, new Date('2026-12-05T00:00:00Z'));
    expect(signed).toMatchObject({
      seq: 42,
      hash: head.hash,
      at: '2026-12-05T00:00:00.000Z',
      keyId: signingKeyFingerprint(key.publicKeyPem),
    });
    expect(checkAuditCheckpoint(signed, key.publicKeyPem)).toEqual({ ok: true, checkpoint: signed });
  });

  it('refuses a checkpoint forged with another key, whichever key it names', () => {
    const key = keyPair();
    const forger = keyPair();
    const forged = signAuditCheckpoint({ seq: 3, hash: 'd'.repeat(64) }, forger.privateKeyPem);
    expect(checkAuditCheckpoint(forged, key.publicKeyPem)).toEqual({
      ok: false,
      reason: `it was signed by key ${forged.keyId}, not by the key you gave (${signingKeyFingerprint(key.publicKeyPem)})`,
    });
    const claimed = { ...forged, keyId: signingKeyFingerprint(key.publicKeyPem) };
    expect(checkAuditCheckpoint(claimed, key.publicKeyPem)).toEqual({
      ok: false,
      reason: 'its signature does not verify: it was altered or forged',
    });
  });

  it('refuses a genuine checkpoint whose sequence or hash was changed', () => {
    const key = keyPair();
    const signed = signAuditCheckpoint(head, key.privateKeyPem);
    expect(checkAuditCheckpoint({ ...signed, seq: 40 }, key.publicKeyPem).ok).toBe(false);
    expect(checkAuditCheckpoint({ ...signed, hash: 'e'.repeat(64) }, key.publicKeyPem).ok).toBe(false);
    expect(checkAuditCheckpoint({ ...signed, seq: '42' }, key.publicKeyPem)).toEqual({
      ok: false,
      reason: 'it is not an audit checkpoint (gatehouse-audit-checkpoint/1): check seq',
    });
    expect(checkAuditCheckpoint(signed, 'not a key')).toEqual({ ok: false, reason: 'the public key is not a PEM Ed25519 public key' });
  });

  it('reads a checkpoint, the last line of a checkpoint file, or the one a manifest carries', () => {
    const key = keyPair();
    const older = signAuditCheckpoint({ seq: 1, hash: 'a'.repeat(64) }, key.privateKeyPem);
    const newer = signAuditCheckpoint(head, key.privateKeyPem);
    expect(readAuditCheckpoint(JSON.stringify(newer, null, 2))).toEqual({ ok: true, checkpoint: newer });
    expect(readAuditCheckpoint(`${JSON.stringify(older)}\n${JSON.stringify(newer)}\n`)).toEqual({ ok: true, checkpoint: newer });
    const manifest = { format: 'gatehouse-breakglass/1', signingKey: 'SHA256:x', auditCheckpoint: newer };
    expect(readAuditCheckpoint(JSON.stringify(manifest))).toEqual({ ok: true, checkpoint: newer });
    expect(readAuditCheckpoint(JSON.stringify({ ...manifest, auditCheckpoint: undefined }))).toEqual({
      ok: false,
      reason: 'the break-glass manifest carries no audit checkpoint (it was written by an older version)',
    });
    expect(readAuditCheckpoint(`${JSON.stringify(older)}\n{"torn`)).toEqual({
      ok: false,
      reason: 'it is neither JSON nor JSON lines (line 2 does not parse)',
    });
    expect(readAuditCheckpoint(' \n')).toEqual({ ok: false, reason: 'it is empty' });
  });
});
