import { Readable } from 'node:stream';
import { SECRET_MASK } from '@gatehouse/core';
import { inventoryColumns } from '@gatehouse/server';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

const idOf = (res: LightMyRequestResponse) => res.json<{ id: string }>().id;

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
      body: {
        projectId: idOf(project),
        name: 'db-1',
        provider: 'aws',
        protocols: ['ssh'],
        publicIp: '203.0.113.7',
        tags: ['gateway-office1'],
      },
    });
    expect(device.statusCode).toBe(201);
    expect(device.json()).toMatchObject({ name: 'db-1', accessType: 'gateway', tags: ['gateway-office1'], privateIp: null });
    const account = await t.request('POST', '/api/v1/accounts', {
      token: admin,
      body: { deviceId: idOf(device), username: 'root', password: 'hunter2-very-secret', extraCredential: { enable: 'cisco-enable' } },
    });
    expect(account.statusCode).toBe(201);
    expect(account.json()).toMatchObject({ password: SECRET_MASK, extraCredential: SECRET_MASK, privateKey: null });
    expect(account.body).not.toContain('hunter2');

    const listed = await t.request('GET', `/api/v1/devices/${idOf(device)}/accounts`, { token: admin });
    expect(listed.body).not.toContain('hunter2');

    const revealed = await t.request('POST', `/api/v1/accounts/${idOf(account)}/reveal`, { token: admin, body: { reason: 'test' } });
    expect(revealed.json()).toMatchObject({ password: 'hunter2-very-secret', extraCredential: { enable: 'cisco-enable' } });
    const events = await t.request('GET', '/api/v1/audit/events?action=account.reveal', { token: admin });
    expect(events.json<{ items: unknown[] }>().items).toHaveLength(1);
  });

  it('never answers a secret: every answer that shows an account, and the export, show the mask', async () => {
    const secrets = {
      password: 'pw-never-shown',
      privateKey: '-----BEGIN OPENSSH PRIVATE KEY-----\nkey-never-shown\n-----END OPENSSH PRIVATE KEY-----\n',
      passphrase: 'pp-never-shown',
    };
    const project = await t.request('POST', '/api/v1/projects', { token: admin, body: { name: 'Masked' } });
    const device = await t.request('POST', '/api/v1/devices', {
      token: admin,
      body: { projectId: idOf(project), name: 'm-1', provider: 'aws' },
    });
    const created = await t.request('POST', '/api/v1/accounts', {
      token: admin,
      body: { deviceId: idOf(device), username: 'root', ...secrets, extraCredential: { pin: 'pin-never-shown' } },
    });
    const id = idOf(created);
    const answers = [
      created,
      await t.request('GET', `/api/v1/accounts/${id}`, { token: admin }),
      await t.request('PATCH', `/api/v1/accounts/${id}`, { token: admin, body: { username: 'admin' } }),
    ];
    const listed = await t.request('GET', `/api/v1/devices/${idOf(device)}/accounts`, { token: admin });
    for (const res of [...answers, listed]) expect(res.statusCode).toBeLessThan(300);
    for (const account of [...answers.map((res) => res.json<unknown>()), ...listed.json<{ items: unknown[] }>().items]) {
      expect(account).toMatchObject({
        password: SECRET_MASK,
        privateKey: SECRET_MASK,
        passphrase: SECRET_MASK,
        extraCredential: SECRET_MASK,
      });
    }
    const exports = await Promise.all(
      ['csv', 'json'].map((format) => t.request('GET', `/api/v1/inventory/export?format=${format}`, { token: admin })),
    );
    for (const res of [...answers, listed, ...exports]) expect(res.body).not.toMatch(/never-shown|PRIVATE KEY/);
    for (const res of exports) expect(res.body).toContain(SECRET_MASK);
  });

  it('refuses a duplicate device name in one project with a conflict naming the field', async () => {
    const p = (await t.request('POST', '/api/v1/projects', { token: admin, body: { name: 'Dup' } })).json<{ id: string }>();
    const body = { projectId: p.id, name: 'same', provider: 'gcp' };
    expect((await t.request('POST', '/api/v1/devices', { token: admin, body })).statusCode).toBe(201);
    const again = await t.request('POST', '/api/v1/devices', { token: admin, body });
    expect(again.statusCode).toBe(409);
    expect(errorOf(again).issues).toEqual([{ path: 'name', message: 'is already taken' }]);
  });

  it('changes only the fields a PATCH names', async () => {
    const p = (await t.request('POST', '/api/v1/projects', { token: admin, body: { name: 'Patchy', description: 'kept' } })).json<{
      id: string;
    }>();
    const device = await t.request('POST', '/api/v1/devices', {
      token: admin,
      body: {
        projectId: p.id,
        name: 'web-1',
        provider: 'azure',
        protocols: ['ssh', 'https'],
        accessType: 'direct',
        tags: ['prod'],
        publicIp: '192.0.2.1',
      },
    });
    const renamed = await t.request('PATCH', `/api/v1/devices/${idOf(device)}`, { token: admin, body: { name: 'web-2' } });
    expect(renamed.statusCode).toBe(200);
    expect(renamed.json()).toMatchObject({
      name: 'web-2',
      protocols: ['ssh', 'https'],
      accessType: 'direct',
      tags: ['prod'],
      publicIp: '192.0.2.1',
    });
    const retagged = await t.request('PATCH', `/api/v1/devices/${idOf(device)}`, {
      token: admin,
      body: { tags: ['a', 'a', 'b'], publicIp: null },
    });
    expect(retagged.json()).toMatchObject({ name: 'web-2', tags: ['a', 'b'], publicIp: null, protocols: ['ssh', 'https'] });

    const project = await t.request('PATCH', `/api/v1/projects/${p.id}`, { token: admin, body: { name: 'Patched' } });
    expect(project.json()).toMatchObject({ name: 'Patched', description: 'kept' });

    const account = await t.request('POST', '/api/v1/accounts', {
      token: admin,
      body: { deviceId: idOf(device), username: 'deploy', password: 'deploy-password', pemFileName: 'deploy.pem' },
    });
    const patched = await t.request('PATCH', `/api/v1/accounts/${idOf(account)}`, {
      token: admin,
      body: { passphrase: 'new-passphrase' },
    });
    expect(patched.json()).toMatchObject({ username: 'deploy', pemFileName: 'deploy.pem', password: SECRET_MASK, passphrase: SECRET_MASK });
    const revealed = await t.request('POST', `/api/v1/accounts/${idOf(account)}/reveal`, { token: admin, body: { reason: 'test' } });
    expect(revealed.json()).toMatchObject({ password: 'deploy-password', passphrase: 'new-passphrase' });
  });

  it('answers other requests while a large import is read and checked, and while it is written', async () => {
    const lines = [inventoryColumns.join(',')];
    for (let i = 0; i < 5_000; i++) lines.push(`Bulk ${i % 20},bulk-${i},aws,ssh,,10.9.${i >> 8}.${i & 255},,gateway,,root,pw-${i},,,,`);
    const csv = Buffer.from(`${lines.join('\n')}\n`);
    // The body as the server reads it, so "received" is known without a clock.
    let received = false;
    const chunks = Array.from({ length: Math.ceil(csv.length / 65_536) }, (_, i) => csv.subarray(i * 65_536, (i + 1) * 65_536));
    const body = Readable.from(chunks).once('end', () => (received = true));
    let finished = false;
    const importing = t.app
      .inject({
        method: 'POST',
        url: '/api/v1/inventory/import?dryRun=true',
        payload: body,
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'text/csv', 'content-length': String(csv.length) },
      })
      .finally(() => (finished = true));

    // /healthz, one request after another, until the import answers: each answer after the
    // body was received is placed before or after the import's "file read and checked" log line.
    let seen = 0;
    let isChecked = false;
    const checked = () => {
      for (; seen < t.logs.lines.length && !isChecked; seen++) isChecked = t.logs.lines[seen]?.includes('file read and checked') ?? false;
      return isChecked;
    };
    const answeredWhile = new Set<'reading' | 'writing'>();
    while (!finished) {
      // An injected request can be answered without leaving the microtask queue: let the
      // event loop turn between them, as it does between requests on sockets.
      await new Promise((resolve) => setImmediate(resolve));
      expect((await t.request('GET', '/healthz')).statusCode).toBe(200);
      if (received && !finished) answeredWhile.add(checked() ? 'writing' : 'reading');
    }
    const res = await importing;
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ dryRun: true, rows: 5_000, devicesCreated: 5_000 });
    expect([...answeredWhile].sort()).toEqual(['reading', 'writing']);
  });
});
