import { presentUser, type AuditEventInput, type User } from '@gatehouse/db';
import { dummyPasswordHash, totpStep, verifyPassword } from './passwords.js';
import type { Services } from './services.js';

export type SignInFailure = { ok: false; code: 'UNAUTHENTICATED' | 'LOCKED' | 'MFA_REQUIRED'; message: string };
export type SignInResult = { ok: true; user: User } | SignInFailure;

export interface SignInAttempt {
  username: string;
  password: string;
  totp?: string | undefined;
}

/**
 * Checks a user's password and TOTP code with the lockout rules: the one check behind
 * the API's sign-in and the gateway's. Failures are audited under `action` (with a
 * lockout event when this failure locks the user); a success is the caller's to audit.
 * An answer of MFA_REQUIRED (right password, no code given) counts as no failure.
 */
export async function checkSignIn(
  services: Pick<Services, 'users' | 'config' | 'vault'>,
  attempt: SignInAttempt,
  audit: (event: Omit<AuditEventInput, 'actorName'> & { actorName: string }) => Promise<void>,
  action: string,
): Promise<SignInResult> {
  const { users, config } = services;
  const { username: name, password: given, totp } = attempt;
  const row = await users.rowByName(name);
  const fail = async (reason: string, count: boolean) => {
    if (row && count) {
      const failures = row.failed_logins + 1;
      const lock = failures >= config.lockoutThreshold;
      await users.update(row.id, {
        failed_logins: lock ? 0 : failures,
        locked_until: lock ? new Date(Date.now() + config.lockoutMinutes * 60_000).toISOString() : row.locked_until,
      });
      if (lock) {
        await audit({
          action: 'auth.lockout',
          outcome: 'failure',
          actorId: row.id,
          actorName: row.username,
          targetType: 'user',
          targetId: row.id,
          details: { minutes: config.lockoutMinutes },
        });
      }
    }
    await audit({ action, outcome: 'failure', actorId: row?.id ?? null, actorName: name.slice(0, 64), details: { reason } });
  };
  if (!row) {
    await verifyPassword(await dummyPasswordHash(), given);
    await fail('unknown user', false);
    return { ok: false, code: 'UNAUTHENTICATED', message: 'Wrong username or password.' };
  }
  if (row.locked_until !== null && row.locked_until > new Date().toISOString()) {
    await fail('locked', false);
    return {
      ok: false,
      code: 'LOCKED',
      message: `Too many failed sign-ins: this user is locked until ${row.locked_until}. Wait, or ask an administrator to unlock it.`,
    };
  }
  if (row.disabled === 1) {
    await fail('disabled', false);
    return { ok: false, code: 'UNAUTHENTICATED', message: 'This user is disabled. Ask an administrator.' };
  }
  if (!(await verifyPassword(row.password_hash, given))) {
    await fail('wrong password', true);
    return { ok: false, code: 'UNAUTHENTICATED', message: 'Wrong username or password.' };
  }
  if (row.totp_enabled === 1 && row.totp_secret_enc !== null) {
    if (totp === undefined || totp === '') {
      return { ok: false, code: 'MFA_REQUIRED', message: 'Enter the 6-digit code from your authenticator app as "totp".' };
    }
    const secret = services.vault.decrypt({ table: 'users', id: row.id, field: 'totp' }, row.totp_secret_enc);
    const step = totpStep(secret, totp);
    if (step === null) {
      await fail('wrong totp code', true);
      return { ok: false, code: 'UNAUTHENTICATED', message: 'The authenticator code is wrong or expired. Enter the current code.' };
    }
    if (row.totp_last_step !== null && step <= row.totp_last_step) {
      await fail('totp code replayed', true);
      return {
        ok: false,
        code: 'UNAUTHENTICATED',
        message: 'That authenticator code was used already. Wait for the next code and enter it.',
      };
    }
    await users.update(row.id, { totp_last_step: step });
  }
  await users.update(row.id, { failed_logins: 0, locked_until: null, last_login_at: new Date().toISOString() });
  return { ok: true, user: presentUser({ ...row, failed_logins: 0, locked_until: null }) };
}

/**
 * Checks a public-key sign-in: the user exists, is neither locked nor disabled, and the
 * key (by fingerprint; the gateway verified the signature) is registered to them. Key
 * tries are not failed sign-ins (clients offer every key they hold), so nothing here
 * counts towards the lockout.
 */
export async function checkKeySignIn(
  services: Pick<Services, 'users'>,
  attempt: { username: string; fingerprint: string },
): Promise<{ ok: true; user: User; keyId: string } | { ok: false; reason: string }> {
  const { users } = services;
  const row = await users.rowByName(attempt.username);
  if (!row) return { ok: false, reason: 'unknown user' };
  if (row.locked_until !== null && row.locked_until > new Date().toISOString()) return { ok: false, reason: 'locked' };
  if (row.disabled === 1) return { ok: false, reason: 'disabled' };
  const key = await users.findSshKey(row.id, attempt.fingerprint);
  if (!key) return { ok: false, reason: 'key not registered' };
  return { ok: true, user: presentUser(row), keyId: key.id };
}
