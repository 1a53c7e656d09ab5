import { roles, type Role } from '@gatehouse/core';
import { accessPresets, type RouteEntry } from '@gatehouse/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, auditEvents, createInventory, errorOf, randomId } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

type Caller = Role | 'nobody';
const callers: readonly Caller[] = [...roles, 'nobody'];

const allows = (route: RouteEntry, caller: Caller): boolean =>
  route.access === 'public' || (caller !== 'nobody' && (route.access === 'authenticated' || route.access.includes(caller)));

describe.each(dialects)('role × route on %s', (dialect) => {
  let t: TestApp;
  const tokens = {} as Record<Role, string>;
  /** A real id for each kind of resource, so that allowed calls reach the route's own logic. */
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    t = await createTestApp(dialect);
    for (const role of roles) tokens[role] = (await t.userWithToken(role)).token;
    const a = await createInventory(t, tokens.admin, { project: 'Project A' });
    const victim = await t.userWithToken('operator', 'victim');
    const operatorId = (await t.request('GET', `${API}/auth/me`, { token: tokens.operator })).json<{ user: { id: string } }>().user.id;
    const grant = await t.request('POST', `${API}/grants`, { token: tokens.admin, body: { userId: operatorId, projectId: a.projectId } });
    expect(grant.statusCode).toBe(201);
    Object.assign(ids, { users: victim.id, projects: a.projectId, devices: a.deviceId, accounts: a.accountId });
  });
  afterAll(() => t.close());

  /** The URL to call: `:id` becomes a real id, except for DELETE, which gets one that names nothing. */
  const urlFor = (route: RouteEntry) =>
    route.url.replace(
      /\/([a-z]+)\/:id/g,
      (_m, kind: string) => `/${kind}/${route.method === 'DELETE' ? randomId() : (ids[kind] ?? randomId())}`,
    );

  it('has a route table that covers every documented route under /api/v1 with an explicit access rule', async () => {
    expect(t.routes.length).toBeGreaterThan(20);
    for (const { method, url, access } of t.routes) {
      const valid =
        access === 'public' ||
        access === 'authenticated' ||
        (access.length > 0 && access.every((r: string) => (roles as readonly string[]).includes(r)));
      expect(valid, `${method} ${url} has access ${JSON.stringify(access)}`).toBe(true);
      // Named once (server/src/access.ts): a role list written out in a route drifts from the others.
      const named = Object.values(accessPresets).map((preset) => JSON.stringify(preset.access));
      expect(named, `${method} ${url} uses no preset of access.ts`).toContain(JSON.stringify(access));
    }
    const table = new Set(t.routes.map((r) => `${r.method} ${r.url}`));
    const doc = (await t.request('GET', `${API}/openapi.json`)).json<{
      info: { description: string };
      paths: Record<string, Record<string, unknown>>;
    }>();
    const documented = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    );
    expect(documented.length).toBeGreaterThan(20);
    for (const route of documented) {
      expect(route.startsWith(`${route.split(' ')[0]} ${API}/`), route).toBe(true);
      expect(table.has(route), `${route} is missing from the route table`).toBe(true);
    }
    // And the other way: every route of the table under /api/v1 is documented (openapi.json itself is hidden, and
    // OpenAPI cannot describe the browser terminal's, desktop's and file visit's WebSockets: the document's description names them).
    expect(doc.info.description).toContain(`GET ${API}/terminal`);
    expect(doc.info.description).toContain(`GET ${API}/desktop`);
    expect(doc.info.description).toContain(`GET ${API}/files/visit`);
    const undocumentable = new Set([`${API}/openapi.json`, `${API}/terminal`, `${API}/desktop`, `${API}/files/visit`]);
    for (const route of t.routes.filter((r) => r.url.startsWith(`${API}/`) && !undocumentable.has(r.url))) {
      expect(documented, `${route.method} ${route.url} is not documented`).toContain(`${route.method} ${route.url}`);
    }
  });

  it.each(callers)('answers every route as its access rule says for %s', async (caller) => {
    const problems: string[] = [];
    const denied: RouteEntry[] = [];
    for (const route of t.routes) {
      const withBody = ['POST', 'PATCH', 'PUT'].includes(route.method);
      const res = await t.request(route.method, urlFor(route), {
        token: caller === 'nobody' ? undefined : tokens[caller],
        ...(withBody ? { body: {} } : {}),
      });
      const where = `${route.method} ${route.url} as ${caller}: ${res.statusCode} ${res.body.slice(0, 200)}`;
      if (res.statusCode >= 500) problems.push(`server error: ${where}`);
      if (route.access === 'public') {
        if (res.statusCode === 401 || res.statusCode === 403) problems.push(`public route refused: ${where}`);
      } else if (caller === 'nobody') {
        if (res.statusCode !== 401 || errorOf(res).code !== 'UNAUTHENTICATED') problems.push(`expected 401: ${where}`);
      } else if (!allows(route, caller)) {
        if (res.statusCode !== 403 || errorOf(res).code !== 'FORBIDDEN') problems.push(`expected 403 FORBIDDEN: ${where}`);
        else denied.push(route);
      } else if (res.statusCode === 401 || res.statusCode === 403) {
        problems.push(`allowed role refused: ${where}`);
      }
    }
    expect(problems).toEqual([]);

    const events = await auditEvents(t, tokens.admin, { action: 'access.denied' });
    for (const route of denied) {
      const event = events.find(
        (e) => e.details.route === route.url && e.details.method === route.method && e.details.role === caller && e.outcome === 'denied',
      );
      expect(event, `no access.denied event for ${route.method} ${route.url} as ${caller}`).toBeDefined();
    }
    if (caller === 'admin' || caller === 'nobody') expect(denied).toEqual([]);
    else expect(denied.length).toBeGreaterThan(0);
  });
});

describe.each(dialects)('operator scoping on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  let operator: string;
  let auditor: string;
  let a: { projectId: string; deviceId: string; accountId: string };
  let b: { projectId: string; deviceId: string; accountId: string };

  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = (await t.userWithToken('admin')).token;
    auditor = (await t.userWithToken('auditor')).token;
    const op = await t.userWithToken('operator');
    operator = op.token;
    a = await createInventory(t, admin, { project: 'Alpha', device: 'alpha-1' });
    b = await createInventory(t, admin, { project: 'Bravo', device: 'bravo-1' });
    const grant = await t.request('POST', `${API}/grants`, { token: admin, body: { userId: op.id, projectId: a.projectId } });
    expect(grant.statusCode).toBe(201);
  });
  afterAll(() => t.close());

  it("sees only the granted project's inventory; the rest does not exist for it", async () => {
    const projects = await t.request('GET', `${API}/projects`, { token: operator });
    expect(projects.json<{ items: { id: string }[] }>().items.map((p) => p.id)).toEqual([a.projectId]);
    const devices = await t.request('GET', `${API}/devices`, { token: operator });
    expect(devices.json()).toMatchObject({ total: 1, items: [{ id: a.deviceId, name: 'alpha-1' }] });
    expect((await t.request('GET', `${API}/devices?projectId=${b.projectId}`, { token: operator })).json()).toMatchObject({ total: 0 });
    expect((await t.request('GET', `${API}/devices?search=bravo`, { token: operator })).json()).toMatchObject({ total: 0 });

    expect((await t.request('GET', `${API}/projects/${a.projectId}`, { token: operator })).statusCode).toBe(200);
    expect((await t.request('GET', `${API}/devices/${a.deviceId}`, { token: operator })).statusCode).toBe(200);
    expect((await t.request('GET', `${API}/devices/${a.deviceId}/accounts`, { token: operator })).statusCode).toBe(200);
    expect((await t.request('GET', `${API}/accounts/${a.accountId}`, { token: operator })).statusCode).toBe(200);

    for (const url of [
      `/projects/${b.projectId}`,
      `/devices/${b.deviceId}`,
      `/devices/${b.deviceId}/accounts`,
      `/accounts/${b.accountId}`,
    ]) {
      const res = await t.request('GET', `${API}${url}`, { token: operator });
      expect(res.statusCode, url).toBe(404);
      expect(errorOf(res).code).toBe('NOT_FOUND');
    }
    // Administrators and auditors see everything.
    for (const token of [admin, auditor]) {
      expect((await t.request('GET', `${API}/projects`, { token })).json<{ items: unknown[] }>().items).toHaveLength(2);
      expect((await t.request('GET', `${API}/devices/${b.deviceId}`, { token })).statusCode).toBe(200);
    }
  });

  it('never reveals a secret to an operator or an auditor, even of a granted account', async () => {
    for (const token of [operator, auditor]) {
      for (const id of [a.accountId, b.accountId]) {
        const res = await t.request('POST', `${API}/accounts/${id}/reveal`, { token, body: { reason: 'incident 42' } });
        expect(res.statusCode).toBe(403);
        expect(errorOf(res).code).toBe('FORBIDDEN');
        expect(res.body).not.toContain('an-account-password');
      }
    }
    expect(await auditEvents(t, admin, { action: 'account.reveal', outcome: 'success' })).toEqual([]);
    const revealed = await t.request('POST', `${API}/accounts/${a.accountId}/reveal`, { token: admin, body: { reason: 'incident 42' } });
    expect(revealed.json()).toMatchObject({ password: 'an-account-password' });
  });

  it('loses sight of the project when the grant is revoked', async () => {
    const grants = await t.request('GET', `${API}/grants`, { token: admin });
    const [grant] = grants.json<{ items: { id: string }[] }>().items;
    expect((await t.request('DELETE', `${API}/grants/${grant?.id ?? ''}`, { token: admin })).statusCode).toBe(204);
    expect((await t.request('GET', `${API}/projects`, { token: operator })).json()).toEqual({ items: [] });
    expect((await t.request('GET', `${API}/devices/${a.deviceId}`, { token: operator })).statusCode).toBe(404);
  });
});
