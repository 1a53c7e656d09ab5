import { randomBytes, randomUUID } from 'node:crypto';
import { API_TOKEN_PREFIX, ConflictError, NotFoundError, visibilityOf, type Role } from '@gatehouse/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, dialects, type TestDatabase } from '../../../test/support/db.js';
import { Inventory } from './inventory.js';
import { Settings, Users, hashToken } from './users.js';
import { openVault } from './vault.js';

const HOUR = 3_600_000;

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

const newToken = () => `${API_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;

describe.each(dialects)('users on %s', (dialect) => {
  let t: TestDatabase;
  let users: Users;

  beforeEach(async () => {
    t = await createTestDatabase(dialect);
    users = new Users(t.db);
  });
  afterEach(async () => {
    await t.cleanup();
  });

  const create = (username: string, role: Role = 'operator') => users.create({ username, role, passwordHash: `hash-of-${username}` });

  describe('users', () => {
    it('creates a user and reads it back by id and by name', async () => {
      expect(await users.count()).toBe(0);
      const alice = await create('alice', 'admin');
      expect(alice).toMatchObject({
        username: 'alice',
        role: 'admin',
        totpEnabled: false,
        disabled: false,
        lockedUntil: null,
        lastLoginAt: null,
      });
      expect(alice).not.toHaveProperty('passwordHash');
      expect(await users.get(alice.id)).toEqual(alice);
      expect(await users.rowByName('alice')).toMatchObject({ id: alice.id, password_hash: 'hash-of-alice' });
      expect(await users.rowByName('nobody')).toBeUndefined();
      await create('bob');
      expect(await users.count()).toBe(2);
      expect((await users.list()).map((u) => u.username)).toEqual(['alice', 'bob']);
    });

    it('records a sign-in with one write, and refuses a user that does not exist', async () => {
      const alice = await create('alice');
      await users.touchLogin(alice.id);
      const after = await users.get(alice.id);
      expect(after.lastLoginAt).not.toBeNull();
      expect(await rejectionOf(users.touchLogin(randomUUID()))).toBeInstanceOf(NotFoundError);
    });

    it('reads a user and the id of their key with a fingerprint in one go, the key only when it is theirs', async () => {
      const alice = await create('alice');
      const bob = await create('bob');
      const key = { name: 'laptop', algorithm: 'ssh-ed25519', publicKey: 'ssh-ed25519 AAAA', fingerprint: 'SHA256:alice' };
      const added = await users.addSshKey({ userId: alice.id, ...key });
      const found = await users.rowWithSshKey('alice', 'SHA256:alice');
      expect(found?.row).toEqual(await users.rowByName('alice'));
      expect(found?.keyId).toBe(added.id);
      expect(await users.rowWithSshKey('alice', 'SHA256:other')).toMatchObject({ row: { id: alice.id }, keyId: null });
      expect(await users.rowWithSshKey('bob', 'SHA256:alice')).toMatchObject({ row: { id: bob.id }, keyId: null });
      expect(await users.rowWithSshKey('nobody', 'SHA256:alice')).toBeUndefined();
    });

    it('refuses a second user with the same username, naming the field', async () => {
      await create('alice');
      const error = await rejectionOf(create('alice', 'admin'));
      expect(error).toBeInstanceOf(ConflictError);
      expect((error as ConflictError).issues).toEqual([{ path: 'username', message: 'is already taken' }]);
      expect(await users.count()).toBe(1);
    });

    it('updates and deletes a user, and answers NotFoundError for an unknown id', async () => {
      const alice = await create('alice');
      expect(await users.update(alice.id, { disabled: 1, role: 'auditor' })).toMatchObject({ disabled: true, role: 'auditor' });
      await users.delete(alice.id);
      expect(await users.count()).toBe(0);
      const id = randomUUID();
      for (const attempt of [
        () => users.get(id),
        () => users.update(id, { disabled: 1 }),
        () => users.delete(id),
        () => users.delete(alice.id),
      ]) {
        expect(await rejectionOf(attempt())).toBeInstanceOf(NotFoundError);
      }
    });

    it('counts the admins that are not disabled', async () => {
      expect(await users.countAdmins()).toBe(0);
      const a1 = await create('admin-1', 'admin');
      await create('admin-2', 'admin');
      await create('operator');
      await create('auditor', 'auditor');
      expect(await users.countAdmins()).toBe(2);
      await users.update(a1.id, { disabled: 1 });
      expect(await users.countAdmins()).toBe(1);
    });
  });

  describe('sessions', () => {
    it('finds a live session by its token and stores only the token hash', async () => {
      const alice = await create('alice');
      const token = newToken();
      await users.createSession(alice.id, token, false, HOUR);
      const session = await users.findSession(token);
      expect(session).toMatchObject({ userId: alice.id, mfaPassed: false });
      expect(Date.parse(session?.expiresAt ?? '') - Date.parse(session?.createdAt ?? '')).toBe(HOUR);
      expect(await users.findSession(newToken())).toBeUndefined();

      const rows = await t.db.kysely.selectFrom('web_sessions').selectAll().execute();
      expect(rows.map((r) => r.id)).toEqual([hashToken(token)]);
      expect(JSON.stringify(rows)).not.toContain(token);

      await users.markSessionMfa(token);
      expect(await users.findSession(token)).toMatchObject({ mfaPassed: true });
    });

    it('does not find an expired session', async () => {
      const alice = await create('alice');
      const token = newToken();
      await users.createSession(alice.id, token, true, HOUR);
      await t.db.kysely
        .updateTable('web_sessions')
        .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
        .execute();
      expect(await users.findSession(token)).toBeUndefined();

      const short = newToken();
      await users.createSession(alice.id, short, true, 1);
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(await users.findSession(short)).toBeUndefined();
    });

    it('extends a session on use by the idle time, never past its absolute expiry', async () => {
      const alice = await create('alice');
      const token = newToken();
      await users.createSession(alice.id, token, true, 10 * 60_000);
      const absolute = new Date(Date.now() + 30 * 60_000).toISOString();

      const before = Date.now();
      await users.touchSession(token, 20 * 60_000, absolute);
      const extended = Date.parse((await users.findSession(token))?.expiresAt ?? '');
      expect(extended).toBeGreaterThanOrEqual(before + 20 * 60_000);
      expect(extended).toBeLessThanOrEqual(Date.now() + 20 * 60_000);

      await users.touchSession(token, 24 * HOUR, absolute);
      expect((await users.findSession(token))?.expiresAt).toBe(absolute);
    });

    it('does not bring back a session whose absolute expiry has passed', async () => {
      const alice = await create('alice');
      const token = newToken();
      await users.createSession(alice.id, token, true, HOUR);
      await users.touchSession(token, HOUR, new Date(Date.now() - 1000).toISOString());
      expect(await users.findSession(token)).toBeUndefined();
    });

    it('deletes one session, or every session of a user', async () => {
      const alice = await create('alice');
      const bob = await create('bob');
      const [a1, a2, b1] = [newToken(), newToken(), newToken()];
      await users.createSession(alice.id, a1, true, HOUR);
      await users.createSession(alice.id, a2, true, HOUR);
      await users.createSession(bob.id, b1, true, HOUR);
      await users.deleteSession(a1);
      expect(await users.findSession(a1)).toBeUndefined();
      expect(await users.findSession(a2)).toBeDefined();
      await users.deleteSessionsOf(alice.id);
      expect(await users.findSession(a2)).toBeUndefined();
      expect(await users.findSession(b1)).toMatchObject({ userId: bob.id });
    });

    it('ends the sessions of a deleted user', async () => {
      const alice = await create('alice');
      const token = newToken();
      await users.createSession(alice.id, token, true, HOUR);
      await users.delete(alice.id);
      expect(await users.findSession(token)).toBeUndefined();
    });
  });

  describe('API tokens', () => {
    it('finds a token by its value, storing only its hash and prefix', async () => {
      const alice = await create('alice');
      const token = newToken();
      const created = await users.createToken({ userId: alice.id, name: 'ci', token, expiresAt: null });
      expect(created).toMatchObject({
        userId: alice.id,
        name: 'ci',
        prefix: token.slice(0, API_TOKEN_PREFIX.length + 8),
        expiresAt: null,
        lastUsedAt: null,
      });
      expect(await users.findToken(token)).toEqual(created);
      expect(await users.findToken(newToken())).toBeUndefined();
      expect(await users.findToken(token.slice(0, -1))).toBeUndefined();

      const rows = await t.db.kysely.selectFrom('api_tokens').selectAll().execute();
      expect(rows).toHaveLength(1);
      expect(rows[0]?.token_hash).toBe(hashToken(token));
      expect(JSON.stringify(rows)).not.toContain(token);
    });

    it('does not find an expired token, and finds one that expires later', async () => {
      const alice = await create('alice');
      const expired = newToken();
      const later = newToken();
      await users.createToken({ userId: alice.id, name: 'old', token: expired, expiresAt: new Date(Date.now() - 1000).toISOString() });
      await users.createToken({ userId: alice.id, name: 'new', token: later, expiresAt: new Date(Date.now() + HOUR).toISOString() });
      expect(await users.findToken(expired)).toBeUndefined();
      expect(await users.findToken(later)).toMatchObject({ name: 'new' });
    });

    it('lists, touches and deletes tokens', async () => {
      const alice = await create('alice');
      const bob = await create('bob');
      const a = await users.createToken({ userId: alice.id, name: 'a', token: newToken(), expiresAt: null });
      const b = await users.createToken({ userId: bob.id, name: 'b', token: newToken(), expiresAt: null });
      expect((await users.listTokens(alice.id)).map((x) => x.id)).toEqual([a.id]);
      expect((await users.listTokens()).map((x) => x.id).sort()).toEqual([a.id, b.id].sort());

      await users.touchToken(a.id);
      expect((await users.getToken(a.id)).lastUsedAt).not.toBeNull();

      await users.deleteToken(a.id);
      expect(await rejectionOf(users.getToken(a.id))).toBeInstanceOf(NotFoundError);
      expect(await rejectionOf(users.deleteToken(a.id))).toBeInstanceOf(NotFoundError);
      expect(await users.listTokens()).toEqual([b]);
    });
  });

  describe('grants', () => {
    it('grants a whole project, one device or one account, and turns them into what the user sees', async () => {
      const inv = new Inventory(t.db, await openVault(t.db, randomBytes(32)));
      const p1 = await inv.projects.create({ name: 'P1', description: null });
      const p2 = await inv.projects.create({ name: 'P2', description: null });
      const base = {
        provider: 'aws',
        protocols: [],
        publicIp: null,
        privateIp: null,
        urlPort: null,
        accessType: 'gateway',
        tags: [],
      } as const;
      const d2 = await inv.devices.create({ ...base, projectId: p2.id, name: 'd2', protocols: [], tags: [] });
      const d3 = await inv.devices.create({ ...base, projectId: p2.id, name: 'd3', protocols: [], tags: [] });
      const acct = await inv.accounts.create({ deviceId: d3.id, username: 'root', pemFileName: null });
      const op = await create('op');
      const other = await create('other');

      const g1 = await users.createGrant({ userId: op.id, projectId: p1.id });
      await users.createGrant({ userId: op.id, projectId: p2.id, deviceId: d2.id });
      await users.createGrant({ userId: op.id, projectId: p2.id, deviceId: d3.id, accountId: acct.id });
      await users.createGrant({ userId: other.id, projectId: p2.id });

      const grants = await users.listGrants(op.id);
      expect(grants).toHaveLength(3);
      expect(grants[0]).toEqual(g1);
      expect(grants[0]).toMatchObject({ userId: op.id, projectId: p1.id, deviceId: null, accountId: null });
      expect((await users.listGrants()).length).toBe(4);

      expect(visibilityOf(grants)).toMatchObject({
        all: false,
        wholeProjects: [p1.id],
        deviceIds: [d2.id, d3.id],
        wholeDevices: [d2.id],
        accountIds: [acct.id],
      });

      await users.deleteGrant(g1.id);
      expect((await users.listGrants(op.id)).map((g) => g.projectId)).toEqual([p2.id, p2.id]);
      expect(await rejectionOf(users.deleteGrant(g1.id))).toBeInstanceOf(NotFoundError);

      // A grant goes with what it names.
      await inv.accounts.delete(acct.id);
      expect((await users.listGrants(op.id)).map((g) => g.deviceId)).toEqual([d2.id]);
      await inv.projects.delete(p2.id);
      expect(await users.listGrants()).toEqual([]);
    });
  });
});

describe.each(dialects)('settings on %s', (dialect) => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase(dialect);
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('sets, replaces, reads and deletes a value', async () => {
    const settings = new Settings(t.db);
    expect(await settings.get('setup_token_hash')).toBeUndefined();
    await settings.set('setup_token_hash', 'first');
    expect(await settings.get('setup_token_hash')).toBe('first');
    await settings.set('setup_token_hash', 'second');
    expect(await settings.get('setup_token_hash')).toBe('second');
    await settings.set('other', 'x');
    expect(await t.db.kysely.selectFrom('settings').select(['key', 'value']).orderBy('key').execute()).toEqual([
      { key: 'other', value: 'x' },
      { key: 'setup_token_hash', value: 'second' },
    ]);
    await settings.delete('setup_token_hash');
    expect(await settings.get('setup_token_hash')).toBeUndefined();
    expect(await settings.get('other')).toBe('x');
    await settings.delete('never-set');
  });
});
