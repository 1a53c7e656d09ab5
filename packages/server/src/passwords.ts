import { hash, verify } from '@node-rs/argon2';
import { randomBytes } from 'node:crypto';
import * as OTPAuth from 'otpauth';

/** argon2id with OWASP's second recommended setting (19 MiB, 2 passes). */
const ARGON2 = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2);
}

/** How long a password check has taken here lately (a moving average, in ms). */
let checkMs = 50;

export async function verifyPassword(hashed: string, password: string): Promise<boolean> {
  const started = performance.now();
  try {
    return await verify(hashed, password);
  } catch {
    return false;
  } finally {
    checkMs = 0.9 * checkMs + 0.1 * (performance.now() - started);
  }
}

/**
 * Waits about as long as a password check takes here now, without doing one: the answer
 * to a throttled attempt takes the time a wrong password's does, but a guesser who keeps
 * trying costs the server no argon2 (and the users it serves no CPU).
 */
export function waitLikeAPasswordCheck(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, checkMs * (0.85 + 0.3 * Math.random())));
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

/** A random opaque token after `prefix` (one of core's token prefixes: SESSION_TOKEN_PREFIX, …). */
export function newToken(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}
