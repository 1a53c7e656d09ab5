import { describe, expect, it } from 'vitest';
import { canonicalJson, generateSigningKey, signManifest, verifyManifest } from './manifest.js';

const body = {
  generatedAt: '2026-11-23T00:00:00.000Z',
  object: 'gatehouse/breakglass.xlsx.age',
  bytes: 1234,
  sha256: 'a'.repeat(64),
  sealing: 'age' as const,
  recipients: ['age1example'],
  counts: { projects: 1, devices: 2, accounts: 3, privateKeys: 0 },
};

describe('break-glass manifest', () => {
  it('verifies with the public key and names the signing key', () => {
    const key = generateSigningKey();
    const signed = signManifest(body, key.privateKeyPem);
    expect(signed.signingKey).toBe(key.fingerprint);
    const check = verifyManifest(JSON.stringify(signed, null, 2), key.publicKeyPem);
    expect(check).toEqual({ ok: true, manifest: signed });
  });

  it('refuses an altered manifest, another key, and garbage', () => {
    const key = generateSigningKey();
    const signed = signManifest(body, key.privateKeyPem);
    const altered = verifyManifest(JSON.stringify({ ...signed, sha256: 'b'.repeat(64) }), key.publicKeyPem);
    expect(altered).toEqual({ ok: false, reason: expect.stringContaining('altered or forged') as string });
    const other = verifyManifest(JSON.stringify(signed), generateSigningKey().publicKeyPem);
    expect(other).toEqual({ ok: false, reason: expect.stringContaining('not by the key you gave') as string });
    expect(verifyManifest('{', key.publicKeyPem).ok).toBe(false);
    expect(verifyManifest('null', key.publicKeyPem).ok).toBe(false);
  });

  it('signs canonical JSON, independent of key order', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] })).toBe('{"a":[{"c":3,"d":2}],"b":1}');
  });
});
