import { userFromRow, SignInThrottle, type AuditEventInput, type Database, type ThrottleRule, type User, type Users } from '@gatehouse/db';
import ipaddr from 'ipaddr.js';
import type { ServerConfig } from './config.js';
import { dummyPasswordHash, totpStep, verifyPassword, waitLikeAPasswordCheck } from './passwords.js';
import type { Services } from './services.js';

export type SignInFailure = { ok: false; code: 'UNAUTHENTICATED' | 'RATE_LIMITED' | 'MFA_REQUIRED'; message: string };
export type SignInResult = { ok: true; user: User } | SignInFailure;
type UserTable = Database['users'];
type Audit = (event: Omit<AuditEventInput, 'actorName'> & { actorName: string }) => Promise<void>;

export interface SignInAttempt {
  username: string;
  password: string;
  totp?: string | undefined;
  /** The caller's address (the API's client, the gateway's SSH client). */
  address: string;
}

/** The one answer for a wrong password, an unknown, disabled or throttled user. */
export const WRONG_PASSWORD = 'Wrong username or password.';
const wrongPassword: SignInFailure = { ok: false, code: 'UNAUTHENTICATED', message: WRONG_PASSWORD };

/** An address the user signed in from within this time is familiar: the account-wide throttle leaves it alone. */
const FAMILIAR_MS = 30 * 86_400_000;

/**
 * The address attempts are counted by: IPv4 as it is (also when mapped into IPv6), IPv6
 * by its /64, which one host or home usually has whole (as OpenSSH's PerSourcePenalties).
 */
export function sourceOf(address: string): string {
  if (!ipaddr.isValid(address)) return address.slice(0, 100);
  const ip = ipaddr.process(address);
  if (ip.kind() === 'ipv4') return ip.toString();
  return `${(ip as ipaddr.IPv6).toNormalizedString().split(':').slice(0, 4).join(':')}::/64`;
}

/**
 * The three throttles, from `lockoutThreshold` (T) and `lockoutMinutes` (the longest
 * delay): one user name from one address after T failures; one account from addresses
 * it has not signed in from lately after 4T (a distributed guesser); one address, every
 * name together, after 6T (a sprayer). Delays start at a minute and double.
 */
export function throttleRules(config: Pick<ServerConfig, 'lockoutThreshold' | 'lockoutMinutes'>) {
  const rule = (threshold: number): ThrottleRule => ({
    threshold,
    firstDelayMs: Math.min(60_000, config.lockoutMinutes * 60_000),
    maxDelayMs: config.lockoutMinutes * 60_000,
  });
  return {
    nameFromAddress: rule(config.lockoutThreshold),
    account: rule(4 * config.lockoutThreshold),
    address: rule(6 * config.lockoutThreshold),
  };
}

type Rules = ReturnType<typeof throttleRules>;

/** A password attempt let through the throttles: counted as a failure until it is shown right. */
class ClaimedAttempt {
  constructor(
    private readonly throttle: SignInThrottle,
    private readonly rules: Rules,
    private readonly name: string,
    private readonly source: string,
    private readonly accountOf: string | null,
  ) {}

  /** The password was right but the sign-in goes on (a TOTP code is still to come): the attempt did not fail. */
  async release(): Promise<void> {
    await this.throttle.release({ username: this.name, source: this.source }, this.rules.nameFromAddress);
    await this.releaseShared();
  }

  /** Signed in: this name's count from this address starts again, and the address becomes familiar. */
  async succeeded(): Promise<void> {
    await this.throttle.succeeded({ username: this.name, source: this.source });
    await this.releaseShared();
  }

  private async releaseShared(): Promise<void> {
    await this.throttle.release({ username: '', source: this.source }, this.rules.address);
    if (this.accountOf !== null) await this.throttle.release({ userId: this.accountOf }, this.rules.account);
  }
}

/**
 * Attempts a throttle refused, audited once a minute per counter with how many were
 * refused since the last event: a guesser who keeps trying must not fill the audit log.
 * Each server process counts its own.
 */
class RefusedAttempts {
  private readonly seen = new Map<string, { at: number; refused: number }>();

  /** How many to audit now (this one included), or null when this one is only counted. */
  take(key: string, now = Date.now()): number | null {
    const seen = this.seen.get(key);
    if (seen && now - seen.at < 60_000 && now >= seen.at) {
      seen.refused++;
      return null;
    }
    if (this.seen.size >= 10_000) this.seen.clear();
    this.seen.set(key, { at: now, refused: 0 });
    return (seen?.refused ?? 0) + 1;
  }
}
/**
 * Password checks from one address, one after another. A claimed attempt counts as a
 * failure until its password is shown right, so right passwords sent at once (parallel
 * scripts, Ansible's forks) would otherwise fill the count and be refused as if they had
 * been guesses. In turn, each attempt sees the ones before it settled. Only the claims,
 * the check and their settling wait here; a refused attempt leaves the line at once. Each
 * server process keeps its own line; across processes the claims still never let more
 * checks through than the thresholds.
 */
class SerialBySource {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(source: string, work: () => Promise<T>): Promise<T> {
    const before = this.tails.get(source);
    let settled!: () => void;
    const tail = new Promise<void>((resolve) => (settled = resolve));
    this.tails.set(source, tail);
    try {
      await before;
      return await work();
    } finally {
      settled();
      if (this.tails.get(source) === tail) this.tails.delete(source);
    }
  }
}

/** One per database, i.e. per server (tests run several in one process). */
function perDatabase<T extends object>(make: () => T): (db: object) => T {
  const of = new WeakMap<object, T>();
  return (db) => {
    let value = of.get(db);
    if (!value) of.set(db, (value = make()));
    return value;
  };
}
const refusedAttempts = perDatabase(() => new RefusedAttempts());
const serialBySource = perDatabase(() => new SerialBySource());

type PasswordCheck =
  | { ok: true; attempt: ClaimedAttempt }
  | { ok: false; reason: 'address throttled'; until: string | null; refused: number | null }
  | { ok: false; reason: 'throttled'; refused: number | null }
  | { ok: false; reason: 'unknown user' | 'wrong password' };

/** The audit details of a failed check, or null when it is only counted (see RefusedAttempts). */
function failureDetails(checked: Exclude<PasswordCheck, { ok: true }>, reason: string): Record<string, unknown> | null {
  if (!('refused' in checked)) return { reason };
  return checked.refused === null ? null : { reason, refused: checked.refused };
}

/**
 * Checks a password under the throttles. Each attempt is claimed on every counter that
 * applies before argon2 runs, so concurrent attempts cannot check more passwords than
 * the thresholds allow. An address over its limit is refused at once (that says nothing
 * about any account). An unknown user is checked against the dummy hash, and a throttled
 * attempt ('throttled') is for the caller to hold as long as a check takes, once out of the
 * address's line (SerialBySource), so both answer as a wrong password does, in about the
 * same time. Run in that line. Each delay that a failure starts is an
 * `auth.throttle` audit event; refused attempts are audited at a bounded rate.
 */
async function checkThrottledPassword(
  services: Pick<Services, 'db' | 'config' | 'metrics'>,
  input: { name: string; row: UserTable | undefined; password: string; address: string },
  audit: Audit,
): Promise<PasswordCheck> {
  const throttle = new SignInThrottle(services.db);
  const rules = throttleRules(services.config);
  const { name, row } = input;
  const source = sourceOf(input.address);
  const byAddress = await throttle.claim({ username: '', source }, rules.address);
  if (!byAddress.ok) {
    const until = await throttle.throttledUntil({ username: '', source });
    return { ok: false, reason: 'address throttled', until, refused: refusedAttempts(services.db).take(`address\0${source}`) };
  }
  const claims = [{ scope: 'address', claim: byAddress }];
  const check = async (hash: string) => verifyPassword(hash, input.password);
  const byName = await throttle.claim({ username: name, source }, rules.nameFromAddress);
  let byAccount = null;
  if (byName.ok && row && !(await throttle.familiar({ username: name, source }, new Date(Date.now() - FAMILIAR_MS)))) {
    byAccount = await throttle.claim({ userId: row.id }, rules.account);
  }
  if (!byName.ok || byAccount?.ok === false) {
    return { ok: false, reason: 'throttled', refused: refusedAttempts(services.db).take(`user\0${row?.id ?? name}\0${source}`) };
  }
  claims.push({ scope: 'user from address', claim: byName });
  if (byAccount) claims.push({ scope: 'user', claim: byAccount });
  // An SSO user has no local password (hash ''): checked against the dummy hash, never right.
  const local = row !== undefined && row.password_hash !== '';
  const right = await check(local ? row.password_hash : await dummyPasswordHash());
  if (local && right) return { ok: true, attempt: new ClaimedAttempt(throttle, rules, name, source, byAccount ? row.id : null) };
  for (const { scope, claim } of claims) {
    if (!claim.ok || claim.throttledUntil === null) continue;
    // This failure started a delay.
    services.metrics?.signInThrottled(scope);
    await audit({
      action: 'auth.throttle',
      outcome: 'failure',
      actorId: row?.id ?? null,
      actorName: name.slice(0, 64),
      ...(scope === 'user' && row ? { targetType: 'user', targetId: row.id } : {}),
      details: { scope, address: source, failures: claim.failures, until: claim.throttledUntil },
    });
  }
  return { ok: false, reason: row ? 'wrong password' : 'unknown user' };
}

const addressThrottled = (until: string | null): SignInFailure => ({
  ok: false,
  code: 'RATE_LIMITED',
  message: `Too many failed sign-ins from your address. Try again ${until ? `after ${until}` : 'in a few minutes'}.`,
});

/**
 * Checks a user's password and TOTP code under the throttles: the one check behind the
 * API's sign-in and the gateway's. A throttled, disabled or unknown user gets the answer
 * of a wrong password; the audit event (under `action`) keeps the real reason. A success
 * is the caller's to record (recordSignIn) and audit, in one transaction (withAudit).
 * MFA_REQUIRED (right password, no code yet) is no failure.
 * An empty password is no attempt (ssh without a terminal answers the prompt with one).
 */
export async function checkSignIn(
  services: Pick<Services, 'users' | 'config' | 'vault' | 'db' | 'metrics'>,
  attempt: SignInAttempt,
  audit: Audit,
  action: string,
): Promise<SignInResult> {
  if (attempt.password === '') return wrongPassword;
  const result = await serialBySource(services.db).run(sourceOf(attempt.address), () => signInInTurn(services, attempt, audit, action));
  if (result !== 'throttled') return result;
  // A throttled attempt waits as long as a check takes, outside the line, so it answers as a wrong password does.
  await waitLikeAPasswordCheck();
  return wrongPassword;
}

/** checkSignIn's work in the address's line: 'throttled' is a wrong password that still has to wait. */
async function signInInTurn(
  services: Pick<Services, 'users' | 'config' | 'vault' | 'db' | 'metrics'>,
  attempt: SignInAttempt,
  audit: Audit,
  action: string,
): Promise<SignInResult | 'throttled'> {
  const { users } = services;
  const { username: name, totp } = attempt;
  const row = await users.rowByName(name);
  const fail = (details: Record<string, unknown> | null) => {
    if (details) services.metrics?.signInFailed(String(details.reason));
    return details && audit({ action, outcome: 'failure', actorId: row?.id ?? null, actorName: name.slice(0, 64), details });
  };
  const checked = await checkThrottledPassword(services, { name, row, password: attempt.password, address: attempt.address }, audit);
  if (!checked.ok) {
    // Refused attempts are audited at a bounded rate (details null) but always counted.
    if (!failureDetails(checked, checked.reason)) services.metrics?.signInFailed(checked.reason);
    await fail(failureDetails(checked, checked.reason));
    if (checked.reason === 'throttled') return 'throttled';
    return checked.reason === 'address throttled' ? addressThrottled(checked.until) : wrongPassword;
  }
  const user = row as UserTable;
  if (user.disabled === 1) {
    await fail({ reason: 'disabled' });
    return wrongPassword;
  }
  if (user.totp_enabled === 1 && user.totp_secret_enc !== null) {
    if (totp === undefined || totp === '') {
      await checked.attempt.release();
      return { ok: false, code: 'MFA_REQUIRED', message: 'Enter the 6-digit code from your authenticator app as "totp".' };
    }
    const secret = services.vault.decrypt({ table: 'users', id: user.id, field: 'totp' }, user.totp_secret_enc);
    const step = totpStep(secret, totp);
    if (step === null) {
      await fail({ reason: 'wrong totp code' });
      return { ok: false, code: 'UNAUTHENTICATED', message: 'The authenticator code is wrong or expired. Enter the current code.' };
    }
    if (!(await users.claimTotpStep(user.id, step))) {
      await fail({ reason: 'totp code replayed' });
      return {
        ok: false,
        code: 'UNAUTHENTICATED',
        message: 'That authenticator code was used already. Wait for the next code and enter it.',
      };
    }
  }
  await checked.attempt.succeeded();
  return { ok: true, user: userFromRow(user) };
}

/** Records a sign-in on the user (its last sign-in time); run it in the transaction of the success's audit event. */
export function recordSignIn(users: Users, userId: string): Promise<User> {
  return users.update(userId, { last_login_at: new Date().toISOString() });
}

/**
 * Checks the signed-in user's current password (before a password change) under the same
 * throttles as a sign-in, so it cannot be guessed there instead. A wrong or throttled one
 * is audited under `action` with the real reason.
 */
export async function checkCurrentPassword(
  services: Pick<Services, 'users' | 'config' | 'db'>,
  input: { userId: string; password: string; address: string },
  audit: Audit,
  action: string,
): Promise<{ ok: true } | { ok: false; code: 'RATE_LIMITED' | 'WRONG'; message: string }> {
  const row = await services.users.row(input.userId);
  const checked = await serialBySource(services.db).run(sourceOf(input.address), async () => {
    const result = await checkThrottledPassword(
      services,
      { name: row.username, row, password: input.password, address: input.address },
      audit,
    );
    if (result.ok) await result.attempt.succeeded();
    return result;
  });
  if (checked.ok) return { ok: true };
  if (checked.reason === 'throttled') await waitLikeAPasswordCheck();
  const details = failureDetails(checked, checked.reason === 'wrong password' ? 'wrong current password' : checked.reason);
  if (details) await audit({ action, outcome: 'failure', actorId: row.id, actorName: row.username, details });
  if (checked.reason === 'address throttled') return { ...addressThrottled(checked.until), code: 'RATE_LIMITED' };
  return { ok: false, code: 'WRONG', message: 'currentPassword is wrong.' };
}

/**
 * Checks a public-key sign-in: the user exists, is not disabled, and the key (by
 * fingerprint; the gateway verified the signature) is registered to them. Password
 * throttles do not apply: a key cannot be guessed, and someone guessing the password
 * must not keep the key's owner out. Key tries are not failed sign-ins either (clients
 * offer every key they hold).
 */
export async function checkKeySignIn(
  services: Pick<Services, 'users'>,
  attempt: { username: string; fingerprint: string },
): Promise<{ ok: true; user: User; keyId: string } | { ok: false; reason: string; userId: string | null }> {
  const found = await services.users.rowWithSshKey(attempt.username, attempt.fingerprint);
  if (!found) return { ok: false, reason: 'unknown user', userId: null };
  const { row, keyId } = found;
  if (row.disabled === 1) return { ok: false, reason: 'disabled', userId: row.id };
  if (keyId === null) return { ok: false, reason: 'key not registered', userId: row.id };
  return { ok: true, user: userFromRow(row), keyId };
}
