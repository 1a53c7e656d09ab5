import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { signingKeyFingerprint } from './audit-checkpoint.js';

export const RECORDING_SIGNATURE_FORMAT = 'gatehouse-recording-signature/1';

/**
 * A finished recording's SHA-256, signed by the server's signing key (the audit checkpoint
 * key). Kept in the session's row and beside the file as `<recording>.sig`, so a copy of the
 * recording can be checked offline with nothing but the server's public key.
 */
export interface RecordingSignature {
  format: typeof RECORDING_SIGNATURE_FORMAT;
  algorithm: 'ed25519';
  /** The session the recording belongs to. */
  sessionId: string;
  /** The recording's size in bytes and SHA-256 (hex). */
  size: number;
  sha256: string;
  /** When it was signed (ISO-8601 UTC). */
  signedAt: string;
  /** Fingerprint of the Ed25519 key that signed it (`SHA256:<base64>` of the raw key, as OpenSSH shows keys). */
  keyId: string;
  /** SHA-256 (hex) of the public key's DER SubjectPublicKeyInfo: `openssl pkey -pubin -outform DER | sha256sum`. */
  publicKeyFingerprint: string;
  /** Ed25519 signature (base64) over format, algorithm, sessionId, size, sha256, signedAt and keyId. */
  signature: string;
}

export const recordingSignatureSchema = z.strictObject({
  format: z.literal(RECORDING_SIGNATURE_FORMAT),
  algorithm: z.literal('ed25519'),
  sessionId: z.string().min(1).max(100),
  size: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  signedAt: z.string().min(1).max(64),
  keyId: z.string().min(1).max(200),
  publicKeyFingerprint: z.string().regex(/^[0-9a-f]{64}$/),
  signature: z.string().min(1).max(200),
});

/** SHA-256 (hex) of a public key's DER SubjectPublicKeyInfo. */
export function publicKeyDerFingerprint(publicKey: KeyObject | string): string {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  return createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

// The format comes first, so these bytes never read as an audit checkpoint's (the same key signs both).
const signedBytes = (s: Omit<RecordingSignature, 'signature' | 'publicKeyFingerprint'>) =>
  Buffer.from(JSON.stringify([s.format, s.algorithm, s.sessionId, s.size, s.sha256, s.signedAt, s.keyId]));

/** The SHA-256 (hex) and size of a recording read as a stream. */
export async function hashRecording(bytes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of bytes) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

/** Signs a recording's hash with an Ed25519 private key (PEM). */
export function signRecording(
  recording: { sessionId: string; sha256: string; size: number },
  privateKeyPem: string,
  now = new Date(),
): RecordingSignature {
  return recordingSigner(privateKeyPem)(recording, now);
}

/**
 * `signRecording` with one key, parsed and fingerprinted once: the server signs every
 * recording with the same key, and parsing it each time was a third of a signature's CPU.
 */
export function recordingSigner(
  privateKeyPem: string,
): (recording: { sessionId: string; sha256: string; size: number }, now?: Date) => RecordingSignature {
  const privateKey = createPrivateKey(privateKeyPem);
  const publicKey = createPublicKey(privateKey);
  const keyId = signingKeyFingerprint(publicKey);
  const publicKeyFingerprint = publicKeyDerFingerprint(publicKey);
  return (recording, now = new Date()) => {
    const body = {
      format: RECORDING_SIGNATURE_FORMAT,
      algorithm: 'ed25519',
      sessionId: recording.sessionId,
      size: recording.size,
      sha256: recording.sha256,
      signedAt: now.toISOString(),
      keyId,
    } as const;
    return { ...body, publicKeyFingerprint, signature: sign(null, signedBytes(body), privateKey).toString('base64') };
  };
}

export type RecordingCheck =
  { ok: true; signature: RecordingSignature } | { ok: false; problem: 'form' | 'key' | 'signature' | 'content'; reason: string };

/**
 * Checks a recording (its hash and size) against a signature document and the public key
 * (PEM) the reader trusts: the document's form, that the key is the one that signed, that
 * the signature verifies, then that the recording is the one signed.
 */
export function checkRecordingSignature(recording: { sha256: string; size: number }, value: unknown, publicKeyPem: string): RecordingCheck {
  const parsed = recordingSignatureSchema.safeParse(value);
  if (!parsed.success) {
    const fields = [...new Set(parsed.error.issues.map((i) => i.path.join('.') || '(the object)'))].join(', ');
    return {
      ok: false,
      problem: 'form',
      reason: `the signature is not a recording signature (${RECORDING_SIGNATURE_FORMAT}): check ${fields}`,
    };
  }
  let publicKey: KeyObject | undefined;
  try {
    publicKey = createPublicKey(publicKeyPem);
  } catch {
    // Said below, as for a key of another type.
  }
  if (publicKey?.asymmetricKeyType !== 'ed25519')
    return { ok: false, problem: 'key', reason: 'the public key is not a PEM Ed25519 public key' };
  // The DER fingerprint is a convenience for checks without us, derived from the key: not signed.
  const { signature, ...body } = parsed.data;
  const keyId = signingKeyFingerprint(publicKey);
  if (body.keyId !== keyId) {
    return {
      ok: false,
      problem: 'key',
      reason: `it was signed by key ${body.keyId}, not by the public key you gave (${keyId}): use the server's key (gatehouse sessions signing-key)`,
    };
  }
  if (!verify(null, signedBytes(body), publicKey, Buffer.from(signature, 'base64'))) {
    return { ok: false, problem: 'signature', reason: 'the signature does not verify: the signature file was altered or forged' };
  }
  if (recording.sha256 !== body.sha256 || recording.size !== body.size) {
    return {
      ok: false,
      problem: 'content',
      reason: `the recording was altered after it was signed: it is ${recording.size} bytes with SHA-256 ${recording.sha256}, the signed one was ${body.size} bytes with SHA-256 ${body.sha256}`,
    };
  }
  return { ok: true, signature: parsed.data };
}
