import { hash, verify } from '@node-rs/argon2';
import { randomBytes } from 'node:crypto';
import * as OTPAuth from 'otpauth';

/** argon2id with OWASP's second recommended setting (19 MiB, 2 passes). */
const ARGON2 = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2);
}

export async function verifyPassword(hashed: string, password: string): Promise<boolean> {
  try {
    return await verify(hashed, password);
  } catch {
    return false;
  }
}

/** A hash to verify against when the user does not exist, so timing does not tell. */
let dummyHash: Promise<string> | undefined;
export function dummyPasswordHash(): Promise<string> {
  dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
  return dummyHash;
}

export const passwordRules = 'at least 12 characters';
export function passwordProblem(password: string): string | null {
  if (password.length < 12) return `must be ${passwordRules}`;
  if (password.length > 1024) return 'must be at most 1024 characters';
  return null;
}

export function newTotpSecret(): string {
  return new OTPAuth.Secret({ size: 20 }).base32;
}

export function totpUri(secret: string, username: string): string {
  return new OTPAuth.TOTP({ issuer: 'Gatehouse', label: username, secret: OTPAuth.Secret.fromBase32(secret) }).toString();
}

const TOTP_PERIOD = 30;

/**
 * The time step of `code` when it is the current TOTP code (or the one before or after,
 * for clock drift); null when it is not. Callers refuse a step at or before the last one
 * accepted, so a code cannot be replayed.
 */
export function totpStep(secret: string, code: string, now = Date.now()): number | null {
  if (!/^\d{6}$/.test(code)) return null;
  const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), period: TOTP_PERIOD });
  const delta = totp.validate({ token: code, window: 1, timestamp: now });
  return delta === null ? null : Math.floor(now / 1000 / TOTP_PERIOD) + delta;
}

/** True when `code` is a current TOTP code (see totpStep for replay protection). */
export function verifyTotp(secret: string, code: string): boolean {
  return totpStep(secret, code) !== null;
}

/** The TOTP code of a secret for now, or `offsetSteps` periods later (for tests and the CLI). */
export function currentTotp(secret: string, offsetSteps = 0): string {
  return new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), period: TOTP_PERIOD }).generate({
    timestamp: Date.now() + offsetSteps * TOTP_PERIOD * 1000,
  });
}

/** Random opaque tokens: `ghs_` web sessions, `ghp_` API tokens, `ghsetup_` set-up. */
export function newToken(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}
