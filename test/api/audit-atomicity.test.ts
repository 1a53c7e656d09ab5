import { randomBytes } from 'node:crypto';
import { accountInput, deviceInput } from '@gatehouse/core';
import { listAuditEvents } from '@gatehouse/db';
import { generateLinkIdentity, generateEd25519KeyPair, vncAuthResponse } from '@gatehouse/gateway';
import { ServerAccessBroker, ServerRdpTunnelBroker } from '@gatehouse/server';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { API } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { armAuditKiller, killAudit, spareAudit } from '../support/audit-killer.js';
import { dialects } from '../support/db.js';

const eventsOf = async (t: TestApp, action: string) => (await listAuditEvents(t.database.db, { action, limit: 1000 })).length;

/** A write and its audit event commit together or not at all (Services.withAudit): the request fails and its change is gone too. */
describe.each(dialects)('a write whose audit event cannot be appended, on %s', (dialect) => {
  let t: TestApp;
  let admin: { id: string; token: string };
  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = await t.userWithToken('admin');
    await armAuditKiller(t);
  });
  afterAll(() => t.close());
  beforeEach(() => spareAudit(t));

  it('adds no SSH key and records nothing', async () => {
    const key = generateEd25519KeyPair('test').public;
    await killAudit(t, 'user.ssh_key_add');
    const res = await t.request('POST', `${API}/ssh-keys`, { token: admin.token, body: { publicKey: key } });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toMatchObject({ error: { code: 'INTERNAL' } });
    expect(res.body).not.toContain('killed');
    expect(await t.services.users.listSshKeys(admin.id)).toEqual([]);
    expect(await eventsOf(t, 'user.ssh_key_add')).toBe(0);

    await spareAudit(t);
    const again = await t.request('POST', `${API}/ssh-keys`, { token: admin.token, body: { publicKey: key } });
    expect(again.statusCode).toBe(201);
    expect(await eventsOf(t, 'user.ssh_key_add')).toBe(1);
  });

  it('keeps an SSH key whose removal could not be recorded', async () => {
    const added = await t.request('POST', `${API}/ssh-keys`, {
      token: admin.token,
      body: { publicKey: generateEd25519KeyPair('test').public },
    });
    const id = added.json<{ id: string }>().id;
    await killAudit(t, 'user.ssh_key_delete');
    const res = await t.request('DELETE', `${API}/ssh-keys/${id}`, { token: admin.token });
    expect(res.statusCode).toBe(500);
    expect((await t.services.users.listSshKeys(admin.id)).map((k) => k.id)).toContain(id);
    expect(await eventsOf(t, 'user.ssh_key_delete')).toBe(0);
  });

  it('adds no device and records nothing (POST /devices)', async () => {
    const project = await t.request('POST', `${API}/projects`, { token: admin.token, body: { name: 'Atomic devices' } });
    const projectId = project.json<{ id: string }>().id;
    const body = { projectId, name: 'db-atomic', provider: 'aws', publicIp: '203.0.113.9' };
    await killAudit(t, 'device.create');
    const res = await t.request('POST', `${API}/devices`, { token: admin.token, body });
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toContain('killed');
    expect(await t.services.inventory.devices.find(projectId, 'db-atomic')).toBeUndefined();
    expect(await eventsOf(t, 'device.create')).toBe(0);

    await spareAudit(t);
    const again = await t.request('POST', `${API}/devices`, { token: admin.token, body });
    expect(again.statusCode).toBe(201);
    expect(await t.services.inventory.devices.find(projectId, 'db-atomic')).toMatchObject({ id: again.json<{ id: string }>().id });
    expect(await eventsOf(t, 'device.create')).toBe(1);
  });

  it("keeps an account's secret when its change could not be recorded (PATCH /accounts/:id)", async () => {
    const project = await t.request('POST', `${API}/projects`, { token: admin.token, body: { name: 'Atomic accounts' } });
    const device = await t.request('POST', `${API}/devices`, {
      token: admin.token,
      body: { projectId: project.json<{ id: string }>().id, name: 'acc-atomic', provider: 'gcp' },
    });
    const created = await t.request('POST', `${API}/accounts`, {
      token: admin.token,
      body: { deviceId: device.json<{ id: string }>().id, username: 'root', password: 'before-the-change' },
    });
    const id = created.json<{ id: string }>().id;
    await killAudit(t, 'account.update');
    const res = await t.request('PATCH', `${API}/accounts/${id}`, { token: admin.token, body: { password: 'after-the-change' } });
    expect(res.statusCode).toBe(500);
    expect(await t.services.inventory.accounts.reveal(id)).toMatchObject({ password: 'before-the-change' });
    expect(await eventsOf(t, 'account.update')).toBe(0);
  });

  it('keeps a project whose deletion could not be recorded', async () => {
    const created = await t.request('POST', `${API}/projects`, { token: admin.token, body: { name: 'Atomic project' } });
    const id = created.json<{ id: string }>().id;
    await killAudit(t, 'project.delete');
    const res = await t.request('DELETE', `${API}/projects/${id}`, { token: admin.token });
    expect(res.statusCode).toBe(500);
    expect((await t.services.inventory.projects.get(id)).name).toBe('Atomic project');
    expect(await eventsOf(t, 'project.delete')).toBe(0);
  });

  it('registers no gateway and records nothing', async () => {
    const body = { name: 'atomic-gw', address: '127.0.0.1:1', publicKey: generateLinkIdentity('g').publicKey };
    await killAudit(t, 'gateway.register');
    const res = await t.request('POST', `${API}/gateways`, { token: admin.token, body });
    expect(res.statusCode).toBe(500);
    expect((await t.gateways.gateways.list()).map((g) => g.name)).not.toContain('atomic-gw');
    expect(await eventsOf(t, 'gateway.register')).toBe(0);

    await spareAudit(t);
    const again = await t.request('POST', `${API}/gateways`, { token: admin.token, body });
    expect(again.statusCode, again.body).toBe(201);
    expect(await eventsOf(t, 'gateway.register')).toBe(1);
  });

  it('keeps the gateway settings when their change could not be recorded', async () => {
    await killAudit(t, 'gateway.settings');
    const res = await t.request('PUT', `${API}/gateway-settings`, { token: admin.token, body: { tunnelMode: true } });
    expect(res.statusCode).toBe(500);
    expect(await t.gateways.settings()).toEqual({ tunnelMode: false, portForwarding: false, requirePostQuantumKex: false });
    expect(await eventsOf(t, 'gateway.settings')).toBe(0);
  });

  it("keeps a device's trusted host key whose removal or replacement could not be recorded", async () => {
    const project = await t.services.inventory.projects.create({ name: 'Host keys', description: null });
    const device = await t.services.inventory.devices.create(deviceInput.parse({ projectId: project.id, name: 'hk-1', provider: 'aws' }));
    await t.gatewaySessions.trustOnFirstUse(device.id, 'ssh', { algorithm: 'ssh-ed25519', fingerprint: 'SHA256:atomic' });
    await killAudit(t, 'device.host_key_forget');
    const res = await t.request('DELETE', `${API}/devices/${device.id}/host-key`, { token: admin.token });
    expect(res.statusCode).toBe(500);
    expect((await t.gatewaySessions.hostKey(device.id, 'ssh'))?.fingerprint).toBe('SHA256:atomic');
    expect(await eventsOf(t, 'device.host_key_forget')).toBe(0);

    await spareAudit(t);
    await killAudit(t, 'device.host_key_pin');
    const pin = { protocol: 'ssh', fingerprint: `SHA256:${'A'.repeat(43)}` };
    expect((await t.request('PUT', `${API}/devices/${device.id}/host-key`, { token: admin.token, body: pin })).statusCode).toBe(500);
    expect(await t.gatewaySessions.hostKey(device.id, 'ssh')).toMatchObject({ fingerprint: 'SHA256:atomic', pinned: false, next: null });
    expect(await eventsOf(t, 'device.host_key_pin')).toBe(0);

    await spareAudit(t);
    expect((await t.request('DELETE', `${API}/devices/${device.id}/host-key`, { token: admin.token })).statusCode).toBe(204);
    expect(await t.gatewaySessions.hostKey(device.id, 'ssh')).toBeUndefined();
    expect(await eventsOf(t, 'device.host_key_forget')).toBe(1);
  });

  it('trusts no host key the gateway saw first, nor rotates to a pinned next key, when the event could not be recorded', async () => {
    const project = await t.services.inventory.projects.create({ name: 'Host keys seen', description: null });
    const device = await t.services.inventory.devices.create(deviceInput.parse({ projectId: project.id, name: 'hk-2', provider: 'aws' }));
    const broker = new ServerAccessBroker(t.services, t.gatewaySessions, () => t.gateways.settings());
    const target = {
      projectId: project.id,
      projectName: project.name,
      deviceId: device.id,
      deviceName: device.name,
      accountId: 'a',
      accountUsername: 'root',
      host: '10.0.0.7',
      port: 22,
      segment: null,
      accessType: 'public' as const,
      protocol: 'ssh' as const,
    };
    const [old, next] = [`SHA256:${'B'.repeat(43)}`, `SHA256:${'C'.repeat(43)}`];
    const present = (fingerprint: string) => broker.checkHostKey(target, { algorithm: 'ssh-ed25519', fingerprint });

    await killAudit(t, 'device.host_key_trusted');
    await expect(present(old)).rejects.toThrow();
    expect(await t.gatewaySessions.hostKey(device.id, 'ssh')).toBeUndefined();
    await spareAudit(t);
    expect(await present(old)).toEqual({ ok: true, firstUse: true });
    expect(await eventsOf(t, 'device.host_key_trusted')).toBe(1);

    const pinned = await t.request('PUT', `${API}/devices/${device.id}/host-key`, {
      token: admin.token,
      body: { protocol: 'ssh', fingerprint: next },
    });
    expect(pinned.json<{ hostKey: { next: unknown } }>().hostKey.next).toMatchObject({ fingerprint: next });
    await killAudit(t, 'device.host_key_rotated');
    await expect(present(next)).rejects.toThrow();
    expect(await t.gatewaySessions.hostKey(device.id, 'ssh')).toMatchObject({ fingerprint: old, next: { fingerprint: next } });
    expect(await eventsOf(t, 'device.host_key_rotated')).toBe(0);
    await spareAudit(t);
    expect(await present(next)).toEqual({ ok: true, firstUse: false });
    expect(await t.gatewaySessions.hostKey(device.id, 'ssh')).toMatchObject({ fingerprint: next, next: null });
    expect(await eventsOf(t, 'device.host_key_rotated')).toBe(1);
  });

  it('creates no user and records nothing', async () => {
    await killAudit(t, 'user.create');
    const res = await t.request('POST', `${API}/users`, {
      token: admin.token,
      body: { username: 'atomic-user', role: 'operator', password: 'a long enough password' },
    });
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toContain('killed');
    expect((await t.services.users.list()).map((u) => u.username)).not.toContain('atomic-user');
    expect(await eventsOf(t, 'user.create')).toBe(0);

    await spareAudit(t);
    const again = await t.request('POST', `${API}/users`, {
      token: admin.token,
      body: { username: 'atomic-user', role: 'operator', password: 'a long enough password' },
    });
    expect(again.statusCode).toBe(201);
    expect(await eventsOf(t, 'user.create')).toBe(1);
  });

  it('grants nothing and records nothing', async () => {
    const operator = await t.userWithToken('operator');
    const project = await t.services.inventory.projects.create({ name: `atomic-${dialect}`, description: null });
    await killAudit(t, 'grant.create');
    const res = await t.request('POST', `${API}/grants`, { token: admin.token, body: { userId: operator.id, projectId: project.id } });
    expect(res.statusCode).toBe(500);
    expect(await t.services.users.listGrants(operator.id)).toEqual([]);
    expect(await eventsOf(t, 'grant.create')).toBe(0);
  });

  it('keeps an API token whose revocation could not be recorded, and the token still works', async () => {
    const operator = await t.userWithToken('operator');
    const [token] = await t.services.users.listTokens(operator.id);
    await killAudit(t, 'token.delete');
    const res = await t.request('DELETE', `${API}/tokens/${token?.id}`, { token: admin.token });
    expect(res.statusCode).toBe(500);
    expect((await t.services.users.listTokens(operator.id)).map((x) => x.id)).toEqual([token?.id]);
    expect(await eventsOf(t, 'token.delete')).toBe(0);
    expect((await t.request('GET', `${API}/tokens`, { token: operator.token })).statusCode).toBe(200);
  });

  it('leaves a break-glass run a stopped server left unfinished open when its close could not be recorded', async () => {
    // Break glass is not configured yet here: the run is closed and not run again.
    const cut = await t.breakglass.runs.start('schedule', null);
    await killAudit(t, 'breakglass.run');
    await expect(t.breakglass.recoverInterrupted()).rejects.toThrow();
    expect(await t.breakglass.runs.get(cut.id)).toMatchObject({ result: 'running', error: null });
    expect(await eventsOf(t, 'breakglass.run')).toBe(0);

    await spareAudit(t);
    expect(await t.breakglass.recoverInterrupted()).toBeUndefined();
    expect(await t.breakglass.runs.get(cut.id)).toMatchObject({ result: 'failure', errorStage: 'interrupted' });
    expect(await eventsOf(t, 'breakglass.run')).toBe(1);
  });

  it('saves no break-glass settings and records nothing', async () => {
    // Nothing listens on port 9: the Test after a save fails quickly, which does not matter here.
    const body = {
      provider: 's3',
      executeTime: '03:00',
      bucket: 'atomic-bucket',
      url: '127.0.0.1:9',
      protocol: 'http',
      pathStyle: true,
      accessKeyId: 'AKIAATOMIC',
      secretAccessKey: 'atomic-secret',
      encryption: 'passphrase',
      passphrase: 'atomic-passphrase',
    };
    await killAudit(t, 'breakglass.settings_update');
    const res = await t.request('PUT', `${API}/breakglass/settings`, { token: admin.token, body });
    expect(res.statusCode).toBe(500);
    expect(await t.services.settings.get('breakglass.settings')).toBeUndefined();
    expect(await eventsOf(t, 'breakglass.settings_update')).toBe(0);

    await spareAudit(t);
    const again = await t.request('PUT', `${API}/breakglass/settings`, { token: admin.token, body });
    expect(again.json()).toMatchObject({ saved: true, settings: { bucket: 'atomic-bucket' } });
    expect(await t.services.settings.get('breakglass.settings')).toBeDefined();
    expect(await eventsOf(t, 'breakglass.settings_update')).toBe(1);
  });

  it('stores no maintenance request, approval, revocation, settings or approvers it could not record', async () => {
    const project = await t.services.inventory.projects.create({ name: `maint-${dialect}`, description: null });
    const approver = await t.userWithToken('operator');
    const count = async () =>
      Number(
        (
          await t.database.db.kysely
            .selectFrom('maintenance_windows')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const body = { projectId: project.id, durationMinutes: 30, reason: 'atomic' };
    await killAudit(t, 'maintenance.requested');
    expect((await t.request('POST', `${API}/requests`, { token: admin.token, body })).statusCode).toBe(500);
    expect(await count()).toBe(0);

    await killAudit(t, 'project.approvers_changed');
    const approvers = await t.request('PUT', `${API}/projects/${project.id}/approvers`, {
      token: admin.token,
      body: { userIds: [approver.id] },
    });
    expect(approvers.statusCode).toBe(500);
    expect(await t.services.maintenance.approvers(project.id)).toEqual([]);
    await killAudit(t, 'maintenance.settings_changed');
    const settings = await t.request('PUT', `${API}/maintenance/settings`, { token: admin.token, body: { requiredApprovals: 3 } });
    expect(settings.statusCode).toBe(500);
    expect(await t.services.settings.get('maintenance')).toBeUndefined();

    await spareAudit(t);
    await t.services.maintenance.setApprovers(project.id, [approver.id], admin.id);
    const w = (await t.request('POST', `${API}/requests`, { token: admin.token, body })).json<{ id: string }>();
    await killAudit(t, 'maintenance.approved');
    expect((await t.request('POST', `${API}/requests/${w.id}/approve`, { token: approver.token, body: {} })).statusCode).toBe(500);
    expect(await t.services.maintenance.get(w.id)).toMatchObject({ state: 'pending' });
    expect(await t.services.maintenance.decisions([w.id])).toEqual([]);
    await killAudit(t, 'maintenance.revoked');
    expect((await t.request('POST', `${API}/requests/${w.id}/revoke`, { token: admin.token, body: {} })).statusCode).toBe(500);
    expect(await t.services.maintenance.get(w.id)).toMatchObject({ state: 'pending', endedAt: null });
    for (const action of ['maintenance.approved', 'maintenance.revoked', 'maintenance.settings_changed', 'project.approvers_changed']) {
      expect(await eventsOf(t, action)).toBe(0);
    }
  });

  it('records no sign-in whose audit event could not be appended (API and gateway, password and key)', async () => {
    const user = await t.userWithToken('operator');
    const key = generateEd25519KeyPair('test').public;
    const added = await t.request('POST', `${API}/ssh-keys`, { token: admin.token, body: { userId: user.id, publicKey: key } });
    const { fingerprint } = added.json<{ fingerprint: string }>();
    const broker = new ServerAccessBroker(t.services, t.gatewaySessions, () => t.gateways.settings());
    const apiSignIn = () => t.request('POST', `${API}/auth/login`, { body: { username: user.username, password: user.password } });
    const passwordSignIn = () => broker.authenticate({ username: user.username, password: user.password, remoteAddress: '127.0.0.9' });
    const keySignIn = () =>
      broker.authenticateKey({ username: user.username, fingerprint, algorithm: 'ssh-ed25519', signed: true, remoteAddress: '127.0.0.9' });
    const sessions = () => t.database.db.kysely.selectFrom('web_sessions').selectAll().where('user_id', '=', user.id).execute();
    await killAudit(t, 'auth.login');
    await killAudit(t, 'gateway.auth');
    expect((await apiSignIn()).statusCode).toBe(500);
    await expect(passwordSignIn()).rejects.toThrow();
    await expect(keySignIn()).rejects.toThrow();
    expect((await t.services.users.get(user.id)).lastLoginAt).toBeNull();
    expect(await sessions()).toEqual([]);
    expect((await t.services.users.listSshKeys(user.id))[0]?.lastUsedAt).toBeNull();

    await spareAudit(t);
    expect((await apiSignIn()).statusCode).toBe(200);
    expect(await passwordSignIn()).toMatchObject({ ok: true });
    expect(await keySignIn()).toMatchObject({ ok: true });
    expect((await t.services.users.get(user.id)).lastLoginAt).not.toBeNull();
    expect(await sessions()).toHaveLength(1);
    expect((await t.services.users.listSshKeys(user.id))[0]?.lastUsedAt).not.toBeNull();
  });

  it('leaves a one-time VNC password and an RDP ticket unused when their redemption could not be recorded', async () => {
    const user = await t.userWithToken('operator');
    const project = await t.services.inventory.projects.create({ name: `desktop-${dialect}`, description: null });
    const device = await t.services.inventory.devices.create(
      deviceInput.parse({ projectId: project.id, name: 'desk-atomic', provider: 'on-prem', protocols: ['vnc', 'rdp'] }),
    );
    const account = await t.services.inventory.accounts.create(
      accountInput.parse({ deviceId: device.id, username: 'desk', password: 'p' }),
    );
    const expiresAt = new Date(Date.now() + 5 * 60_000);
    const issue = (protocol: 'vnc' | 'rdp') =>
      t.services.desktopTokens.issue({ userId: user.id, deviceId: device.id, accountId: account.id, protocol, expiresAt });
    const [vnc, rdp] = [await issue('vnc'), await issue('rdp')];
    const broker = new ServerRdpTunnelBroker(t.services, t.gatewaySessions, () => t.gateways.settings());
    const challenge = randomBytes(16);
    const redeemVnc = () => broker.redeemVncToken({ challenge, response: vncAuthResponse(challenge, vnc.token) }, '127.0.0.10');
    const redeemRdp = () => broker.redeemRdpTicket(`${rdp.id}.${rdp.token}`, '127.0.0.11');
    const usedAt = async () => [(await t.services.desktopTokens.get(vnc.id))?.usedAt, (await t.services.desktopTokens.get(rdp.id))?.usedAt];

    await killAudit(t, 'desktop.token_redeemed');
    await expect(redeemVnc()).rejects.toThrow();
    await expect(redeemRdp()).rejects.toThrow();
    expect(await usedAt()).toEqual([null, null]);
    expect(await eventsOf(t, 'desktop.token_redeemed')).toBe(0);

    await spareAudit(t);
    expect(await redeemVnc()).toMatchObject({ ok: true, tokenId: vnc.id });
    expect(await redeemRdp()).toMatchObject({ ok: true, deviceId: device.id });
    expect(await usedAt()).toEqual([expect.any(String), expect.any(String)]);
    expect(await eventsOf(t, 'desktop.token_redeemed')).toBe(2);
  });

  it('leaves a chain that still verifies after the failed appends', async () => {
    const res = await t.request('GET', `${API}/audit/verify`, { token: admin.token });
    expect(res.json()).toMatchObject({ ok: true });
  });
});
