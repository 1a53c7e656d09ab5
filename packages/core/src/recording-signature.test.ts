import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { signAuditCheckpoint, signingKeyFingerprint } from './audit-checkpoint.js';
import { checkRecordingSignature, hashRecording, recordingSigner, signRecording } from './recording-signature.js';

function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

const recording = Buffer.from('{"version":2,"width":80,"height":24}\n[0.1,"o","hello\\r\\n"]\n');
const hashOf = (bytes: Buffer) => hashRecording(Readable.from([bytes.subarray(0, 10), bytes.subarray(10)]));

describe('recording signature', () => {
  it('verifies the recording it was made for, with the public key of the key that signed it', async () => {
    const key = keyPair();
    const hash = await hashOf(recording);
    expect(hash.size).toBe(recording.length);
    const signed = signRecording({ sessionId: 's-1', ...hash }, key.privateKeyPem, new Date('2026-12-07T00:00:00Z'));
    expect(signed).toMatchObject({
      algorithm: 'ed25519',
      sessionId: 's-1',
      sha256: hash.sha256,
      signedAt: '2026-12-07T00:00:00.000Z',
      keyId: signingKeyFingerprint(key.publicKeyPem),
    });
    // The DER fingerprint is the hash of what `openssl pkey -pubin -outform DER` prints, so it can be checked without us.
    const der = createPublicKey(key.publicKeyPem).export({ type: 'spki', format: 'der' });
    expect(signed.publicKeyFingerprint).toBe(createHash('sha256').update(der).digest('hex'));
    expect(checkRecordingSignature(hash, JSON.parse(JSON.stringify(signed)), key.publicKeyPem)).toEqual({ ok: true, signature: signed });
  });

  it('signs every recording of a server with one key parsed once, each signature its own and verified', async () => {
    const key = keyPair();
    const sign = recordingSigner(key.privateKeyPem);
    const at = new Date('2026-12-07T00:00:00Z');
    const first = await hashOf(recording);
    const second = await hashOf(Buffer.concat([recording, Buffer.from('[0.2,"o","bye"]\n')]));
    const a = sign({ sessionId: 's-1', ...first }, at);
    const b = sign({ sessionId: 's-2', ...second }, at);
    expect(a).toEqual(signRecording({ sessionId: 's-1', ...first }, key.privateKeyPem, at));
    expect(b.signature).not.toBe(a.signature);
    expect(checkRecordingSignature(first, a, key.publicKeyPem)).toEqual({ ok: true, signature: a });
    expect(checkRecordingSignature(second, b, key.publicKeyPem)).toEqual({ ok: true, signature: b });
    expect(checkRecordingSignature(first, b, key.publicKeyPem).ok).toBe(false);
  });

  it('says the recording was altered when one byte differs', async () => {
    const key = keyPair();
    const signed = signRecording({ sessionId: 's-1', ...(await hashOf(recording)) }, key.privateKeyPem);
    const tampered = Buffer.from(recording);
    tampered[40] = (tampered[40] ?? 0) ^ 1;
    const check = checkRecordingSignature(await hashOf(tampered), signed, key.publicKeyPem);
    expect(check).toMatchObject({ ok: false, problem: 'content' });
    expect(check.ok || check.reason).toMatch(/altered after it was signed/);
  });

  it('says which key signed when given another, and refuses a forged or reshaped signature', async () => {
    const key = keyPair();
    const other = keyPair();
    const hash = await hashOf(recording);
    const signed = signRecording({ sessionId: 's-1', ...hash }, key.privateKeyPem);
    const wrongKey = checkRecordingSignature(hash, signed, other.publicKeyPem);
    expect(wrongKey).toMatchObject({ ok: false, problem: 'key' });
    expect(wrongKey.ok || wrongKey.reason).toContain(signed.keyId);
    // A hash changed to match an altered recording no longer verifies.
    expect(
      checkRecordingSignature({ ...hash, sha256: 'a'.repeat(64) }, { ...signed, sha256: 'a'.repeat(64) }, key.publicKeyPem),
    ).toMatchObject({
      ok: false,
      problem: 'signature',
    });
    expect(checkRecordingSignature(hash, { ...signed, extra: 1 }, key.publicKeyPem)).toMatchObject({ ok: false, problem: 'form' });
    expect(checkRecordingSignature(hash, signed, 'not a key')).toMatchObject({ ok: false, problem: 'key' });
  });

  it('is never taken for an audit checkpoint signed by the same key, nor the other way round', async () => {
    const key = keyPair();
    const checkpoint = signAuditCheckpoint({ seq: 1, hash: 'c'.repeat(64) }, key.privateKeyPem);
    const hash = await hashOf(recording);
    const forged = { ...signRecording({ sessionId: 's', ...hash }, key.privateKeyPem), signature: checkpoint.signature };
    expect(checkRecordingSignature(hash, forged, key.publicKeyPem)).toMatchObject({ ok: false, problem: 'signature' });
  });
});
