import { createHash, randomUUID } from 'node:crypto';
import { NotFoundError, shownTokenPrefix, type Role } from '@gatehouse/core';
import type { Db, Tx } from './connect.js';
import { uniquely } from './errors.js';
import type { ApiTokenTable, GrantTable, UserSshKeyTable, UserTable } from './schema.js';

export interface User {
  id: string;
  username: string;
  role: Role;
  totpEnabled: boolean;
  disabled: boolean;
  lockedUntil: string | null;
  createdAt: string;
  lastLoginAt: string | null;
  /** Made by OIDC sign-in: no local password, role from the identity provider's groups. */
  sso: boolean;
}

/** What an API token may do: 'read' sends only GET and HEAD requests; 'full' whatever its user may. */
export const tokenScopes = ['read', 'full'] as const;
export type TokenScope = (typeof tokenScopes)[number];

export interface ApiToken {
  id: string;
  userId: string;
  name: string;
  prefix: string;
  scope: TokenScope;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
}

/** A public key a user signs in to the gateway with. */
export interface SshKey {
  id: string;
  userId: string;
  name: string;
  algorithm: string;
  /** The OpenSSH public key line without a comment: `ssh-ed25519 AAAA…`. */
  publicKey: string;
  fingerprint: string;
  createdAt: string;
  lastUsedAt: string | null;
}

const sshKeyFromRow = (r: UserSshKeyTable): SshKey => ({
  id: r.id,
  userId: r.user_id,
  name: r.name,
  algorithm: r.algorithm,
  publicKey: `${r.algorithm} ${r.public_key}`,
  fingerprint: r.fingerprint,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
});

export interface Grant {
  id: string;
  userId: string;
  projectId: string;
  deviceId: string | null;
  accountId: string | null;
  createdAt: string;
}

export const userFromRow = (r: UserTable): User => ({
  id: r.id,
  username: r.username,
  role: r.role as Role,
  totpEnabled: r.totp_enabled === 1,
  disabled: r.disabled === 1,
  lockedUntil: r.locked_until,
  createdAt: r.created_at,
  lastLoginAt: r.last_login_at,
  sso: r.sso_subject !== null,
});

const tokenFromRow = (r: ApiTokenTable): ApiToken => ({
  id: r.id,
  userId: r.user_id,
  name: r.name,
  prefix: r.prefix,
  scope: r.scope === 'read' ? 'read' : 'full',
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  lastUsedAt: r.last_used_at,
});

const grantFromRow = (r: GrantTable): Grant => ({
  id: r.id,
  userId: r.user_id,
  projectId: r.project_id,
  deviceId: r.device_id,
  accountId: r.account_id,
  createdAt: r.created_at,
});

/** Tokens are stored as SHA-256 hashes: they are long random strings, so a slow hash adds nothing. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Users, their web sessions, API tokens and project grants. */
export class Users {
  constructor(
    readonly db: Db,
    private readonly x: Tx = db.kysely,
  ) {}

  async count(): Promise<number> {
    const r = await this.x
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<string | number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /** A local user (with a password hash), or with `ssoSubject` one made by OIDC sign-in (password hash ''). */
  async create(input: { username: string; role: Role; passwordHash: string; ssoSubject?: string }): Promise<User> {
    const now = new Date().toISOString();
    const row: UserTable = {
      id: randomUUID(),
      username: input.username,
      role: input.role,
      password_hash: input.passwordHash,
      totp_secret_enc: null,
      totp_enabled: 0,
      totp_last_step: null,
      failed_logins: 0,
      locked_until: null,
      last_failed_login_at: null,
      disabled: 0,
      created_at: now,
      updated_at: now,
      last_login_at: null,
      sso_subject: input.ssoSubject ?? null,
      sso_disabled: 0,
    };
    await uniquely('username', `A user named ${JSON.stringify(input.username)} exists already.`, () =>
      this.x.insertInto('users').values(row).execute(),
    );
    return userFromRow(row);
  }

  async row(id: string): Promise<UserTable> {
    const row = await this.x.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new NotFoundError('User', id);
    return row;
  }

  async get(id: string): Promise<User> {
    return userFromRow(await this.row(id));
  }

  async rowByName(username: string): Promise<UserTable | undefined> {
    return this.x.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
  }

  /**
   * The user named `username` and the id of their SSH key with `fingerprint` (null when
   * they have none such), in one statement: a key sign-in asks twice per connection (the
   * client's query, then its signature), two reads each time before (issue 23).
   */
  async rowWithSshKey(username: string, fingerprint: string): Promise<{ row: UserTable; keyId: string | null } | undefined> {
    // A scalar subquery, not a LEFT JOIN: SQLite ran the join at 3× the cost of either read alone.
    const found = await this.x
      .selectFrom('users')
      .selectAll('users')
      .select((eb) =>
        eb
          .selectFrom('user_ssh_keys as k')
          .select('k.id')
          .whereRef('k.user_id', '=', 'users.id')
          .where('k.fingerprint', '=', fingerprint)
          .as('ssh_key_id'),
      )
      .where('users.username', '=', username)
      .executeTakeFirst();
    if (!found) return undefined;
    const { ssh_key_id: keyId, ...row } = found;
    return { row, keyId };
  }

  async rowBySsoSubject(subject: string): Promise<UserTable | undefined> {
    return this.x.selectFrom('users').selectAll().where('sso_subject', '=', subject).executeTakeFirst();
  }

  async list(): Promise<User[]> {
    return (await this.x.selectFrom('users').selectAll().orderBy('username').execute()).map(userFromRow);
  }

  async update(id: string, set: Partial<Omit<UserTable, 'id' | 'created_at'>>): Promise<User> {
    await this.row(id);
    await this.x
      .updateTable('users')
      .set({ ...set, updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .execute();
    return this.get(id);
  }

  async delete(id: string): Promise<void> {
    const r = await this.x.deleteFrom('users').where('id', '=', id).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw new NotFoundError('User', id);
  }

  async countAdmins(): Promise<number> {
    const r = await this.x
      .selectFrom('users')
      .where('role', '=', 'admin')
      .where('disabled', '=', 0)
      .select((eb) => eb.fn.countAll<string | number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  // Web sessions: the cookie holds a random token; the table holds its hash.

  async createSession(userId: string, token: string, mfaPassed: boolean, ttlMs: number): Promise<void> {
    const now = new Date();
    await this.x
      .insertInto('web_sessions')
      .values({
        id: hashToken(token),
        user_id: userId,
        mfa_passed: mfaPassed ? 1 : 0,
        created_at: now.toISOString(),
        expires_at: new Date(now.getTime() + ttlMs).toISOString(),
        last_seen_at: now.toISOString(),
      })
      .execute();
  }

  /** The live session of this token, or undefined when unknown or expired. */
  async findSession(token: string): Promise<{ userId: string; mfaPassed: boolean; createdAt: string; expiresAt: string } | undefined> {
    const row = await this.x
      .selectFrom('web_sessions')
      .selectAll()
      .where('id', '=', hashToken(token))
      .where('expires_at', '>', new Date().toISOString())
      .executeTakeFirst();
    return row && { userId: row.user_id, mfaPassed: row.mfa_passed === 1, createdAt: row.created_at, expiresAt: row.expires_at };
  }

  async touchSession(token: string, idleTtlMs: number, absoluteExpiry: string): Promise<void> {
    const now = Date.now();
    const expires = new Date(Math.min(now + idleTtlMs, Date.parse(absoluteExpiry))).toISOString();
    await this.x
      .updateTable('web_sessions')
      .set({ last_seen_at: new Date(now).toISOString(), expires_at: expires })
      .where('id', '=', hashToken(token))
      .execute();
  }

  async deleteSession(token: string): Promise<void> {
    await this.x.deleteFrom('web_sessions').where('id', '=', hashToken(token)).execute();
  }

  /** Ends every web session of the user, except the one of `keepToken` when given. */
  async deleteSessionsOf(userId: string, keepToken?: string): Promise<void> {
    let q = this.x.deleteFrom('web_sessions').where('user_id', '=', userId);
    if (keepToken !== undefined) q = q.where('id', '!=', hashToken(keepToken));
    await q.execute();
  }

  async markSessionMfa(token: string): Promise<void> {
    await this.x.updateTable('web_sessions').set({ mfa_passed: 1 }).where('id', '=', hashToken(token)).execute();
  }

  // API tokens

  async createToken(input: {
    userId: string;
    name: string;
    token: string;
    expiresAt: string | null;
    scope?: TokenScope;
  }): Promise<ApiToken> {
    const row: ApiTokenTable = {
      id: randomUUID(),
      user_id: input.userId,
      name: input.name,
      token_hash: hashToken(input.token),
      prefix: shownTokenPrefix(input.token),
      scope: input.scope ?? 'full',
      created_at: new Date().toISOString(),
      expires_at: input.expiresAt,
      last_used_at: null,
    };
    await this.x.insertInto('api_tokens').values(row).execute();
    return tokenFromRow(row);
  }

  async findToken(token: string): Promise<ApiToken | undefined> {
    const row = await this.x.selectFrom('api_tokens').selectAll().where('token_hash', '=', hashToken(token)).executeTakeFirst();
    if (!row) return undefined;
    if (row.expires_at !== null && row.expires_at <= new Date().toISOString()) return undefined;
    return tokenFromRow(row);
  }

  async touchToken(id: string): Promise<void> {
    await this.x.updateTable('api_tokens').set({ last_used_at: new Date().toISOString() }).where('id', '=', id).execute();
  }

  async listTokens(userId?: string): Promise<ApiToken[]> {
    let q = this.x.selectFrom('api_tokens').selectAll();
    if (userId) q = q.where('user_id', '=', userId);
    return (await q.orderBy('created_at').execute()).map(tokenFromRow);
  }

  async getToken(id: string): Promise<ApiToken> {
    const row = await this.x.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new NotFoundError('API token', id);
    return tokenFromRow(row);
  }

  async deleteToken(id: string): Promise<void> {
    const r = await this.x.deleteFrom('api_tokens').where('id', '=', id).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw new NotFoundError('API token', id);
  }

  /** Revokes every API token of the user (their password changed); answers how many there were. */
  async deleteTokensOf(userId: string): Promise<number> {
    const r = await this.x.deleteFrom('api_tokens').where('user_id', '=', userId).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /**
   * Takes a TOTP time step as used, if it is later than the last one taken: one
   * conditional update, so of concurrent sign-ins with one code only one gets true.
   */
  async claimTotpStep(userId: string, step: number): Promise<boolean> {
    const r = await this.x
      .updateTable('users')
      .set({ totp_last_step: step })
      .where('id', '=', userId)
      .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', step)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  // SSH public keys for signing in to the gateway

  async addSshKey(input: { userId: string; name: string; algorithm: string; publicKey: string; fingerprint: string }): Promise<SshKey> {
    const row: UserSshKeyTable = {
      id: randomUUID(),
      user_id: input.userId,
      name: input.name,
      algorithm: input.algorithm,
      public_key: input.publicKey,
      fingerprint: input.fingerprint,
      created_at: new Date().toISOString(),
      last_used_at: null,
    };
    await uniquely('publicKey', `This user already has the key ${input.fingerprint}.`, () =>
      this.x.insertInto('user_ssh_keys').values(row).execute(),
    );
    return sshKeyFromRow(row);
  }

  async listSshKeys(userId?: string): Promise<SshKey[]> {
    let q = this.x.selectFrom('user_ssh_keys').selectAll();
    if (userId) q = q.where('user_id', '=', userId);
    return (await q.orderBy('created_at').execute()).map(sshKeyFromRow);
  }

  async getSshKey(id: string): Promise<SshKey> {
    const row = await this.x.selectFrom('user_ssh_keys').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new NotFoundError('SSH key', id);
    return sshKeyFromRow(row);
  }

  /** The user's key with this fingerprint, if registered. */
  async findSshKey(userId: string, fingerprint: string): Promise<SshKey | undefined> {
    const row = await this.x
      .selectFrom('user_ssh_keys')
      .selectAll()
      .where('user_id', '=', userId)
      .where('fingerprint', '=', fingerprint)
      .executeTakeFirst();
    return row && sshKeyFromRow(row);
  }

  /** Sets the user's last sign-in to now: one write, no read (a gateway sign-in needs nothing back). */
  async touchLogin(id: string): Promise<void> {
    const at = new Date().toISOString();
    const r = await this.x.updateTable('users').set({ last_login_at: at, updated_at: at }).where('id', '=', id).executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) throw new NotFoundError('User', id);
  }

  async touchSshKey(id: string): Promise<void> {
    await this.x.updateTable('user_ssh_keys').set({ last_used_at: new Date().toISOString() }).where('id', '=', id).execute();
  }

  async deleteSshKey(id: string): Promise<void> {
    const r = await this.x.deleteFrom('user_ssh_keys').where('id', '=', id).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw new NotFoundError('SSH key', id);
  }

  // Grants: what an operator may use. A grant names a project, and optionally narrows it
  // to one device or one account.

  async createGrant(input: { userId: string; projectId: string; deviceId?: string | null; accountId?: string | null }): Promise<Grant> {
    const row: GrantTable = {
      id: randomUUID(),
      user_id: input.userId,
      project_id: input.projectId,
      device_id: input.deviceId ?? null,
      account_id: input.accountId ?? null,
      created_at: new Date().toISOString(),
    };
    await this.x.insertInto('grants').values(row).execute();
    return grantFromRow(row);
  }

  async listGrants(userId?: string): Promise<Grant[]> {
    let q = this.x.selectFrom('grants').selectAll();
    if (userId) q = q.where('user_id', '=', userId);
    return (await q.orderBy('created_at').execute()).map(grantFromRow);
  }

  async deleteGrant(id: string): Promise<void> {
    const r = await this.x.deleteFrom('grants').where('id', '=', id).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw new NotFoundError('Grant', id);
  }
}

/** Small key/value settings (e.g. the hash of the one-time set-up token). */
export class Settings {
  constructor(
    readonly db: Db,
    private readonly x: Tx = db.kysely,
  ) {}

  async get(key: string): Promise<string | undefined> {
    const row = await this.x.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
    return row?.value;
  }

  async set(key: string, value: string): Promise<void> {
    const updated_at = new Date().toISOString();
    await this.x
      .insertInto('settings')
      .values({ key, value, updated_at })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value, updated_at }))
      .execute();
  }

  async delete(key: string): Promise<void> {
    await this.x.deleteFrom('settings').where('key', '=', key).execute();
  }

  /** Stores `value` unless the key has one, and answers the stored value: replicas racing agree on one. */
  async setIfAbsent(key: string, value: string): Promise<string> {
    await this.x
      .insertInto('settings')
      .values({ key, value, updated_at: new Date().toISOString() })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
    return (await this.get(key)) ?? value;
  }
}
