import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';

export const AUDIT_CHECKPOINT_FORMAT = 'gatehouse-audit-checkpoint/1';

/**
 * The audit chain's head at one moment, signed with a key the database does not hold.
 * Kept outside the database (a break-glass manifest, an append-only file, an auditor's
 * copy), it lets `audit verify` notice history rewritten or cut short before it.
 */
export interface AuditCheckpoint {
  format: typeof AUDIT_CHECKPOINT_FORMAT;
  /** The newest event's sequence number (0: the empty chain). */
  seq: number;
  /** That event's hash. */
  hash: string;
  /** When the checkpoint was signed (ISO-8601 UTC). */
  at: string;
  /** Fingerprint of the Ed25519 key that signed it. */
  keyId: string;
  /** Ed25519 signature (base64) over format, seq, hash, at and keyId. */
  signature: string;
}

declare const checked: unique symbol;
/** A checkpoint whose signature verified against a public key the reader trusts. */
export type TrustedAuditCheckpoint = AuditCheckpoint & { readonly [checked]: true };

const auditCheckpointSchema = z.strictObject({
  format: z.literal(AUDIT_CHECKPOINT_FORMAT),
  seq: z.number().int().min(0),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  at: z.string().min(1).max(64),
  keyId: z.string().min(1).max(200),
  signature: z.string().min(1).max(200),
});

/** `SHA256:<base64>` of the raw Ed25519 public key, as OpenSSH shows key fingerprints. */
export function signingKeyFingerprint(publicKey: KeyObject | string): string {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  const raw = key.export({ type: 'spki', format: 'der' }).subarray(-32);
  return `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`;
}

const signedBytes = (c: Omit<AuditCheckpoint, 'signature'>) => Buffer.from(JSON.stringify([c.format, c.seq, c.hash, c.at, c.keyId]));

/** Signs the chain's head with an Ed25519 private key (PEM). */
export function signAuditCheckpoint(head: { seq: number; hash: string }, privateKeyPem: string, now = new Date()): AuditCheckpoint {
  const privateKey = createPrivateKey(privateKeyPem);
  const body = {
    format: AUDIT_CHECKPOINT_FORMAT,
    seq: head.seq,
    hash: head.hash,
    at: now.toISOString(),
    keyId: signingKeyFingerprint(createPublicKey(privateKey)),
  } as const;
  return { ...body, signature: sign(null, signedBytes(body), privateKey).toString('base64') };
}

export type AuditCheckpointCheck = { ok: true; checkpoint: TrustedAuditCheckpoint } | { ok: false; reason: string };

/** Checks a checkpoint's form and its signature against the public key (PEM) the reader trusts. */
export function checkAuditCheckpoint(value: unknown, publicKeyPem: string): AuditCheckpointCheck {
  const parsed = auditCheckpointSchema.safeParse(value);
  if (!parsed.success) {
    const fields = [...new Set(parsed.error.issues.map((i) => i.path.join('.') || '(the object)'))].join(', ');
    return { ok: false, reason: `it is not an audit checkpoint (${AUDIT_CHECKPOINT_FORMAT}): check ${fields}` };
  }
  let publicKey: KeyObject | undefined;
  try {
    publicKey = createPublicKey(publicKeyPem);
  } catch {
    // Said below, as for a key of another type.
  }
  if (publicKey?.asymmetricKeyType !== 'ed25519') return { ok: false, reason: 'the public key is not a PEM Ed25519 public key' };
  const { signature, ...body } = parsed.data;
  const fingerprint = signingKeyFingerprint(publicKey);
  if (body.keyId !== fingerprint) {
    return { ok: false, reason: `it was signed by key ${body.keyId}, not by the key you gave (${fingerprint})` };
  }
  if (!verify(null, signedBytes(body), publicKey, Buffer.from(signature, 'base64'))) {
    return { ok: false, reason: 'its signature does not verify: it was altered or forged' };
  }
  return { ok: true, checkpoint: parsed.data as TrustedAuditCheckpoint };
}

type Found = { ok: true; checkpoint: unknown } | { ok: false; reason: string };

/** The checkpoint in a parsed document: a checkpoint itself, or the one a break-glass manifest carries. Unchecked. */
export function auditCheckpointIn(value: unknown): Found {
  if (value !== null && typeof value === 'object' && 'auditCheckpoint' in value) return { ok: true, checkpoint: value.auditCheckpoint };
  if (value !== null && typeof value === 'object' && 'signingKey' in value) {
    return { ok: false, reason: 'the break-glass manifest carries no audit checkpoint (it was written by an older version)' };
  }
  return { ok: true, checkpoint: value };
}

/**
 * The checkpoint a file holds: a checkpoint, a break-glass manifest, or an append-only
 * checkpoint file (one per line: the last, the newest). Unchecked: pass it to
 * `checkAuditCheckpoint`.
 */
export function readAuditCheckpoint(text: string): Found {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: false, reason: 'it is empty' };
  try {
    return auditCheckpointIn(JSON.parse(trimmed));
  } catch {
    // Not one JSON document: a file of one checkpoint per line.
  }
  const lines = trimmed.split('\n');
  try {
    return auditCheckpointIn(JSON.parse(lines[lines.length - 1] ?? ''));
  } catch {
    return { ok: false, reason: `it is neither JSON nor JSON lines (line ${lines.length} does not parse)` };
  }
}
