import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SshGateway } from '@gatehouse/gateway';
import { Leases } from '@gatehouse/db';
import { RotationSchedule } from '@gatehouse/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { startBuiltInGateway } from '../support/built-in-gateway.js';
import { dialects } from '../support/db.js';
import { runClient } from '../support/ssh-client.js';
import { canLogIn, ensureSystemUser, generateKeyPair, TestSshd } from '../support/sshd.js';

const ROTATED_USER = 'gh-rb-sched';
const FIRST_PASSWORD = 'first-Sched-Password-4x';

/**
 * Policies rotating for real: the built-in gateway (in process) to an OpenSSH sshd, root by
 * key. A due credential is rotated by the schedule's tick and the new password logs in
 * through the gateway; with after-session, that very session's end rotates it again.
 */
describe.each(dialects)('rotation policies against OpenSSH on %s', (dialect) => {
  let t: TestApp;
  let gateway: SshGateway;
  let sshd: TestSshd;
  let dir: string;
  let admin: { id: string; username: string; password: string; token: string };
  let projectId: string;
  let accountId: string;

  const password = async () => (await t.services.inventory.accounts.reveal(accountId)).password as string;
  /** `ssh admin:box:gh-rb-sched@gateway command`, signed in with the admin's Gatehouse password. */
  const throughGateway = async (command: string) => {
    const run = await runClient('ssh', ['-p', String(gateway.port), `${admin.username}:box:${ROTATED_USER}@127.0.0.1`, command], {
      password: admin.password,
      timeoutMs: 30_000,
    });
    return { code: run.code, stdout: run.stdout.toString('utf8'), stderr: run.stderr };
  };
  /** session.end events of people's sessions (not the runbook's) on the rotated account. */
  const sessionEnds = async () => {
    const { kysely } = t.services.db;
    const people = await kysely
      .selectFrom('gateway_sessions')
      .select('id')
      .where('account_id', '=', accountId)
      .where('runbook_run_id', 'is', null)
      .execute();
    const ids = new Set(people.map((r) => r.id));
    const ends = await kysely.selectFrom('audit_events').select('details').where('action', '=', 'session.end').execute();
    return ends.filter((e) => ids.has((JSON.parse(e.details) as { sessionId: string }).sessionId)).length;
  };
  const putPolicy = async (body: unknown) => {
    const r = await t.request('PUT', `${API}/projects/${projectId}/rotation-policy`, { token: admin.token, body });
    expect(r.statusCode, r.body).toBe(200);
  };

  beforeAll(async () => {
    t = await createTestApp(dialect, { rotationAfterSessionDelayMs: 200 });
    dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-rotation-'));
    ensureSystemUser(ROTATED_USER, { password: FIRST_PASSWORD });
    sshd = await TestSshd.start(path.join(dir, 'sshd'), { rootKeyLogin: true });
    const rootKey = generateKeyPair(dir, 'root-key');
    sshd.authorize('root', rootKey.publicKey);
    admin = await t.userWithToken('admin');
    projectId = (await t.request('POST', `${API}/projects`, { token: admin.token, body: { name: 'Lab' } })).json<{ id: string }>().id;
    const device = await t.request('POST', `${API}/devices`, {
      token: admin.token,
      body: { projectId, name: 'box', provider: 'on-prem', protocols: ['ssh'], privateIp: '127.0.0.1', urlPort: String(sshd.port) },
    });
    const deviceId = device.json<{ id: string }>().id;
    await t.request('POST', `${API}/accounts`, {
      token: admin.token,
      body: { deviceId, username: 'root', privateKey: rootKey.privateKey },
    });
    const rotated = await t.request('POST', `${API}/accounts`, {
      token: admin.token,
      body: { deviceId, username: ROTATED_USER, password: FIRST_PASSWORD },
    });
    accountId = rotated.json<{ id: string }>().id;
    gateway = await startBuiltInGateway(t, path.join(t.services.config.dataDir, 'recordings'));
    t.gateways.builtInSessions = gateway;
  });
  afterAll(async () => {
    await t?.services.runbooks.idle();
    await gateway?.stop();
    await sshd?.stop();
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a due password is rotated by the schedule (the policy length), and the new one logs in through the gateway', async () => {
    await putPolicy({ everyDays: 30, credential: 'password', passwordLength: 16 });
    const aged = new Date(Date.now() - 31 * 86_400_000).toISOString();
    await t.services.db.kysely.updateTable('accounts').set({ secret_changed_at: aged }).where('id', '=', accountId).execute();
    const schedule = new RotationSchedule({
      services: t.services,
      rotations: t.policyRotations,
      leases: new Leases(t.services.db),
      logger: t.services.logger,
      everyMinutes: 10,
      afterSessionDelayMs: 0,
    });
    try {
      const tick = await schedule.tick();
      expect(tick?.runs).toHaveLength(1);
      await t.services.runbooks.idle();
      const run = await t.services.runbooks.run(tick?.runs[0]?.runId as string);
      expect(run.items?.[0]?.verdict, JSON.stringify(run.items?.[0], null, 1)).toBe('SUCCESS');
      expect(run.items?.[0]?.accounts).toEqual([expect.objectContaining({ accountId, result: 'rotated' })]);
    } finally {
      await schedule.stop();
    }
    const current = await password();
    expect(current).not.toBe(FIRST_PASSWORD);
    expect(current).toHaveLength(16);
    expect(await canLogIn(sshd.port, ROTATED_USER, FIRST_PASSWORD)).toBe(false);
    const session = await throughGateway('id -un');
    expect(session, session.stderr).toMatchObject({ code: 0, stdout: `${ROTATED_USER}\n` });
    // Rotated: not due any more; and that session's end rotates nothing (the policy has no after-session).
    expect((await t.services.rotationPolicies.due(new Date())).map((a) => a.accountId)).not.toContain(accountId);
    await expect.poll(() => t.gatewaySessions.liveOnAccount(accountId)).toBe(0);
    await expect.poll(() => sessionEnds()).toBe(1);
    await t.afterSessionRotation.flush();
    expect(await password()).toBe(current);
    // The new password is in no audit event (rotation.scheduled_run among them) or log line.
    const audit = await t.services.db.kysely.selectFrom('audit_events').select(['action', 'details']).execute();
    expect(audit.map((a) => a.action)).toContain('rotation.scheduled_run');
    expect(JSON.stringify(audit)).not.toContain(current);
    expect(t.logs.text).not.toContain(current);
  });

  it('with after-session, the end of a session through the gateway rotates the password it used', async () => {
    await putPolicy({ everyDays: null, afterSession: true });
    const before = await password();
    const runsBefore = (await t.services.runbooks.runs({})).total;
    const session = await throughGateway('true');
    expect(session.code, session.stderr).toBe(0);
    await expect.poll(async () => (await t.services.runbooks.runs({})).total, { timeout: 15_000 }).toBe(runsBefore + 1);
    await t.services.runbooks.idle();
    const after = await password();
    expect(after).not.toBe(before);
    expect(await canLogIn(sshd.port, ROTATED_USER, after)).toBe(true);
    expect(await canLogIn(sshd.port, ROTATED_USER, before)).toBe(false);
    // The rotation's own sessions ended too, and queued nothing: no further run.
    await t.afterSessionRotation.flush();
    await t.services.runbooks.idle();
    expect((await t.services.runbooks.runs({})).total).toBe(runsBefore + 1);
  });
});
