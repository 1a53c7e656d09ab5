import { Leases, openDatabase, type Db } from '@gatehouse/db';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/db.js';
import { Leadership } from './leadership.js';
import { createLogger } from './logger.js';

const logger = createLogger('silent');

describe('leadership on PostgreSQL', () => {
  const databases: TestDatabase[] = [];
  const replicas: Db[] = [];
  afterAll(async () => {
    for (const db of replicas) await db.close().catch(() => undefined);
    for (const t of databases) await t.cleanup();
  });

  /** `n` replicas on a fresh database, each with its own pool, as separate processes would have. */
  async function contenders(n: number, leaseMs: number): Promise<Leadership[]> {
    const t = await createTestDatabase('postgres');
    databases.push(t);
    const dbs = await Promise.all(Array.from({ length: n }, () => openDatabase({ dataDir: t.dataDir, databaseUrl: t.databaseUrl })));
    replicas.push(...dbs);
    return dbs.map((db) => new Leadership({ leases: new Leases(db), logger, leaseMs }));
  }

  it('makes exactly one of several replicas trying at once the leader, and keeps it while it renews', async () => {
    const all = await contenders(8, 60_000);
    await Promise.all(all.map((l) => l.contend()));
    expect(all.filter((l) => l.isLeader)).toHaveLength(1);
    const leader = all.find((l) => l.isLeader);
    await Promise.all(all.map((l) => l.contend()));
    expect(all.filter((l) => l.isLeader)).toEqual([leader]);
  });

  it('replaces a leader that stopped renewing (killed) once its lease lapsed, with one other replica', async () => {
    const all = await contenders(5, 1_500);
    await Promise.all(all.map((l) => l.contend()));
    const dead = all.find((l) => l.isLeader);
    expect(dead).toBeDefined();
    const alive = all.filter((l) => l !== dead);
    // The dead one no longer renews; the others keep trying, all at once each round.
    await expect
      .poll(
        async () => {
          await Promise.all(alive.map((l) => l.contend()));
          return alive.filter((l) => l.isLeader).length;
        },
        { timeout: 15_000, interval: 100 },
      )
      .toBe(1);
    // By the time another holds the lease, the dead one had stepped down by its own clock.
    expect(dead?.isLeader).toBe(false);
  });

  it('hands the lease over at once when the leader stops', async () => {
    const [a, b] = await contenders(2, 60_000);
    if (!a || !b) throw new Error('two contenders expected');
    await a.contend();
    await b.contend();
    expect([a.isLeader, b.isLeader]).toEqual([true, false]);
    const changes: boolean[] = [];
    a.onChange((leader) => changes.push(leader));
    await a.stop();
    expect(a.isLeader).toBe(false);
    expect(changes).toEqual([false]);
    await b.contend();
    expect(b.isLeader).toBe(true);
    await b.stop();
  });

  it('steps down once its lease could have lapsed when it loses the database', async () => {
    const [c] = await contenders(1, 1_500);
    if (!c) throw new Error('a contender expected');
    await c.contend();
    expect(c.isLeader).toBe(true);
    await replicas.at(-1)?.close();
    await expect
      .poll(
        async () => {
          await c.contend();
          return c.isLeader;
        },
        { timeout: 10_000, interval: 100 },
      )
      .toBe(false);
  });
});

describe('leadership on SQLite', () => {
  it('is always the leader: one process, nothing to share', async () => {
    const l = new Leadership({ leases: undefined, logger, leaseMs: 9_000 });
    const changes: boolean[] = [];
    l.onChange((leader) => changes.push(leader));
    expect(l.isLeader).toBe(true);
    await l.start();
    expect(changes).toEqual([true]);
    await l.stop();
  });
});
