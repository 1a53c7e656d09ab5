import { randomUUID } from 'node:crypto';
import { Leases, type MaintenanceWindow } from '@gatehouse/db';
import { MaintenanceLifecycle } from '@gatehouse/server';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { API } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

/** The lifecycle's own rules, in process with no hooks configured and no gateway listening. */
describe.each(dialects)('the maintenance lifecycle on %s', (dialect) => {
  let t: TestApp;
  let projectId: string;
  let userId: string;
  const lifecycles: MaintenanceLifecycle[] = [];

  const lifecycle = () => {
    const l = new MaintenanceLifecycle({
      services: t.services,
      sessions: t.gatewaySessions,
      leases: new Leases(t.services.db),
      gateways: t.gateways,
      logger: t.services.logger,
      settings: async () => ({ warnMinutes: 5, hookWebhookUrl: null, notifyWebhookUrl: null }),
    });
    lifecycles.push(l);
    return l;
  };
  /** A window stored as approved, from `startsIn` to `endsIn` milliseconds from now. */
  const approved = async (startsIn: number, endsIn: number): Promise<MaintenanceWindow> => {
    const now = Date.now();
    const w = await t.services.maintenance.create({
      projectId,
      deviceIds: null,
      accountIds: null,
      // A user of its own: windows of one user overlap.
      userIds: [randomUUID()],
      requestedBy: userId,
      reason: 'test',
      ticket: null,
      startsAt: new Date(now + startsIn).toISOString(),
      endsAt: new Date(now + endsIn).toISOString(),
      requiredApprovals: 1,
    });
    await t.services.db.kysely.updateTable('maintenance_windows').set({ state: 'approved' }).where('id', '=', w.id).execute();
    return w;
  };
  const events = async (action: string, id: string) =>
    (
      await t.services.db.kysely
        .selectFrom('audit_events')
        .select('action')
        .where('target_id', '=', id)
        .where('action', '=', action)
        .execute()
    ).length;

  beforeAll(async () => {
    t = await createTestApp(dialect);
    const admin = await t.userWithToken('admin');
    userId = admin.id;
    projectId = (await t.request('POST', `${API}/projects`, { token: admin.token, body: { name: 'Plant' } })).json<{ id: string }>().id;
  });
  afterAll(async () => {
    for (const l of lifecycles) await l.stop();
    await t?.close();
  });

  it('opens a window whose start came exactly once, however many replicas tick at once', async () => {
    const windows = await Promise.all([0, 1, 2, 3].map((i) => approved(-1000, 60_000 * (i + 1) + 5 * 60_000)));
    const replicas = [lifecycle(), lifecycle(), lifecycle()];
    await Promise.all(replicas.flatMap((r) => [r.tick(), r.tick()]));
    for (const w of windows) {
      expect((await t.services.maintenance.get(w.id)).state).toBe('open');
      expect(await events('maintenance.opened', w.id)).toBe(1);
    }
    for (const r of replicas) await r.stop();
    for (const w of windows) await t.services.maintenance.revoke(w.id, { userId, comment: null });
  });

  it('ends an open window at its monotonic deadline even when the wall clock is turned back', async () => {
    const w = await approved(-1000, 1500);
    const l = lifecycle();
    await l.tick();
    expect((await t.services.maintenance.get(w.id)).state).toBe('open');
    // The clock jumps back an hour: by it the window has an hour and more to go.
    const hourAgo = () => new Date(Date.now() - 3_600_000);
    await l.tick(hourAgo());
    expect((await t.services.maintenance.get(w.id)).state).toBe('open');
    await vi.waitFor(
      async () => {
        await l.tick(hourAgo());
        expect((await t.services.maintenance.get(w.id)).state).toBe('expired');
      },
      { timeout: 10_000, interval: 100 },
    );
    expect(await events('maintenance.expired', w.id)).toBe(1);
    await l.stop();
  });
});
