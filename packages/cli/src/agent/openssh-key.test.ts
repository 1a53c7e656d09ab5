import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { opensshPrivateKey, sshPublicKeyBlob } from './openssh-key.js';

describe('opensshPrivateKey', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const spki = publicKey.export({ type: 'spki', format: 'pem' }).toString();

  it('is read by ssh2 as the same Ed25519 key, which signs what the PKCS#8 public key verifies', () => {
    const key = ssh2.utils.parseKey(opensshPrivateKey(pkcs8));
    if (key instanceof Error) throw key;
    expect(key.type).toBe('ssh-ed25519');
    expect(key.isPrivateKey()).toBe(true);
    expect(key.getPublicSSH().equals(sshPublicKeyBlob(spki))).toBe(true);
    const data = Buffer.from('host key proof');
    const signature = key.sign(data);
    expect(signature).toBeInstanceOf(Buffer);
    expect(verify(null, data, createPublicKey(spki), signature)).toBe(true);
  });

  it('gives the blob from the private key too, and refuses a key that is not Ed25519', () => {
    expect(sshPublicKeyBlob(pkcs8).equals(sshPublicKeyBlob(spki))).toBe(true);
    expect(sshPublicKeyBlob(spki).subarray(4, 15).toString()).toBe('ssh-ed25519');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(() => opensshPrivateKey(rsa)).toThrow(/not an Ed25519 key/);
  });
});
