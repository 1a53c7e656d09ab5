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

/** True when `code` is the current TOTP code (or the one before or after, for clock drift). */
export function verifyTotp(secret: string, code: string): boolean {
  if (!/^\d{6}$/.test(code)) return false;
  const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret) });
  return totp.validate({ token: code, window: 1 }) !== null;
}

/** The current TOTP code for a secret (for tests and the CLI's own enrolment check). */
export function currentTotp(secret: string): string {
  return new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret) }).generate();
}

/** Random opaque tokens: `ghs_` web sessions, `ghp_` API tokens, `ghsetup_` set-up. */
export function newToken(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}
