import { describe, expect, it } from 'vitest';
import { vncAuthResponse, vncPasswordFile } from './des.js';

describe('VNC DES', () => {
  it('writes the password file vncpasswd -f writes', () => {
    // printf 'secret12\n' | vncpasswd -f | xxd -p (TigerVNC 1.12)
    expect(vncPasswordFile('secret12').toString('hex')).toBe('24b5ae4ce15503c6');
    expect(vncPasswordFile('abc').toString('hex')).toBe('9c0a172d3482e122');
    // Only the first 8 characters count.
    expect(vncPasswordFile('longerpassword').toString('hex')).toBe('3304170a9da9af69');
  });

  it('answers a VncAuth challenge with DES under the bit-reversed password', () => {
    // openssl enc -des-ecb -nopad -K 0e86ceceeef64e26 (bit-reversed "password") of 00..0f
    const challenge = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
    expect(vncAuthResponse(challenge, 'password').toString('hex')).toBe('b866924125c8eebb9debc1db61c538e2');
    expect(vncAuthResponse(challenge, 'password-and-more')).toEqual(vncAuthResponse(challenge, 'password'));
  });
});
