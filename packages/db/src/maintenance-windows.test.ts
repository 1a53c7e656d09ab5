import { ConflictError } from '@gatehouse/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, dialects, type TestDatabase } from '../../../test/support/db.js';
import { Inventory } from './inventory.js';
import { MaintenanceWindows, type WindowCreate } from './maintenance-windows.js';
import { Users } from './users.js';
import { openVault } from './vault.js';

const MINUTE = 60_000;

describe.each(dialects)('maintenance windows on %s', (dialect) => {
  let t: TestDatabase;
  let windows: MaintenanceWindows;
  let projectId: string;
  let deviceIds: string[];
  const users: Record<string, string> = {};
  const now = new Date();
  const at = (minutes: number) => new Date(now.getTime() + minutes * MINUTE).toISOString();

  beforeEach(async () => {
    t = await createTestDatabase(dialect);
    windows = new MaintenanceWindows(t.db);
    const inventory = new Inventory(t.db, await openVault(t.db, Buffer.alloc(32, 7)));
    projectId = (await inventory.projects.create({ name: 'shop', description: null })).id;
    deviceIds = [];
    for (const name of ['db-1', 'db-2']) {
      deviceIds.push(
        (
          await inventory.devices.create({
            projectId,
            name,
            provider: 'aws',
            protocols: ['ssh'],
            publicIp: null,
            privateIp: null,
            urlPort: null,
            accessType: 'gateway',
            tags: [],
          })
        ).id,
      );
    }
    const u = new Users(t.db);
    for (const name of ['olga', 'ann', 'bob', 'cid', 'dan']) {
      users[name] = (await u.create({ username: name, role: 'operator', passwordHash: 'x' })).id;
    }
  });
  afterEach(async () => {
    await t.cleanup();
  });

  const request = (over: Partial<WindowCreate> = {}): WindowCreate => ({
    projectId,
    deviceIds: [deviceIds[0] as string],
    accountIds: null,
    userIds: [users.olga as string],
    requestedBy: users.olga as string,
    reason: 'patch openssl',
    ticket: 'CHG-1',
    startsAt: at(0),
    endsAt: at(60),
    requiredApprovals: 1,
    ...over,
  });
  const approve = (id: string, name: string, comment: string | null = null) =>
    windows.decide(id, { userId: users[name] as string, username: name, decision: 'approve', comment });
  const count = async (table: 'maintenance_windows' | 'maintenance_window_decisions') =>
    Number(
      (
        await t.db.kysely
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  it('stores a request as pending and reads it back', async () => {
    const w = await windows.create(request());
    expect(w).toMatchObject({
      state: 'pending',
      deviceIds: [deviceIds[0]],
      accountIds: null,
      userIds: [users.olga],
      closeState: null,
      closeAttempts: 0,
    });
    expect(await windows.get(w.id)).toEqual(w);
  });

  it('refuses an overlapping live request, naming it, and accepts one that shares no device, user or time', async () => {
    const first = await windows.create(request());
    const error = await windows.create(request({ startsAt: at(30), endsAt: at(90) })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as Error).message).toContain(first.id);
    await windows.create(request({ deviceIds: [deviceIds[1] as string], startsAt: at(30), endsAt: at(90) }));
    await windows.create(request({ userIds: [users.bob as string], startsAt: at(30), endsAt: at(90) }));
    await windows.create(request({ startsAt: at(60), endsAt: at(90) }));
    expect(await count('maintenance_windows')).toBe(4);
  });

  it('stores one of two overlapping requests made at once', async () => {
    const results = await Promise.allSettled([windows.create(request()), windows.create(request({ startsAt: at(10), endsAt: at(70) }))]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(await count('maintenance_windows')).toBe(1);
  });

  it('flips to approved at the required count, once, when approvers decide at the same time', async () => {
    const w = await windows.create(request({ requiredApprovals: 2 }));
    const results = await Promise.allSettled(['ann', 'bob', 'cid', 'dan'].map((name) => approve(w.id, name)));
    const decided = results.filter((r) => r.status === 'fulfilled' && r.value.decided);
    expect(decided).toHaveLength(1);
    // Two approvals are recorded; the others find it approved already.
    const fulfilled = results.filter((r) => r.status === 'fulfilled');
    expect(fulfilled).toHaveLength(2);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
    expect((await windows.get(w.id)).state).toBe('approved');
    expect(await count('maintenance_window_decisions')).toBe(2);
  });

  it('lets one deny win over a concurrent approval, or the approval win, never both', async () => {
    const w = await windows.create(request());
    const results = await Promise.allSettled([
      approve(w.id, 'ann'),
      windows.decide(w.id, { userId: users.bob as string, username: 'bob', decision: 'deny', comment: 'not now' }),
    ]);
    const state = (await windows.get(w.id)).state;
    expect(['approved', 'denied']).toContain(state);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(await count('maintenance_window_decisions')).toBe(1);
  });

  it('takes one decision per user and none once the window is no longer pending or its end passed', async () => {
    const w = await windows.create(request({ requiredApprovals: 2 }));
    await approve(w.id, 'ann');
    await expect(approve(w.id, 'ann')).rejects.toThrow(/already decided/);
    await windows.revoke(w.id, { userId: users.olga as string, comment: null });
    await expect(approve(w.id, 'bob')).rejects.toThrow(/is revoked/);
    const late = await windows.create(request({ startsAt: at(-120), endsAt: at(-60) }));
    await expect(approve(late.id, 'bob')).rejects.toThrow(/is expired/);
  });

  it('revokes an open window with its closing to do, and opens, fails and expires only from the right states', async () => {
    const w = await windows.create(request());
    expect(await windows.markOpened(w.id)).toBe(false);
    await approve(w.id, 'ann');
    expect(await windows.markOpened(w.id)).toBe(true);
    expect(await windows.markFailed(w.id, 'hook failed')).toBe(false);
    expect(await windows.activeCovering(users.olga as string, deviceIds[0] as string, null)).toMatchObject({ id: w.id });
    expect(await windows.activeCovering(users.bob as string, deviceIds[0] as string, null)).toBeUndefined();
    expect(await windows.activeCovering(users.olga as string, deviceIds[1] as string, null)).toBeUndefined();
    const { previous, window } = await windows.revoke(w.id, { userId: users.ann as string, comment: 'done early' });
    expect(previous).toBe('open');
    expect(window).toMatchObject({ state: 'revoked', closeState: 'pending', endedBy: users.ann, endComment: 'done early' });
    expect(await windows.markEnded(w.id)).toBe(false);
    expect((await windows.closesDue()).map((x) => x.id)).toEqual([w.id]);
    expect(await windows.setCloseState(w.id, { state: 'failed', attempts: 1, nextAt: at(10) })).toBe(true);
    expect(await windows.closesDue()).toEqual([]);
    expect((await windows.closesDue(new Date(now.getTime() + 11 * MINUTE))).map((x) => x.id)).toEqual([w.id]);
    expect(await windows.setCloseState(w.id, { state: 'done', attempts: 2, nextAt: null })).toBe(true);
    expect(await windows.setCloseState(w.id, { state: 'failed' })).toBe(false);
  });

  it('expires an open window once, when replicas race', async () => {
    const w = await windows.create(request());
    await approve(w.id, 'ann');
    await windows.markOpened(w.id);
    const ended = await Promise.all([windows.markEnded(w.id), windows.markEnded(w.id), windows.markEnded(w.id)]);
    expect(ended.filter(Boolean)).toHaveLength(1);
    expect(await windows.get(w.id)).toMatchObject({ state: 'expired', closeState: 'pending' });
    const pending = await windows.create(request({ startsAt: at(120), endsAt: at(180) }));
    expect(await windows.markEnded(pending.id)).toBe(true);
    expect((await windows.get(pending.id)).closeState).toBeNull();
  });

  it('lists by phase and visibility, and counts for the navigation', async () => {
    const mine = await windows.create(request());
    const named = await windows.create(
      request({ requestedBy: users.bob as string, userIds: [users.cid as string], startsAt: at(120), endsAt: at(180) }),
    );
    await approve(named.id, 'ann');
    await windows.setApprovers(projectId, [users.ann as string, users.dan as string], null);
    const olga = { all: false as const, userId: users.olga as string, projectIds: [] };
    expect((await windows.list({ visibility: olga })).items.map((w) => w.id)).toEqual([mine.id]);
    const cid = { all: false as const, userId: users.cid as string, projectIds: [] };
    expect((await windows.list({ visibility: cid, phase: 'scheduled' })).items.map((w) => w.id)).toEqual([named.id]);
    expect((await windows.list({ visibility: cid, phase: 'pending' })).total).toBe(0);
    const dan = { all: false as const, userId: users.dan as string, projectIds: await windows.approvedProjects(users.dan as string) };
    expect((await windows.list({ visibility: dan })).total).toBe(2);
    expect((await windows.list({ visibility: { all: true }, phase: 'pending' })).items.map((w) => w.id)).toEqual([mine.id]);
    expect(await windows.summary(users.dan as string, [projectId])).toEqual({ awaitingMyApproval: 1, mineActive: 0, minePending: 0 });
    expect(await windows.summary(users.olga as string, [])).toEqual({ awaitingMyApproval: 0, mineActive: 0, minePending: 1 });
    expect((await windows.approvers(projectId)).map((a) => a.username)).toEqual(['ann', 'dan']);
    expect(await windows.setApprovers(projectId, [users.dan as string, users.bob as string], null)).toEqual({
      added: [users.bob],
      removed: [users.ann],
    });
    expect(await windows.isApprover(projectId, users.ann as string)).toBe(false);
  });

  it('keeps hook runs with their output capped', async () => {
    const w = await windows.create(request());
    const run = { phase: 'open' as const, attempt: 1, startedAt: at(0), finishedAt: at(0), ok: false, exitCode: 3, error: 'exit 3' };
    await windows.addHookRun(w.id, { ...run, output: 'x'.repeat(70_000) });
    const [stored] = await windows.hookRuns([w.id]);
    expect(stored).toMatchObject({ phase: 'open', ok: false, exitCode: 3 });
    expect(stored?.output.length).toBe(64 * 1024);
  });
});
