import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ssh2, { type ParsedKey } from 'ssh2';

export interface GatewayHostKey {
  /** The private key in OpenSSH format, for the SSH server. */
  privateKey: string;
  /** The public key line (`ssh-ed25519 AAAA… gatehouse-gateway`). */
  publicKey: string;
  /** `SHA256:<base64>`, as `ssh-keygen -l` and OpenSSH's prompts print it. */
  fingerprint: string;
  /** True when this start generated the key. */
  generated: boolean;
}

export const HOST_KEY_FILE = 'ssh_host_ed25519_key';

/** The OpenSSH fingerprint of a public key blob (the SSH wire encoding). */
export function fingerprintOf(publicKeyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named at the start of an SSH public key blob, e.g. `ssh-ed25519`. */
export function keyTypeOf(publicKeyBlob: Buffer): string {
  if (publicKeyBlob.length < 4) return 'unknown';
  const length = publicKeyBlob.readUInt32BE(0);
  if (length > 64 || publicKeyBlob.length < 4 + length) return 'unknown';
  return publicKeyBlob.subarray(4, 4 + length).toString('latin1');
}

/**
 * The gateway's Ed25519 host key: read from `<dir>/ssh_host_ed25519_key`, or generated
 * there once (file mode 0600, directory 0700) so clients see the same key after restarts.
 */
export function loadOrCreateHostKey(dir: string): GatewayHostKey {
  const file = path.join(dir, HOST_KEY_FILE);
  let generated = false;
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'gatehouse-gateway' });
    // wx: two processes starting at once must not overwrite each other's key.
    writeFileSync(file, pair.private, { mode: 0o600, flag: 'wx' });
    generated = true;
  }
  chmodSync(file, 0o600);
  const privateKey = readFileSync(file, 'utf8');
  const parsed = ssh2.utils.parseKey(privateKey);
  if (parsed instanceof Error)
    throw new Error(`The gateway host key ${file} cannot be read: ${parsed.message}. Remove it to generate a new one.`);
  // parseKey answers one key for an OpenSSH private key file (the types allow no array).
  const key: ParsedKey | undefined = parsed;
  if (!key) throw new Error(`The gateway host key ${file} holds no key. Remove it to generate a new one.`);
  const blob = key.getPublicSSH();
  return {
    privateKey,
    publicKey: `${key.type} ${blob.toString('base64')} gatehouse-gateway`,
    fingerprint: fingerprintOf(blob),
    generated,
  };
}
