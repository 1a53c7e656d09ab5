import { createSecretKey, KeyObject } from 'node:crypto';
import { ssh2Crypto } from './ssh2-crypto.js';

/**
 * Without its native binding (not built: it aborted Node 24 at a worker's exit) ssh2
 * encrypts and decrypts each AES-GCM packet with a node:crypto cipher made for that packet,
 * as GCM takes a new nonce per packet, from the key as a Buffer. Node then imports the raw
 * key into OpenSSL for every packet: `createCipheriv('aes-128-gcm', buffer, iv)` cost 25–29 µs
 * of CPU here, the same with a `KeyObject` 9–10 µs, and a relayed packet is decrypted and
 * encrypted once on each leg (`npm run bench:ssh-crypto`). This keeps ssh2's code and gives
 * it the key as a `KeyObject`: the key property of ssh2's AES-GCM cipher and decipher
 * (`_encKey`, `_decipherKey`, assigned once in their constructors) becomes an accessor on
 * the class that turns the Buffer it is given into a `KeyObject`. Applied only when the
 * classes' code is the one this was written against (ssh2 1.17); with the binding built
 * `createCipher` picks other classes and nothing is changed.
 */

/** ssh2's class, the key property, the method that reads it, and what that method must say (whitespace aside). */
const CLASSES = [
  {
    className: 'AESGCMCipherNative',
    property: '_encKey',
    method: 'encrypt',
    expected: 'createCipheriv(this._encSSLName, this._encKey, this._encIV)',
  },
  {
    className: 'AESGCMDecipherNative',
    property: '_decipherKey',
    method: 'decrypt',
    expected: 'createDecipheriv( this._decipherSSLName, this._decipherKey, this._decipherIV )',
  },
] as const;

const held = Symbol('gatehouse.gcmKey');

let applied: string[] | undefined;

/** Makes ssh2's node:crypto AES-GCM cipher and decipher keep their key as a KeyObject (once per process); answers the classes changed. */
export function useGcmKeyObjects(): readonly string[] {
  if (applied) return applied;
  applied = [];
  const crypto = ssh2Crypto;
  const info = crypto.CIPHER_INFO['aes128-gcm@openssh.com'];
  if (!info) return applied;
  const key = Buffer.alloc(info.keyLen);
  const iv = Buffer.alloc(info.ivLen);
  const instances = [
    crypto.createCipher({ outbound: { onWrite: () => undefined, cipherInfo: info, cipherKey: key, cipherIV: iv, seqno: 0 } }),
    crypto.createDecipher({
      inbound: { onPayload: () => undefined, decipherInfo: info, decipherKey: key, decipherIV: iv, seqno: 0 },
    }),
  ];
  for (const instance of instances) {
    instance.free();
    const prototype = Object.getPrototypeOf(instance) as Record<string, unknown> & { constructor: { name: string } };
    const spec = CLASSES.find((c) => c.className === prototype.constructor.name);
    if (!spec) continue;
    const method = prototype[spec.method];
    if (typeof method !== 'function') continue;
    const source = (method as () => unknown).toString().replace(/\s+/g, ' ');
    if (!source.includes(spec.expected) || Object.getOwnPropertyDescriptor(instance, spec.property) === undefined) continue;
    Object.defineProperty(prototype, spec.property, {
      configurable: true,
      get(this: { [held]?: KeyObject }) {
        return this[held];
      },
      set(this: { [held]?: KeyObject }, value: Buffer | KeyObject) {
        this[held] = value instanceof KeyObject ? value : createSecretKey(value);
      },
    });
    applied.push(spec.className);
  }
  return applied;
}
