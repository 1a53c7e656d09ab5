import type { RotationPolicyAnswer } from '@gatehouse/api';
import { listAuditEvents } from '@gatehouse/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, createInventory, errorOf, randomId } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

describe.each(dialects)('rotation policies on %s', (dialect) => {
  let t: TestApp;
  let admin: { id: string; username: string; token: string };
  let operator: string;
  let projectId: string;
  let deviceId: string;

  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = await t.userWithToken('admin', 'root-admin');
    operator = (await t.userWithToken('operator')).token;
    ({ projectId, deviceId } = await createInventory(t, admin.token, { project: 'Payments', device: 'web1' }));
    // The operator may use the project: still, policies are for administrators only.
    const operatorId = (await t.request('GET', `${API}/auth/me`, { token: operator })).json<{ user: { id: string } }>().user.id;
    const grant = await t.request('POST', `${API}/grants`, { token: admin.token, body: { userId: operatorId, projectId } });
    expect(grant.statusCode).toBe(201);
  });
  afterAll(() => t.close());

  const projectUrl = () => `${API}/projects/${projectId}/rotation-policy`;
  const deviceUrl = () => `${API}/devices/${deviceId}/rotation-policy`;

  it('sets a project policy with defaults for what is left out, changes only what a later put gives, and removes it', async () => {
    const none = await t.request('GET', projectUrl(), { token: admin.token });
    expect(none.statusCode).toBe(404);
    expect(errorOf(none).message).toBe('Project Payments has no rotation policy: set one with PUT (./gatehouse rotation set).');

    const set = await t.request('PUT', projectUrl(), { token: admin.token, body: { everyDays: 30 } });
    expect(set.statusCode, set.body).toBe(200);
    const policy = set.json<RotationPolicyAnswer>();
    expect(policy).toEqual({
      scope: 'project',
      scopeId: projectId,
      everyDays: 30,
      afterSession: false,
      credential: 'same',
      passwordLength: 24,
      passwordClasses: ['lower', 'upper', 'digit', 'symbol'],
      privilegedAccount: 'root',
      setBy: { id: admin.id, username: 'root-admin' },
      updatedAt: expect.any(String) as string,
    });
    const changed = await t.request('PUT', projectUrl(), {
      token: admin.token,
      body: { passwordLength: 32, passwordClasses: ['lower', 'digit'], privilegedAccount: 'ops' },
    });
    expect(changed.json<RotationPolicyAnswer>()).toMatchObject({
      everyDays: 30,
      passwordLength: 32,
      passwordClasses: ['lower', 'digit'],
      privilegedAccount: 'ops',
    });
    expect((await t.request('GET', projectUrl(), { token: admin.token })).json()).toEqual(changed.json());

    const events = await listAuditEvents(t.database.db, { action: 'rotation_policy.set', limit: 10 });
    expect(events.map((e) => [e.targetType, e.targetId, e.actorName])).toEqual([
      ['project', projectId, 'root-admin'],
      ['project', projectId, 'root-admin'],
    ]);

    const removed = await t.request('DELETE', projectUrl(), { token: admin.token });
    expect(removed.statusCode).toBe(204);
    expect((await t.request('GET', projectUrl(), { token: admin.token })).statusCode).toBe(404);
    const again = await t.request('DELETE', projectUrl(), { token: admin.token });
    expect(again.statusCode).toBe(404);
    expect(errorOf(again).message).toContain('Project Payments has no rotation policy');
    expect(await listAuditEvents(t.database.db, { action: 'rotation_policy.delete', limit: 10 })).toHaveLength(1);
  });

  it("answers a device's own policy, else its project's, and its project's again once the device's is removed", async () => {
    expect((await t.request('GET', deviceUrl(), { token: admin.token })).statusCode).toBe(404);
    await t.request('PUT', projectUrl(), { token: admin.token, body: { everyDays: 90 } });
    const inherited = (await t.request('GET', deviceUrl(), { token: admin.token })).json<RotationPolicyAnswer>();
    expect(inherited).toMatchObject({ scope: 'project', scopeId: projectId, everyDays: 90 });

    const own = await t.request('PUT', deviceUrl(), {
      token: admin.token,
      body: { everyDays: null, afterSession: true, credential: 'key' },
    });
    expect(own.json<RotationPolicyAnswer>()).toMatchObject({ scope: 'device', scopeId: deviceId, everyDays: null, afterSession: true });
    expect((await t.request('GET', deviceUrl(), { token: admin.token })).json<RotationPolicyAnswer>().scope).toBe('device');

    expect((await t.request('DELETE', deviceUrl(), { token: admin.token })).statusCode).toBe(204);
    expect((await t.request('GET', deviceUrl(), { token: admin.token })).json<RotationPolicyAnswer>().scope).toBe('project');
    // Nothing of the device's own to remove now, though its project has one.
    const nothing = await t.request('DELETE', deviceUrl(), { token: admin.token });
    expect(errorOf(nothing).message).toBe('Device web1 has no rotation policy: set one with PUT (./gatehouse rotation set).');
    await t.request('DELETE', projectUrl(), { token: admin.token });
  });

  it('refuses bad input naming the field, and an unknown project or device', async () => {
    const bad = async (body: unknown, field: string) => {
      const res = await t.request('PUT', projectUrl(), { token: admin.token, body });
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(errorOf(res).issues?.map((i) => i.path)).toContain(field);
    };
    await bad({ everyDays: 0 }, 'everyDays');
    await bad({ everyDays: 1.5 }, 'everyDays');
    await bad({ passwordLength: 8 }, 'passwordLength');
    await bad({ passwordClasses: [] }, 'passwordClasses');
    await bad({ passwordClasses: ['emoji'] }, 'passwordClasses[0]');
    await bad({ credential: 'certificate' }, 'credential');
    await bad({ privilegedAccount: '' }, 'privilegedAccount');
    await bad({ every: 30 }, 'every');
    expect((await t.request('GET', projectUrl(), { token: admin.token })).statusCode).toBe(404);

    for (const url of [`${API}/projects/${randomId()}/rotation-policy`, `${API}/devices/${randomId()}/rotation-policy`]) {
      for (const method of ['GET', 'PUT', 'DELETE'] as const) {
        const res = await t.request(method, url, { token: admin.token, ...(method === 'PUT' ? { body: { everyDays: 7 } } : {}) });
        expect(res.statusCode, `${method} ${url}`).toBe(404);
        expect(errorOf(res).message).toMatch(/^(Project|Device) ".*" does not exist/);
      }
    }
  });

  it('is for administrators only: an operator granted the project is refused, and changes nothing', async () => {
    await t.request('PUT', projectUrl(), { token: admin.token, body: { everyDays: 14 } });
    for (const url of [projectUrl(), deviceUrl()]) {
      for (const method of ['GET', 'PUT', 'DELETE'] as const) {
        const res = await t.request(method, url, { token: operator, ...(method === 'PUT' ? { body: { everyDays: 1 } } : {}) });
        expect(res.statusCode, `${method} ${url}`).toBe(403);
        expect(errorOf(res).code).toBe('FORBIDDEN');
      }
    }
    expect((await t.request('GET', projectUrl(), { token: admin.token })).json<RotationPolicyAnswer>().everyDays).toBe(14);
    expect((await t.request('GET', projectUrl())).statusCode).toBe(401);
  });
});
