import { describe, expect, it } from 'vitest';
import { certificateOf, certificateOfFingerprint, parseConnectionConfirm, x224ConnectionRequest } from './rdp-certificate.js';
import { xauthorityEntry } from './rdp-renderer.js';

describe('the RDP certificate probe', () => {
  it('gives xfreerdp the hex form of a stored fingerprint, and nothing for one that is not a SHA-256', () => {
    const certificate = certificateOf(Buffer.from('a DER certificate'));
    expect(certificateOfFingerprint(certificate.fingerprint)).toEqual(certificate);
    expect(certificateOfFingerprint(`${certificate.fingerprint}=`)?.sha256Hex).toBe(certificate.sha256Hex);
    for (const other of ['SHA256:short', 'MD5:aa:bb', `${certificate.fingerprint}x`, certificate.sha256Hex]) {
      expect(certificateOfFingerprint(other), other).toBeNull();
    }
  });

  it('asks for TLS or NLA in an X.224 connection request, as xfreerdp does', () => {
    expect(x224ConnectionRequest().toString('hex')).toBe('030000130ee000000000000100080003000000');
  });

  it('reads the protocol the target selected, and refuses what leaves nothing to pin', () => {
    const confirm = (neg: number[]) => Buffer.from([3, 0, 0, 11 + neg.length, 6 + neg.length, 0xd0, 0, 0, 0, 0, 0, ...neg]);
    expect(parseConnectionConfirm(confirm([2, 0, 8, 0, 1, 0, 0, 0]))).toEqual({ ok: true, protocol: 1 });
    expect(parseConnectionConfirm(confirm([2, 0, 8, 0, 2, 0, 0, 0]))).toEqual({ ok: true, protocol: 2 });
    expect(parseConnectionConfirm(confirm([2, 0, 8, 0, 0, 0, 0, 0]))).toEqual({
      ok: false,
      reason: 'it offers only standard RDP security, without TLS',
    });
    expect(parseConnectionConfirm(confirm([]))).toEqual({ ok: false, reason: 'it offers only standard RDP security, without TLS' });
    expect(parseConnectionConfirm(confirm([3, 0, 8, 0, 5, 0, 0, 0]))).toEqual({
      ok: false,
      reason: 'it refused the TLS negotiation (failure code 5)',
    });
    expect(parseConnectionConfirm(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'))).toMatchObject({ ok: false });
  });

  it('names a certificate as OpenSSH names keys, and as FreeRDP pins them', () => {
    const c = certificateOf(Buffer.from('not really DER'));
    expect(c.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(c.sha256Hex).toMatch(/^([0-9a-f]{2}:){31}[0-9a-f]{2}$/);
    expect(Buffer.from(c.sha256Hex.replaceAll(':', ''), 'hex').toString('base64').replace(/=+$/, '')).toBe(c.fingerprint.slice(7));
  });

  it('writes an Xauthority entry with one cookie for any display', () => {
    const cookie = Buffer.alloc(16, 7);
    const expected = Buffer.concat([
      Buffer.from('ffff' + '0000' + '0000' + '0012', 'hex'), // FamilyWild, no address, no display number
      Buffer.from('MIT-MAGIC-COOKIE-1'),
      Buffer.from('0010', 'hex'),
      cookie,
    ]);
    expect(xauthorityEntry(cookie)).toEqual(expected);
  });
});
