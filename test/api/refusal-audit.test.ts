import { generateEd25519KeyPair } from '@gatehouse/gateway';
// The WebSocket plugin's types add injectWS to the Fastify instance.
import type {} from '@fastify/websocket';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, auditEvents, createInventory, loginOrThrow, randomId, sessionHeaders, type AuditEventView } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

interface AuditEventWithIp extends AuditEventView {
  ip: string | null;
}

describe.each(dialects)('refused requests in the audit log on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  let operator: Awaited<ReturnType<TestApp['userWithToken']>>;
  let granted: { projectId: string; deviceId: string };
  let hidden: { projectId: string; deviceId: string };

  /** The newest event of this action from this address (each test sends from its own). */
  const eventFrom = async (action: string, ip: string) => {
    const events = (await auditEvents(t, admin, { action })) as AuditEventWithIp[];
    return events.find((e) => e.ip === ip);
  };
  const from = (ip: string, method: string, url: string, headers: Record<string, string> = {}, payload?: object) =>
    t.app.inject({ method: method as 'GET', url, headers, remoteAddress: ip, ...(payload ? { payload } : {}) });

  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = (await t.userWithToken('admin')).token;
    operator = await t.userWithToken('operator');
    granted = await createInventory(t, admin, { project: 'Granted', device: 'granted-1' });
    hidden = await createInventory(t, admin, { project: 'Hidden', device: 'hidden-1' });
    const grant = await t.request('POST', `${API}/grants`, { token: admin, body: { userId: operator.id, projectId: granted.projectId } });
    expect(grant.statusCode).toBe(201);
  });
  afterAll(() => t.close());

  it('audits a forged bearer token, without the token', async () => {
    const forged = `ghp_${randomId()}`;
    const res = await from('192.0.2.1', 'GET', `${API}/devices`, { authorization: `Bearer ${forged}` });
    expect(res.statusCode).toBe(401);
    const event = await eventFrom('access.unauthenticated', '192.0.2.1');
    expect(event).toMatchObject({
      outcome: 'denied',
      actorName: 'anonymous',
      details: { credential: 'token', method: 'GET', route: `${API}/devices` },
    });
    expect(JSON.stringify(event)).not.toContain(forged);
  });

  it('audits an expired session cookie', async () => {
    const session = await loginOrThrow(t, operator.username, operator.password);
    await t.database.db.kysely
      .updateTable('web_sessions')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where('user_id', '=', operator.id)
      .execute();
    const res = await from('192.0.2.2', 'GET', `${API}/projects`, sessionHeaders(session));
    expect(res.statusCode).toBe(401);
    const event = await eventFrom('access.unauthenticated', '192.0.2.2');
    expect(event).toMatchObject({ outcome: 'denied', details: { credential: 'session', route: `${API}/projects` } });
    expect(JSON.stringify(event)).not.toContain(session.cookie.split('=')[1]);
    // Not signed in at all is not a refusal worth an event (the console asks /auth/me first).
    expect((await from('192.0.2.3', 'GET', `${API}/auth/me`)).statusCode).toBe(401);
    expect(await eventFrom('access.unauthenticated', '192.0.2.3')).toBeUndefined();
  });

  it('audits a CSRF failure as the session user', async () => {
    const session = await loginOrThrow(t, operator.username, operator.password);
    const res = await from('192.0.2.4', 'POST', `${API}/ssh-keys`, sessionHeaders(session, { csrf: false }), { publicKey: 'x' });
    expect(res.statusCode).toBe(403);
    expect(await eventFrom('access.csrf_failed', '192.0.2.4')).toMatchObject({
      outcome: 'denied',
      actorName: operator.username,
      details: { via: 'session', method: 'POST', route: `${API}/ssh-keys` },
    });
  });

  it("audits the browser terminal's CSRF failure", async () => {
    const session = await loginOrThrow(t, operator.username, operator.password);
    const ws = await t.app.injectWS(`${API}/terminal`, { headers: { cookie: session.cookie } });
    const closed = new Promise((resolve) => ws.once('close', resolve));
    ws.send(JSON.stringify({ type: 'start', csrfToken: 'wrong', deviceId: granted.deviceId, cols: 80, rows: 24 }));
    await closed;
    const events = () => auditEvents(t, admin, { action: 'access.csrf_failed' });
    await expect
      .poll(async () => (await events()).find((e) => e.details.route === `${API}/terminal`), { timeout: 5000, interval: 100 })
      .toMatchObject({ actorName: operator.username, details: { via: 'session', method: 'GET' } });
  });

  it("audits an operator's GET of another project's device, answered 404", async () => {
    const res = await from('192.0.2.5', 'GET', `${API}/devices/${hidden.deviceId}`, { authorization: `Bearer ${operator.token}` });
    expect(res.statusCode).toBe(404);
    expect(await eventFrom('access.not_found', '192.0.2.5')).toMatchObject({
      outcome: 'denied',
      actorName: operator.username,
      targetId: hidden.deviceId,
      details: { via: 'token', route: `${API}/devices/:id`, ids: { id: hidden.deviceId } },
    });
    // Its own device is no refusal; an administrator's 404 is no probe.
    expect(
      (await from('192.0.2.6', 'GET', `${API}/devices/${granted.deviceId}`, { authorization: `Bearer ${operator.token}` })).statusCode,
    ).toBe(200);
    expect((await from('192.0.2.6', 'GET', `${API}/devices/${randomId()}`, { authorization: `Bearer ${admin}` })).statusCode).toBe(404);
    expect(await eventFrom('access.not_found', '192.0.2.6')).toBeUndefined();
  });

  it('audits a request over the rate limit (429)', async () => {
    let status = 0;
    for (let i = 0; i < 200 && status !== 429; i++) {
      status = (await from('192.0.2.7', 'POST', `${API}/auth/login`, {}, { username: 'nobody', password: 'guessing-password' })).statusCode;
    }
    expect(status).toBe(429);
    expect(await eventFrom('access.rate_limited', '192.0.2.7')).toMatchObject({
      outcome: 'denied',
      details: { method: 'POST', route: `${API}/auth/login` },
    });
  });

  it('records on every event which API token, or that a web session, acted', async () => {
    const tokens = await t.request('GET', `${API}/tokens`, { token: operator.token });
    const tokenId = tokens.json<{ items: { id: string; name: string }[] }>().items[0]?.id;
    expect(tokenId).toBeDefined();
    const session = await loginOrThrow(t, operator.username, operator.password);
    const key = (comment: string) => generateEd25519KeyPair(comment).public;
    const byToken = await t.request('POST', `${API}/ssh-keys`, { token: operator.token, body: { publicKey: key('by-token') } });
    const bySession = await t.request('POST', `${API}/ssh-keys`, {
      headers: sessionHeaders(session),
      body: { publicKey: key('by-session') },
    });
    expect([byToken.statusCode, bySession.statusCode]).toEqual([201, 201]);
    const events = await auditEvents(t, admin, { action: 'user.ssh_key_add' });
    const of = (id: string) => events.find((e) => e.details.keyId === id)?.details;
    expect(of(byToken.json<{ id: string }>().id)).toMatchObject({ via: 'token', tokenId });
    const viaSession = of(bySession.json<{ id: string }>().id);
    expect(viaSession).toMatchObject({ via: 'session' });
    expect(viaSession).not.toHaveProperty('tokenId');
  });
});

describe.each(dialects)('a flood of refused requests on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  const limit = 5;

  beforeAll(async () => {
    t = await createTestApp(dialect, { refusalAuditLimit: limit, refusalAuditWindowSeconds: 2 });
    admin = (await t.userWithToken('admin')).token;
  });
  afterAll(() => t.close());

  it('writes a bounded number of events for 500 forged tokens at once, then one with the count of the rest', async () => {
    const flood = Array.from({ length: 500 }, () =>
      t.app.inject({
        method: 'GET',
        url: `${API}/projects`,
        headers: { authorization: `Bearer ghp_${randomId()}` },
        remoteAddress: '203.0.113.9',
      }),
    );
    // Another address at the same time keeps its own allowance.
    const other = t.app.inject({
      method: 'GET',
      url: `${API}/projects`,
      headers: { authorization: `Bearer ghp_${randomId()}` },
      remoteAddress: '203.0.113.10',
    });
    const statuses = await Promise.all([...flood, other].map(async (r) => (await r).statusCode));
    expect(new Set(statuses)).toEqual(new Set([401]));

    const summaries = async () =>
      ((await auditEvents(t, admin, { action: 'audit.suppressed' })) as AuditEventWithIp[]).filter((e) => e.ip === '203.0.113.9');
    await expect.poll(summaries, { timeout: 10_000, interval: 200 }).toHaveLength(1);
    const [summary] = await summaries();
    expect(summary).toMatchObject({
      outcome: 'denied',
      actorName: 'system',
      details: { action: 'access.unauthenticated', suppressed: 500 - limit, written: limit },
    });
    const written = (await auditEvents(t, admin, { action: 'access.unauthenticated' })) as AuditEventWithIp[];
    expect(written.filter((e) => e.ip === '203.0.113.9')).toHaveLength(limit);
    expect(written.filter((e) => e.ip === '203.0.113.10')).toHaveLength(1);
    expect(await t.request('GET', `${API}/audit/verify`, { token: admin }).then((r) => r.json<{ ok: boolean }>())).toMatchObject({
      ok: true,
    });
  });
});
