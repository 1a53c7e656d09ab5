import { ConflictError, type GatehouseError, NotFoundError } from '@gatehouse/core';
import type { StepResult } from '@gatehouse/core/runbooks';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, dialects, migrationTestDatabase, type TestDatabase } from '../../../test/support/db.js';
import { migrationProvider } from './migrations.js';
import { INTERRUPTED_ERROR, RunbookRuns, type RunCreate } from './runbook-runs.js';
import { Runbooks } from './runbooks.js';

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

const device = (name: string) => ({ deviceId: `dev-${name}`, deviceName: name, projectName: 'Payments' });

const request = (devices: RunCreate['devices'], over: Partial<RunCreate> = {}): RunCreate => ({
  kind: 'runbook',
  runbook: { name: 'TroubleshootSSH', version: 1, sha256: 'a'.repeat(64) },
  apply: false,
  inputs: { port: 22 },
  privilegedAccount: 'root',
  concurrency: 4,
  user: { id: 'u1', username: 'alice' },
  devices,
  ...over,
});

const step = (id: string, status: StepResult['status']): StepResult => ({
  id,
  type: 'check',
  title: id,
  status,
  exitCode: status === 'passed' ? 0 : 1,
  output: '',
  evidence: `${id} ${status}`,
  startedAt: new Date().toISOString(),
  durationMs: 3,
});

describe.each(dialects)('migration 0014_runbooks on %s', (dialect) => {
  it('adds the runbook tables to a database that has accounts and sessions, dating their secrets from updated_at', async () => {
    const { kysely, migrator, cleanup } = await migrationTestDatabase(dialect, migrationProvider(dialect));
    try {
      expect((await migrator.migrateTo('0013_gateway_agent_address')).error).toBeUndefined();
      const created = '2025-01-02T03:04:05.000Z';
      const updated = '2026-03-04T05:06:07.000Z';
      await sql`insert into projects (id, name, created_at, updated_at) values ('p1', 'Payments', ${created}, ${created})`.execute(kysely);
      await sql`insert into devices (id, project_id, name, provider, protocols, access_type, tags, created_at, updated_at)
        values ('d1', 'p1', 'web1', 'aws', '["ssh"]', 'public', '[]', ${created}, ${created})`.execute(kysely);
      await sql`insert into accounts (id, device_id, username, password_enc, created_at, updated_at)
        values ('a1', 'd1', 'root', 'sealed', ${created}, ${updated})`.execute(kysely);
      await sql`insert into gateway_sessions (id, username, project_name, device_name, account_username, gateway, started_at, result)
        values ('s1', 'alice', 'Payments', 'web1', 'root', 'default', ${created}, 'success')`.execute(kysely);

      expect((await migrator.migrateToLatest()).error).toBeUndefined();

      const { rows: accounts } = await sql<{ secret_changed_at: string }>`select secret_changed_at from accounts`.execute(kysely);
      expect(accounts).toEqual([{ secret_changed_at: updated }]);
      const { rows: sessions } = await sql<{ runbook_run_id: string | null }>`select runbook_run_id from gateway_sessions`.execute(kysely);
      expect(sessions).toEqual([{ runbook_run_id: null }]);
      for (const table of ['runbooks', 'runbook_runs', 'runbook_run_devices', 'account_credentials', 'rotation_policies']) {
        const { rows } = await sql<{ n: number | string }>`select count(*) as n from ${sql.table(table)}`.execute(kysely);
        expect(Number(rows[0]?.n), table).toBe(0);
      }
      // The credentials go with their account.
      await sql`insert into account_credentials (id, account_id, state, created_at) values ('c1', 'a1', 'pending', ${updated})`.execute(
        kysely,
      );
      if (dialect === 'sqlite') await sql`pragma foreign_keys = on`.execute(kysely);
      await sql`delete from accounts where id = 'a1'`.execute(kysely);
      const { rows: left } = await sql<{ n: number | string }>`select count(*) as n from account_credentials`.execute(kysely);
      expect(Number(left[0]?.n)).toBe(0);
    } finally {
      await cleanup();
    }
  });
});

describe.each(dialects)('runbooks and their runs on %s', (dialect) => {
  let t: TestDatabase;
  let runs: RunbookRuns;
  let runbooks: Runbooks;
  beforeAll(async () => {
    t = await createTestDatabase(dialect);
    runs = new RunbookRuns(t.db.kysely);
    runbooks = new Runbooks(t.db.kysely);
  });
  afterAll(() => t.cleanup());

  it('stores versions of a runbook, refuses the same version twice, and removes them all', async () => {
    const v1 = await runbooks.add({ name: 'RestartNginx', version: 1, source: 'name: RestartNginx\nversion: 1\n', createdBy: 'alice' });
    expect(v1).toMatchObject({ name: 'RestartNginx', version: 1, builtIn: false, createdBy: 'alice' });
    expect(v1.sha256).toMatch(/^[0-9a-f]{64}$/);
    await runbooks.add({ name: 'RestartNginx', version: 2, source: 'name: RestartNginx\nversion: 2\n', createdBy: 'alice' });
    const again = await rejectionOf(runbooks.add({ name: 'RestartNginx', version: 1, source: 'other', createdBy: 'bob' }));
    expect(again).toBeInstanceOf(ConflictError);
    expect((again as Error).message).toBe(
      'Runbook RestartNginx version 1 already exists: give the document a higher version (the newest is 2), or remove the runbook first.',
    );
    expect((await runbooks.get('RestartNginx')).version).toBe(2);
    expect((await runbooks.get('RestartNginx', 1)).source).toBe('name: RestartNginx\nversion: 1\n');
    expect(await rejectionOf(runbooks.get('RestartNginx', 7))).toBeInstanceOf(NotFoundError);
    expect((await runbooks.list()).map((r) => `${r.name}@${r.version}`)).toEqual(['RestartNginx@1', 'RestartNginx@2']);
    expect(await runbooks.remove('RestartNginx')).toBe(2);
    expect(await runbooks.list()).toEqual([]);
    expect(await rejectionOf(runbooks.remove('RestartNginx'))).toBeInstanceOf(NotFoundError);
  });

  it('locks each device to one run: of 10 runs started at once on a device, one is created and 9 are refused naming it and the holder', async () => {
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => runs.create(request([device('lock1'), device('lock2')]))));
    const created = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(created).toHaveLength(1);
    expect(refused).toHaveLength(9);
    const holder = (created[0] as PromiseFulfilledResult<Awaited<ReturnType<RunbookRuns['create']>>>).value;
    for (const r of refused) {
      expect(r.reason).toBeInstanceOf(ConflictError);
      expect((r.reason as GatehouseError).code).toBe('CONFLICT');
    }
    // Those that saw the holder committed name the device and the run (a race lost at the index says so too).
    const named = refused.filter((r) => (r.reason as Error).message.includes(holder.id));
    expect(named.length).toBeGreaterThan(0);
    for (const r of named) {
      expect((r.reason as Error).message).toBe(
        `Device lock1 is busy: run ${holder.id} (TroubleshootSSH) is working on it. Wait until that run finishes, or leave the device out.`,
      );
    }
    // Nothing of the refused runs was written.
    expect((await runs.list({ deviceId: 'dev-lock1' })).total).toBe(1);

    // The device is released when its item is done; the other one still holds its device.
    await runs.updateItem(holder.id, 'dev-lock1', { state: 'done', verdict: 'SUCCESS', finishedAt: new Date().toISOString() });
    const next = await runs.create(request([device('lock1')]));
    expect(next.items.map((i) => [i.deviceName, i.state])).toEqual([['lock1', 'queued']]);
    expect((await rejectionOf(runs.create(request([device('lock3'), device('lock2')])))) as Error).toHaveProperty(
      'message',
      expect.stringContaining(`Device lock2 is busy: run ${holder.id}`),
    );
    await runs.updateItem(next.id, 'dev-lock1', { state: 'done', verdict: 'FAILED' });
    await runs.updateItem(holder.id, 'dev-lock2', { state: 'done', verdict: 'FAILED' });
  });

  it('records items as they run, counts them, finishes the run and lists runs by device, a page at a time', async () => {
    const run = await runs.create(request([device('c1'), device('c2'), device('c3')], { apply: true }));
    expect(run).toMatchObject({ state: 'running', apply: true, counts: { total: 3, done: 0 }, user: { id: 'u1', username: 'alice' } });
    expect(run.items.map((i) => i.seq)).toEqual([0, 1, 2]);
    const startedAt = new Date().toISOString();
    await runs.updateItem(run.id, 'dev-c1', { state: 'running', startedAt, steps: [step('installed', 'passed')] });
    const done = await runs.updateItem(run.id, 'dev-c1', {
      state: 'done',
      verdict: 'SUCCESS',
      steps: [step('installed', 'passed'), step('running', 'fixed')],
      finishedAt: new Date().toISOString(),
    });
    expect(done).toMatchObject({ state: 'done', verdict: 'SUCCESS', startedAt });
    expect(done.steps.map((s) => s.status)).toEqual(['passed', 'fixed']);
    await runs.updateItem(run.id, 'dev-c2', {
      state: 'done',
      verdict: 'SKIPPED',
      error: 'no privileged account',
      accounts: [{ accountId: 'a1', username: 'deploy', result: 'skipped', reason: 'no secret', fileCredentialWorks: null }],
    });
    expect((await runs.get(run.id)).counts).toEqual({ total: 3, done: 2, success: 1, failed: 0, unverified: 0, skipped: 1 });
    await runs.updateItem(run.id, 'dev-c3', { state: 'done', verdict: 'CHANGED-BUT-UNVERIFIED' });
    const finished = await runs.finish(run.id);
    expect(finished).toMatchObject({ state: 'finished', counts: { total: 3, done: 3, success: 1, failed: 0, unverified: 1, skipped: 1 } });
    expect(finished.finishedAt).not.toBeNull();
    const withItems = await runs.getWithItems(run.id);
    expect(withItems.items.map((i) => [i.deviceName, i.verdict])).toEqual([
      ['c1', 'SUCCESS'],
      ['c2', 'SKIPPED'],
      ['c3', 'CHANGED-BUT-UNVERIFIED'],
    ]);
    expect(withItems.items[1]?.accounts).toEqual([
      { accountId: 'a1', username: 'deploy', result: 'skipped', reason: 'no secret', fileCredentialWorks: null },
    ]);
    expect(await rejectionOf(runs.updateItem(run.id, 'dev-nope', { state: 'done' }))).toBeInstanceOf(NotFoundError);

    const second = await runs.create(request([device('c2')]));
    const byDevice = await runs.list({ deviceId: 'dev-c2' });
    expect(byDevice.total).toBe(2);
    expect(byDevice.runs.map((r) => r.id)).toEqual([second.id, run.id]);
    const page = await runs.list({ deviceId: 'dev-c2', limit: 1, offset: 1 });
    expect([page.total, page.runs.map((r) => r.id)]).toEqual([2, [run.id]]);
    await runs.updateItem(second.id, 'dev-c2', { state: 'done', verdict: 'FAILED' });
  });

  it('ends what a stopped server left running: started items of an applying run are unverified, the rest failed, all released', async () => {
    const applying = await runs.create(request([device('i1'), device('i2'), device('i3')], { apply: true }));
    const dry = await runs.create(request([device('i4')], { apply: false }));
    await runs.updateItem(applying.id, 'dev-i1', { state: 'running', startedAt: new Date().toISOString() });
    await runs.updateItem(applying.id, 'dev-i3', { state: 'done', verdict: 'SUCCESS' });
    await runs.updateItem(dry.id, 'dev-i4', { state: 'running', startedAt: new Date().toISOString() });

    expect(await runs.interruptActive()).toBe(3);

    const a = await runs.getWithItems(applying.id);
    expect(a.items.map((i) => [i.deviceName, i.state, i.verdict, i.error])).toEqual([
      ['i1', 'done', 'CHANGED-BUT-UNVERIFIED', INTERRUPTED_ERROR],
      ['i2', 'done', 'FAILED', INTERRUPTED_ERROR],
      ['i3', 'done', 'SUCCESS', null],
    ]);
    expect(a).toMatchObject({ state: 'finished', counts: { total: 3, done: 3, success: 1, failed: 1, unverified: 1, skipped: 0 } });
    const d = await runs.getWithItems(dry.id);
    expect(d.items.map((i) => i.verdict)).toEqual(['FAILED']);
    expect(d.state).toBe('finished');
    // Every device is free again.
    const after = await runs.create(request([device('i1'), device('i2'), device('i4')]));
    expect(after.items).toHaveLength(3);
    expect(await runs.interruptActive()).toBe(3);
    expect(await runs.interruptActive()).toBe(0);
  });
});
