import { randomBytes, randomUUID } from 'node:crypto';
import {
  ConflictError,
  GatehouseError,
  NotFoundError,
  accountInput,
  accountPatch,
  deviceInput,
  devicePatch,
  projectInput,
  visibilityOf,
} from '@gatehouse/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, dialects, type TestDatabase } from '../../../test/support/db.js';
import type { Device } from './devices.js';
import { Inventory } from './inventory.js';
import type { Project } from './projects.js';
import { Users } from './users.js';
import { openVault } from './vault.js';

const PASSWORD = 'hunter2-very-secret';
const PRIVATE_KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-unit-test-key\n-----END OPENSSH PRIVATE KEY-----\n';
const PASSPHRASE = 'unlock-the-key-please';
const ENABLE = 'cisco-enable-secret';

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe.each(dialects)('inventory on %s', (dialect) => {
  let t: TestDatabase;
  let inv: Inventory;

  beforeEach(async () => {
    t = await createTestDatabase(dialect);
    inv = new Inventory(t.db, await openVault(t.db, randomBytes(32)));
  });
  afterEach(async () => {
    await t.cleanup();
  });

  const project = (name = `project-${randomUUID().slice(0, 8)}`, description?: string) =>
    inv.projects.create(projectInput.parse({ name, description }));
  const device = (projectId: string, name: string, over: Record<string, unknown> = {}) =>
    inv.devices.create(deviceInput.parse({ projectId, name, provider: 'aws', ...over }));
  const account = (deviceId: string, username: string, over: Record<string, unknown> = {}) =>
    inv.accounts.create(accountInput.parse({ deviceId, username, ...over }));

  describe('projects', () => {
    it('creates, reads, lists, renames and deletes a project', async () => {
      const p = await project('Payments', 'card processing');
      expect(p).toMatchObject({ name: 'Payments', description: 'card processing' });
      expect(await inv.projects.get(p.id)).toEqual(p);
      expect(await inv.projects.findByName('Payments')).toEqual(p);
      expect(await inv.projects.findByName('payments')).toBeUndefined();

      const b = await project('Billing');
      expect((await inv.projects.list()).map((x) => x.name)).toEqual(['Billing', 'Payments']);
      expect((await inv.projects.list([p.id])).map((x) => x.name)).toEqual(['Payments']);
      expect(await inv.projects.list([])).toEqual([]);

      const renamed = await inv.projects.update(p.id, { name: 'Payments EU' });
      expect(renamed).toMatchObject({ id: p.id, name: 'Payments EU', description: 'card processing' });
      expect(await inv.projects.update(p.id, { description: null })).toMatchObject({ name: 'Payments EU', description: null });

      await inv.projects.delete(b.id);
      expect((await inv.projects.list()).map((x) => x.name)).toEqual(['Payments EU']);
    });

    it('refuses a second project with the same name, naming the field', async () => {
      const p = await project('Payments');
      const other = await project('Billing');
      for (const attempt of [() => project('Payments'), () => inv.projects.update(other.id, { name: 'Payments' })]) {
        const error = await rejectionOf(attempt());
        expect(error).toBeInstanceOf(ConflictError);
        expect((error as ConflictError).issues).toEqual([{ path: 'name', message: 'is already taken' }]);
      }
      expect((await inv.projects.list()).map((x) => x.id).sort()).toEqual([p.id, other.id].sort());
      expect(await inv.projects.get(other.id)).toMatchObject({ name: 'Billing' });
    });

    it('answers NotFoundError for an unknown project id', async () => {
      const id = randomUUID();
      for (const attempt of [
        () => inv.projects.get(id),
        () => inv.projects.update(id, { name: 'x' }),
        () => inv.projects.delete(id),
        () => device(id, 'web-1'),
      ]) {
        const error = await rejectionOf(attempt());
        expect(error).toBeInstanceOf(NotFoundError);
        expect((error as NotFoundError).code).toBe('NOT_FOUND');
        expect((error as NotFoundError).message).toContain(id);
      }
    });

    it('deletes the devices and accounts of a deleted project, and leaves other projects alone', async () => {
      const p = await project('Doomed');
      const keep = await project('Kept');
      const d = await device(p.id, 'web-1');
      const a = await account(d.id, 'root', { password: PASSWORD });
      const kd = await device(keep.id, 'web-1');
      const ka = await account(kd.id, 'root', { password: PASSWORD });

      await inv.projects.delete(p.id);
      expect(await rejectionOf(inv.devices.get(d.id))).toBeInstanceOf(NotFoundError);
      expect(await rejectionOf(inv.accounts.get(a.id))).toBeInstanceOf(NotFoundError);
      expect(await t.db.kysely.selectFrom('devices').select('id').execute()).toEqual([{ id: kd.id }]);
      expect(await t.db.kysely.selectFrom('accounts').select('id').execute()).toEqual([{ id: ka.id }]);
      expect((await inv.accounts.reveal(ka.id)).password).toBe(PASSWORD);
    });
  });

  describe('devices', () => {
    let p: Project;
    beforeEach(async () => {
      p = await project('Payments');
    });

    it('creates a device with its defaults and reads it back', async () => {
      const d = await device(p.id, 'db-1', { protocols: ['ssh', 'ssh', 'sftp'], publicIp: '203.0.113.7', tags: ['gateway-office1', 'db'] });
      expect(d).toMatchObject({
        projectId: p.id,
        name: 'db-1',
        provider: 'aws',
        protocols: ['ssh', 'sftp'],
        publicIp: '203.0.113.7',
        privateIp: null,
        urlPort: null,
        accessType: 'gateway',
        tags: ['gateway-office1', 'db'],
      });
      expect(await inv.devices.get(d.id)).toEqual(d);
      expect(await inv.devices.find(p.id, 'db-1')).toEqual(d);
      expect(await inv.devices.find(p.id, 'db-2')).toBeUndefined();
    });

    it('updates only the fields given, and moves a device to another project', async () => {
      const d = await device(p.id, 'db-1', { publicIp: '203.0.113.7', tags: ['a'] });
      const updated = await inv.devices.update(d.id, devicePatch.parse({ privateIp: '10.0.0.5', protocols: ['rdp'] }));
      expect(updated).toMatchObject({ name: 'db-1', publicIp: '203.0.113.7', privateIp: '10.0.0.5', protocols: ['rdp'], tags: ['a'] });
      expect(await inv.devices.update(d.id, devicePatch.parse({ publicIp: null }))).toMatchObject({
        publicIp: null,
        privateIp: '10.0.0.5',
      });

      const other = await project('Billing');
      expect(await inv.devices.update(d.id, { projectId: other.id })).toMatchObject({ projectId: other.id, name: 'db-1' });
      expect(await rejectionOf(inv.devices.update(d.id, { projectId: randomUUID() }))).toBeInstanceOf(NotFoundError);
      expect(await inv.devices.get(d.id)).toMatchObject({ projectId: other.id });
    });

    it('refuses a second device with the same name in one project, but allows it in another', async () => {
      await device(p.id, 'web-1');
      const second = await device(p.id, 'web-2');
      for (const attempt of [() => device(p.id, 'web-1'), () => inv.devices.update(second.id, { name: 'web-1' })]) {
        const error = await rejectionOf(attempt());
        expect(error).toBeInstanceOf(ConflictError);
        expect((error as ConflictError).issues).toEqual([{ path: 'name', message: 'is already taken' }]);
      }
      const other = await project('Billing');
      expect(await device(other.id, 'web-1')).toMatchObject({ projectId: other.id, name: 'web-1' });
    });

    it('answers NotFoundError for an unknown device id', async () => {
      const id = randomUUID();
      for (const attempt of [
        () => inv.devices.get(id),
        () => inv.devices.update(id, { name: 'x' }),
        () => inv.devices.delete(id),
        () => account(id, 'root'),
      ]) {
        expect(await rejectionOf(attempt())).toBeInstanceOf(NotFoundError);
      }
    });

    it('deletes a device with its accounts', async () => {
      const d = await device(p.id, 'web-1');
      const a = await account(d.id, 'root', { password: PASSWORD });
      await inv.devices.delete(d.id);
      expect(await rejectionOf(inv.accounts.get(a.id))).toBeInstanceOf(NotFoundError);
      expect((await inv.devices.list()).total).toBe(0);
    });

    describe('listing', () => {
      let devices: Record<string, Device>;
      beforeEach(async () => {
        devices = {};
        const specs: [string, Record<string, unknown>][] = [
          ['Web-Alpha', { publicIp: '203.0.113.10', tags: ['web', 'gateway-office1'] }],
          ['web-beta', { privateIp: '10.1.2.3', tags: ['web'] }],
          ['x_1', { privateIp: '10.1.2.30', provider: 'gcp', tags: ['db_1'] }],
          ['xx1', { privateIp: 'FD00::1', provider: 'azure', tags: ['dbx1'] }],
          ['100%-up', { publicIp: '2001:db8::10', tags: ['up'] }],
        ];
        for (const [i, [name, over]] of specs.entries()) {
          devices[name] = await device(p.id, name, over);
          // Distinct creation times, in creation order, so sorting by them is deterministic.
          await t.db.kysely
            .updateTable('devices')
            .set({ created_at: `2024-01-0${i + 1}T00:00:00.000Z` })
            .where('name', '=', name)
            .execute();
        }
      });
      const names = (r: { items: Device[] }) => r.items.map((d) => d.name);

      it('searches names case-insensitively and IP addresses', async () => {
        expect(names(await inv.devices.list({ search: 'WEB' }))).toEqual(['Web-Alpha', 'web-beta']);
        expect(names(await inv.devices.list({ search: 'alpha' }))).toEqual(['Web-Alpha']);
        expect(names(await inv.devices.list({ search: '203.0.113' }))).toEqual(['Web-Alpha']);
        expect(names(await inv.devices.list({ search: '10.1.2.3' }))).toEqual(['web-beta', 'x_1']);
        expect(names(await inv.devices.list({ search: '2001:DB8' }))).toEqual(['100%-up']);
        expect(names(await inv.devices.list({ search: 'fd00::' }))).toEqual(['xx1']);
        expect(names(await inv.devices.list({ search: 'FD00::1' }))).toEqual(['xx1']);
        expect(await inv.devices.list({ search: 'nothing-like-this' })).toEqual({ items: [], total: 0 });
      });

      it('counts all the matches of a search in the same pass, on every page and past the last one', async () => {
        const all = await inv.devices.list({ search: 'web' });
        expect(all.total).toBe(2);
        const second = await inv.devices.list({ search: 'web', limit: 1, offset: 1 });
        expect({ names: names(second), total: second.total }).toEqual({ names: ['web-beta'], total: 2 });
        expect(await inv.devices.list({ search: 'web', limit: 1, offset: 5 })).toEqual({ items: [], total: 2 });
        expect((await inv.devices.list({ tag: 'web', limit: 1 })).total).toBe(2);
      });

      it('treats % and _ in a search as the characters themselves', async () => {
        expect(names(await inv.devices.list({ search: 'x_' }))).toEqual(['x_1']);
        expect(names(await inv.devices.list({ search: '_' }))).toEqual(['x_1']);
        expect(names(await inv.devices.list({ search: '%' }))).toEqual(['100%-up']);
        expect(names(await inv.devices.list({ search: '0%-' }))).toEqual(['100%-up']);
        expect(names(await inv.devices.list({ search: '\\' }))).toEqual([]);
      });

      it('filters by one exact tag, with % and _ taken literally', async () => {
        expect(names(await inv.devices.list({ tag: 'web' }))).toEqual(['Web-Alpha', 'web-beta']);
        expect(names(await inv.devices.list({ tag: 'gateway-office1' }))).toEqual(['Web-Alpha']);
        expect(names(await inv.devices.list({ tag: 'we' }))).toEqual([]);
        expect(names(await inv.devices.list({ tag: 'db_1' }))).toEqual(['x_1']);
        expect(names(await inv.devices.list({ tag: 'up' }))).toEqual(['100%-up']);
        expect(names(await inv.devices.list({ tag: '%' }))).toEqual([]);
        expect(names(await inv.devices.list({ tag: 'db%' }))).toEqual([]);
        expect(names(await inv.devices.list({ tag: '_' }))).toEqual([]);
      });

      it('sorts by name, provider and creation time, either way', async () => {
        // These names sort the same under a byte-wise and a linguistic collation.
        const byName = ['100%-up', 'Web-Alpha', 'web-beta', 'x_1', 'xx1'];
        expect(names(await inv.devices.list())).toEqual(byName);
        expect(names(await inv.devices.list({ sort: 'name' }))).toEqual(byName);
        expect(names(await inv.devices.list({ sort: '-name' }))).toEqual([...byName].reverse());
        expect(names(await inv.devices.list({ sort: 'createdAt' }))).toEqual(['Web-Alpha', 'web-beta', 'x_1', 'xx1', '100%-up']);
        expect(names(await inv.devices.list({ sort: '-createdAt' }))).toEqual(['100%-up', 'xx1', 'x_1', 'web-beta', 'Web-Alpha']);
        const byProvider = (await inv.devices.list({ sort: 'provider' })).items.map((d) => d.provider);
        expect(byProvider).toEqual(['aws', 'aws', 'aws', 'azure', 'gcp']);
      });

      it('pages with limit and offset and reports the total', async () => {
        const order = names(await inv.devices.list({ sort: 'createdAt' }));
        const page1 = await inv.devices.list({ sort: 'createdAt', limit: 2 });
        const page2 = await inv.devices.list({ sort: 'createdAt', limit: 2, offset: 2 });
        const page3 = await inv.devices.list({ sort: 'createdAt', limit: 2, offset: 4 });
        expect([page1.total, page2.total, page3.total]).toEqual([5, 5, 5]);
        expect([...names(page1), ...names(page2), ...names(page3)]).toEqual(order);
        expect(names(page3)).toHaveLength(1);
        expect(await inv.devices.list({ offset: 10 })).toEqual({ items: [], total: 5 });
        expect(await inv.devices.list({ search: 'web', limit: 1 })).toMatchObject({ total: 2, items: [{ name: 'Web-Alpha' }] });
      });

      it('lists only one project when asked', async () => {
        const other = await project('Billing');
        await device(other.id, 'web-gamma');
        expect((await inv.devices.list()).total).toBe(6);
        expect(names(await inv.devices.list({ projectId: other.id }))).toEqual(['web-gamma']);
        expect((await inv.devices.list({ projectId: p.id, search: 'web' })).total).toBe(2);
      });

      it('shows an operator only what their grants name', async () => {
        const other = await project('Billing');
        const gamma = await device(other.id, 'web-gamma');
        const delta = await device(other.id, 'web-delta');
        const users = new Users(t.db);
        const operator = await users.create({ username: 'op', role: 'operator', passwordHash: 'x' });

        expect(await inv.devices.list({ visibility: visibilityOf(await users.listGrants(operator.id)) })).toEqual({ items: [], total: 0 });
        expect((await inv.devices.list({ visibility: { all: true } })).total).toBe(7);

        await users.createGrant({ userId: operator.id, projectId: other.id, deviceId: gamma.id });
        let visibility = visibilityOf(await users.listGrants(operator.id));
        expect(await inv.devices.list({ visibility })).toEqual({ items: [gamma], total: 1 });

        await users.createGrant({ userId: operator.id, projectId: p.id });
        visibility = visibilityOf(await users.listGrants(operator.id));
        const seen = await inv.devices.list({ visibility, limit: 100 });
        expect(seen.total).toBe(6);
        expect(seen.items.map((d) => d.id)).not.toContain(delta.id);
        expect(names(await inv.devices.list({ visibility, projectId: other.id }))).toEqual(['web-gamma']);
        expect(names(await inv.devices.list({ visibility, search: 'delta' }))).toEqual([]);
      });
    });
  });

  describe('accounts', () => {
    let d: Device;
    beforeEach(async () => {
      const p = await project('Payments');
      d = await device(p.id, 'db-1');
    });

    it('says which secrets are set, and holds none of them', async () => {
      const full = await account(d.id, 'root', {
        password: PASSWORD,
        privateKey: PRIVATE_KEY,
        pemFileName: 'root.pem',
        passphrase: PASSPHRASE,
        extraCredential: { enable: ENABLE },
      });
      expect(full).toMatchObject({
        deviceId: d.id,
        username: 'root',
        hasPassword: true,
        hasPrivateKey: true,
        pemFileName: 'root.pem',
        hasPassphrase: true,
        hasExtraCredential: true,
      });
      const bare = await account(d.id, 'guest', { password: '', extraCredential: {} });
      expect(bare).toMatchObject({
        hasPassword: false,
        hasPrivateKey: false,
        pemFileName: null,
        hasPassphrase: false,
        hasExtraCredential: false,
      });
      expect(await inv.accounts.get(full.id)).toEqual(full);
      expect(await inv.accounts.list(d.id)).toEqual([bare, full]);
      expect(JSON.stringify(await inv.accounts.list(d.id))).not.toMatch(/hunter2|PRIVATE KEY|unlock|cisco|\*\*\*/);
    });

    it('reveals the plaintext secrets, including the extra credential as an object', async () => {
      const a = await account(d.id, 'root', {
        password: PASSWORD,
        privateKey: PRIVATE_KEY,
        passphrase: PASSPHRASE,
        extraCredential: { enable: ENABLE, pin: '1234' },
      });
      expect(await inv.accounts.reveal(a.id)).toEqual({
        password: PASSWORD,
        privateKey: PRIVATE_KEY,
        passphrase: PASSPHRASE,
        extraCredential: { enable: ENABLE, pin: '1234' },
      });
      const bare = await account(d.id, 'guest');
      expect(await inv.accounts.reveal(bare.id)).toEqual({
        password: null,
        privateKey: null,
        passphrase: null,
        extraCredential: null,
      });
    });

    it('never stores a secret in plaintext', async () => {
      const a = await account(d.id, 'root', {
        password: PASSWORD,
        privateKey: PRIVATE_KEY,
        passphrase: PASSPHRASE,
        extraCredential: { enable: ENABLE },
      });
      await inv.accounts.update(a.id, accountPatch.parse({ password: `${PASSWORD}-2` }));
      const rows = await t.db.kysely.selectFrom('accounts').selectAll().execute();
      expect(rows).toHaveLength(1);
      const stored = JSON.stringify(rows);
      for (const secret of [PASSWORD, 'hunter2', 'OPENSSH PRIVATE KEY', 'unit-test-key', PASSPHRASE, ENABLE, 'enable']) {
        expect(stored).not.toContain(secret);
      }
      expect(rows[0]?.password_enc).toMatch(/^gh1\./);
      const everything = JSON.stringify(
        await Promise.all(
          (['projects', 'devices', 'accounts', 'vault_keys', 'audit_events', 'settings'] as const).map((table) =>
            t.db.kysely.selectFrom(table).selectAll().execute(),
          ),
        ),
      );
      expect(everything).not.toContain(PASSWORD);
      expect(everything).not.toContain(ENABLE);
    });

    it('keeps a secret the patch leaves out, clears one set to null or empty, and replaces one given', async () => {
      const a = await account(d.id, 'root', { password: PASSWORD, passphrase: PASSPHRASE, extraCredential: { enable: ENABLE } });

      const renamed = await inv.accounts.update(a.id, accountPatch.parse({ username: 'admin' }));
      expect(renamed).toMatchObject({ username: 'admin', hasPassword: true, hasPassphrase: true, hasExtraCredential: true });
      expect(await inv.accounts.reveal(a.id)).toMatchObject({
        password: PASSWORD,
        passphrase: PASSPHRASE,
        extraCredential: { enable: ENABLE },
      });

      const cleared = await inv.accounts.update(a.id, accountPatch.parse({ password: null, passphrase: '', extraCredential: null }));
      expect(cleared).toMatchObject({ hasPassword: false, hasPassphrase: false, hasExtraCredential: false });
      expect(await inv.accounts.reveal(a.id)).toEqual({ password: null, privateKey: null, passphrase: null, extraCredential: null });

      await inv.accounts.update(a.id, accountPatch.parse({ password: 'new-password', extraCredential: { pin: '42' } }));
      expect(await inv.accounts.reveal(a.id)).toMatchObject({ password: 'new-password', extraCredential: { pin: '42' } });
      await inv.accounts.update(a.id, accountPatch.parse({ extraCredential: {} }));
      expect(await inv.accounts.get(a.id)).toMatchObject({ hasPassword: true, hasExtraCredential: false });
    });

    it('refuses a second account with the same username on one device, naming the field', async () => {
      await account(d.id, 'root');
      const other = await account(d.id, 'admin');
      for (const attempt of [() => account(d.id, 'root'), () => inv.accounts.update(other.id, { username: 'root' })]) {
        const error = await rejectionOf(attempt());
        expect(error).toBeInstanceOf(ConflictError);
        expect((error as ConflictError).issues).toEqual([{ path: 'username', message: 'is already taken' }]);
      }
      const p2 = await project('Billing');
      const d2 = await device(p2.id, 'db-1');
      expect(await account(d2.id, 'root')).toMatchObject({ deviceId: d2.id, username: 'root' });
    });

    it('answers NotFoundError for an unknown account id', async () => {
      const id = randomUUID();
      for (const attempt of [
        () => inv.accounts.get(id),
        () => inv.accounts.update(id, { username: 'x' }),
        () => inv.accounts.delete(id),
        () => inv.accounts.reveal(id),
      ]) {
        expect(await rejectionOf(attempt())).toBeInstanceOf(NotFoundError);
      }
    });

    it('deletes an account', async () => {
      const a = await account(d.id, 'root', { password: PASSWORD });
      await inv.accounts.delete(a.id);
      expect(await inv.accounts.list(d.id)).toEqual([]);
      expect(await rejectionOf(inv.accounts.get(a.id))).toBeInstanceOf(NotFoundError);
    });

    it('refuses to reveal a secret copied from another account', async () => {
      const a = await account(d.id, 'root', { password: PASSWORD });
      const b = await account(d.id, 'guest', { password: 'guest-password' });
      const stolen = await t.db.kysely.selectFrom('accounts').select('password_enc').where('id', '=', a.id).executeTakeFirstOrThrow();
      await t.db.kysely.updateTable('accounts').set({ password_enc: stolen.password_enc }).where('id', '=', b.id).execute();
      const error = await rejectionOf(inv.accounts.reveal(b.id));
      expect(error).toBeInstanceOf(GatehouseError);
      expect((error as GatehouseError).code).toBe('VAULT_UNAVAILABLE');
      expect((error as GatehouseError).message).not.toContain(PASSWORD);
    });
  });

  describe('transaction', () => {
    it('writes everything done in it', async () => {
      const result = await inv.transaction(async (tx) => {
        const p = await tx.projects.create(projectInput.parse({ name: 'Atomic' }));
        const d = await tx.devices.create(deviceInput.parse({ projectId: p.id, name: 'web-1', provider: 'aws' }));
        return tx.accounts.create(accountInput.parse({ deviceId: d.id, username: 'root', password: PASSWORD }));
      });
      expect((await inv.accounts.reveal(result.id)).password).toBe(PASSWORD);
    });

    it('writes nothing when an error is thrown inside it', async () => {
      const existing = await project('Existing');
      const error = await rejectionOf(
        inv.transaction(async (tx) => {
          const p = await tx.projects.create(projectInput.parse({ name: 'Atomic' }));
          const d = await tx.devices.create(deviceInput.parse({ projectId: p.id, name: 'web-1', provider: 'aws' }));
          await tx.accounts.create(accountInput.parse({ deviceId: d.id, username: 'root', password: PASSWORD }));
          await tx.projects.update(existing.id, { description: 'changed' });
          // Visible inside the transaction...
          expect((await tx.devices.list()).total).toBe(1);
          throw new Error('boom');
        }),
      );
      expect((error as Error).message).toBe('boom');
      // ...and gone after it.
      expect((await inv.projects.list()).map((p) => p.name)).toEqual(['Existing']);
      expect(await inv.projects.get(existing.id)).toMatchObject({ description: null });
      expect((await inv.devices.list()).total).toBe(0);
      expect(await t.db.kysely.selectFrom('accounts').selectAll().execute()).toEqual([]);
    });

    it('writes nothing when a conflict inside it fails', async () => {
      await project('Taken');
      const error = await rejectionOf(
        inv.transaction(async (tx) => {
          await tx.projects.create(projectInput.parse({ name: 'Fresh' }));
          await tx.projects.create(projectInput.parse({ name: 'Taken' }));
        }),
      );
      expect(error).toBeInstanceOf(ConflictError);
      expect((await inv.projects.list()).map((p) => p.name)).toEqual(['Taken']);
    });
  });

  it('walks every project, device and account in name order', async () => {
    const b = await project('B');
    const a = await project('A');
    const d2 = await device(a.id, 'z-host');
    const d1 = await device(a.id, 'a-host');
    await device(b.id, 'm-host');
    await account(d1.id, 'root', { password: PASSWORD });
    const walked = [];
    for await (const row of inv.walk()) walked.push([row.project.name, row.device.name, row.accounts.map((x) => x.username)]);
    expect(walked).toEqual([
      ['A', 'a-host', ['root']],
      ['A', 'z-host', []],
      ['B', 'm-host', []],
    ]);
    const only = [];
    for await (const row of inv.walk([a.id])) only.push(row.device.id);
    expect(only).toEqual([d1.id, d2.id]);
  });
});
