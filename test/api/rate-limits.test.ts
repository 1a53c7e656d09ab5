import { openDatabase, openVault, type Db } from '@gatehouse/db';
import { buildApp, createLogger, loadServerConfig, type GatehouseApp } from '@gatehouse/server';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, auditEvents, errorOf } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { cuttableRelay } from '../support/cuttable-relay.js';

/** Another replica of `t`'s server: its own app and connection pool, on the same database and master key. */
async function replicaOf(t: TestApp, databaseUrl: string): Promise<{ db: Db; built: GatehouseApp }> {
  const db = await openDatabase({ dataDir: t.database.dataDir, databaseUrl });
  const config = loadServerConfig({ env: {}, flags: { dataDir: t.database.dataDir, port: 0 } });
  const built = await buildApp({ config, db, vault: await openVault(db, t.masterKey), logger: createLogger('silent') });
  return { db, built };
}

const signIn = (app: GatehouseApp['app'], ip: string, { username, password }: { username: string; password: string }) =>
  app.inject({ method: 'POST', url: `${API}/auth/login`, remoteAddress: ip, payload: { username, password } });

describe('rate limits shared by two replicas on PostgreSQL', () => {
  let t: TestApp;
  let other: { db: Db; built: GatehouseApp };
  let admin: { token: string };
  let user: { username: string; password: string };

  beforeAll(async () => {
    t = await createTestApp('postgres');
    other = await replicaOf(t, t.database.databaseUrl ?? '');
    admin = await t.userWithToken('admin');
    user = await t.userWithToken('operator');
  });
  afterAll(async () => {
    await other?.built.app.close();
    await other?.db.close();
    await t?.close();
  });

  it('lets exactly the limit of sign-ins through across both, fired at once, and audits each refusal', async () => {
    // POST /auth/login allows 30 a minute from one address; right passwords, so only the limit refuses.
    const ip = '192.0.2.60';
    const sent = await Promise.all(Array.from({ length: 45 }, (_, i) => signIn(i % 2 === 0 ? t.app : other.built.app, ip, user)));
    const count = (status: number) => sent.filter((r) => r.statusCode === status).length;
    expect({ ok: count(200), limited: count(429) }).toEqual({ ok: 30, limited: 15 });
    // Both replicas allowed some and refused some: the count was shared, not split.
    const of = (n: 0 | 1, status: number) => sent.filter((r, i) => i % 2 === n && r.statusCode === status).length;
    expect([of(0, 429), of(1, 429)].every((n) => n > 0)).toBe(true);
    const limited = sent.find((r) => r.statusCode === 429) as LightMyRequestResponse;
    expect(errorOf(limited).code).toBe('RATE_LIMITED');
    expect(limited.headers['retry-after']).toBeDefined();
    const refusals = (await auditEvents(t, admin.token, { action: 'access.rate_limited' })).filter((e) => (e as { ip?: string }).ip === ip);
    expect(refusals).toHaveLength(15);
    expect(refusals[0]).toMatchObject({ outcome: 'denied', details: { method: 'POST', route: `${API}/auth/login` } });
    // Another address still has its whole limit, on either replica.
    expect((await signIn(other.built.app, '192.0.2.61', user)).statusCode).toBe(200);
  });
});

describe('a limited route on a replica that lost its database', () => {
  let t: TestApp;
  let relay: Awaited<ReturnType<typeof cuttableRelay>>;
  let cut: { db: Db; built: GatehouseApp };

  beforeAll(async () => {
    t = await createTestApp('postgres');
    const url = new URL(t.database.databaseUrl ?? '');
    relay = await cuttableRelay(Number(url.port || 5432));
    url.port = String(relay.port);
    cut = await replicaOf(t, url.toString());
  });
  afterAll(async () => {
    await cut?.built.app.close().catch(() => undefined);
    await cut?.db.close().catch(() => undefined);
    await t?.close();
  });

  it('refuses with a reason that names the rate limit, never lets the request through uncounted', async () => {
    const user = await t.userWithToken('operator');
    expect((await signIn(cut.built.app, '192.0.2.70', user)).statusCode).toBe(200);
    await relay.cut();
    const refused = await signIn(cut.built.app, '192.0.2.70', user);
    expect(refused.statusCode).toBe(503);
    const error = errorOf(refused);
    expect(error.code).toBe('NOT_READY');
    expect(error.message).toMatch(
      /^This server could not count the request against the route's rate limit because its database does not answer \([A-Za-z0-9_ ]+\), so it refuses the request rather than let it through unlimited/,
    );
    expect(error.message).not.toContain(String(relay.port));
  });
});
