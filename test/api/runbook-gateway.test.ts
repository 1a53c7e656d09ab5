import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SshGateway } from '@gatehouse/gateway';
import { RunbookConnectError } from '@gatehouse/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { startBuiltInGateway } from '../support/built-in-gateway.js';
import { dialects } from '../support/db.js';
import { generateKeyPair, TestSshd } from '../support/sshd.js';

/**
 * The runbook engine's way into the built-in gateway (in process, the server's broker) to a
 * real sshd: one-time keys, a recorded session per command with the run in its audit
 * event, no recorded input, and a direct login that ignores what the device lacks.
 */
describe.each(dialects)('runbook connections through the built-in gateway on %s', (dialect) => {
  let t: TestApp;
  let gateway: SshGateway;
  let sshd: TestSshd;
  let dir: string;
  let admin: { id: string; username: string; token: string };
  let operator: { id: string; username: string; token: string };

  beforeAll(async () => {
    t = await createTestApp(dialect, { gatewayRecordInput: true });
    dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-runbook-gw-'));
    sshd = await TestSshd.start(path.join(dir, 'sshd'), { rootKeyLogin: true });
    const rootKey = generateKeyPair(dir, 'root-key');
    sshd.authorize('root', rootKey.publicKey);
    admin = await t.userWithToken('admin');
    operator = await t.userWithToken('operator', 'ops');
    const project = (await t.request('POST', `${API}/projects`, { token: admin.token, body: { name: 'Lab' } })).json<{ id: string }>();
    for (const [name, ip] of [
      ['box', '127.0.0.1'],
      ['dark', null],
    ] as const) {
      const device = await t.request('POST', `${API}/devices`, {
        token: admin.token,
        body: { projectId: project.id, name, provider: 'on-prem', protocols: ['ssh'], privateIp: ip, urlPort: String(sshd.port) },
      });
      expect(device.statusCode, device.body).toBe(201);
      const account = await t.request('POST', `${API}/accounts`, {
        token: admin.token,
        body: { deviceId: device.json<{ id: string }>().id, username: 'root', privateKey: rootKey.privateKey },
      });
      expect(account.statusCode, account.body).toBe(201);
    }
    gateway = await startBuiltInGateway(t, path.join(t.services.config.dataDir, 'recordings'), { recordInput: true });
    t.gateways.builtInSessions = gateway;
  });
  afterAll(async () => {
    await gateway?.stop();
    await sshd?.stop();
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const context = { runId: 'run-test-1', direct: false, credentialId: null };

  it('runs each command as a recorded session of the admin, with the run in the session.start event and no input recorded', async () => {
    const c = await t.runbookGateway.open(admin, 'Lab/box:root', context);
    try {
      expect((await c.exec('id -u')).stdout.trim()).toBe('0');
      const counted = await c.exec('wc -c', { stdin: 'new-secret-on-stdin' });
      expect(counted.stdout.trim()).toBe('19');
    } finally {
      c.close();
    }
    const events = await t.services.db.kysely
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'session.start')
      .where('actor_id', '=', admin.id)
      .execute();
    const details = events.map((e) => JSON.parse(e.details) as { runbookRun?: string; sessionId: string });
    expect(details).toHaveLength(2);
    expect(details.every((d) => d.runbookRun === 'run-test-1')).toBe(true);
    const sessionId = details[1]?.sessionId as string;
    await expect
      .poll(async () => (await t.request('GET', `${API}/sessions/${sessionId}`, { token: admin.token })).json<{ result: string }>().result)
      .not.toBe('active');
    const cast = await t.request('GET', `${API}/sessions/${sessionId}/recording`, { token: admin.token });
    expect(cast.statusCode).toBe(200);
    expect(cast.body).toContain('19');
    expect(cast.body).not.toContain('new-secret-on-stdin');
    expect(cast.body).not.toMatch(/,\s*"i"\s*,/);
    const signIns = await t.services.db.kysely.selectFrom('audit_events').selectAll().where('action', '=', 'gateway.auth').execute();
    expect(signIns.some((e) => (JSON.parse(e.details) as { method?: string }).method === 'runbook')).toBe(true);
  });

  it('admits each one-time key once: a used key is not a runbook key any more', async () => {
    const c = await t.runbookGateway.open(admin, 'Lab/box:root', context);
    c.close();
    expect(t.runbookGateway.admit('SHA256:whatever', admin.username, false)).toBeUndefined();
  });

  it('refuses a runbook connection for a user who is not an administrator', async () => {
    await expect(t.runbookGateway.open(operator, 'Lab/box:root', context)).rejects.toThrow(RunbookConnectError);
  });

  it('a direct login to a device without an IP address is refused with the reason', async () => {
    const c = await t.runbookGateway.open(admin, 'Lab/dark:root', { ...context, direct: true });
    try {
      const error = await c.exec('echo hi').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(RunbookConnectError);
      expect((error as Error).message).toContain('dark has no IP address in the inventory, so a new SSH login to its sshd cannot be made');
    } finally {
      c.close();
    }
  });

  it('a stored credential that is not one of the target account is refused', async () => {
    const c = await t.runbookGateway.open(admin, 'Lab/box:root', { ...context, direct: true, credentialId: 'no-such-credential' });
    try {
      await expect(c.exec('echo hi')).rejects.toThrow(/The credential to verify is not one of root on box/);
    } finally {
      c.close();
    }
  });
});
