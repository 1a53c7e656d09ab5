import { randomFillSync } from 'node:crypto';
import { ssh2Crypto } from './ssh2-crypto.js';

/**
 * SSH packets end in 4 to 19 bytes of random padding (RFC 4253 §6). ssh2 fills them with
 * one `crypto.randomFillSync` call per packet, which costs 4–13 µs here whatever the length:
 * in a CPU profile of a recorded 1 GiB download that was more of the gateway's main thread
 * than the AES-GCM encryption of the same packets. OpenSSH draws padding from a userspace
 * CSPRNG (arc4random_buf) for the same reason.
 *
 * This draws the padding of ssh2's AEAD ciphers (AES-GCM and ChaCha20-Poly1305, the ones
 * that encrypt the padding) from a pool of bytes filled by the same CSPRNG 4 KiB at a time;
 * every pooled byte is used once. It covers both of ssh2's implementations: the native
 * binding's (`…Binding`, when it is built) and the node:crypto ones (`…Native`, used since
 * the binding is not built: it aborted Node 24 at a worker's exit). The packet's layout is
 * exactly ssh2's (the binding's leaves 16 bytes for the tag after it, node:crypto's not).
 * Other ciphers, and the unencrypted packets of the first key exchange, keep ssh2's own
 * code. ssh2 does not export these classes: they are found through `createCipher`, and
 * each `allocPacket` is replaced only if its source is the one this was written against
 * (ssh2 1.17), so a changed ssh2 keeps its own code and the unit test says so.
 */

const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let poolUsed = POOL_BYTES;

/** Copies `length` bytes of fresh CSPRNG output into `target` at `offset`. */
export function fillPadding(target: Buffer, offset: number, length: number): void {
  if (poolUsed + length > POOL_BYTES) {
    randomFillSync(pool);
    poolUsed = 0;
  }
  pool.copy(target, offset, poolUsed, poolUsed + length);
  poolUsed += length;
}

interface PacketAllocator {
  allocPacket(payloadLen: number): Buffer;
}

/**
 * The AEAD ciphers whose padding is pooled: ssh2's name, its class for it (the binding's or
 * node:crypto's, whichever `createCipher` picks), the cipher block size, and the bytes left
 * for the tag after the packet (the binding's encrypt in place; node:crypto's write the tag apart).
 */
const AEAD = [
  { name: 'aes128-gcm@openssh.com', className: 'AESGCMCipherBinding', block: 16, tagRoom: 16 },
  { name: 'chacha20-poly1305@openssh.com', className: 'ChaChaPolyCipherBinding', block: 8, tagRoom: 16 },
  { name: 'aes128-gcm@openssh.com', className: 'AESGCMCipherNative', block: 16, tagRoom: 0 },
  { name: 'chacha20-poly1305@openssh.com', className: 'ChaChaPolyCipherNative', block: 8, tagRoom: 0 },
] as const;

/** What each replaced `allocPacket` must say, in ssh2's words (whitespace aside). */
function expectedSource(block: number, tagRoom: number): string[] {
  return [
    `let padLen = ${block} - ((pktLen - 4) & (${block} - 1));`,
    `if (padLen < 4) padLen += ${block};`,
    tagRoom ? `const packet = Buffer.allocUnsafe(pktLen + ${tagRoom}` : 'const packet = Buffer.allocUnsafe(pktLen);',
    'writeUInt32BE(packet, pktLen - 4, 0);',
    'packet[4] = padLen;',
    'randomFillSync(packet, 5 + payloadLen, padLen);',
  ];
}

/** ssh2's AEAD packet layout: length, padding length, payload, padding to `block`, `tagRoom` bytes for the tag. */
function aeadAllocPacket(block: number, tagRoom: number): (payloadLen: number) => Buffer {
  return function allocPacket(payloadLen: number): Buffer {
    let pktLen = 4 + 1 + payloadLen;
    let padLen = block - ((pktLen - 4) & (block - 1));
    if (padLen < 4) padLen += block;
    pktLen += padLen;
    const packet = Buffer.allocUnsafe(pktLen + tagRoom);
    packet.writeUInt32BE(pktLen - 4, 0);
    packet[4] = padLen;
    fillPadding(packet, 5 + payloadLen, padLen);
    return packet;
  };
}

let applied: string[] | undefined;

/**
 * Makes ssh2's AEAD ciphers take their padding from the pool (once per process). Answers
 * the classes it changed (those `createCipher` uses here): none when ssh2's code is not
 * the expected one.
 */
export function usePooledPadding(): readonly string[] {
  if (applied) return applied;
  applied = [];
  const crypto = ssh2Crypto;
  for (const { name, className, block, tagRoom } of AEAD) {
    const info = crypto.CIPHER_INFO[name];
    if (!info) continue;
    const cipher = crypto.createCipher({
      outbound: {
        onWrite: () => undefined,
        cipherInfo: info,
        cipherKey: Buffer.alloc(info.keyLen),
        cipherIV: Buffer.alloc(info.ivLen),
        seqno: 0,
      },
    });
    cipher.free();
    const prototype = Object.getPrototypeOf(cipher) as PacketAllocator & { constructor: { name: string } };
    if (prototype.constructor.name !== className) continue;
    const source = prototype.allocPacket.toString().replace(/\s+/g, ' ');
    if (!expectedSource(block, tagRoom).every((line) => source.includes(line))) continue;
    prototype.allocPacket = aeadAllocPacket(block, tagRoom);
    applied.push(className);
  }
  return applied;
}
