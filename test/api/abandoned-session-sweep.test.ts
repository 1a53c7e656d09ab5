import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { listAuditEvents } from '@gatehouse/db';
import { AbandonedSessionSweep, createLogger, LAPSED_REPLICA_REASON, type GatehouseApp } from '@gatehouse/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReplicaApp, createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

/**
 * Replicas on one PostgreSQL (issue 24): the leader ends the built-in-gateway sessions of
 * a replica whose lease lapsed (killed on another machine), each once with one audit event
 * however many sweep at once, and leaves those of replicas that still run alone. The server
 * sweeps only on PostgreSQL; the same ending serves a start on SQLite, so both are checked.
 */
describe.each(dialects)('the sweep of sessions held by replicas that stopped, on %s', (dialect) => {
  let a: TestApp;
  /**
   * A second server on the same database, as another replica would be (PostgreSQL). SQLite
   * is one process's database: there the second sweeper runs in the same app.
   */
  let b: GatehouseApp;
  let replicaApp: Awaited<ReturnType<typeof createReplicaApp>> | undefined;
  let recordingsDir: string;

  const sweepOf = (app: GatehouseApp, isLeader = () => true, everyMs = 60_000) =>
    new AbandonedSessionSweep({
      services: app.services,
      sessions: app.gatewaySessions,
      recordingsDir,
      logger: createLogger('silent'),
      isLeader,
      everyMs,
    });

  /** A replica's lease, lapsed a minute ago or held for another minute. */
  const replica = async (state: 'lapsed' | 'running', holder = `elsewhere:${Math.floor(Math.random() * 1e6)}:${randomUUID()}`) => {
    const expires = new Date(Date.now() + (state === 'lapsed' ? -60_000 : 60_000)).toISOString();
    await a.database.db.kysely
      .insertInto('leases')
      .values({ name: `replica:${holder}`, holder, expires_at: expires })
      .execute();
    return holder;
  };

  /** A live session of the built-in gateway held by `holder`, optionally with a recording. */
  const liveSession = async (holder: string, recording: string | null = null) => {
    const id = randomUUID();
    await a.gatewaySessions.start({
      id,
      user_id: null,
      username: 'alice',
      project_id: null,
      project_name: 'Lab',
      device_id: null,
      device_name: 'box',
      account_id: null,
      account_username: 'root',
      gateway: 'default',
      segment: null,
      entry_gateway: 'default',
      replica: holder,
      kind: 'shell',
      command: null,
      remote_address: '127.0.0.1',
      started_at: new Date().toISOString(),
      result: 'active',
      reason: null,
      recording,
    });
    return id;
  };

  beforeAll(async () => {
    a = await createTestApp(dialect);
    recordingsDir = path.join(a.services.config.dataDir, 'recordings');
    replicaApp = dialect === 'postgres' ? await createReplicaApp(a) : undefined;
    b = replicaApp ?? a;
  });
  afterAll(async () => {
    await replicaApp?.close();
    await a?.close();
  });

  it('ends each session of a lapsed replica once with one audit event when two replicas sweep at once; running replicas keep theirs', async () => {
    const [dead, running] = [await replica('lapsed'), await replica('running')];
    // A recording the killed replica left cut off mid-line, on this server's disk.
    const recording = `2026/${randomUUID()}.cast`;
    const file = path.join(recordingsDir, recording);
    mkdirSync(path.dirname(file), { recursive: true });
    const whole = '{"version":2,"width":80,"height":24}\n[0.1,"o","hello\\r\\n"]\n';
    writeFileSync(file, `${whole}[0.2,"o","hel`);
    const abandoned = [await liveSession(dead, recording), await liveSession(dead), await liveSession(dead)];
    // Replicas that run (the two sweepers renew their leases as `Leadership` does): untouched.
    for (const holder of new Set([a.services.replica, b.services.replica])) await replica('running', holder);
    const kept = [await liveSession(running), await liveSession(a.services.replica), await liveSession(b.services.replica)];

    const [onA, onB] = [sweepOf(a), sweepOf(b)];
    const swept = await Promise.all([onA.sweep(), onB.sweep(), onA.sweep(), onB.sweep()]);
    const ended = swept.flat().map((s) => s.id);
    expect(ended.sort()).toEqual([...abandoned].sort());

    for (const id of abandoned) {
      expect(await a.gatewaySessions.find(id)).toMatchObject({ result: 'failure', reason: LAPSED_REPLICA_REASON });
      const events = (await listAuditEvents(a.database.db, { action: 'session.end', limit: 1000 })).filter(
        (e) => e.details?.sessionId === id,
      );
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ outcome: 'failure', details: { reason: LAPSED_REPLICA_REASON } });
    }
    for (const id of kept) expect((await a.gatewaySessions.find(id))?.result).toBe('active');
    // The recording is cut back to its last whole line, then signed.
    expect(readFileSync(file, 'utf8')).toBe(whole);
    await expect
      .poll(async () => (await a.gatewaySessions.find(abandoned[0] ?? ''))?.recordingSignature?.sha256, { timeout: 10_000 })
      .toMatch(/^[0-9a-f]{64}$/);
  });

  it('runs only on the leader, on its own every period, and never ends the sweeping replica’s own sessions', async () => {
    const dead = await replica('lapsed');
    const id = await liveSession(dead);
    // The leader's own session, though its lease lapsed (a renewal that has not come through yet): it runs.
    const own = a.services.replica;
    await a.database.db.kysely.deleteFrom('leases').where('name', '=', `replica:${own}`).execute();
    const ownSession = await liveSession(own);
    let followerTicks = 0;
    const follower = sweepOf(b, () => (followerTicks++, false), 50);
    const leader = sweepOf(a, () => true, 50);
    follower.start();
    try {
      await expect.poll(() => followerTicks, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
      expect((await a.gatewaySessions.find(id))?.result).toBe('active');
      leader.start();
      await expect.poll(async () => (await a.gatewaySessions.find(id))?.reason, { timeout: 10_000 }).toBe(LAPSED_REPLICA_REASON);
      expect((await a.gatewaySessions.find(ownSession))?.result).toBe('active');
    } finally {
      await Promise.all([follower.stop(), leader.stop()]);
    }
  });
});
