import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { checkAuditCheckpoint, signAuditCheckpoint, type TrustedAuditCheckpoint } from '@gatehouse/core';
import { afterEach, describe, expect, it } from 'vitest';
import { rewriteAuditFrom, truncateAuditAfter } from '../../../test/support/audit-tamper.js';
import { createTestDatabase, dialects, type TestDatabase } from '../../../test/support/db.js';
import { hashAuditEvent } from './audit-hash.js';
import { appendAuditEvent, listAuditEvents, readAuditHead, verifyAuditChain, type AuditEvent } from './audit.js';
import { openDatabase, type Db } from './connect.js';

async function appendEvents(db: Db, n: number): Promise<AuditEvent[]> {
  const events: AuditEvent[] = [];
  for (let i = 1; i <= n; i++) {
    events.push(
      await appendAuditEvent(db, {
        actorId: `user-${i % 3}`,
        actorName: `alice-${i % 3}`,
        action: i % 2 === 0 ? 'account.reveal' : 'device.create',
        targetType: 'device',
        targetId: `device-${i}`,
        outcome: 'success',
        details: { n: i },
        ip: '192.0.2.10',
      }),
    );
  }
  return events;
}

/** A well-formed event, hashed as the real writer would, for a forger's insert. */
function forgedRow(seq: number, prevHash: string) {
  const fields = {
    seq,
    id: randomUUID(),
    at: new Date().toISOString(),
    actor_id: null,
    actor_name: 'mallory',
    action: 'account.reveal',
    target_type: 'account',
    target_id: 'acct-1',
    outcome: 'success',
    details: '{}',
    ip: null,
    prev_hash: prevHash,
  };
  return { ...fields, hash: hashAuditEvent(fields) };
}

/** The verdict on a chain that must be broken. */
async function brokenChain(db: Db): Promise<{ events: number; seq: number; problem: string }> {
  const result = await verifyAuditChain(db);
  if (result.ok) throw new Error(`the chain verified (${result.events} events) but was tampered with`);
  return result;
}

const checkpointKey = generateKeyPairSync('ed25519');
const checkpointPublicKey = checkpointKey.publicKey.export({ type: 'spki', format: 'pem' }).toString();

/** The chain's head now, signed as the server signs it, and checked as a reader checks it. */
async function checkpointOf(db: Db): Promise<TrustedAuditCheckpoint> {
  const signed = signAuditCheckpoint(await readAuditHead(db), checkpointKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  const check = checkAuditCheckpoint(signed, checkpointPublicKey);
  if (!check.ok) throw new Error(check.reason);
  return check.checkpoint;
}

async function expectConsecutiveChain(db: Db, n: number): Promise<void> {
  expect(await verifyAuditChain(db)).toMatchObject({ ok: true, events: n });
  const events = await listAuditEvents(db, { limit: n + 10 });
  expect(events.map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  expect(new Set(events.map((e) => e.id)).size).toBe(n);
}

describe.each(dialects)('audit chain on %s', (dialect) => {
  let t: TestDatabase;
  afterEach(async () => {
    await t.cleanup();
  });

  it('verifies an empty chain', async () => {
    t = await createTestDatabase(dialect);
    expect(await verifyAuditChain(t.db)).toEqual({ ok: true, events: 0, headHash: '0'.repeat(64) });
  });

  it('appends events that link to each other and verifies them with their count', async () => {
    t = await createTestDatabase(dialect);
    const events = await appendEvents(t.db, 12);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(events[0]?.prevHash).toBe('0'.repeat(64));
    for (let i = 1; i < events.length; i++) expect(events[i]?.prevHash).toBe(events[i - 1]?.hash);

    const progress: number[] = [];
    const result = await verifyAuditChain(t.db, { onProgress: (n) => progress.push(n) });
    expect(result).toEqual({ ok: true, events: 12, headHash: events[11]?.hash });
    expect(progress.at(-1)).toBe(12);

    const stored = await listAuditEvents(t.db, { order: 'desc', limit: 1 });
    expect(stored).toEqual([events[11]]);
    expect(stored[0]).toMatchObject({ actorName: 'alice-0', action: 'account.reveal', details: { n: 12 }, ip: '192.0.2.10' });
  });

  it('filters listed events by action, actor, target and outcome', async () => {
    t = await createTestDatabase(dialect);
    await appendEvents(t.db, 6);
    await appendAuditEvent(t.db, { actorName: 'bob', action: 'auth.login', outcome: 'failure' });
    expect((await listAuditEvents(t.db, { action: 'account.reveal' })).map((e) => e.seq)).toEqual([2, 4, 6]);
    expect((await listAuditEvents(t.db, { actorName: 'alice-1' })).map((e) => e.seq)).toEqual([1, 4]);
    expect((await listAuditEvents(t.db, { targetId: 'device-5' })).map((e) => e.seq)).toEqual([5]);
    expect((await listAuditEvents(t.db, { outcome: 'failure' })).map((e) => e.seq)).toEqual([7]);
    expect((await listAuditEvents(t.db, { afterSeq: 2, beforeSeq: 5 })).map((e) => e.seq)).toEqual([3, 4]);
    expect((await listAuditEvents(t.db, { order: 'desc', limit: 2 })).map((e) => e.seq)).toEqual([7, 6]);
  });

  describe('detects tampering', () => {
    it('an event whose details were edited', async () => {
      t = await createTestDatabase(dialect);
      await appendEvents(t.db, 6);
      await t.db.kysely.updateTable('audit_events').set({ details: '{"n":99}' }).where('seq', '=', 3).execute();
      const broken = await brokenChain(t.db);
      expect(broken).toMatchObject({ seq: 3, events: 2 });
      expect(broken.problem).toMatch(/edited/);
    });

    it('an event whose actor was edited', async () => {
      t = await createTestDatabase(dialect);
      await appendEvents(t.db, 6);
      await t.db.kysely.updateTable('audit_events').set({ actor_name: 'someone-else' }).where('seq', '=', 5).execute();
      expect(await brokenChain(t.db)).toMatchObject({ seq: 5, events: 4 });
    });

    it('an edited event whose hash was recomputed: the next one no longer follows it', async () => {
      t = await createTestDatabase(dialect);
      await appendEvents(t.db, 6);
      const row = await t.db.kysely.selectFrom('audit_events').selectAll().where('seq', '=', 2).executeTakeFirstOrThrow();
      const edited = { ...row, seq: Number(row.seq), outcome: 'denied' };
      await t.db.kysely
        .updateTable('audit_events')
        .set({ outcome: 'denied', hash: hashAuditEvent(edited) })
        .where('seq', '=', 2)
        .execute();
      const broken = await brokenChain(t.db);
      expect(broken).toMatchObject({ seq: 3 });
      expect(broken.problem).toMatch(/does not follow/);
    });

    it('a deleted event in the middle', async () => {
      t = await createTestDatabase(dialect);
      await appendEvents(t.db, 6);
      await t.db.kysely.deleteFrom('audit_events').where('seq', '=', 4).execute();
      const broken = await brokenChain(t.db);
      expect(broken).toMatchObject({ seq: 4, events: 3 });
      expect(broken.problem).toMatch(/missing/);
    });

    it('the first event deleted', async () => {
      t = await createTestDatabase(dialect);
      await appendEvents(t.db, 3);
      await t.db.kysely.deleteFrom('audit_events').where('seq', '=', 1).execute();
      expect(await brokenChain(t.db)).toMatchObject({ seq: 1, events: 0 });
    });

    it('two events swapped', async () => {
      t = await createTestDatabase(dialect);
      await appendEvents(t.db, 6);
      const swap = async (a: number, b: number) => {
        await t.db.kysely.updateTable('audit_events').set({ seq: -1 }).where('seq', '=', a).execute();
        await t.db.kysely.updateTable('audit_events').set({ seq: a }).where('seq', '=', b).execute();
        await t.db.kysely.updateTable('audit_events').set({ seq: b }).where('seq', '=', -1).execute();
      };
      await swap(3, 4);
      const broken = await brokenChain(t.db);
      expect(broken).toMatchObject({ seq: 3, events: 2 });
      expect(broken.problem).toMatch(/reordered/);
    });

    it('the newest events deleted', async () => {
      t = await createTestDatabase(dialect);
      await appendEvents(t.db, 6);
      await t.db.kysely.deleteFrom('audit_events').where('seq', '>', 4).execute();
      const broken = await brokenChain(t.db);
      expect(broken).toMatchObject({ seq: 5, events: 4 });
      expect(broken.problem).toMatch(/newest events were deleted/);
    });

    it('every event deleted', async () => {
      t = await createTestDatabase(dialect);
      await appendEvents(t.db, 3);
      await t.db.kysely.deleteFrom('audit_events').execute();
      expect(await brokenChain(t.db)).toMatchObject({ seq: 1, events: 0 });
    });

    it('a forged event appended after the head', async () => {
      t = await createTestDatabase(dialect);
      const events = await appendEvents(t.db, 6);
      await t.db.kysely
        .insertInto('audit_events')
        .values(forgedRow(7, events[5]?.hash ?? ''))
        .execute();
      const broken = await brokenChain(t.db);
      expect(broken).toMatchObject({ seq: 7 });
      expect(broken.problem).toMatch(/inserted/);
    });

    it('a forged event with a made-up hash appended after the head', async () => {
      t = await createTestDatabase(dialect);
      const events = await appendEvents(t.db, 6);
      await t.db.kysely
        .insertInto('audit_events')
        .values({ ...forgedRow(7, events[5]?.hash ?? ''), hash: 'f'.repeat(64) })
        .execute();
      expect(await brokenChain(t.db)).toMatchObject({ seq: 7, events: 6 });
    });

    it('a forged event placed before the first', async () => {
      t = await createTestDatabase(dialect);
      await appendEvents(t.db, 3);
      await t.db.kysely
        .insertInto('audit_events')
        .values(forgedRow(0, '0'.repeat(64)))
        .execute();
      const broken = await brokenChain(t.db);
      expect(broken).toMatchObject({ seq: 0, events: 0 });
      expect(broken.problem).toMatch(/inserted/);
    });

    it('a forged event inserted in the middle: the event after it no longer follows', async () => {
      t = await createTestDatabase(dialect);
      const events = await appendEvents(t.db, 6);
      for (let seq = 6; seq > 3; seq--) {
        await t.db.kysely
          .updateTable('audit_events')
          .set({ seq: seq + 1 })
          .where('seq', '=', seq)
          .execute();
      }
      await t.db.kysely
        .insertInto('audit_events')
        .values(forgedRow(4, events[2]?.hash ?? ''))
        .execute();
      expect(await brokenChain(t.db)).toMatchObject({ seq: 5, events: 4 });
    });

    it('a head whose hash was altered', async () => {
      t = await createTestDatabase(dialect);
      await appendEvents(t.db, 4);
      await t.db.kysely
        .updateTable('audit_head')
        .set({ hash: 'a'.repeat(64) })
        .where('id', '=', 1)
        .execute();
      expect(await brokenChain(t.db)).toMatchObject({ seq: 4, events: 3 });
    });

    it('the head of an empty chain altered', async () => {
      t = await createTestDatabase(dialect);
      await t.db.kysely
        .updateTable('audit_head')
        .set({ hash: 'a'.repeat(64) })
        .where('id', '=', 1)
        .execute();
      expect(await brokenChain(t.db)).toMatchObject({ seq: 1, events: 0 });
    });

    it('the newest event replaced by a forged one that links to the chain', async () => {
      t = await createTestDatabase(dialect);
      const events = await appendEvents(t.db, 6);
      await t.db.kysely.deleteFrom('audit_events').where('seq', '=', 6).execute();
      await t.db.kysely
        .insertInto('audit_events')
        .values(forgedRow(6, events[4]?.hash ?? ''))
        .execute();
      expect(await brokenChain(t.db)).toMatchObject({ seq: 6, events: 5 });
    });
  });

  describe('against a signed checkpoint kept outside the database', () => {
    it('holds while events are appended after it, and says which checkpoint it checked', async () => {
      t = await createTestDatabase(dialect);
      await appendEvents(t.db, 4);
      const checkpoint = await checkpointOf(t.db);
      await appendEvents(t.db, 3);
      expect(await verifyAuditChain(t.db, { checkpoint })).toMatchObject({
        ok: true,
        events: 7,
        checkpoint: { seq: 4, at: checkpoint.at, keyId: checkpoint.keyId },
      });
      expect(await verifyAuditChain(t.db, { checkpoint, fromCheckpoint: true })).toMatchObject({ ok: true, events: 7 });
    });

    it('names the truncation when the newest events were deleted and the head rewound', async () => {
      t = await createTestDatabase(dialect);
      await appendEvents(t.db, 6);
      const checkpoint = await checkpointOf(t.db);
      await truncateAuditAfter(t.db, 4);
      // The chain alone cannot tell: it is whole up to its (rewound) head.
      expect(await verifyAuditChain(t.db)).toMatchObject({ ok: true, events: 4 });
      const broken = await verifyAuditChain(t.db, { checkpoint });
      expect(broken).toMatchObject({ ok: false, seq: 5, events: 4 });
      if (broken.ok) return;
      expect(broken.problem).toBe(
        `the chain was truncated after event 4: the checkpoint of ${checkpoint.at} signed event 6, which is gone (the newest events were deleted)`,
      );
      expect(await verifyAuditChain(t.db, { checkpoint, fromCheckpoint: true })).toMatchObject({ ok: false, seq: 5 });
    });

    it('names the truncation when new events were appended after it', async () => {
      t = await createTestDatabase(dialect);
      await appendEvents(t.db, 6);
      const checkpoint = await checkpointOf(t.db);
      await truncateAuditAfter(t.db, 3);
      await appendEvents(t.db, 5);
      const broken = await verifyAuditChain(t.db, { checkpoint });
      expect(broken).toMatchObject({ ok: false, seq: 6 });
      if (!broken.ok) expect(broken.problem).toMatch(/^event 6 is not the event the checkpoint of .* signed \(its hash differs\)/);
    });

    it('names the rewrite when an event was edited and every later one re-hashed', async () => {
      t = await createTestDatabase(dialect);
      await appendEvents(t.db, 5);
      const checkpoint = await checkpointOf(t.db);
      await appendEvents(t.db, 2);
      await rewriteAuditFrom(t.db, 2);
      expect(await verifyAuditChain(t.db)).toMatchObject({ ok: true, events: 7 });
      const broken = await verifyAuditChain(t.db, { checkpoint });
      expect(broken).toMatchObject({ ok: false, seq: 5, events: 4 });
      if (broken.ok) return;
      expect(broken.problem).toBe(
        `event 5 is not the event the checkpoint of ${checkpoint.at} signed (its hash differs): the chain up to event 5 was rewritten`,
      );
      expect(await verifyAuditChain(t.db, { checkpoint, fromCheckpoint: true })).toMatchObject({ ok: false, seq: 5 });
    });
  });

  it('keeps one consecutive chain under 50 concurrent appends', async () => {
    t = await createTestDatabase(dialect);
    const appended = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        appendAuditEvent(t.db, { actorName: 'load', action: 'test.concurrent', outcome: 'success', details: { i } }),
      ),
    );
    expect(appended.map((e) => e.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    await expectConsecutiveChain(t.db, 50);
  });

  // better-sqlite3 is synchronous: a second handle in this process would wait for the
  // write lock on the thread that must release it, so only PostgreSQL runs this here.
  it.runIf(dialect === 'postgres')('keeps one consecutive chain when two database handles append at once', async () => {
    t = await createTestDatabase(dialect);
    const other = await openDatabase({ databaseUrl: t.databaseUrl, dataDir: t.dataDir });
    try {
      await Promise.all(
        [t.db, other].flatMap((db, h) =>
          Array.from({ length: 50 }, (_, i) =>
            appendAuditEvent(db, { actorName: `handle-${h}`, action: 'test.concurrent', outcome: 'success', details: { i } }),
          ),
        ),
      );
    } finally {
      await other.close();
    }
    await expectConsecutiveChain(t.db, 100);
  });

  it('reports a sound chain while events are being appended', async () => {
    t = await createTestDatabase(dialect);
    await appendEvents(t.db, 5);
    let appending = true;
    const writer = (async () => {
      for (let i = 0; i < 60; i++) await appendAuditEvent(t.db, { actorName: 'load', action: 'test.concurrent', outcome: 'success' });
      appending = false;
    })();
    const results = [];
    while (appending) results.push(await verifyAuditChain(t.db));
    await writer;
    expect(results.length).toBeGreaterThan(0);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(await verifyAuditChain(t.db)).toMatchObject({ ok: true, events: 65 });
  });
});
