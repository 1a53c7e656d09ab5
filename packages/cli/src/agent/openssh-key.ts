import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { GatehouseError } from '@gatehouse/core/errors';

/**
 * The agent's enrolled Ed25519 key in the formats SSH needs: ssh2's `hostKeys` reads an
 * OpenSSH private key but not PKCS#8 Ed25519, and the gateway pins the host key by the
 * fingerprint of its `ssh-ed25519` wire blob.
 */

const sshString = (value: Buffer | string): Buffer => {
  const body = typeof value === 'string' ? Buffer.from(value) : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  return Buffer.concat([length, body]);
};

const uint32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

function ed25519Parts(key: KeyObject): { seed: Buffer; publicKey: Buffer } {
  if (key.asymmetricKeyType !== 'ed25519') throw new GatehouseError('CONFIG_INVALID', 'The agent key is not an Ed25519 key.');
  const jwk = key.export({ format: 'jwk' });
  const seed = key.type === 'private' && jwk.d ? Buffer.from(jwk.d, 'base64url') : Buffer.alloc(0);
  return { seed, publicKey: Buffer.from(jwk.x ?? '', 'base64url') };
}

/** The `ssh-ed25519` public key blob (what a host key fingerprint is the SHA-256 of), from a private or public key PEM. */
export function sshPublicKeyBlob(pem: string): Buffer {
  const { publicKey } = ed25519Parts(createPublicKey(pem));
  return Buffer.concat([sshString('ssh-ed25519'), sshString(publicKey)]);
}

/** A PKCS#8 Ed25519 private key (PEM) as an unencrypted OpenSSH private key (`openssh-key-v1`). */
export function opensshPrivateKey(pkcs8Pem: string, comment = 'gatehouse-agent'): string {
  const { seed, publicKey } = ed25519Parts(createPrivateKey(pkcs8Pem));
  const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(publicKey)]);
  // The two equal check integers let a reader tell a wrong passphrase; random as ssh-keygen makes them.
  const check = randomBytes(4);
  const unpadded = Buffer.concat([
    check,
    check,
    sshString('ssh-ed25519'),
    sshString(publicKey),
    sshString(Buffer.concat([seed, publicKey])),
    sshString(comment),
  ]);
  // Padded with 1, 2, 3, … to the cipher's block size (8 for "none").
  const padding = Buffer.from(Array.from({ length: (8 - (unpadded.length % 8)) % 8 }, (_, i) => i + 1));
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    uint32(1),
    sshString(blob),
    sshString(Buffer.concat([unpadded, padding])),
  ]);
  const lines = body
    .toString('base64')
    .replace(/(.{70})/g, '$1\n')
    .trimEnd();
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines}\n-----END OPENSSH PRIVATE KEY-----\n`;
}
