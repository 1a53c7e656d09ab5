import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, dialects, migrationTestDatabase, type TestDatabase } from '../../../test/support/db.js';
import { migrationProvider } from './migrations.js';
import { SignInThrottle } from './sign-in-throttle.js';
import { Users } from './users.js';

const MINUTE = 60_000;
const rule = { threshold: 3, firstDelayMs: MINUTE, maxDelayMs: 15 * MINUTE };

describe.each(dialects)('the sign-in throttle on %s', (dialect) => {
  let t: TestDatabase;
  let throttle: SignInThrottle;
  beforeEach(async () => {
    t = await createTestDatabase(dialect);
    throttle = new SignInThrottle(t.db);
  });
  afterEach(() => t.cleanup());

  it('delays after the threshold, a minute doubling up to the longest, and forgets a quiet count', async () => {
    const key = { username: 'alice', source: '192.0.2.1' };
    let now = Date.parse('2030-01-01T00:00:00Z');
    const delays: (number | null)[] = [];
    for (let i = 0; i < 8; i++) {
      const claim = await throttle.claim(key, rule, new Date(now));
      if (!claim.ok) throw new Error(`attempt ${i + 1} was refused`);
      delays.push(claim.throttledUntil === null ? null : (Date.parse(claim.throttledUntil) - now) / MINUTE);
      if (claim.throttledUntil === null) continue;
      // While the delay lasts, attempts are refused and not counted.
      expect(await throttle.claim(key, rule, new Date(now + 1000))).toEqual({ ok: false });
      now = Date.parse(claim.throttledUntil);
    }
    expect(delays).toEqual([null, null, 1, 2, 4, 8, 15, 15]);
    // A count left alone for the longest delay after its last delay ended starts again.
    expect(await throttle.claim(key, rule, new Date(now + 16 * MINUTE))).toEqual({ ok: true, failures: 1, throttledUntil: null });
  });

  it('throttles an account as a whole in users.failed_logins and users.locked_until', async () => {
    const users = new Users(t.db);
    const user = await users.create({ username: 'bob', role: 'operator', passwordHash: 'x' });
    const now = new Date();
    const claims = await Promise.all(Array.from({ length: 10 }, () => throttle.claim({ userId: user.id }, rule, now)));
    expect(claims.filter((c) => c.ok)).toHaveLength(3);
    expect(await users.get(user.id)).toMatchObject({ lockedUntil: new Date(now.getTime() + MINUTE).toISOString() });
    await throttle.forget(user);
    expect(await users.get(user.id)).toMatchObject({ lockedUntil: null });
  });
});

describe.each(dialects)('migration 0009 on %s', (dialect) => {
  it('keeps API tokens made before scopes as full tokens', async () => {
    const { kysely, migrator, cleanup } = await migrationTestDatabase(dialect, migrationProvider(dialect));
    try {
      expect((await migrator.migrateTo('0008_device_list_order')).error).toBeUndefined();
      const at = new Date().toISOString();
      await sql`insert into users (id, username, role, password_hash, created_at, updated_at) values ('u1', 'old', 'admin', 'x', ${at}, ${at})`.execute(
        kysely,
      );
      await sql`insert into api_tokens (id, user_id, name, token_hash, prefix, created_at) values ('t1', 'u1', 'old', 'h', 'ghp_', ${at})`.execute(
        kysely,
      );
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
      const { rows } = await sql<{ scope: string }>`select scope from api_tokens where id = 't1'`.execute(kysely);
      expect(rows).toEqual([{ scope: 'full' }]);
    } finally {
      await cleanup();
    }
  });
});
