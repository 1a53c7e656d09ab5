import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { ssh2Crypto, type Ssh2CipherInfo as CipherInfo } from './ssh2-crypto.js';
import { fillPadding, usePooledPadding } from './ssh2-padding.js';

/** A packet through ssh2's cipher and back through its decipher: what OpenSSH would read. */
function roundTrip(name: string, payloads: Buffer[]): { received: Buffer[]; paddings: Buffer[] } {
  const info = ssh2Crypto.CIPHER_INFO[name] as CipherInfo;
  const key = randomBytes(info.keyLen);
  const iv = randomBytes(info.ivLen);
  const wire: Buffer[] = [];
  const cipher = ssh2Crypto.createCipher({
    outbound: { onWrite: (d: Buffer) => wire.push(Buffer.from(d)), cipherInfo: info, cipherKey: key, cipherIV: Buffer.from(iv), seqno: 0 },
  });
  const received: Buffer[] = [];
  const decipher = ssh2Crypto.createDecipher({
    inbound: {
      onPayload: (payload: Buffer) => void received.push(Buffer.from(payload)),
      decipherInfo: info,
      decipherKey: key,
      decipherIV: Buffer.from(iv),
      seqno: 0,
    },
  });
  const paddings: Buffer[] = [];
  for (const payload of payloads) {
    const packet = cipher.allocPacket(payload.length);
    const padLen = packet[4] as number;
    const length = packet.readUInt32BE(0);
    // RFC 4253 §6: 4+ bytes of padding; with these ciphers the length field is not encrypted, the rest is whole blocks.
    expect(padLen).toBeGreaterThanOrEqual(4);
    expect(length).toBe(1 + payload.length + padLen);
    expect(length % (name.startsWith('aes') ? 16 : 8)).toBe(0);
    // The native binding's ciphers leave room for the tag after the packet; ssh2's JavaScript fallbacks do not.
    expect(packet.length).toBe(4 + length + (ssh2Crypto.bindingAvailable ? 16 : 0));
    paddings.push(Buffer.from(packet.subarray(5 + payload.length, 5 + payload.length + padLen)));
    payload.copy(packet, 5);
    cipher.encrypt(packet);
  }
  const all = Buffer.concat(wire);
  decipher.decrypt(all, 0, all.length);
  cipher.free();
  decipher.free();
  return { received, paddings };
}

describe("ssh2's packet padding from a pooled CSPRNG", () => {
  beforeAll(() => ssh2Crypto.init);

  it("replaces the AEAD ciphers' padding, with ssh2's native binding or without it (ssh2 1.17's code)", () => {
    const applied = usePooledPadding();
    const kind = ssh2Crypto.bindingAvailable ? 'Binding' : 'Native';
    expect([...applied].sort()).toEqual([`AESGCMCipher${kind}`, `ChaChaPolyCipher${kind}`]);
    // Once per process.
    expect(usePooledPadding()).toBe(applied);
  });

  it.each(['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com'])(
    '%s packets decrypt with ssh2 to the same payloads, every length and across pool refills',
    (name) => {
      usePooledPadding();
      const payloads = [...Array.from({ length: 70 }, (_, n) => randomBytes(n)), randomBytes(32 * 1024 + 9)];
      // Enough packets to use up the 4 KiB pool several times.
      for (let i = 0; i < 1500; i++) payloads.push(randomBytes(1 + (i % 40)));
      const { received, paddings } = roundTrip(name, payloads);
      expect(received).toEqual(payloads);
      // Fresh bytes each time: no two paddings of 8+ bytes alike.
      const seen = new Set(paddings.filter((p) => p.length >= 8).map((p) => p.toString('hex')));
      expect(seen.size).toBe(paddings.filter((p) => p.length >= 8).length);
    },
  );

  it('hands out each pooled byte once', () => {
    const out = Buffer.alloc(64 * 1024);
    for (let at = 0; at < out.length; at += 16) fillPadding(out, at, 16);
    const blocks = new Set<string>();
    for (let at = 0; at < out.length; at += 16) blocks.add(out.subarray(at, at + 16).toString('hex'));
    expect(blocks.size).toBe(out.length / 16);
  });
});
