import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { signingKeyFingerprint, type AuditCheckpoint } from '@gatehouse/core';

export { signingKeyFingerprint };

export const MANIFEST_FORMAT = 'gatehouse-breakglass/1';

/** What the reader checks before trusting an export: who made it, when, and that the file is whole. */
export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  generatedAt: string;
  /** The object name of the sealed workbook. */
  object: string;
  bytes: number;
  sha256: string;
  sealing: 'age' | 'passphrase' | 'none';
  recipients: string[];
  counts: { projects: number; devices: number; accounts: number; privateKeys: number };
  /** Fingerprint of the Ed25519 key that signed this manifest. */
  signingKey: string;
  /** The audit chain's head when the export ran, signed with the audit checkpoint key (`audit verify --checkpoint`). */
  auditCheckpoint?: AuditCheckpoint;
}

export interface SignedManifest extends Manifest {
  /** Ed25519 signature (base64) over the canonical JSON of every other field. */
  signature: string;
}

/** JSON with keys sorted at every level, so the signed bytes do not depend on key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export interface SigningKeyPair {
  privateKeyPem: string;
  publicKeyPem: string;
  fingerprint: string;
}

export function generateSigningKey(): SigningKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem,
    fingerprint: signingKeyFingerprint(publicKey),
  };
}

export function signManifest(manifest: Omit<Manifest, 'signingKey' | 'format'>, privateKeyPem: string): SignedManifest {
  const privateKey = createPrivateKey(privateKeyPem);
  const body: Manifest = { format: MANIFEST_FORMAT, ...manifest, signingKey: signingKeyFingerprint(createPublicKey(privateKey)) };
  const signature = sign(null, Buffer.from(canonicalJson(body)), privateKey).toString('base64');
  return { ...body, signature };
}

export type ManifestCheck = { ok: true; manifest: SignedManifest } | { ok: false; reason: string };

/** Checks the manifest's format and signature against the public key kept offline. */
export function verifyManifest(text: string, publicKeyPem: string): ManifestCheck {
  let parsed: SignedManifest | null = null;
  try {
    parsed = JSON.parse(text) as SignedManifest | null;
  } catch {
    // Said below, as for JSON that is not an object.
  }
  if (parsed === null || typeof parsed !== 'object') return { ok: false, reason: 'the manifest is not valid JSON' };
  const format: unknown = parsed.format;
  if (format !== MANIFEST_FORMAT)
    return { ok: false, reason: `the manifest format is ${JSON.stringify(format)}, expected ${MANIFEST_FORMAT}` };
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(publicKeyPem);
  } catch {
    return { ok: false, reason: 'the signing public key is not a PEM Ed25519 public key' };
  }
  const { signature, ...body } = parsed;
  if (body.signingKey !== signingKeyFingerprint(publicKey)) {
    return {
      ok: false,
      reason: `the manifest was signed by key ${body.signingKey}, not by the key you gave (${signingKeyFingerprint(publicKey)})`,
    };
  }
  const good = typeof signature === 'string' && verify(null, Buffer.from(canonicalJson(body)), publicKey, Buffer.from(signature, 'base64'));
  return good ? { ok: true, manifest: parsed } : { ok: false, reason: 'the manifest signature does not verify: it was altered or forged' };
}
