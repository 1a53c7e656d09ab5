import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DeviceAccess, MaintenanceWindow, MaintenanceWindowList } from '@gatehouse/api';
import { maintenanceRefusal, SECRET_MASK } from '@gatehouse/core';
import { inventoryColumns } from '@gatehouse/server';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { API, auditEvents, createInventory, errorOf, randomId } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

type Person = { id: string; username: string; token: string };

describe.each(dialects)('maintenance windows on %s', (dialect) => {
  let t: TestApp;
  let admin: Person;
  let auditor: Person;
  /** Operators with a grant on project A: olga requests, ann, bob, cid and dan approve, carl only connects. */
  const op = {} as Record<'olga' | 'ann' | 'bob' | 'cid' | 'dan' | 'carl', Person>;
  let a: { projectId: string; deviceId: string; accountId: string };
  let device2: string;
  let b: { projectId: string; deviceId: string; accountId: string };

  const call = (who: Person, method: string, path: string, body?: unknown) =>
    t.request(method, `${API}${path}`, { token: who.token, ...(body !== undefined ? { body } : {}) });
  const windowOf = (res: LightMyRequestResponse) => {
    if (res.statusCode >= 300) throw new Error(`${res.statusCode} ${res.body}`);
    return res.json<MaintenanceWindow>();
  };
  const request = async (who: Person, body: Record<string, unknown> = {}) =>
    windowOf(
      await call(who, 'POST', '/requests', {
        projectId: a.projectId,
        deviceIds: [a.deviceId],
        durationMinutes: 60,
        reason: 'patch openssl',
        ...body,
      }),
    );
  const viewerOfWindow = async (who: Person, id: string) => windowOf(await call(who, 'GET', `/requests/${id}`)).viewer;
  /** olga's pending request for db-2 whose end passed an hour ago (written past the API, which refuses a past start). */
  const pendingPastItsEnd = () =>
    t.services.maintenance.create({
      projectId: a.projectId,
      deviceIds: [device2],
      accountIds: null,
      userIds: [op.olga.id],
      requestedBy: op.olga.id,
      reason: 'too late',
      ticket: null,
      startsAt: new Date(Date.now() - 7_200_000).toISOString(),
      endsAt: new Date(Date.now() - 3_600_000).toISOString(),
      requiredApprovals: 1,
    });
  const rows = async (table: 'maintenance_windows' | 'maintenance_window_decisions') =>
    Number(
      (
        await t.database.db.kysely
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const setApprovers = async (projectId: string, people: Person[]) =>
    expect((await call(admin, 'PUT', `/projects/${projectId}/approvers`, { userIds: people.map((p) => p.id) })).statusCode).toBe(200);
  const setSettings = async (body: Record<string, unknown>) =>
    expect((await call(admin, 'PUT', '/maintenance/settings', body)).statusCode).toBe(200);

  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = await t.userWithToken('admin', 'root');
    auditor = await t.userWithToken('auditor', 'audrey');
    a = await createInventory(t, admin.token, { project: 'shop', device: 'db-1' });
    b = await createInventory(t, admin.token, { project: 'lab', device: 'lab-1' });
    device2 = (await call(admin, 'POST', '/devices', { projectId: a.projectId, name: 'db-2', provider: 'aws' })).json<{ id: string }>().id;
    for (const name of ['olga', 'ann', 'bob', 'cid', 'dan', 'carl'] as const) {
      op[name] = await t.userWithToken('operator', name);
      expect((await call(admin, 'POST', '/grants', { userId: op[name].id, projectId: a.projectId })).statusCode).toBe(201);
    }
  });
  afterAll(() => t.close());
  beforeEach(async () => {
    // Each test starts with no windows, the default settings and ann and bob approving project A.
    await t.database.db.kysely.deleteFrom('maintenance_windows').execute();
    await t.database.db.kysely.deleteFrom('settings').where('key', '=', 'maintenance').execute();
    await setApprovers(a.projectId, [op.ann, op.bob]);
    delete t.services.maintenanceLifecycle;
  });

  it('creates a request, lists it by phase and shows it', async () => {
    const w = await request(op.olga, { ticket: 'CHG-42' });
    expect(w).toMatchObject({
      projectId: a.projectId,
      projectName: 'shop',
      devices: [{ id: a.deviceId, name: 'db-1' }],
      accounts: null,
      users: [{ id: op.olga.id, username: 'olga' }],
      requestedBy: { id: op.olga.id, username: 'olga' },
      reason: 'patch openssl',
      ticket: 'CHG-42',
      durationMinutes: 60,
      state: 'pending',
      phase: 'pending',
      requiredApprovals: 1,
      decisions: [],
      close: { state: null, attempts: 0, nextAt: null },
      hooks: [],
    });
    expect(Date.parse(w.endsAt) - Date.parse(w.startsAt)).toBe(60 * 60_000);
    const pending = (await call(op.olga, 'GET', '/requests?phase=pending')).json<MaintenanceWindowList>();
    expect(pending.items.map((x) => x.id)).toEqual([w.id]);
    expect((await call(op.olga, 'GET', '/requests?phase=scheduled')).json<MaintenanceWindowList>().total).toBe(0);
    expect(windowOf(await call(op.olga, 'GET', `/requests/${w.id}`)).id).toBe(w.id);
    const events = await auditEvents(t, admin.token, { action: 'maintenance.requested' });
    expect(events.find((e) => e.targetId === w.id)).toMatchObject({ actorName: 'olga', outcome: 'success' });
    expect((await call(op.ann, 'GET', '/requests/summary')).json()).toEqual({ awaitingMyApproval: 1, mineActive: 0, minePending: 0 });
    expect((await call(op.olga, 'GET', '/requests/summary')).json()).toEqual({ awaitingMyApproval: 0, mineActive: 0, minePending: 1 });
  });

  it('refuses bad input naming the field, and writes nothing', async () => {
    const base = { projectId: a.projectId, deviceIds: [a.deviceId], durationMinutes: 60, reason: 'patch' };
    const cases: [Record<string, unknown>, string, RegExp?][] = [
      [{ startsAt: new Date(Date.now() - 3_600_000).toISOString() }, 'startsAt', /in the past/],
      [{ startsAt: 'tomorrow' }, 'startsAt'],
      [{ durationMinutes: 0 }, 'durationMinutes', /greater than 0/],
      [{ durationMinutes: -5 }, 'durationMinutes', /greater than 0/],
      [{ durationMinutes: 481 }, 'durationMinutes', /at most 480 minutes/],
      [{ deviceIds: [a.deviceId, randomId()] }, 'deviceIds[1]'],
      [{ deviceIds: [b.deviceId] }, 'deviceIds[0]'],
      [{ accountIds: [b.accountId] }, 'accountIds[0]'],
      [{ userIds: [auditor.id] }, 'userIds[0]', /auditor/],
      [{ userIds: [op.olga.id, randomId()] }, 'userIds[1]'],
      [{ projectId: randomId() }, 'projectId'],
      [{ reason: '' }, 'reason'],
    ];
    for (const [change, path, message] of cases) {
      const res = await call(op.olga, 'POST', '/requests', { ...base, ...change });
      const error = errorOf(res);
      expect([res.statusCode, error.code], JSON.stringify(change)).toEqual([400, 'VALIDATION_FAILED']);
      const issue = error.issues?.find((i) => i.path === path);
      expect(issue, `${JSON.stringify(change)}: ${JSON.stringify(error.issues)}`).toBeDefined();
      if (message) expect(issue?.message).toMatch(message);
    }
    expect(await rows('maintenance_windows')).toBe(0);

    // A user without a grant on project B cannot be named, and the requester cannot ask for a project they cannot see.
    const other = await t.userWithToken('operator', 'ozzy');
    const unseen = await call(other, 'POST', '/requests', { ...base });
    expect(errorOf(unseen).issues?.map((i) => i.path)).toEqual(['projectId']);
    const ungranted = await call(admin, 'POST', '/requests', { ...base, userIds: [other.id] });
    expect(errorOf(ungranted).issues?.[0]).toMatchObject({ path: 'userIds[0]', message: expect.stringContaining('no grant') as string });
    expect(await rows('maintenance_windows')).toBe(0);
  });

  it('refuses an overlapping request with a conflict naming the other window, and approving an expired one', async () => {
    const first = await request(op.olga);
    const overlap = await call(op.olga, 'POST', '/requests', {
      projectId: a.projectId,
      durationMinutes: 30,
      startsAt: new Date(Date.now() + 10 * 60_000).toISOString(),
      reason: 'again',
    });
    expect(overlap.statusCode).toBe(409);
    expect(errorOf(overlap).message).toContain(first.id);
    expect(await rows('maintenance_windows')).toBe(1);
    // Another device and another user do not overlap.
    await request(op.carl, { deviceIds: [device2] });

    const expired = await pendingPastItsEnd();
    const late = await call(op.ann, 'POST', `/requests/${expired.id}/approve`, {});
    expect(late.statusCode).toBe(409);
    expect(errorOf(late).message).toMatch(/is expired/);
    expect(await rows('maintenance_window_decisions')).toBe(0);
  });

  it('never lets the requester, a non-approver or an administrator who is not an approver decide', async () => {
    await setApprovers(a.projectId, [op.olga, op.ann]);
    const w = await request(op.olga);
    const own = await call(op.olga, 'POST', `/requests/${w.id}/approve`, {});
    expect([own.statusCode, errorOf(own).code]).toEqual([403, 'FORBIDDEN']);
    expect(errorOf(own).message).toMatch(/You requested this window/);
    // An administrator sees every window but approves none unless granted; an operator who approves
    // nothing in the project does not even see the request.
    const notApprover = await call(admin, 'POST', `/requests/${w.id}/approve`, {});
    expect([notApprover.statusCode, errorOf(notApprover).message]).toEqual([403, expect.stringContaining('not an approver') as string]);
    expect((await call(op.bob, 'POST', `/requests/${w.id}/approve`, {})).statusCode).toBe(404);
    expect(await rows('maintenance_window_decisions')).toBe(0);
    // A deny needs its reason.
    const bare = await call(op.ann, 'POST', `/requests/${w.id}/deny`, {});
    expect(errorOf(bare).issues?.[0]?.path).toBe('comment');
    const denied = windowOf(await call(op.ann, 'POST', `/requests/${w.id}/deny`, { comment: 'not during sales' }));
    expect(denied).toMatchObject({
      state: 'denied',
      phase: 'past',
      decisions: [{ username: 'ann', decision: 'deny', comment: 'not during sales' }],
    });
    const again = await call(op.ann, 'POST', `/requests/${w.id}/approve`, {});
    expect([again.statusCode, errorOf(again).message]).toEqual([409, expect.stringContaining('is denied') as string]);
  });

  it('needs two distinct approvals when configured', async () => {
    await setSettings({ requiredApprovals: 2 });
    const w = await request(op.olga);
    expect(w.requiredApprovals).toBe(2);
    const one = windowOf(await call(op.ann, 'POST', `/requests/${w.id}/approve`, { comment: 'ok' }));
    expect(one.state).toBe('pending');
    const twice = await call(op.ann, 'POST', `/requests/${w.id}/approve`, {});
    expect(twice.statusCode).toBe(409);
    const two = windowOf(await call(op.bob, 'POST', `/requests/${w.id}/approve`));
    expect(two).toMatchObject({ state: 'approved', phase: 'scheduled' });
    expect(two.decisions.map((d) => d.username)).toEqual(['ann', 'bob']);
    const events = (await auditEvents(t, admin.token, { action: 'maintenance.approved' })).filter((e) => e.targetId === w.id);
    expect(events.map((e) => [e.actorName, e.details.approvals, e.details.required, e.details.complete]).sort()).toEqual([
      ['ann', 1, 2, false],
      ['bob', 2, 2, true],
    ]);
  });

  it('flips a window to approved exactly once when approvers approve at the same time', async () => {
    await setSettings({ requiredApprovals: 2 });
    const approvers = [op.ann, op.bob, op.cid, op.dan, op.carl];
    await setApprovers(a.projectId, approvers);
    const w = await request(op.olga);
    const answers = await Promise.all(approvers.map((p) => call(p, 'POST', `/requests/${w.id}/approve`, {})));
    expect(answers.map((r) => r.statusCode).sort()).toEqual([200, 200, 409, 409, 409]);
    expect(windowOf(await call(admin, 'GET', `/requests/${w.id}`)).state).toBe('approved');
    expect(await rows('maintenance_window_decisions')).toBe(2);
    const events = (await auditEvents(t, admin.token, { action: 'maintenance.approved' })).filter((e) => e.targetId === w.id);
    expect(events).toHaveLength(2);
    expect(events.filter((e) => e.details.complete === true)).toHaveLength(1);
  });

  it('leaves one consistent outcome when an approval and a denial race', async () => {
    const w = await request(op.olga);
    const [approve, deny] = await Promise.all([
      call(op.ann, 'POST', `/requests/${w.id}/approve`, {}),
      call(op.bob, 'POST', `/requests/${w.id}/deny`, { comment: 'no' }),
    ]);
    expect([approve.statusCode, deny.statusCode].sort()).toEqual([200, 409]);
    const state = windowOf(await call(admin, 'GET', `/requests/${w.id}`)).state;
    expect(state).toBe(approve.statusCode === 200 ? 'approved' : 'denied');
    expect(await rows('maintenance_window_decisions')).toBe(1);
    const approved = (await auditEvents(t, admin.token, { action: 'maintenance.approved' })).filter((e) => e.targetId === w.id);
    const denied = (await auditEvents(t, admin.token, { action: 'maintenance.denied' })).filter((e) => e.targetId === w.id);
    expect(approved.length + denied.length).toBe(1);
  });

  it('stores one of ten overlapping requests made at once, refusing the others naming it', async () => {
    const before = (await auditEvents(t, admin.token, { action: 'maintenance.requested' })).length;
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        call(op.olga, 'POST', '/requests', {
          projectId: a.projectId,
          deviceIds: [a.deviceId],
          startsAt: new Date(Date.now() + (5 + i) * 60_000).toISOString(),
          durationMinutes: 60,
          reason: `overlap ${i}`,
        }),
      ),
    );
    expect(answers.map((r) => r.statusCode).sort()).toEqual([201, ...Array<number>(9).fill(409)]);
    const stored = windowOf(answers.find((r) => r.statusCode === 201) as LightMyRequestResponse);
    for (const refused of answers.filter((r) => r.statusCode === 409)) expect(errorOf(refused).message).toContain(stored.id);
    expect(await rows('maintenance_windows')).toBe(1);
    const events = await auditEvents(t, admin.token, { action: 'maintenance.requested' });
    expect(events).toHaveLength(before + 1);
    expect(events.filter((e) => e.targetId === stored.id)).toHaveLength(1);
  });

  it('revokes a window whose last approval races the revocation, auditing only what stood', async () => {
    const runSoon = vi.fn();
    t.services.maintenanceLifecycle = { runSoon };
    // A few rounds: which of the two reaches the window first varies.
    for (let round = 0; round < 6; round++) {
      const w = await request(op.olga);
      const [approve, revoke] = await Promise.all([
        call(op.ann, 'POST', `/requests/${w.id}/approve`, {}),
        call(admin, 'POST', `/requests/${w.id}/revoke`, { comment: `round ${round}` }),
      ]);
      // The administrator's revocation stands whichever came first; the approval stands only if it came first.
      expect(revoke.statusCode, `round ${round}: ${revoke.body}`).toBe(200);
      expect([200, 409], `round ${round}: ${approve.body}`).toContain(approve.statusCode);
      const approved = approve.statusCode === 200;
      const final = windowOf(await call(admin, 'GET', `/requests/${w.id}`));
      expect(final).toMatchObject({ state: 'revoked', openedAt: null, close: { state: null } });
      expect(final.decisions.map((d) => d.username)).toEqual(approved ? ['ann'] : []);
      const of = async (action: string) => (await auditEvents(t, admin.token, { action })).filter((e) => e.targetId === w.id);
      expect((await of('maintenance.approved')).map((e) => e.details.complete)).toEqual(approved ? [true] : []);
      expect((await of('maintenance.revoked')).map((e) => e.details.previousState)).toEqual([approved ? 'approved' : 'pending']);
    }
    expect(runSoon).not.toHaveBeenCalled();
  });

  it('revokes an open window once when two administrators revoke it at once', async () => {
    const runSoon = vi.fn();
    t.services.maintenanceLifecycle = { runSoon };
    const other = await t.userWithToken('admin', `root-${randomId().slice(0, 8)}`);
    const w = await request(op.olga);
    windowOf(await call(op.ann, 'POST', `/requests/${w.id}/approve`, {}));
    expect(await t.services.maintenance.markOpened(w.id)).toBe(true);
    const answers = await Promise.all([admin, other].map((who) => call(who, 'POST', `/requests/${w.id}/revoke`, {})));
    expect(answers.map((r) => r.statusCode).sort()).toEqual([200, 409]);
    expect(errorOf(answers.find((r) => r.statusCode === 409) as LightMyRequestResponse).message).toMatch(/revoked already/);
    const winner = windowOf(answers.find((r) => r.statusCode === 200) as LightMyRequestResponse);
    expect(winner).toMatchObject({ state: 'revoked', close: { state: 'pending' } });
    const events = (await auditEvents(t, admin.token, { action: 'maintenance.revoked' })).filter((e) => e.targetId === w.id);
    expect(events.map((e) => e.details.previousState)).toEqual(['open']);
    expect(runSoon).toHaveBeenCalledTimes(1);
  });

  it('shows operators their own windows and those naming them, approvers their projects, and 404 for the rest', async () => {
    const mine = await request(op.olga);
    const named = await request(op.olga, { deviceIds: [device2], userIds: [op.olga.id, op.cid.id] });
    const ids = async (who: Person) =>
      (await call(who, 'GET', '/requests'))
        .json<MaintenanceWindowList>()
        .items.map((w) => w.id)
        .sort();
    expect(await ids(op.carl)).toEqual([]);
    expect((await call(op.carl, 'GET', `/requests/${mine.id}`)).statusCode).toBe(404);
    expect(await ids(op.cid)).toEqual([named.id]);
    expect(await ids(op.ann)).toEqual([mine.id, named.id].sort());
    expect(await ids(auditor)).toEqual([mine.id, named.id].sort());
    const approverOfB = await t.userWithToken('operator', 'bert');
    await setApprovers(b.projectId, [approverOfB]);
    expect(await ids(approverOfB)).toEqual([]);
    expect((await call(approverOfB, 'POST', `/requests/${mine.id}/approve`, {})).statusCode).toBe(404);
  });

  it('lets the requester withdraw a pending request, an administrator revoke, and ends an open window at once', async () => {
    const w = await request(op.olga);
    expect((await call(op.carl, 'POST', `/requests/${w.id}/revoke`, {})).statusCode).toBe(404);
    const withdrawn = windowOf(await call(op.olga, 'POST', `/requests/${w.id}/revoke`, { comment: 'not needed' }));
    expect(withdrawn).toMatchObject({ state: 'revoked', endedBy: { username: 'olga' }, endComment: 'not needed', close: { state: null } });
    expect((await call(admin, 'POST', `/requests/${w.id}/revoke`)).statusCode).toBe(409);

    const runSoon = vi.fn();
    t.services.maintenanceLifecycle = { runSoon };
    const open = await request(op.olga);
    windowOf(await call(op.ann, 'POST', `/requests/${open.id}/approve`, {}));
    const notMine = await call(op.olga, 'POST', `/requests/${open.id}/revoke`, {});
    expect([notMine.statusCode, errorOf(notMine).message]).toEqual([409, expect.stringContaining('only an administrator') as string]);
    expect(await t.services.maintenance.markOpened(open.id)).toBe(true);
    const revoked = windowOf(await call(admin, 'POST', `/requests/${open.id}/revoke`, { comment: 'incident over' }));
    expect(revoked).toMatchObject({ state: 'revoked', phase: 'past', endedBy: { username: 'root' }, close: { state: 'pending' } });
    expect(runSoon).toHaveBeenCalledTimes(1);
    const events = (await auditEvents(t, admin.token, { action: 'maintenance.revoked' })).filter((e) => e.targetId === open.id);
    expect(events.map((e) => e.details.previousState)).toEqual(['open']);
  });

  it('tells each viewer what they may do (viewer), by the rules the routes refuse by', async () => {
    await setSettings({ requiredApprovals: 2 });
    const nothing = { mayApprove: false, mayDeny: false, mayRevoke: false, mayWithdraw: false };
    // cid is named in the window (so sees it) but approves nothing; the administrator approves nothing either.
    const w = await request(op.olga, { userIds: [op.olga.id, op.cid.id] });
    expect(w.viewer).toEqual({ ...nothing, mayWithdraw: true });
    const viewerOf = (who: Person) => viewerOfWindow(who, w.id);
    expect(await viewerOf(op.olga)).toEqual({ ...nothing, mayWithdraw: true });
    expect(await viewerOf(op.ann)).toEqual({ ...nothing, mayApprove: true, mayDeny: true });
    expect(await viewerOf(admin)).toEqual({ ...nothing, mayRevoke: true });
    expect(await viewerOf(op.cid)).toEqual(nothing);
    expect(await viewerOf(auditor)).toEqual(nothing);
    const listed = (await call(op.bob, 'GET', '/requests?phase=pending')).json<MaintenanceWindowList>().items;
    expect(listed.map((x) => [x.id, x.viewer.mayApprove])).toEqual([[w.id, true]]);
    // The routes agree with the flags that say no.
    for (const [who, verb, status] of [
      [op.olga, 'approve', 403],
      [admin, 'approve', 403],
      [op.cid, 'approve', 403],
      [op.cid, 'revoke', 403],
    ] as const)
      expect((await call(who, 'POST', `/requests/${w.id}/${verb}`, {})).statusCode, `${who.username} ${verb}`).toBe(status);

    // Once ann has approved, she may not again; bob still may; olga may still withdraw.
    expect(windowOf(await call(op.ann, 'POST', `/requests/${w.id}/approve`, {})).viewer).toEqual(nothing);
    expect((await call(op.ann, 'POST', `/requests/${w.id}/deny`, { comment: 'changed my mind' })).statusCode).toBe(409);
    expect(await viewerOf(op.bob)).toEqual({ ...nothing, mayApprove: true, mayDeny: true });
    expect(await viewerOf(op.olga)).toEqual({ ...nothing, mayWithdraw: true });
    // Approved: nobody decides, the requester may no longer withdraw, the administrator may still revoke.
    expect(windowOf(await call(op.bob, 'POST', `/requests/${w.id}/approve`, {})).state).toBe('approved');
    expect(await viewerOf(op.bob)).toEqual(nothing);
    expect(await viewerOf(op.olga)).toEqual(nothing);
    expect((await call(op.olga, 'POST', `/requests/${w.id}/revoke`, {})).statusCode).toBe(409);
    expect(await viewerOf(admin)).toEqual({ ...nothing, mayRevoke: true });
    expect(windowOf(await call(admin, 'POST', `/requests/${w.id}/revoke`, {})).viewer).toEqual(nothing);
    expect((await call(admin, 'POST', `/requests/${w.id}/revoke`, {})).statusCode).toBe(409);

    // A pending request whose end passed: nobody may approve it.
    const late = await pendingPastItsEnd();
    expect(windowOf(await call(op.ann, 'GET', `/requests/${late.id}`)).viewer.mayApprove).toBe(false);
    expect((await call(op.ann, 'POST', `/requests/${late.id}/approve`, {})).statusCode).toBe(409);

    // An administrator granted approval approves others' requests, never their own (which they may withdraw and revoke).
    await setApprovers(a.projectId, [op.ann, admin]);
    const other = await request(op.olga, { deviceIds: [device2] });
    expect(await viewerOfWindow(admin, other.id)).toEqual({ mayApprove: true, mayDeny: true, mayRevoke: true, mayWithdraw: false });
    const own = await request(admin, { deviceIds: [a.deviceId], userIds: [admin.id] });
    expect(own.viewer).toEqual({ mayApprove: false, mayDeny: false, mayRevoke: true, mayWithdraw: true });
    expect(await viewerOfWindow(op.ann, own.id)).toEqual({ ...nothing, mayApprove: true, mayDeny: true });
    expect((await call(admin, 'POST', `/requests/${own.id}/approve`, {})).statusCode).toBe(403);
  });

  it('keeps the settings, masks the webhook URLs, and notifies the webhook without failing the request', async () => {
    expect((await call(admin, 'GET', '/maintenance/settings')).json()).toEqual({
      maxDurationMinutes: 480,
      requiredApprovals: 1,
      warnMinutes: 5,
      notifyWebhookUrl: null,
      hookWebhookUrl: null,
    });
    const bad = await call(admin, 'PUT', '/maintenance/settings', { maxDurationMinutes: 0, notifyWebhookUrl: 'ftp://x' });
    expect(
      errorOf(bad)
        .issues?.map((i) => i.path)
        .sort(),
    ).toEqual(['maxDurationMinutes', 'notifyWebhookUrl']);

    const received: { event: string; window: { id: string; hooks?: unknown } }[] = [];
    const hook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push(JSON.parse(body) as (typeof received)[number]);
        res.end();
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/notify?token=abc`;
      await setSettings({ notifyWebhookUrl: url, maxDurationMinutes: 60 });
      const shown = (await call(admin, 'GET', '/maintenance/settings')).json<{ notifyWebhookUrl: string; maxDurationMinutes: number }>();
      expect(shown).toMatchObject({ notifyWebhookUrl: SECRET_MASK, maxDurationMinutes: 60 });
      // Sent back masked, the URL keeps its value.
      await setSettings({ notifyWebhookUrl: SECRET_MASK, warnMinutes: 2 });
      const w = await request(op.olga);
      await vi.waitFor(() => expect(received.map((r) => [r.event, r.window.id])).toEqual([['maintenance.requested', w.id]]));
      expect(received[0]?.window.hooks).toBeUndefined();
      expect(
        errorOf(
          await call(op.olga, 'POST', '/requests', { projectId: a.projectId, deviceIds: [device2], durationMinutes: 61, reason: 'x' }),
        ).message,
      ).toContain('at most 60 minutes');
    } finally {
      await new Promise((resolve) => hook.close(resolve));
    }
    // A webhook that cannot be reached is logged; the request still succeeds.
    await setSettings({ notifyWebhookUrl: 'http://127.0.0.1:1/nothing-listens' });
    const w = await request(op.olga, { deviceIds: [device2] });
    await vi.waitFor(() => expect(t.logs.text).toContain('maintenance notification not delivered'));
    expect(t.logs.text).not.toContain('nothing-listens');
    expect(w.state).toBe('pending');
    const changed = await auditEvents(t, admin.token, { action: 'maintenance.settings_changed' });
    expect(changed.length).toBeGreaterThan(0);
  });

  it('sets approvers (administrators and operators only) and audits the change', async () => {
    const bad = await call(admin, 'PUT', `/projects/${a.projectId}/approvers`, { userIds: [op.ann.id, auditor.id] });
    expect(errorOf(bad).issues).toEqual([{ path: 'userIds[1]', message: expect.stringContaining('auditor') as string }]);
    await setApprovers(a.projectId, [admin, op.cid]);
    expect((await call(op.carl, 'GET', `/projects/${a.projectId}/approvers`)).json()).toEqual({
      users: [
        { id: op.cid.id, username: 'cid' },
        { id: admin.id, username: 'root' },
      ],
    });
    expect((await call(op.carl, 'GET', `/projects/${b.projectId}/approvers`)).statusCode).toBe(404);
    const events = await auditEvents(t, admin.token, { action: 'project.approvers_changed' });
    expect(events[0]).toMatchObject({
      targetId: a.projectId,
      details: { added: expect.arrayContaining([admin.id, op.cid.id]) as string[] },
    });
  });

  it('requires windows per device or project, says who may connect now, and keeps the setting through an import', async () => {
    const access = async (who: Person, deviceId = a.deviceId) =>
      (await call(who, 'GET', `/devices/${deviceId}/access`)).json<DeviceAccess>();
    expect(await access(op.olga)).toEqual({
      maintenanceRequired: false,
      requiredBy: null,
      windows: [],
      mayConnectNow: true,
      message: null,
    });

    const patched = await call(admin, 'PATCH', `/projects/${a.projectId}`, { maintenanceRequired: true });
    expect(patched.json()).toMatchObject({ maintenanceRequired: true });
    const refusal = maintenanceRefusal({ projectName: 'shop', deviceName: 'db-1' });
    expect(await access(op.olga)).toMatchObject({
      maintenanceRequired: true,
      requiredBy: 'project',
      mayConnectNow: false,
      message: refusal,
    });

    const later = await request(op.olga, { startsAt: new Date(Date.now() + 7_200_000).toISOString() });
    windowOf(await call(op.ann, 'POST', `/requests/${later.id}/approve`, {}));
    const waiting = await access(op.olga);
    expect(waiting.message).toBe(maintenanceRefusal({ projectName: 'shop', deviceName: 'db-1' }, later));
    expect(waiting.windows).toEqual([
      { id: later.id, users: [{ id: op.olga.id, username: 'olga' }], startsAt: later.startsAt, endsAt: later.endsAt, phase: 'scheduled' },
    ]);

    const now = await request(op.olga);
    windowOf(await call(op.ann, 'POST', `/requests/${now.id}/approve`, {}));
    await t.services.maintenance.markOpened(now.id);
    expect(await access(op.olga)).toMatchObject({ mayConnectNow: true, message: null });
    expect(await access(op.carl)).toMatchObject({ mayConnectNow: false, message: refusal });
    expect(await access(auditor)).toMatchObject({ mayConnectNow: false, message: null });

    // The device's own setting; the project's turned off.
    await call(admin, 'PATCH', `/projects/${a.projectId}`, { maintenanceRequired: false });
    const device = await call(admin, 'PATCH', `/devices/${device2}`, { maintenanceRequired: true });
    expect(device.json()).toMatchObject({ id: device2, maintenanceRequired: true });
    expect(await access(op.carl, device2)).toMatchObject({ requiredBy: 'device', mayConnectNow: false });
    const updates = await auditEvents(t, admin.token, { action: 'device.update' });
    expect(updates.find((e) => e.targetId === device2)?.details).toMatchObject({ maintenanceRequired: true });

    // An import of the same device changes its fields and leaves the setting.
    const csv = `${inventoryColumns.join(',')}\nshop,db-2,gcp,ssh,,10.1.2.3,,gateway,,,,,,,\n`;
    const imported = await t.request('POST', `${API}/inventory/import`, {
      token: admin.token,
      payload: csv,
      headers: { 'content-type': 'text/csv' },
    });
    expect(imported.statusCode, imported.body).toBe(200);
    expect((await call(admin, 'GET', `/devices/${device2}`)).json()).toMatchObject({ provider: 'gcp', maintenanceRequired: true });
    await call(admin, 'PATCH', `/devices/${device2}`, { maintenanceRequired: false });
  });
});
