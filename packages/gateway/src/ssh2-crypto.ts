import { createRequire } from 'node:module';

/**
 * ssh2 1.17's packet ciphers (`ssh2/lib/protocol/crypto.js`, not part of its public API),
 * as the gateway's changes to them (`ssh2-padding.ts`, `ssh2-gcm-keys.ts`), their tests and
 * `bench:ssh-crypto` reach them.
 */

const require = createRequire(import.meta.url);

export interface Ssh2CipherInfo {
  keyLen: number;
  ivLen: number;
}

export interface Ssh2Cipher {
  allocPacket(payloadLen: number): Buffer;
  encrypt(packet: Buffer): void;
  free(): void;
}

export interface Ssh2Decipher {
  decrypt(data: Buffer, p: number, dataLen: number): unknown;
  free(): void;
}

export interface Ssh2Crypto {
  /** Whether ssh2's optional native binding is built (it is not: allowScripts "ssh2": false). */
  bindingAvailable: boolean;
  /** Loads the Poly1305 WebAssembly that ssh2's node:crypto ChaCha20-Poly1305 needs. */
  init: Promise<void>;
  CIPHER_INFO: Record<string, Ssh2CipherInfo>;
  createCipher(config: {
    outbound: { onWrite: (data: Buffer) => unknown; cipherInfo: Ssh2CipherInfo; cipherKey: Buffer; cipherIV: Buffer; seqno: number };
  }): Ssh2Cipher;
  createDecipher(config: {
    inbound: {
      onPayload: (payload: Buffer) => unknown;
      decipherInfo: Ssh2CipherInfo;
      decipherKey: Buffer;
      decipherIV: Buffer;
      seqno: number;
    };
  }): Ssh2Decipher;
}

export const ssh2Crypto = require('ssh2/lib/protocol/crypto.js') as Ssh2Crypto;
