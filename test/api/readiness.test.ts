import { randomBytes } from 'node:crypto';
import { openDatabase, openVault, type Db } from '@gatehouse/db';
import { buildApp, createLogger, loadServerConfig, ServerAccessBroker, type GatehouseApp } from '@gatehouse/server';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cuttableRelay } from '../support/cuttable-relay.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';

describe('readiness of a replica on PostgreSQL', () => {
  let database: TestDatabase;
  let relay: Awaited<ReturnType<typeof cuttableRelay>>;
  let db: Db;
  let built: GatehouseApp;

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    const url = new URL(database.databaseUrl ?? '');
    relay = await cuttableRelay(Number(url.port || 5432));
    url.port = String(relay.port);
    db = await openDatabase({ dataDir: database.dataDir, databaseUrl: url.toString() });
    const config = loadServerConfig({ env: {}, flags: { dataDir: database.dataDir, port: 0 } });
    const vault = await openVault(db, randomBytes(32));
    built = await buildApp({ config, db, vault, logger: createLogger('silent') });
  });
  afterAll(async () => {
    await built?.app.close().catch(() => undefined);
    await db?.close().catch(() => undefined);
    await database?.cleanup();
  });

  const readyz = async () => {
    const r = await built.app.inject({ method: 'GET', url: '/readyz' });
    return { status: r.statusCode, body: r.json<{ status: string; database: string; reason?: string }>() };
  };

  it('is ready with the database answering and migrated, and not ready while migrations run, saying so', async () => {
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', database: 'postgres' } });
    // As another replica of a newer version would see it mid-migration: the newest step not yet recorded.
    const newest = await database.db.kysely
      .selectFrom('gatehouse_migrations' as never)
      .select(sql<string>`name`.as('name'))
      .orderBy(sql`name`, 'desc')
      .limit(1)
      .executeTakeFirstOrThrow();
    await sql`delete from gatehouse_migrations where name = ${newest.name}`.execute(database.db.kysely);
    const migrating = await readyz();
    expect(migrating.status).toBe(503);
    expect(migrating.body.reason).toMatch(/^migrations are running: the database has (\d+) of the (\d+) migrations this version needs/);
    await sql`insert into gatehouse_migrations (name, timestamp) values (${newest.name}, ${new Date().toISOString()})`.execute(
      database.db.kysely,
    );
    expect((await readyz()).status).toBe(200);
  });

  it('says the database does not answer once it is gone, and the gateway refuses sign-ins saying why', async () => {
    await relay.cut();
    // The last good answer is kept for a second.
    await expect.poll(async () => (await readyz()).status, { timeout: 10_000, interval: 200 }).toBe(503);
    const { body } = await readyz();
    expect(body).toMatchObject({ status: 'not ready', database: 'postgres' });
    expect(body.reason).toMatch(/^the postgres database (does not answer \([A-Z0-9_]+\)|gave no answer within 2 s)$/);
    // Public: nothing about where the database is or who connects to it.
    expect(body.reason).not.toContain('127.0.0.1');
    expect(body.reason).not.toContain(String(relay.port));
    expect(body.reason).not.toContain('postgres@');

    const broker = new ServerAccessBroker(built.services, built.gatewaySessions, () =>
      Promise.resolve({ portForwarding: false, requirePostQuantumKex: false }),
    );
    const refusal = broker.authenticate({ username: 'anyone', password: 'a password', remoteAddress: '192.0.2.1' });
    await expect(refusal).rejects.toMatchObject({
      code: 'NOT_READY',
      message: expect.stringContaining('Gatehouse cannot reach its database from this server, so it takes no new sessions here') as string,
    });
    await expect(
      broker.authenticateKey({
        username: 'anyone',
        fingerprint: 'SHA256:x',
        algorithm: 'ssh-ed25519',
        remoteAddress: '192.0.2.1',
        signed: true,
      }),
    ).rejects.toMatchObject({ code: 'NOT_READY' });
  });
});
