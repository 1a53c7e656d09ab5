import { AfterSessionRotation, PolicyRotations, ServerAccessBroker } from '@gatehouse/server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { API } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';
import { recordingRotationEngine } from '../support/rotation-engine.js';
import { startSessionRow } from '../support/session-rows.js';

/**
 * Rotation after sessions, as the gateway broker reports session ends (the engine is a
 * fake that records what it is asked to start): only after the last live session on the
 * account, several ends together make one run, and runbook sessions never count.
 */
describe.each(dialects)('rotation after sessions on %s', (dialect) => {
  let t: TestApp;
  let broker: ServerAccessBroker;
  let admin: { id: string; username: string; token: string };
  let deviceId: string;
  let otherDeviceId: string;
  const accounts: Record<string, string> = {};
  const { engine, calls } = recordingRotationEngine();
  let rotation: AfterSessionRotation;
  /** Rotation after sessions on the test app, waiting `delayMs` after an end. */
  const install = (delayMs: number) => {
    rotation = new AfterSessionRotation({
      services: t.services,
      sessions: t.gatewaySessions,
      rotations: new PolicyRotations(t.services, t.services.logger, engine),
      logger: t.services.logger,
      delayMs,
    });
    t.services.afterSessionRotation = rotation;
  };

  const post = async (url: string, body: unknown) => {
    const r = await t.request('POST', `${API}${url}`, { token: admin.token, body });
    expect(r.statusCode, r.body).toBe(201);
    return r.json<{ id: string }>().id;
  };
  /** A live session of the admin on `account` of the box (a runbook run's when `runId` is given). */
  const open = (account: 'root' | 'app', onDevice = deviceId, runId: string | null = null) =>
    startSessionRow(t, {
      user: admin,
      projectId: null,
      deviceId: onDevice,
      deviceName: onDevice === deviceId ? 'box' : 'other',
      accountId: accounts[`${onDevice}:${account}`] as string,
      accountUsername: account,
      runbookRunId: runId,
    });
  const end = (id: string) =>
    broker.sessionEnded(id, { endedAt: new Date().toISOString(), bytesIn: 1, bytesOut: 1, result: 'success', exitStatus: 0, reason: null });
  const rotated = () => calls.map((c) => c.request.items.flatMap((i) => i.accountIds).sort((a, b) => a.localeCompare(b)));

  beforeAll(async () => {
    t = await createTestApp(dialect);
    broker = new ServerAccessBroker(t.services, t.gatewaySessions, () => t.gateways.settings());
    admin = await t.userWithToken('admin');
    const projectId = await post('/projects', { name: 'Lab' });
    for (const name of ['box', 'other']) {
      const id = await post('/devices', {
        projectId,
        name,
        provider: 'on-prem',
        protocols: ['ssh'],
        privateIp: '127.0.0.1',
        urlPort: '22',
      });
      for (const username of ['root', 'app'])
        accounts[`${id}:${username}`] = await post('/accounts', { deviceId: id, username, password: 'pw-Old-1234' });
      if (name === 'box') deviceId = id;
      else otherDeviceId = id;
    }
    // The box rotates after sessions; the other device's own policy only on a schedule.
    const put = (scope: string, id: string, body: unknown) =>
      t.request('PUT', `${API}/${scope}/${id}/rotation-policy`, { token: admin.token, body });
    expect((await put('projects', projectId, { afterSession: true, credential: 'password' })).statusCode).toBe(200);
    expect((await put('devices', otherDeviceId, { everyDays: 30 })).statusCode).toBe(200);
  });
  afterEach(async () => {
    await rotation.stop();
    calls.length = 0;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('rotates an account only after the last of its two sessions ended', async () => {
    install(60_000);
    const first = await open('app');
    const second = await open('app');
    await end(first);
    await rotation.flush();
    expect(calls).toEqual([]);
    await end(second);
    await rotation.flush();
    expect(rotated()).toEqual([[accounts[`${deviceId}:app`]]]);
    expect(calls[0]?.request).toMatchObject({ apply: true, kind: 'runbook', credential: 'password', items: [{ deviceId }] });
    expect(calls[0]?.caller).toEqual({ id: admin.id, username: admin.username });
    const audited = await t.services.db.kysely
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'rotation.scheduled_run')
      .execute();
    expect(audited.map((e) => JSON.parse(e.details) as Record<string, unknown>)).toContainEqual(
      expect.objectContaining({ runId: 'run-1', accounts: 1, trigger: 'after-session' }),
    );
  });

  it('sessions ending together make one rotation of their accounts, after the wait', async () => {
    install(150);
    const sessions = [await open('app'), await open('root'), await open('app')];
    for (const id of sessions) await end(id);
    await expect.poll(() => calls.length, { timeout: 5_000 }).toBe(1);
    await rotation.flush();
    expect(rotated()).toEqual([
      [accounts[`${deviceId}:app`], accounts[`${deviceId}:root`]].sort((a, b) => (a ?? '').localeCompare(b ?? '')),
    ]);
  });

  it('never for a runbook session, nor on a device whose policy does not ask for it', async () => {
    install(60_000);
    const run = await t.services.runbookRuns.create({
      kind: 'runbook',
      runbook: { name: 'ResetAccess', version: 1, sha256: 'x' },
      apply: true,
      inputs: {},
      privilegedAccount: 'root',
      concurrency: 1,
      user: { id: admin.id, username: admin.username },
      devices: [{ deviceId, deviceName: 'box', projectName: 'Lab' }],
    });
    await end(await open('app', deviceId, run.id));
    await end(await open('app', otherDeviceId));
    await rotation.flush();
    expect(calls).toEqual([]);
    await t.services.runbookRuns.updateItem(run.id, deviceId, { state: 'done', verdict: 'SUCCESS' });
  });

  it('waits while another run holds the device, then rotates', async () => {
    install(60_000);
    const run = await t.services.runbookRuns.create({
      kind: 'runbook',
      runbook: { name: 'TroubleshootSSH', version: 1, sha256: 'x' },
      apply: false,
      inputs: {},
      privilegedAccount: 'root',
      concurrency: 1,
      user: { id: admin.id, username: admin.username },
      devices: [{ deviceId, deviceName: 'box', projectName: 'Lab' }],
    });
    await end(await open('root'));
    await rotation.flush();
    expect(calls).toEqual([]);
    await t.services.runbookRuns.updateItem(run.id, deviceId, { state: 'done', verdict: 'SUCCESS' });
    await rotation.flush();
    expect(rotated()).toEqual([[accounts[`${deviceId}:root`]]]);
  });
});
