import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GatehouseError } from '@gatehouse/core/errors';

/**
 * A key pair that proves who is at each end of a management connection between the
 * server and a gateway. Each side pins the other's public key; the TLS certificate is
 * only the carrier TLS requires (self-signed, never checked against a CA).
 */
export interface LinkIdentity {
  /** PKCS#8 PEM. */
  privateKey: string;
  /** A self-signed certificate for the key, PEM. */
  certificate: string;
  /** The public key as it is registered and pinned: base64 of the SPKI DER (`MCowBQYDK2VwAyEA…`). */
  publicKey: string;
  /** `SHA256:<base64>` of the SPKI DER. */
  fingerprint: string;
}

export const GATEWAY_KEY_FILE = 'gateway_ed25519_key.pem';

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** A new Ed25519 identity. */
export function generateLinkIdentity(commonName: string): LinkIdentity {
  const { privateKey } = generateKeyPairSync('ed25519');
  return linkIdentityOf(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), commonName);
}

/** The identity of an Ed25519 private key (PKCS#8 PEM), with a certificate made for it now. */
export function linkIdentityOf(privateKeyPem: string, commonName: string): LinkIdentity {
  const key = createPrivateKey(privateKeyPem);
  if (key.asymmetricKeyType !== 'ed25519') throw new GatehouseError('VALIDATION_FAILED', 'The key is not an Ed25519 key.');
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  return {
    privateKey: privateKeyPem,
    certificate: selfSignedCertificate(key, spki, commonName),
    publicKey: spki.toString('base64'),
    fingerprint: fingerprintOfSpki(spki),
  };
}

/**
 * The gateway's identity in `<dir>/gateway_ed25519_key.pem`, generated there once (file
 * 0600, directory 0700) so the key an administrator registered stays valid across restarts.
 */
export function loadOrCreateGatewayIdentity(dir: string): LinkIdentity & { generated: boolean } {
  const file = path.join(dir, GATEWAY_KEY_FILE);
  if (existsSync(file)) {
    let pem: string;
    try {
      pem = readFileSync(file, 'utf8');
      return { ...linkIdentityOf(pem, 'gatehouse-gateway'), generated: false };
    } catch (error) {
      throw new GatehouseError(
        'CONFIG_INVALID',
        `${file} does not hold an Ed25519 private key (${(error as Error).message}). ` +
          'Restore the file from a backup, or remove it to generate a new key (the gateway must then be registered again).',
      );
    }
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const identity = generateLinkIdentity('gatehouse-gateway');
  // Written under another name and renamed: a crash never leaves half a key in place.
  const partial = `${file}.partial`;
  writeFileSync(partial, identity.privateKey, { mode: 0o600 });
  chmodSync(partial, 0o600);
  renameSync(partial, file);
  return { ...identity, generated: true };
}

/**
 * Parses a public key as an administrator pastes it: base64 SPKI DER (what the gateway
 * prints), or the same in a PEM block. Answers the canonical base64, or an error that says
 * what is wrong without echoing the input.
 */
export function parseLinkPublicKey(text: string): { ok: true; publicKey: string; fingerprint: string } | { ok: false; message: string } {
  const body = text
    .replace(/-----(BEGIN|END) PUBLIC KEY-----/g, '')
    .replace(/\s+/g, '')
    .trim();
  if (body === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) {
    return { ok: false, message: 'must be the base64 public key the gateway printed at its first start (MCowBQYDK2VwAyEA…)' };
  }
  const der = Buffer.from(body, 'base64');
  if (der.length !== 44 || !der.subarray(0, 12).equals(ED25519_SPKI_PREFIX)) {
    return { ok: false, message: 'is not an Ed25519 public key; copy the whole key the gateway printed (it starts with MCowBQYDK2VwAyEA)' };
  }
  try {
    createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch {
    return { ok: false, message: 'is not a valid Ed25519 public key' };
  }
  return { ok: true, publicKey: der.toString('base64'), fingerprint: fingerprintOfSpki(der) };
}

export function fingerprintOfSpki(spki: Buffer): string {
  return `SHA256:${createHash('sha256').update(spki).digest('base64').replace(/=+$/, '')}`;
}

/** The public key (base64 SPKI DER) of a peer's certificate, as `parseLinkPublicKey` answers it. */
export function publicKeyOfCertificate(cert: X509Certificate): string {
  return cert.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
}

// A self-signed X.509 v3 certificate, DER-encoded by hand: the only library that builds
// Ed25519 certificates (@peculiar/x509) needs a global reflect-metadata polyfill, and
// selfsigned (node-forge) makes RSA only. Nothing checks this certificate's chain or
// dates: the key inside it is what each side pins.

function selfSignedCertificate(key: KeyObject, spki: Buffer, commonName: string): string {
  const ed25519 = der(0x30, oid([1, 3, 101, 112]));
  const name = der(0x30, der(0x31, der(0x30, oid([2, 5, 4, 3]), der(0x0c, Buffer.from(commonName, 'utf8')))));
  const serial = randomBytes(16);
  // A positive INTEGER in minimal form: the top bit clear (else it reads as negative) and
  // the first byte not zero (DER forbids a leading zero byte before one below 0x80).
  serial[0] = ((serial[0] as number) & 0x7f) | 0x40;
  const now = Date.now();
  const tbs = der(
    0x30,
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, serial),
    ed25519,
    name,
    der(0x30, time(new Date(now - 86_400_000)), der(0x18, Buffer.from('99991231235959Z', 'ascii'))),
    name,
    spki,
  );
  const signature = sign(null, tbs, key);
  const cert = der(0x30, tbs, ed25519, der(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const pem = `-----BEGIN CERTIFICATE-----\n${cert
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trimEnd()}\n-----END CERTIFICATE-----\n`;
  // Parsed once, so a mistake here fails at start and not in a peer's TLS stack.
  new X509Certificate(pem);
  return pem;
}

function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

function oid(parts: number[]): Buffer {
  const [a = 0, b = 0, ...rest] = parts;
  const bytes = [40 * a + b];
  for (const part of rest) {
    const chunk = [part & 0x7f];
    for (let v = part >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return der(0x06, Buffer.from(bytes));
}

function time(date: Date): Buffer {
  const s = date.toISOString().replace(/[-:T]/g, '').slice(2, 14);
  return der(0x17, Buffer.from(`${s}Z`, 'ascii'));
}
