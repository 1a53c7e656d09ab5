import { ServerAccessBroker } from '@gatehouse/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { startShellSession } from '../support/broker-session.js';
import { dialects } from '../support/db.js';

/** The broker's maintenance window check: who may reach a device that needs a window (the gateway asks it at sign-in and at connect). */
describe.each(dialects)('maintenance windows in the gateway broker on %s', (dialect) => {
  let t: TestApp;
  let broker: ServerAccessBroker;
  let admin: { id: string; username: string; token: string };
  let uma: { id: string; username: string };
  let otto: { id: string; username: string };
  let projectId: string;
  let deviceId: string;

  /** A window for `userIds` on the box, stored in `state`, from `startsIn` to `endsIn` ms from now. */
  const windowFor = async (userIds: string[], state: 'approved' | 'open', startsIn: number, endsIn: number) => {
    const w = await t.services.maintenance.create({
      projectId,
      deviceIds: [deviceId],
      accountIds: null,
      userIds,
      requestedBy: admin.id,
      reason: 'test',
      ticket: null,
      startsAt: new Date(Date.now() + startsIn).toISOString(),
      endsAt: new Date(Date.now() + endsIn).toISOString(),
      requiredApprovals: 1,
    });
    await t.services.db.kysely.updateTable('maintenance_windows').set({ state }).where('id', '=', w.id).execute();
    return w.id;
  };
  const authorize = (user: { id: string; username: string }) =>
    broker.authorize(user, { user: user.username, device: 'box', account: undefined }, '192.0.2.7');
  const denials = async (actorId: string) =>
    (
      await t.services.db.kysely
        .selectFrom('audit_events')
        .selectAll()
        .where('action', '=', 'gateway.authorize')
        .where('actor_id', '=', actorId)
        .execute()
    )
      .map((e) => JSON.parse(e.details) as { reason?: string })
      .map((d) => d.reason);

  beforeAll(async () => {
    t = await createTestApp(dialect);
    broker = new ServerAccessBroker(t.services, t.gatewaySessions, () => t.gateways.settings());
    admin = await t.userWithToken('admin');
    uma = await t.userWithToken('operator', 'uma');
    otto = await t.userWithToken('operator', 'otto');
    projectId = (await t.request('POST', `${API}/projects`, { token: admin.token, body: { name: 'Plant' } })).json<{ id: string }>().id;
    const device = await t.request('POST', `${API}/devices`, {
      token: admin.token,
      body: { projectId, name: 'box', provider: 'on-prem', protocols: ['ssh'], privateIp: '127.0.0.1', urlPort: '22' },
    });
    deviceId = device.json<{ id: string }>().id;
    await t.request('POST', `${API}/accounts`, { token: admin.token, body: { deviceId, username: 'root', password: 'secret' } });
    for (const user of [uma, otto]) await t.request('POST', `${API}/grants`, { token: admin.token, body: { userId: user.id, projectId } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('lets everyone with access in while the device needs no window, and no session belongs to one', async () => {
    const decision = await authorize(uma);
    expect(decision).toMatchObject({ allow: true, target: { deviceName: 'box', windowId: null } });
  });

  it('refuses everyone, administrators too, while no window is open for them, saying how to ask for one', async () => {
    await t.services.inventory.projects.update(projectId, { maintenanceRequired: true });
    for (const user of [uma, admin]) {
      const decision = await authorize(user);
      expect(decision.allow).toBe(false);
      expect(!decision.allow && decision.message).toBe(
        'box needs an approved maintenance window, and none is open for you now. Request one: ' +
          './gatehouse requests create --device Plant/box --duration <minutes> --reason "…" (or Requests in the console).',
      );
      expect(await denials(user.id)).toContain('no maintenance window');
    }
    // An approved window that opens later is named.
    const later = await windowFor([uma.id], 'approved', 3_600_000, 7_200_000);
    const decision = await authorize(uma);
    expect(!decision.allow && decision.message).toMatch(
      new RegExp(`Your window ${later} opens at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC\\.$`),
    );
    await t.services.maintenance.revoke(later, { userId: admin.id, comment: null });
  });

  it('lets in only the users an open window names, records the window on their sessions, and checks it again at connect', async () => {
    const open = await windowFor([uma.id], 'open', -1000, 3_600_000);
    const decision = await authorize(uma);
    expect(decision).toMatchObject({ allow: true, target: { windowId: open } });
    expect((await authorize(otto)).allow).toBe(false);
    if (!decision.allow) return;

    expect(await broker.fetchCredential(uma, decision.target)).toMatchObject({ allow: true });
    const id = await startShellSession(broker, uma, decision.target);
    expect((await t.gatewaySessions.find(id))?.windowId).toBe(open);
    expect((await t.gatewaySessions.liveInWindow(open)).map((s) => s.id)).toEqual([id]);
    expect(await t.gatewaySessions.liveOutsideOpenWindows()).toEqual([]);

    // Revoked between sign-in and connect: the credential is refused, and the session is one to end.
    await t.services.maintenance.revoke(open, { userId: admin.id, comment: null });
    const again = await broker.fetchCredential(uma, decision.target);
    expect(again).toMatchObject({ allow: false, message: expect.stringContaining('needs an approved maintenance window') as unknown });
    expect((await t.gatewaySessions.liveOutsideOpenWindows()).map((s) => s.id)).toEqual([id]);
  });
});
