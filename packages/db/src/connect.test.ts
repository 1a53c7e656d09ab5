import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { dialects } from '../../../test/support/db.js';
import { openDatabase, type Db, type WalCheckpointerEvent } from './connect.js';

// SQLite only: PostgreSQL checkpoints on its own server (and the Node.js 24 run tests PostgreSQL only).
describe.skipIf(!dialects.includes('sqlite'))('the embedded database checkpoints its WAL on a worker thread', () => {
  let dataDir: string;
  let db: Db | undefined;
  afterEach(async () => {
    await db?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('has no automatic checkpoint on the main connection, checkpoints past the limit elsewhere, and stops the thread on close', async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-wal-'));
    const limit = 256 * 1024;
    const events: WalCheckpointerEvent[] = [];
    let waiter: { match: (e: WalCheckpointerEvent) => boolean; resolve: (e: WalCheckpointerEvent) => void } | undefined;
    const next = (match: (e: WalCheckpointerEvent) => boolean) =>
      new Promise<WalCheckpointerEvent>((resolve) => (waiter = { match, resolve }));
    db = await openDatabase({
      dataDir,
      walCheckpointBytes: limit,
      onWalCheckpointer: (event) => {
        events.push(event);
        if (waiter?.match(event)) waiter.resolve(event);
      },
    });
    const file = db.location;

    const { rows } = await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(db.kysely);
    expect(rows[0]?.wal_autocheckpoint).toBe(0);

    // About 2 MiB in eight commits: eight times the limit, none of it checkpointed by the commits.
    await sql`create table filler (b blob)`.execute(db.kysely);
    const sizeBefore = statSync(file).size;
    const checkpointed = next((e) => e.kind === 'checkpoint' && e.log > 0 && e.checkpointed === e.log);
    for (let i = 0; i < 8; i++) {
      await sql`with recursive n(i) as (select 1 union all select i + 1 from n where i < 256)
        insert into filler select randomblob(1024) from n`.execute(db.kysely);
    }
    expect(statSync(`${file}-wal`).size).toBeGreaterThan(limit);
    expect(statSync(file).size).toBe(sizeBefore);

    await checkpointed;
    expect(events[0]).toEqual({ kind: 'started' });
    expect(statSync(file).size).toBeGreaterThan(sizeBefore + 2 * 1024 * 1024);
    // The next commit starts the WAL over and cuts its file back to the limit.
    await sql`insert into filler values (x'00')`.execute(db.kysely);
    expect(statSync(`${file}-wal`).size).toBeLessThanOrEqual(limit);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) expect(statSync(f).mode & 0o777).toBe(0o600);

    await db.close();
    db = undefined;
    expect(events.at(-1)).toEqual({ kind: 'stopped', exitCode: 0 });
    expect(events.filter((e) => e.kind === 'started')).toHaveLength(1);
  });
});
