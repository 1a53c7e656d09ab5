import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateLinkIdentity, parseLinkPublicKey } from './identity.js';

describe('link identities', () => {
  it('makes certificates that parse, every time, with the key inside', () => {
    // Random serial numbers once produced a non-minimal INTEGER one time in 256.
    for (let i = 0; i < 600; i++) {
      const identity = generateLinkIdentity(`gw-${i}`);
      const cert = new X509Certificate(identity.certificate);
      expect(cert.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')).toBe(identity.publicKey);
      expect(cert.checkIssued(cert)).toBe(true);
    }
  });

  it('parses a pasted public key and refuses anything else without echoing it', () => {
    const { publicKey, fingerprint } = generateLinkIdentity('gw');
    expect(parseLinkPublicKey(`  ${publicKey}\n`)).toEqual({ ok: true, publicKey, fingerprint });
    const pem = `-----BEGIN PUBLIC KEY-----\n${publicKey}\n-----END PUBLIC KEY-----\n`;
    expect(parseLinkPublicKey(pem)).toMatchObject({ ok: true, publicKey });
    for (const bad of ['', 'not base64!', 'AAAA', Buffer.alloc(44).toString('base64'), `${publicKey}AAAA`]) {
      const parsed = parseLinkPublicKey(bad);
      expect(parsed.ok).toBe(false);
      if (!parsed.ok && bad !== '') expect(parsed.message).not.toContain(bad);
    }
  });
});
