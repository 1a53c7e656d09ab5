import { SECRET_MASK } from '@gatehouse/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

describe.each(dialects)('inventory API on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = (await t.userWithToken('admin')).token;
  });
  afterAll(() => t.close());

  it('creates a project, device and account, and shows secrets only masked', async () => {
    const project = await t.request('POST', '/api/v1/projects', { token: admin, body: { name: 'Payments' } });
    expect(project.statusCode).toBe(201);
    const device = await t.request('POST', '/api/v1/devices', {
      token: admin,
      body: { projectId: project.json().id, name: 'db-1', provider: 'aws', protocols: ['ssh'], publicIp: '203.0.113.7', tags: ['gateway-office1'] },
    });
    expect(device.statusCode).toBe(201);
    expect(device.json()).toMatchObject({ name: 'db-1', accessType: 'gateway', tags: ['gateway-office1'], privateIp: null });
    const account = await t.request('POST', '/api/v1/accounts', {
      token: admin,
      body: { deviceId: device.json().id, username: 'root', password: 'hunter2-very-secret', extraCredential: { enable: 'cisco-enable' } },
    });
    expect(account.statusCode).toBe(201);
    expect(account.json()).toMatchObject({ password: SECRET_MASK, extraCredential: SECRET_MASK, privateKey: null });
    expect(account.body).not.toContain('hunter2');

    const listed = await t.request('GET', `/api/v1/devices/${device.json().id}/accounts`, { token: admin });
    expect(listed.body).not.toContain('hunter2');

    const revealed = await t.request('POST', `/api/v1/accounts/${account.json().id}/reveal`, { token: admin, body: { reason: 'test' } });
    expect(revealed.json()).toMatchObject({ password: 'hunter2-very-secret', extraCredential: { enable: 'cisco-enable' } });
    const events = await t.request('GET', '/api/v1/audit/events?action=account.reveal', { token: admin });
    expect(events.json().items).toHaveLength(1);
  });

  it('refuses a duplicate device name in one project with a conflict naming the field', async () => {
    const p = (await t.request('POST', '/api/v1/projects', { token: admin, body: { name: 'Dup' } })).json();
    const body = { projectId: p.id, name: 'same', provider: 'gcp' };
    expect((await t.request('POST', '/api/v1/devices', { token: admin, body })).statusCode).toBe(201);
    const again = await t.request('POST', '/api/v1/devices', { token: admin, body });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.issues).toEqual([{ path: 'name', message: 'is already taken' }]);
  });
});
