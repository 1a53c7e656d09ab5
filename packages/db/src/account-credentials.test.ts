import { randomBytes } from 'node:crypto';
import { accountInput, ConflictError, deviceInput, NotFoundError, projectInput } from '@gatehouse/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, dialects, type TestDatabase } from '../../../test/support/db.js';
import { AccountCredentials } from './account-credentials.js';
import type { Account } from './accounts.js';
import { Inventory } from './inventory.js';
import { RotationPolicies } from './rotation-policies.js';
import { Users } from './users.js';
import { openVault } from './vault.js';

const OLD_PASSWORD = 'old-password-1234';
const NEW_PASSWORD = 'Fresh-Password-98765!';
const OLD_KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nb2xkLWtleQ\n-----END OPENSSH PRIVATE KEY-----\n';
const NEW_KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nbmV3LWtleS1mb3ItdGVzdA\n-----END OPENSSH PRIVATE KEY-----\n';

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

const DAY = 24 * 60 * 60 * 1000;

describe.each(dialects)('account credentials and rotation policies on %s', (dialect) => {
  let t: TestDatabase;
  let inv: Inventory;
  let credentials: AccountCredentials;
  let policies: RotationPolicies;
  let projectId: string;
  let deviceId: string;
  let userId: string;
  let seq = 0;

  beforeAll(async () => {
    t = await createTestDatabase(dialect);
    const vault = await openVault(t.db, randomBytes(32));
    inv = new Inventory(t.db, vault);
    credentials = new AccountCredentials(vault, t.db.kysely);
    policies = new RotationPolicies(t.db.kysely);
    projectId = (await inv.projects.create(projectInput.parse({ name: 'Payments' }))).id;
    deviceId = (await inv.devices.create(deviceInput.parse({ projectId, name: 'web1', provider: 'aws' }))).id;
    userId = (await new Users(t.db).create({ username: 'alice', role: 'admin', passwordHash: 'not-a-real-hash' })).id;
  });
  afterAll(() => t.cleanup());

  const account = (over: Record<string, unknown> = {}): Promise<Account> =>
    inv.accounts.create(accountInput.parse({ deviceId, username: `user${++seq}`, ...over }));

  const LONG_AGO = '2020-01-01T00:00:00.000Z';
  /** Dates an account's secret long ago, so a change now is later whatever the clock's resolution. */
  const age = (id: string) => t.db.kysely.updateTable('accounts').set({ secret_changed_at: LONG_AGO }).where('id', '=', id).execute();

  /** Every column of every credential row, as stored. */
  const rawRows = () => t.db.kysely.selectFrom('account_credentials').selectAll().execute();

  it('keeps a pending credential sealed, and promotes it: the old one becomes the only previous, the account gets the new one', async () => {
    const a = await account({ password: OLD_PASSWORD, privateKey: OLD_KEY });
    const first = await credentials.addPending(a.id, { password: NEW_PASSWORD }, 'run-1');
    expect(first).toMatchObject({ accountId: a.id, state: 'pending', hasPassword: true, hasPrivateKey: false, runId: 'run-1' });
    const stored = JSON.stringify(await rawRows());
    expect(stored).not.toContain(NEW_PASSWORD);
    expect(stored).not.toContain(OLD_PASSWORD);
    expect(await credentials.reveal(first.id)).toEqual({ accountId: a.id, password: NEW_PASSWORD, privateKey: null, passphrase: null });

    await age(a.id);
    const { account: promoted, previous } = await credentials.promote(first.id);
    expect(promoted.secretChangedAt > LONG_AGO).toBe(true);
    expect(await inv.accounts.reveal(a.id)).toMatchObject({ password: NEW_PASSWORD, privateKey: OLD_KEY });
    expect(previous).toMatchObject({ accountId: a.id, state: 'previous', hasPassword: true, hasPrivateKey: true });
    expect(await credentials.reveal(previous?.id as string)).toMatchObject({ password: OLD_PASSWORD, privateKey: OLD_KEY });
    expect(await rejectionOf(credentials.get(first.id))).toBeInstanceOf(NotFoundError);
    expect(await rejectionOf(credentials.promote(first.id))).toBeInstanceOf(NotFoundError);

    // A key rotation next: the password one becomes the previous, and is the only previous.
    const second = await credentials.addPending(a.id, { privateKey: NEW_KEY, publicKey: 'ssh-ed25519 AAAAC3 gatehouse' }, 'run-2');
    await credentials.promote(second.id);
    expect(await inv.accounts.reveal(a.id)).toMatchObject({ password: NEW_PASSWORD, privateKey: NEW_KEY, passphrase: null });
    const list = await credentials.list(a.id);
    expect(list.map((c) => c.state)).toEqual(['previous']);
    expect(await credentials.reveal(list[0]?.id as string)).toMatchObject({ password: NEW_PASSWORD, privateKey: OLD_KEY });
    expect((await credentials.previousOf(a.id))?.id).toBe(list[0]?.id);
    const raw = JSON.stringify(await rawRows());
    for (const secret of [OLD_PASSWORD, NEW_PASSWORD, OLD_KEY, NEW_KEY, 'bmV3LWtleS1mb3ItdGVzdA', 'b2xkLWtleQ'])
      expect(raw).not.toContain(secret);
  });

  it('promotes two pending credentials of one account at once without losing the single previous', async () => {
    const a = await account({ password: OLD_PASSWORD });
    const p1 = await credentials.addPending(a.id, { password: 'first-new-password-1' }, null);
    const p2 = await credentials.addPending(a.id, { password: 'second-new-password-2' }, null);
    await Promise.all([credentials.promote(p1.id), credentials.promote(p2.id)]);
    const left = await credentials.list(a.id);
    expect(left.map((c) => c.state)).toEqual(['previous']);
    const current = (await inv.accounts.reveal(a.id)).password;
    const previous = (await credentials.reveal(left[0]?.id as string)).password;
    // Whichever went second replaced the first, whose password is the previous one.
    expect([current, previous].sort()).toEqual(['first-new-password-1', 'second-new-password-2']);
  });

  it('keeps a failed one as unverified or discards it; only a pending credential is promoted', async () => {
    const a = await account({ password: OLD_PASSWORD });
    const p = await credentials.addPending(a.id, { password: NEW_PASSWORD }, 'run-3');
    expect((await credentials.markUnverified(p.id)).state).toBe('unverified');
    const refused = await rejectionOf(credentials.promote(p.id));
    expect(refused).toBeInstanceOf(ConflictError);
    expect((refused as Error).message).not.toContain(NEW_PASSWORD);
    expect((await inv.accounts.reveal(a.id)).password).toBe(OLD_PASSWORD);
    expect(await credentials.discard(p.id)).toBe(true);
    expect(await credentials.discard(p.id)).toBe(false);
    expect(await rejectionOf(credentials.addPending('no-such-account', { password: 'x-y-z-1234567' }, null))).toBeInstanceOf(NotFoundError);
    // They go with their account.
    await credentials.addPending(a.id, { password: NEW_PASSWORD }, null);
    await inv.accounts.delete(a.id);
    expect(await credentials.list(a.id)).toEqual([]);
  });

  it('dates an account secret change: on create, on an update that changes a secret, and on an import only when one changed', async () => {
    const a = await account({ password: OLD_PASSWORD });
    expect(a.secretChangedAt).toBe(a.createdAt);
    await age(a.id);
    const renamed = await inv.accounts.update(a.id, { username: `${a.username}-renamed`, password: OLD_PASSWORD });
    expect(renamed.secretChangedAt).toBe(LONG_AGO);
    for (const patch of [{ passphrase: 'now-with-a-passphrase' }, { extraCredential: { enable: 'cisco' } }, { password: null }]) {
      await age(a.id);
      expect((await inv.accounts.update(a.id, patch)).secretChangedAt > LONG_AGO, JSON.stringify(Object.keys(patch))).toBe(true);
    }

    const item = (password: string) => ({
      project: 'Payments',
      device: deviceInput.parse({ projectId: 'given by the item', name: 'web1', provider: 'aws' }),
      account: { username: renamed.username, password },
    });
    await inv.transaction((x) => x.importItems([item(OLD_PASSWORD)]));
    await age(a.id);
    await inv.transaction((x) => x.importItems([item(OLD_PASSWORD)]));
    expect((await inv.accounts.get(a.id)).secretChangedAt).toBe(LONG_AGO);
    await inv.transaction((x) => x.importItems([item(NEW_PASSWORD)]));
    expect((await inv.accounts.get(a.id)).secretChangedAt > LONG_AGO).toBe(true);
  });

  it('sets rotation policies per project and device; a device policy beats its project one', async () => {
    expect(await policies.get('project', projectId)).toBeUndefined();
    const p = await policies.put('project', projectId, { everyDays: 30 }, userId);
    expect(p).toMatchObject({
      scope: 'project',
      scopeId: projectId,
      everyDays: 30,
      afterSession: false,
      credential: 'same',
      passwordLength: 24,
      passwordClasses: ['lower', 'upper', 'digit', 'symbol'],
      privilegedAccount: 'root',
      setBy: { id: userId, username: 'alice' },
    });
    const changed = await policies.put('project', projectId, { passwordLength: 40, passwordClasses: ['lower', 'digit'] }, userId);
    expect(changed).toMatchObject({ id: p.id, everyDays: 30, passwordLength: 40, passwordClasses: ['lower', 'digit'] });
    expect((await policies.effectiveFor(deviceId))?.id).toBe(p.id);
    const own = await policies.put('device', deviceId, { everyDays: null, afterSession: true, credential: 'key' }, userId);
    expect((await policies.effectiveFor(deviceId))?.id).toBe(own.id);
    expect(await rejectionOf(policies.put('device', 'no-such-device', {}, userId))).toBeInstanceOf(NotFoundError);
    await policies.delete('device', deviceId);
    expect(await rejectionOf(policies.delete('device', deviceId))).toBeInstanceOf(NotFoundError);
    expect((await policies.effectiveFor(deviceId))?.id).toBe(p.id);
    await policies.delete('project', projectId);
    expect(await policies.effectiveFor(deviceId)).toBeUndefined();
  });

  it('finds the accounts due for rotation by the effective policy', async () => {
    const other = await inv.devices.create(deviceInput.parse({ projectId, name: 'db1', provider: 'aws' }));
    const old = new Date(Date.now() - 40 * DAY).toISOString();
    const stale = await account({ password: OLD_PASSWORD });
    const fresh = await account({ password: OLD_PASSWORD });
    const noSecret = await account();
    const onOther = await inv.accounts.create(accountInput.parse({ deviceId: other.id, username: 'root', privateKey: OLD_KEY }));
    for (const id of [stale.id, noSecret.id, onOther.id]) {
      await t.db.kysely.updateTable('accounts').set({ secret_changed_at: old }).where('id', '=', id).execute();
    }
    expect(await policies.due(new Date())).toEqual([]);
    const project = await policies.put('project', projectId, { everyDays: 30 }, userId);
    const due = await policies.due(new Date());
    expect(due.map((d) => d.accountId).sort()).toEqual([stale.id, onOther.id].sort());
    expect(due.find((d) => d.accountId === stale.id)).toEqual({
      accountId: stale.id,
      deviceId,
      username: stale.username,
      secretChangedAt: old,
      policyId: project.id,
    });
    expect(due.map((d) => d.accountId)).not.toContain(fresh.id);
    // The device's own policy, without a schedule, takes its accounts out; a longer one too.
    await policies.put('device', deviceId, { afterSession: true }, userId);
    const device = await policies.put('device', other.id, { everyDays: 60 }, userId);
    expect(await policies.due(new Date())).toEqual([]);
    const later = await policies.due(new Date(Date.now() + 30 * DAY));
    expect(later.map((d) => [d.accountId, d.policyId])).toEqual([[onOther.id, device.id]]);
  });
});
