import { KeyObject, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ssh2Crypto, type Ssh2CipherInfo as CipherInfo } from './ssh2-crypto.js';
import { useGcmKeyObjects } from './ssh2-gcm-keys.js';

describe("ssh2's node:crypto AES-GCM with its key as a KeyObject", () => {
  it('changes both classes once, where ssh2 1.17 runs without its native binding', () => {
    const applied = useGcmKeyObjects();
    expect([...applied].sort()).toEqual(ssh2Crypto.bindingAvailable ? [] : ['AESGCMCipherNative', 'AESGCMDecipherNative']);
    expect(useGcmKeyObjects()).toBe(applied);
  });

  it.each(['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'])(
    '%s packets of every length decrypt to the same payloads, and a wrong key is refused',
    (name) => {
      useGcmKeyObjects();
      const info = ssh2Crypto.CIPHER_INFO[name] as CipherInfo;
      const key = randomBytes(info.keyLen);
      const iv = randomBytes(info.ivLen);
      const wire: Buffer[] = [];
      const cipher = ssh2Crypto.createCipher({
        outbound: {
          onWrite: (d: Buffer) => wire.push(Buffer.from(d)),
          cipherInfo: info,
          cipherKey: key,
          cipherIV: Buffer.from(iv),
          seqno: 0,
        },
      });
      const received: Buffer[] = [];
      const decipherWith = (k: Buffer) =>
        ssh2Crypto.createDecipher({
          inbound: {
            onPayload: (payload: Buffer) => void received.push(Buffer.from(payload)),
            decipherInfo: info,
            decipherKey: k,
            decipherIV: Buffer.from(iv),
            seqno: 0,
          },
        });
      const decipher = decipherWith(key);
      if (!ssh2Crypto.bindingAvailable) {
        expect((cipher as { _encKey?: unknown })._encKey).toBeInstanceOf(KeyObject);
        expect((decipher as { _decipherKey?: unknown })._decipherKey).toBeInstanceOf(KeyObject);
      }
      const payloads = [...Array.from({ length: 40 }, (_, n) => randomBytes(n)), randomBytes(32 * 1024)];
      for (const payload of payloads) {
        const packet = cipher.allocPacket(payload.length);
        payload.copy(packet, 5);
        cipher.encrypt(packet);
      }
      const all = Buffer.concat(wire);
      decipher.decrypt(all, 0, all.length);
      expect(received).toEqual(payloads);
      // The tag is still checked: another key fails the first packet.
      const wrong = randomBytes(info.keyLen);
      expect(() => decipherWith(wrong).decrypt(all, 0, all.length)).toThrow();
      cipher.free();
      decipher.free();
    },
  );
});
