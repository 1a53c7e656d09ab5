import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync, type Stats } from 'node:fs';
import path from 'node:path';
import ssh2, { type ParsedKey } from 'ssh2';
import { GatehouseError } from '@gatehouse/core';

export interface GatewayHostKey {
  /** The private key in OpenSSH format, for the SSH server. */
  privateKey: string;
  /** The public key line (`ssh-ed25519 AAAA… gatehouse-gateway`). */
  publicKey: string;
  /** `SHA256:<base64>`, as `ssh-keygen -l` and OpenSSH's prompts print it. */
  fingerprint: string;
  /** True when this start generated the key. */
  generated: boolean;
  /** The file it was read from. */
  file: string;
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
 * An Ed25519 key pair in OpenSSH format that ssh2 can read back. ssh2's generator drops a
 * leading zero byte of the public key (about 1 key in 256 comes out 31 bytes long and
 * "Malformed"), so such a key is thrown away and another made.
 */
export function generateEd25519KeyPair(comment: string): { private: string; public: string } {
  for (;;) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment });
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error) && !(ssh2.utils.parseKey(pair.public) instanceof Error)) return pair;
  }
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
    const pair = generateEd25519KeyPair('gatehouse-gateway');
    // wx: two processes starting at once must not overwrite each other's key.
    writeFileSync(file, pair.private, { mode: 0o600, flag: 'wx' });
    generated = true;
  }
  chmodSync(file, 0o600);
  const privateKey = readFileSync(file, 'utf8');
  // parseKey answers one key for an OpenSSH private key file (the types allow no array).
  const parsed: ParsedKey | Error | undefined = ssh2.utils.parseKey(privateKey);
  if (parsed instanceof Error || !parsed)
    throw new GatehouseError(
      'CONFIG_INVALID',
      `The gateway host key ${file} cannot be read: ${parsed?.message ?? 'it holds no key'}. Remove it to generate a new one.`,
    );
  return hostKeyOf(parsed, privateKey, file, generated);
}

/**
 * The gateway's host key from a file the operator made (`ssh-keygen -t ed25519 -N ''`, a
 * mounted Kubernetes Secret), so every replica and every restart presents the same key.
 * Refused, naming `setting`, when it cannot be read, is not a private key, is encrypted,
 * or other users may read it. Nothing of the file's content enters a message.
 */
export function readHostKeyFile(file: string, setting: string): GatewayHostKey {
  const refuse = (problem: string) => new GatehouseError('CONFIG_INVALID', `${setting}: the SSH host key file ${file} ${problem}`);
  let stats: Stats;
  let privateKey: string;
  try {
    stats = statSync(file);
    privateKey = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw refuse(`cannot be read (${code}). Check the path, and that the user the gateway runs as may read it.`);
  }
  const parsed: ParsedKey | Error | undefined = ssh2.utils.parseKey(privateKey);
  if (parsed instanceof Error && /encrypted/i.test(parsed.message))
    throw refuse(
      "is encrypted with a passphrase, which the gateway cannot type at start. Remove it (ssh-keygen -p -N '' -f <copy>) or make a new key: ssh-keygen -t ed25519 -N '' -f <file>",
    );
  if (parsed instanceof Error || !parsed || !parsed.isPrivateKey())
    throw refuse(
      `is not an SSH private key${parsed && !(parsed instanceof Error) ? ' (it holds a public key)' : ''}. Make one with: ssh-keygen -t ed25519 -N '' -f <file>`,
    );
  const exposed = exposureOf(stats);
  if (exposed) throw refuse(`may be read by ${exposed}. A private key must be readable by its owner only: chmod 600 ${file}`);
  return hostKeyOf(parsed, privateKey, file, false);
}

/**
 * Who besides the owner may read a key file, or null. OpenSSH's rule for a key this user
 * owns: no group or other permission bits. A file another user owns may be group-readable:
 * a Kubernetes Secret mounted in a pod with fsGroup is root:<fsGroup> mode 0440 whatever
 * its defaultMode (kubernetes/kubernetes#57923), and root:<service group> 0640 is the usual
 * way to hand a service a root-owned key.
 */
function exposureOf(stats: Stats): string | null {
  if ((stats.mode & 0o007) !== 0) return 'every user of this machine';
  if ((stats.mode & 0o070) !== 0 && stats.uid === process.getuid?.()) return 'its group';
  return null;
}

function hostKeyOf(key: ParsedKey, privateKey: string, file: string, generated: boolean): GatewayHostKey {
  const blob = key.getPublicSSH();
  return {
    privateKey,
    publicKey: `${key.type} ${blob.toString('base64')} gatehouse-gateway`,
    fingerprint: fingerprintOf(blob),
    generated,
    file,
  };
}

/**
 * The OpenSSH public key line (`ssh-ed25519 AAAA…`, no comment) of a private key, or null
 * when it cannot be read (a wrong passphrase, not a key). Never echoes the key.
 */
export function publicKeyLineOf(privateKey: string, passphrase?: string | null): string | null {
  const parsed = ssh2.utils.parseKey(privateKey, passphrase ?? undefined);
  if (parsed instanceof Error || !parsed) return null;
  const key: ParsedKey = parsed;
  return `${key.type} ${key.getPublicSSH().toString('base64')}`;
}

/** Key types a user may sign in with (what ssh2 verifies); DSA is refused as OpenSSH does. */
const USER_KEY_TYPES = new Set(['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa']);

/**
 * Parses a user's public key as pasted from an OpenSSH `.pub` file (`ssh-ed25519 AAAA… comment`).
 * Answers the type, the base64 blob and the fingerprint, or what is wrong, never echoing
 * the input (a private key pasted by mistake must not show up in an error).
 */
export function parseUserPublicKey(
  text: string,
): { ok: true; algorithm: string; blob: string; fingerprint: string; comment: string } | { ok: false; message: string } {
  const trimmed = text.trim();
  if (/PRIVATE KEY/.test(trimmed)) {
    return { ok: false, message: 'is a private key; paste the public key (the .pub file) instead, and keep the private key to yourself' };
  }
  const [type = '', data = '', ...rest] = trimmed.split(/\s+/);
  const parsed = ssh2.utils.parseKey(`${type} ${data}`);
  if (parsed instanceof Error || !parsed) {
    return {
      ok: false,
      message: 'is not an OpenSSH public key; paste one line of a .pub file (ssh-ed25519 AAAA… or ecdsa-sha2-… or ssh-rsa …)',
    };
  }
  const key: ParsedKey = parsed;
  if (!USER_KEY_TYPES.has(key.type))
    return { ok: false, message: `has type ${key.type}, which Gatehouse does not accept; use ssh-ed25519, ECDSA or RSA` };
  const blob = key.getPublicSSH();
  return {
    ok: true,
    algorithm: key.type,
    blob: blob.toString('base64'),
    fingerprint: fingerprintOf(blob),
    comment: rest.join(' ').slice(0, 100),
  };
}

/**
 * Whether `signature` over `signed` was made by the key in `blob` (an SSH public key
 * blob; its type is read from the blob, since the request may name rsa-sha2-256 for an
 * ssh-rsa key): the check behind publickey sign-in.
 */
export function verifyUserKeySignature(blob: Buffer, signed: Buffer, signature: Buffer, hashAlgo?: string): boolean {
  const parsed = ssh2.utils.parseKey(`${keyTypeOf(blob)} ${blob.toString('base64')}`);
  if (parsed instanceof Error || !parsed) return false;
  const key: ParsedKey = parsed;
  return key.verify(signed, signature, hashAlgo) === true;
}
