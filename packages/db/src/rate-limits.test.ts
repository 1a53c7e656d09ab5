import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, dialects, type TestDatabase } from '../../../test/support/db.js';
import { RateLimits } from './rate-limits.js';

const MINUTE = 60_000;
const route = 'POST /api/v1/auth/login';

describe.each(dialects)('rate-limit counts on %s', (dialect) => {
  let t: TestDatabase;
  let limits: RateLimits;
  beforeEach(async () => {
    t = await createTestDatabase(dialect);
    limits = new RateLimits(t.db);
  });
  afterEach(() => t.cleanup());

  it('counts each request of one caller to one route in a window that starts with the first', async () => {
    const start = Date.parse('2030-01-01T00:00:00Z');
    const at = (ms: number) => new Date(start + ms);
    expect(await limits.hit(route, '192.0.2.1', MINUTE, at(0))).toEqual({ hits: 1, windowEndsAt: at(MINUTE) });
    expect(await limits.hit(route, '192.0.2.1', MINUTE, at(20_000))).toEqual({ hits: 2, windowEndsAt: at(MINUTE) });
    // Another caller, and the same caller on another route, count on their own.
    expect((await limits.hit(route, '192.0.2.2', MINUTE, at(20_000))).hits).toBe(1);
    expect((await limits.hit('POST /api/v1/setup', '192.0.2.1', MINUTE, at(20_000))).hits).toBe(1);
    // Once the window ended, the next request starts a new one.
    expect(await limits.hit(route, '192.0.2.1', MINUTE, at(MINUTE))).toEqual({ hits: 1, windowEndsAt: at(2 * MINUTE) });
  });

  it('counts requests sent at the same time each once', async () => {
    const now = new Date();
    const hits = await Promise.all(Array.from({ length: 25 }, () => limits.hit(route, '192.0.2.3', MINUTE, now)));
    expect(hits.map((h) => h.hits).sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
  });

  it('prunes the counts whose window ended, and only those', async () => {
    const start = Date.parse('2030-01-01T00:00:00Z');
    await limits.hit(route, '192.0.2.4', MINUTE, new Date(start));
    await limits.hit(route, '192.0.2.5', MINUTE, new Date(start + 30_000));
    expect(await limits.prune(new Date(start + MINUTE))).toBe(1);
    const left = await t.db.kysely.selectFrom('rate_limits').select('source').execute();
    expect(left).toEqual([{ source: '192.0.2.5' }]);
  });
});
