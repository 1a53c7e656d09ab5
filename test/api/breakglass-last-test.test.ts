import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { BreakGlassRuns, listAuditEvents, type BreakGlassTestRecord } from '@gatehouse/db';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loginOrThrow, sessionHeaders } from '../support/api-helpers.js';
import { armAuditKiller, killAudit, spareAudit } from '../support/audit-killer.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { cliAgainst } from '../support/cli-in-process.js';
import { dialects } from '../support/db.js';
import { startS3rver, type RunningPeer } from '../support/storage.js';

/**
 * The last break-glass Test is kept by the server, not by the browser tab that ran it:
 * every administrator's page and `./gatehouse breakglass status` show when, who, where and
 * each stage's outcome, never a secret; Tests at the same time leave one of them, whole.
 */

const SECRET = 'S3RVER-last-test-secret';
/** An S3 destination on s3rver, sealed to an age recipient. */
const s3Settings = (s3: RunningPeer & { endpoint: string }, recipient: string, extra: Record<string, unknown> = {}) => ({
  provider: 's3',
  executeTime: '03:00',
  accessKeyId: 'S3RVER',
  secretAccessKey: SECRET,
  bucket: 'breakglass',
  protocol: 'http',
  url: s3.endpoint,
  pathStyle: true,
  ageRecipients: [recipient],
  ...extra,
});

/** Makes the database refuse (or accept again) any write of the kept last Test, mid-transaction. */
async function refuseLastTestWrites(t: TestApp, refuse: boolean): Promise<void> {
  const k = t.database.db.kysely;
  if (t.database.db.dialect === 'sqlite') {
    for (const op of ['insert', 'update']) {
      await sql`drop trigger if exists ${sql.raw(`refuse_last_test_${op}`)}`.execute(k);
      if (refuse) {
        await sql`create trigger ${sql.raw(`refuse_last_test_${op}`)} before ${sql.raw(op)} on breakglass_last_test
          begin select raise(abort, 'last Test write refused by the test'); end`.execute(k);
      }
    }
    return;
  }
  await sql`drop trigger if exists refuse_last_test on breakglass_last_test`.execute(k);
  if (!refuse) return;
  await sql`create or replace function refuse_last_test() returns trigger language plpgsql as $$
    begin raise exception 'last Test write refused by the test'; end $$`.execute(k);
  await sql`create trigger refuse_last_test before insert or update on breakglass_last_test for each row execute function refuse_last_test()`.execute(
    k,
  );
}

type LastTest = BreakGlassTestRecord;
interface Report {
  ok: boolean;
  stages: LastTest['stages'];
}

describe.each(dialects)('the last break-glass Test on %s', (dialect) => {
  let t: TestApp;
  let admin: { username: string; token: string };
  let other: { username: string; token: string };
  const lastTest = async (token: string) => {
    const res = await t.request('GET', '/api/v1/breakglass/settings', { token });
    expect(res.statusCode, res.body).toBe(200);
    return res.json<{ lastTest: LastTest | null }>().lastTest;
  };
  const test = async (body: Record<string, unknown>) => {
    const res = await t.request('POST', '/api/v1/breakglass/test', { token: admin.token, body });
    expect(res.statusCode, res.body).toBe(200);
    return res.json<Report>();
  };

  let s3: RunningPeer & { endpoint: string };
  let recipient: string;
  const settings = (extra: Record<string, unknown> = {}) => s3Settings(s3, recipient, extra);

  beforeAll(async () => {
    [t, s3, recipient] = await Promise.all([
      createTestApp(dialect, { breakglassRetryDelays: '0' }, { tls: true }),
      startS3rver({ buckets: ['breakglass'] }),
      generateX25519Identity().then(identityToRecipient),
    ]);
    admin = await t.userWithToken('admin');
    other = await t.userWithToken('admin');
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await Promise.all([t.close(), s3.stop()]);
  });

  it('is kept on the server: another administrator sees when, who, where and each stage, with no secret', async () => {
    expect(await lastTest(admin.token)).toBeNull();
    const report = await test(settings());
    expect(report.ok).toBe(true);
    const seen = await lastTest(other.token);
    expect(seen).toMatchObject({ ok: true, by: admin.username, stages: report.stages, privilegeWarnings: expect.any(Array) as unknown });
    expect(seen?.target).toContain('breakglass');
    expect(Date.parse(seen?.at ?? '')).not.toBeNaN();
    expect(JSON.stringify(seen)).not.toContain(SECRET);

    // A failing Test (a bucket that does not exist) replaces it, with the stage that failed and why.
    const failed = await test(settings({ bucket: 'no-such-bucket' }));
    expect(failed.ok).toBe(false);
    const after = await lastTest(other.token);
    expect(after).toMatchObject({ ok: false, stages: failed.stages });
    expect(after?.stages.find((s) => s.stage === 'container')).toMatchObject({ ok: false, message: expect.any(String) as unknown });
    expect(after?.target).toContain('no-such-bucket');
  });

  it('records the Test a save runs, by the user signed in to the console', async () => {
    const olive = await t.userWithToken('admin', 'olive');
    const session = await loginOrThrow(t, olive.username, olive.password);
    const res = await t.request('PUT', '/api/v1/breakglass/settings?save=always', { headers: sessionHeaders(session), body: settings() });
    expect(res.statusCode, res.body).toBe(200);
    expect(await lastTest(admin.token)).toMatchObject({ ok: true, by: 'olive' });
  });

  it('./gatehouse breakglass status prints the last Test: when, who, where and each stage', async () => {
    await test(settings({ bucket: 'no-such-bucket' }));
    const gatehouse = await cliAgainst(t, other.token);
    const status = await gatehouse('breakglass', 'status');
    expect(status.code, status.err).toBe(0);
    expect(status.out).toMatch(
      new RegExp(`^Last Test: \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d by ${admin.username}, FAILED \\(.*no-such-bucket.*\\)$`, 'm'),
    );
    expect(status.out).toMatch(/^FAIL container /m);
    expect(status.out).not.toContain(SECRET);
    const json = await gatehouse('breakglass', 'status', '--json');
    expect(JSON.parse(json.out)).toMatchObject({ lastTest: { ok: false, by: admin.username } });
  });

  it('is kept together with its audit event: when either cannot be written, neither is', async () => {
    const before = await lastTest(admin.token);
    expect(before).toMatchObject({ ok: false });
    const events = async () => (await listAuditEvents(t.database.db, { action: 'breakglass.test', limit: 1000 })).length;
    const count = await events();
    const refusedTest = async () => {
      const res = await t.request('POST', '/api/v1/breakglass/test', { token: admin.token, body: settings() });
      expect(res.statusCode).toBe(500);
      expect(await lastTest(other.token)).toEqual(before);
      expect(await events()).toBe(count);
    };

    // The audit event cannot be appended: the Test is not kept either.
    await armAuditKiller(t);
    await killAudit(t, 'breakglass.test');
    try {
      await refusedTest();
    } finally {
      await spareAudit(t);
    }

    // The Test cannot be kept: its audit event is not appended either.
    await refuseLastTestWrites(t, true);
    try {
      await refusedTest();
    } finally {
      await refuseLastTestWrites(t, false);
    }

    expect((await test(settings())).ok).toBe(true);
    expect(await lastTest(other.token)).toMatchObject({ ok: true, by: admin.username });
    expect(await events()).toBe(count + 1);
  });

  it('two Tests at once leave one of them, whole', async () => {
    const [a, b] = await Promise.all([test(settings()), test(settings({ bucket: 'no-such-bucket' }))]);
    const last = await lastTest(admin.token);
    // Whichever finished last, all of its fields: never one Test's outcome with the other's stages.
    const from = last?.target.includes('no-such-bucket') ? b : a;
    expect(last).toMatchObject({ ok: from.ok, stages: from.stages });

    // Many writers of the same row at once: it ends as the latest Test, whole.
    const runs = new BreakGlassRuns(t.services.db);
    const base = Date.parse('2030-01-01T00:00:00Z');
    const records = Array.from({ length: 12 }, (_, i): LastTest => {
      const ok = i % 2 === 0;
      return {
        at: new Date(base + i * 1000).toISOString(),
        by: `user-${i}`,
        target: `s3://bucket-${i}`,
        ok,
        stages: [{ stage: 'container', ok, message: `message ${i}` }],
        privilegeWarnings: ok ? [] : [`warning ${i}`],
        warnings: [],
      };
    });
    await Promise.all([...records].reverse().map((r) => runs.recordTest(r)));
    expect(await runs.lastTest()).toEqual(records[11]);
    // An older Test finishing later does not replace a newer one.
    await runs.recordTest(records[3] as LastTest);
    expect(await runs.lastTest()).toEqual(records[11]);
  });
});
