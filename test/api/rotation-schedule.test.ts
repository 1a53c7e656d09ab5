import { Leases } from '@gatehouse/db';
import { PolicyRotations, RotationSchedule } from '@gatehouse/server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { API } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';
import { recordingRotationEngine, type RotationCall } from '../support/rotation-engine.js';
import { startSessionRow } from '../support/session-rows.js';

/**
 * Scheduled rotation's decisions (the engine is a fake that records what it is asked to
 * start): which policies' accounts are due, as whom, which devices wait or are skipped
 * and why, what is audited, and one replica per tick (the lease).
 */
describe.each(dialects)('scheduled rotation on %s', (dialect) => {
  let t: TestApp;
  let admin: { id: string; username: string; token: string };
  let ada: { id: string; username: string; token: string };
  const ids: Record<string, string> = {};
  const { engine, calls } = recordingRotationEngine();
  let rotations: PolicyRotations;
  const schedules: RotationSchedule[] = [];
  const schedule = () => {
    const s = new RotationSchedule({
      services: t.services,
      rotations,
      leases: new Leases(t.services.db),
      logger: t.services.logger,
      everyMinutes: 10,
      afterSessionDelayMs: 0,
    });
    schedules.push(s);
    return s;
  };

  const post = async <T>(url: string, body: unknown, token = admin.token) => {
    const r = await t.request('POST', `${API}${url}`, { token, body });
    expect(r.statusCode, r.body).toBe(201);
    return r.json<T & { id: string }>();
  };
  const policy = async (scope: 'projects' | 'devices', id: string, body: unknown, token = admin.token) => {
    const r = await t.request('PUT', `${API}/${scope}/${id}/rotation-policy`, { token, body });
    expect(r.statusCode, r.body).toBe(200);
  };
  const device = async (projectId: string, name: string, accounts: string[]) => {
    const d = await post('/devices', { projectId, name, provider: 'on-prem', protocols: ['ssh'], privateIp: '127.0.0.1', urlPort: '22' });
    ids[name] = d.id;
    for (const username of accounts)
      ids[`${name}:${username}`] = (await post('/accounts', { deviceId: d.id, username, password: 'old-Password-1' })).id;
  };
  /** Makes every credential older than `days` days. */
  const age = (days: number) =>
    t.services.db.kysely
      .updateTable('accounts')
      .set({ secret_changed_at: new Date(Date.now() - days * 86_400_000).toISOString() })
      .execute();
  const audited = async (action: string) =>
    (await t.services.db.kysely.selectFrom('audit_events').selectAll().where('action', '=', action).orderBy('seq').execute()).map(
      (e) => JSON.parse(e.details) as Record<string, unknown>,
    );
  const rotated = () => calls.flatMap((c) => c.request.items.flatMap((i) => i.accountIds)).sort((a, b) => a.localeCompare(b));

  beforeAll(async () => {
    t = await createTestApp(dialect);
    rotations = new PolicyRotations(t.services, t.services.logger, engine);
    admin = await t.userWithToken('admin');
    ada = await t.userWithToken('admin', 'ada');
    const lab = await post('/projects', { name: 'Lab' });
    await device(lab.id, 'web-1', ['root', 'app']);
    await device(lab.id, 'web-2', ['root']);
    await policy('projects', lab.id, { everyDays: 30, credential: 'password', passwordLength: 20, passwordClasses: ['lower', 'digit'] });
    // Its own policy beats the project's: a year.
    await policy('devices', ids['web-2'] as string, { everyDays: 365 });
    const other = await post('/projects', { name: 'Other' });
    await device(other.id, 'db-1', ['root']);
    const plant = await post('/projects', { name: 'Plant' });
    ids.plant = plant.id;
    await device(plant.id, 'plc', ['root']);
    await policy('projects', plant.id, { everyDays: 30 });
    await t.services.inventory.projects.update(plant.id, { maintenanceRequired: true });
    const ops = await post('/projects', { name: 'Ops' });
    await device(ops.id, 'ops-1', ['root']);
    await policy('projects', ops.id, { everyDays: 30 }, ada.token);
    const desk = await post('/projects', { name: 'Desk' });
    ids.desk = desk.id;
    await device(desk.id, 'desk-1', ['root', 'app']);
    await policy('projects', desk.id, { afterSession: true });
  });
  afterEach(async () => {
    for (const s of schedules.splice(0)) await s.stop();
    calls.length = 0;
    await age(0);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('starts one applied ResetAccess run per policy over its due accounts, as the user who set it, with its credential and password policy', async () => {
    await age(31);
    const tick = await schedule().tick();
    const lab = calls.find((c) => c.request.items.some((i) => i.deviceId === ids['web-1']));
    expect(lab?.request).toMatchObject({
      items: [{ deviceId: ids['web-1'], accountIds: expect.arrayContaining([ids['web-1:root'], ids['web-1:app']]) as unknown }],
      apply: true,
      kind: 'runbook',
      privilegedAccount: 'root',
      credential: 'password',
      policy: { length: 20, classes: ['lower', 'digit'] },
    });
    expect(lab?.caller).toEqual({ id: admin.id, username: admin.username });
    // web-2's own policy (a year) is not due; db-1 has no policy; plc needs a window.
    expect(rotated()).toEqual([ids['web-1:root'], ids['web-1:app'], ids['ops-1:root']].sort((a, b) => (a ?? '').localeCompare(b ?? '')));
    expect(tick?.runs).toHaveLength(2);
    const labRun = `run-${calls.indexOf(lab as RotationCall) + 1}`;
    expect(await audited('rotation.scheduled_run')).toContainEqual(
      expect.objectContaining({ runId: labRun, accounts: 2, devices: 1, trigger: 'schedule', as: admin.username }),
    );
  });

  it('does not start a run when nothing is due', async () => {
    await age(29);
    const tick = await schedule().tick();
    expect(tick).toEqual({ runs: [], deferred: 0 });
    expect(calls).toEqual([]);
  });

  it('skips a device that needs a maintenance window while none covers the policy user, and rotates it inside one', async () => {
    await age(31);
    const s = schedule();
    await s.tick();
    expect(rotated()).not.toContain(ids['plc:root']);
    const skipped = await audited('rotation.schedule_skipped');
    expect(skipped.map((d) => d.reason)).toContain(`plc needs a maintenance window and no open window covers ${admin.username}`);

    const w = await t.services.maintenance.create({
      projectId: ids.plant as string,
      deviceIds: [ids.plc as string],
      accountIds: null,
      userIds: [admin.id],
      requestedBy: admin.id,
      reason: 'rotation',
      ticket: null,
      startsAt: new Date(Date.now() - 60_000).toISOString(),
      endsAt: new Date(Date.now() + 3_600_000).toISOString(),
      requiredApprovals: 1,
    });
    await t.services.db.kysely.updateTable('maintenance_windows').set({ state: 'open' }).where('id', '=', w.id).execute();
    calls.length = 0;
    await s.tick();
    expect(rotated()).toContain(ids['plc:root']);
    await t.services.db.kysely.updateTable('maintenance_windows').set({ state: 'expired' }).where('id', '=', w.id).execute();
  });

  it('refuses, and audits why, when the user who set the policy is disabled or no longer an administrator', async () => {
    await age(31);
    await t.services.users.update(ada.id, { disabled: 1 });
    const s = schedule();
    await s.tick();
    expect(rotated()).not.toContain(ids['ops-1:root']);
    await t.services.users.update(ada.id, { disabled: 0, role: 'operator' });
    await s.tick();
    expect(rotated()).not.toContain(ids['ops-1:root']);
    const reasons = (await audited('rotation.schedule_skipped')).map((d) => d.reason);
    expect(reasons).toContain('ada, who set the policy, is disabled: set the policy again as an administrator');
    expect(reasons).toContain('ada, who set the policy, is no longer an administrator: set the policy again as one');
    await t.services.users.update(ada.id, { role: 'admin' });
    await s.tick();
    expect(rotated()).toContain(ids['ops-1:root']);
  });

  it('leaves accounts on a device another run holds for the next tick', async () => {
    await age(31);
    const holding = await t.services.runbookRuns.create({
      kind: 'runbook',
      runbook: { name: 'TroubleshootSSH', version: 1, sha256: 'x' },
      apply: false,
      inputs: {},
      privilegedAccount: 'root',
      concurrency: 1,
      user: { id: admin.id, username: admin.username },
      devices: [{ deviceId: ids['web-1'] as string, deviceName: 'web-1', projectName: 'Lab' }],
    });
    const s = schedule();
    const first = await s.tick();
    expect(rotated()).not.toContain(ids['web-1:root']);
    expect(first?.deferred).toBe(2);
    await t.services.runbookRuns.updateItem(holding.id, ids['web-1'] as string, { state: 'done', verdict: 'SUCCESS' });
    await s.tick();
    expect(rotated()).toEqual(expect.arrayContaining([ids['web-1:root'], ids['web-1:app']]));
  });

  it('two replicas ticking at once: one holds the lease and starts the runs, the other starts nothing', async () => {
    await age(31);
    const [a, b] = await Promise.all([schedule().tick(), schedule().tick()]);
    expect([a, b].filter((tick) => tick === undefined)).toHaveLength(1);
    expect(calls.filter((c) => c.request.items.some((i) => i.deviceId === ids['web-1']))).toHaveLength(1);
    expect(calls).toHaveLength(2);
  });

  it('picks up an account a session used under an after-session policy that was not rotated since (a server stop lost its queue)', async () => {
    await age(1);
    /** A person's session on desk-1's `account`, ended `endedAgoMs` ago (live when null). */
    const session = async (account: 'root' | 'app', endedAgoMs: number | null) => {
      const id = await startSessionRow(t, {
        user: admin,
        projectId: ids.desk as string,
        deviceId: ids['desk-1'] as string,
        deviceName: 'desk-1',
        accountId: ids[`desk-1:${account}`] as string,
        accountUsername: account,
        startedAt: new Date(Date.now() - 3 * 3_600_000).toISOString(),
      });
      if (endedAgoMs !== null) {
        const endedAt = new Date(Date.now() - endedAgoMs).toISOString();
        await t.gatewaySessions.end(id, { endedAt, bytesIn: 0, bytesOut: 0, result: 'success', exitStatus: 0, reason: null });
      }
    };
    await session('app', 2 * 3_600_000);
    // root: used two hours ago, but someone is on it now.
    await session('root', 2 * 3_600_000);
    await session('root', null);
    const s = schedule();
    await s.tick();
    expect(rotated()).toEqual([ids['desk-1:app']]);
    // Rotated since (its secret changed after the session): not picked up again.
    await t.services.db.kysely
      .updateTable('accounts')
      .set({ secret_changed_at: new Date().toISOString() })
      .where('id', '=', ids['desk-1:app'] as string)
      .execute();
    calls.length = 0;
    await s.tick();
    expect(calls).toEqual([]);
  });
});
