import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { desktopPortOf } from '@gatehouse/core';
import { DESKTOP_TOKEN_ALPHABET, listAuditEvents } from '@gatehouse/db';
import { vncAuthResponse, type VncTokenRedemption } from '@gatehouse/gateway';
import { ServerDesktopBroker } from '@gatehouse/server';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { API, errorOf } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { runCliInProcess } from '../support/cli-in-process.js';
import { dialects } from '../support/db.js';

interface IssuedToken {
  id: string;
  token: string;
  expiresAt: string;
  address: string;
  deviceId: string;
  deviceName: string;
  accountId: string;
  accountUsername: string;
}

describe.each(dialects)('VNC tokens on %s', (dialect) => {
  let t: TestApp;
  let broker: ServerDesktopBroker;
  let admin: { id: string; username: string; token: string };
  let projectId: string;
  /** A VNC device at 10.0.0.5, VNC on 5901, with one account. */
  let desk: { deviceId: string; accountId: string };
  const issued: string[] = [];
  let address = 0;
  /** Redemptions from their own address each, so the per-address throttle stays out of tests that are not about it. */
  const nextAddress = () => `192.0.2.${++address}`;

  const ok201 = (res: { statusCode: number; body: string; json<T>(): T }) => {
    expect(res.statusCode, res.body).toBe(201);
    return res.json<{ id: string }>().id;
  };
  const newDevice = async (name: string, body: Record<string, unknown> = {}, accounts = ['vncuser']) => {
    const { maintenanceRequired, ...fields } = body;
    const deviceId = ok201(
      await t.request('POST', `${API}/devices`, {
        token: admin.token,
        body: {
          projectId,
          name,
          provider: 'on-prem',
          protocols: ['ssh', 'vnc'],
          privateIp: '10.0.0.5',
          urlPort: 'vnc://desk:5901',
          ...fields,
        },
      }),
    );
    if (maintenanceRequired !== undefined)
      expect(
        (await t.request('PATCH', `${API}/devices/${deviceId}`, { token: admin.token, body: { maintenanceRequired } })).statusCode,
      ).toBe(200);
    const accountIds: string[] = [];
    for (const username of accounts)
      accountIds.push(
        ok201(
          await t.request('POST', `${API}/accounts`, { token: admin.token, body: { deviceId, username, password: `vault-${username}` } }),
        ),
      );
    return { deviceId, accountId: accountIds[0] as string, accountIds };
  };
  const requestToken = (deviceId: string, token: string, body?: Record<string, unknown>) =>
    t.request('POST', `${API}/devices/${deviceId}/vnc-token`, { token, ...(body ? { body } : {}) });
  /** Issues as `token`, else as a new administrator: the route's rate limit is per user. */
  const issue = async (
    deviceId: string,
    token?: string,
    body?: Record<string, unknown>,
  ): Promise<IssuedToken & { user: { id: string; username: string } }> => {
    const user = token === undefined ? await t.userWithToken('admin') : admin;
    token ??= user.token;
    const res = await requestToken(deviceId, token, body);
    expect(res.statusCode, res.body).toBe(201);
    const answer = res.json<IssuedToken>();
    issued.push(answer.token);
    return { ...answer, user: { id: user.id, username: user.username } };
  };
  const redeem = (token: string, from = nextAddress(), challenge = randomBytes(16)): Promise<VncTokenRedemption> =>
    broker.redeemVncToken({ challenge, response: vncAuthResponse(challenge, token) }, from);
  /** Audit events, oldest first; of one action when given. */
  const auditLog = (action?: string) => listAuditEvents(t.database.db, { action, order: 'asc', limit: 100_000 });
  const redemptions = async (tokenId?: string) =>
    (await auditLog('desktop.token_redeemed'))
      .filter((e) => tokenId === undefined || e.details['desktopTokenId'] === tokenId)
      .map((e) => ({ outcome: e.outcome, actor: e.actorName, ip: e.ip, reason: e.details['reason'] ?? null }));

  beforeAll(async () => {
    t = await createTestApp(dialect);
    t.gateways.vncAddress = '127.0.0.1:7995';
    broker = new ServerDesktopBroker(t.services, t.gatewaySessions, () => t.gateways.settings());
    admin = await t.userWithToken('admin');
    projectId = ok201(await t.request('POST', `${API}/projects`, { token: admin.token, body: { name: 'Studio' } }));
    desk = await newDevice('desk');
  });
  afterAll(async () => {
    // No token, in any form we know, reached the audit log.
    const log = JSON.stringify(await auditLog());
    for (const token of issued) expect(log).not.toContain(token);
    await t?.close();
  });

  it('issues an 8-character one-time password for the device, stored sealed, audited without it', async () => {
    const before = Date.now();
    const answer = await issue(desk.deviceId);
    expect(answer).toMatchObject({
      address: '127.0.0.1:7995',
      deviceId: desk.deviceId,
      deviceName: 'desk',
      accountId: desk.accountId,
      accountUsername: 'vncuser',
    });
    expect(answer.token).toHaveLength(8);
    for (const c of answer.token) expect(DESKTOP_TOKEN_ALPHABET).toContain(c);
    expect(Date.parse(answer.expiresAt) - before).toBeGreaterThan(4 * 60_000);
    expect(Date.parse(answer.expiresAt) - before).toBeLessThanOrEqual(5 * 60_000 + 5000);
    const row = await t.database.db.kysely.selectFrom('desktop_tokens').selectAll().where('id', '=', answer.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ protocol: 'vnc', user_id: answer.user.id, used_at: null });
    expect(row.token_sealed).not.toContain(answer.token);
    const events = (await auditLog('desktop.token_issued')).filter((e) => e.details['desktopTokenId'] === answer.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ outcome: 'success', actorName: answer.user.username, targetId: desk.deviceId });
    expect(JSON.stringify(events)).not.toContain(answer.token);
    // Two tokens are never the same.
    expect((await issue(desk.deviceId)).token).not.toBe(answer.token);
  });

  it('answers 404 to an operator without a grant for the device, as the API does, and issues with one', async () => {
    const operator = await t.userWithToken('operator');
    const res = await requestToken(desk.deviceId, operator.token);
    expect(res.statusCode).toBe(404);
    expect(errorOf(res).code).toBe('NOT_FOUND');
    // An auditor never connects.
    expect((await requestToken(desk.deviceId, (await t.userWithToken('auditor')).token)).statusCode).toBe(403);
    ok201(
      await t.request('POST', `${API}/grants`, { token: admin.token, body: { userId: operator.id, projectId, deviceId: desk.deviceId } }),
    );
    expect((await issue(desk.deviceId, operator.token)).accountUsername).toBe('vncuser');
  });

  it('refuses a device that does not list VNC among its protocols (409)', async () => {
    const ssh = await newDevice('ssh-only', { protocols: ['ssh'], urlPort: '22' });
    const res = await requestToken(ssh.deviceId, (await t.userWithToken('admin')).token);
    expect(res.statusCode).toBe(409);
    expect(errorOf(res).message).toBe(
      "ssh-only does not list VNC among its protocols. An administrator can add vnc to the device's protocols.",
    );
  });

  it('takes 1 to 10 minutes, naming the field otherwise, and an account when the device has several', async () => {
    const { token } = await t.userWithToken('admin');
    for (const minutes of [0, 11, 2.5]) {
      const res = await requestToken(desk.deviceId, token, { minutes });
      expect(res.statusCode).toBe(400);
      expect(errorOf(res).issues?.map((i) => i.path)).toEqual(['minutes']);
    }
    const answer = await issue(desk.deviceId, token, { minutes: 1 });
    expect(Date.parse(answer.expiresAt) - Date.now()).toBeLessThanOrEqual(60_000);
    const twin = await newDevice('twin', {}, ['alice', 'bob']);
    const res = await requestToken(twin.deviceId, token);
    expect(res.statusCode).toBe(400);
    expect(errorOf(res).issues).toEqual([
      { path: 'accountId', message: 'twin has several accounts you may use: choose one (alice, bob).' },
    ]);
    expect((await issue(twin.deviceId, token, { accountId: twin.accountIds[1] })).accountUsername).toBe('bob');
    // Another device's account names nothing here.
    expect((await requestToken(twin.deviceId, token, { accountId: desk.accountId })).statusCode).toBe(404);
  });

  it("answers 409 naming GATEHOUSE_VNC_PORT while the gateway's VNC listener is off", async () => {
    t.gateways.vncAddress = null;
    try {
      const res = await requestToken(desk.deviceId, (await t.userWithToken('admin')).token);
      expect(res.statusCode).toBe(409);
      expect(errorOf(res).message).toContain("The built-in gateway's VNC listener is off (GATEHOUSE_VNC_PORT=0");
    } finally {
      t.gateways.vncAddress = '127.0.0.1:7995';
    }
  });

  it('limits each user to 10 tokens a minute; other users are not held up', async () => {
    const busy = await t.userWithToken('admin');
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      const res = await requestToken(desk.deviceId, busy.token);
      if (res.statusCode === 201) issued.push(res.json<IssuedToken>().token);
      statuses.push(res.statusCode);
    }
    expect(statuses).toEqual([...Array<number>(10).fill(201), 429]);
    await issue(desk.deviceId);
  });

  it('redeems the right answer once, naming the user, device and account; a second time is refused', async () => {
    const { id, token, user } = await issue(desk.deviceId);
    const from = nextAddress();
    expect(await redeem(token, from)).toEqual({
      ok: true,
      user,
      tokenId: id,
      deviceId: desk.deviceId,
      accountId: desk.accountId,
    });
    const row = await t.database.db.kysely.selectFrom('desktop_tokens').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(row.used_from).toBe(from);
    const again = await redeem(token);
    expect(again).toEqual({ ok: false, message: expect.stringContaining('was used already: each is good once') as string });
    expect(await redemptions(id)).toEqual([
      { outcome: 'success', actor: user.username, ip: from, reason: null },
      { outcome: 'failure', actor: user.username, ip: expect.any(String) as string, reason: 'already used' },
    ]);
  });

  it('lets exactly one of 10 redemptions of one token at once through', async () => {
    const { id, token } = await issue(desk.deviceId);
    const results = await Promise.all(Array.from({ length: 10 }, () => redeem(token)));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.filter((r) => !r.ok)).toHaveLength(9);
    const audited = await redemptions(id);
    expect(audited.filter((e) => e.outcome === 'success')).toHaveLength(1);
    expect(audited.filter((e) => e.reason === 'already used')).toHaveLength(9);
  });

  it('refuses an expired token, saying so', async () => {
    const { id, token, user } = await issue(desk.deviceId);
    const past = new Date(Date.now() - 60_000).toISOString();
    await t.database.db.kysely.updateTable('desktop_tokens').set({ expires_at: past }).where('id', '=', id).execute();
    expect(await redeem(token)).toEqual({ ok: false, message: expect.stringContaining(`expired at ${past.slice(11, 16)} UTC`) as string });
    expect(await redemptions(id)).toEqual([
      { outcome: 'failure', actor: user.username, ip: expect.any(String) as string, reason: 'expired' },
    ]);
  });

  it('refuses a wrong answer and audits it; the token stays good', async () => {
    const { token } = await issue(desk.deviceId);
    const from = nextAddress();
    const wrong = await redeem(`${token.slice(0, 7)}${token[7] === 'a' ? 'b' : 'a'}`, from);
    expect(wrong).toEqual({ ok: false, message: expect.stringContaining('The one-time password is wrong, used or expired') as string });
    expect((await redemptions()).filter((e) => e.ip === from)).toEqual([
      { outcome: 'failure', actor: 'anonymous', ip: from, reason: 'no live token matches' },
    ]);
    expect((await redeem(token)).ok).toBe(true);
  });

  it('refuses a token of a user disabled since it was issued', async () => {
    const later = await t.userWithToken('admin');
    const { id, token } = await issue(desk.deviceId, later.token);
    await t.services.db.kysely.updateTable('users').set({ disabled: 1 }).where('id', '=', later.id).execute();
    expect(await redeem(token)).toEqual({ ok: false, message: 'Your Gatehouse user is disabled or gone. Ask an administrator.' });
    expect(await redemptions(id)).toEqual([
      { outcome: 'failure', actor: later.username, ip: expect.any(String) as string, reason: 'disabled' },
    ]);
  });

  it('throttles an address after repeated wrong answers, also for a right one, and says until when', async () => {
    const from = nextAddress();
    const threshold = t.services.config.lockoutThreshold;
    for (let i = 0; i < threshold; i++) expect((await redeem('nothing1', from)).ok).toBe(false);
    const { token } = await issue(desk.deviceId);
    expect(await redeem(token, from)).toEqual({
      ok: false,
      message: expect.stringMatching(/^Too many wrong VNC passwords from your address: wait until \d\d:\d\d UTC/) as string,
    });
    expect((await redeem(token)).ok).toBe(true);
  });

  describe('authorizeDesktop', () => {
    const authorize = (user: { id: string; username: string }, deviceId: string, accountId: string | null = null) =>
      broker.authorizeDesktop(user, { deviceId, accountId, protocol: 'vnc' }, '192.0.2.200');

    it("decides as for SSH, at the device's address and VNC port, never through its host agent", async () => {
      const device = await t.services.inventory.devices.get(desk.deviceId);
      // An enrolled agent carries SSH only: the desktop is still reached at its address.
      await t.services.agents.enroll({
        id: 'agent-desk',
        deviceId: desk.deviceId,
        publicKey: 'unused',
        fingerprint: 'unused',
        version: '0.1.0',
        hostname: 'desk',
      });
      const decision = await authorize(admin, desk.deviceId);
      expect(decision).toEqual({
        allow: true,
        target: expect.objectContaining({
          deviceId: desk.deviceId,
          deviceName: 'desk',
          accountId: desk.accountId,
          accountUsername: 'vncuser',
          host: '10.0.0.5',
          port: desktopPortOf(device, 'vnc'),
          agentId: null,
          protocol: 'vnc',
          windowId: null,
        }) as unknown,
      });
      expect(desktopPortOf(device, 'vnc')).toBe(5901);
      if (!decision.allow) return;
      expect(await broker.fetchCredential(admin, decision.target)).toEqual({
        allow: true,
        credential: { username: 'vncuser', password: 'vault-vncuser', privateKey: undefined, passphrase: undefined },
      });
      const plain = await newDevice('plain', { urlPort: null, protocols: ['vnc', 'rdp'] });
      const target = await authorize(admin, plain.deviceId);
      expect(target.allow && target.target.port).toBe(5900);
    });

    it('refuses an operator without a grant as an unknown device, and one with a grant is let in', async () => {
      const operator = await t.userWithToken('operator');
      const refused = await authorize(operator, desk.deviceId);
      expect(refused).toEqual({
        allow: false,
        message: expect.stringContaining(`There is no device "${desk.deviceId}" you may use`) as string,
      });
      ok201(
        await t.request('POST', `${API}/grants`, {
          token: admin.token,
          body: { userId: operator.id, projectId, deviceId: desk.deviceId, accountId: desk.accountId },
        }),
      );
      expect((await authorize(operator, desk.deviceId)).allow).toBe(true);
      const denials = (await auditLog('gateway.authorize')).filter((e) => e.actorId === operator.id);
      expect(denials.map((e) => e.details)).toEqual([
        { gateway: 'default', deviceId: desk.deviceId, accountId: null, protocol: 'vnc', reason: 'no grant for the device' },
      ]);
    });

    it('refuses a device that needs a maintenance window while none is open, saying how to ask for one', async () => {
      const strict = await newDevice('strict', { maintenanceRequired: true });
      const decision = await authorize(admin, strict.deviceId);
      expect(decision).toEqual({
        allow: false,
        message:
          'strict needs an approved maintenance window, and none is open for you now. Request one: ' +
          './gatehouse requests create --device Studio/strict --duration <minutes> --reason "…" (or Requests in the console).',
      });
    });

    it('refuses a device without VNC, and an account of another device', async () => {
      const ssh = await t.services.inventory.devices.findNamed('ssh-only');
      expect(await authorize(admin, (ssh[0] as { id: string }).id)).toEqual({
        allow: false,
        message: expect.stringContaining('does not list VNC among its protocols') as string,
      });
      const twin = await t.services.inventory.devices.findNamed('twin');
      expect((await authorize(admin, (twin[0] as { id: string }).id, desk.accountId)).allow).toBe(false);
    });
  });
});

/** `gatehouse vnc` against the in-process server over TLS. */
describe.each(dialects)('gatehouse vnc on %s', (dialect) => {
  let t: TestApp;
  let server: string;
  let ca: string;

  beforeAll(async () => {
    t = await createTestApp(dialect, {}, { tls: true });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    server = `https://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
    ca = path.join(t.database.dataDir, 'tls', 'server.crt');
    t.gateways.vncAddress = '127.0.0.1:7995';
    const admin = await t.userWithToken('admin');
    const projectId = (await t.request('POST', `${API}/projects`, { token: admin.token, body: { name: 'Studio' } })).json<{ id: string }>()
      .id;
    const deviceId = (
      await t.request('POST', `${API}/devices`, {
        token: admin.token,
        body: { projectId, name: 'desk', provider: 'on-prem', protocols: ['vnc'], privateIp: '10.0.0.5' },
      })
    ).json<{ id: string }>().id;
    for (const username of ['alice', 'bob'])
      await t.request('POST', `${API}/accounts`, { token: admin.token, body: { deviceId, username, password: 'pw' } });
    vi.stubEnv('GATEHOUSE_CREDENTIALS', path.join(t.database.dataDir, 'none.json'));
    vi.stubEnv('GATEHOUSE_TOKEN', admin.token);
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await t?.close();
  });

  const gatehouse = (...args: string[]) => runCliInProcess([...args, '--url', server, '--ca', ca]);

  it('prints where to connect and the one-time password, for the account named', async () => {
    const printed = await gatehouse('vnc', 'desk', '--account', 'bob', '--minutes', '2');
    expect(printed.code, printed.err).toBe(0);
    const match =
      /^Connect a VNC viewer to 127\.0\.0\.1:7995 and type the one-time password (\S{8}) \(good once, until \d\d:\d\d UTC\)\.\n$/.exec(
        printed.out,
      );
    expect(match).not.toBeNull();
    const row = await t.database.db.kysely.selectFrom('desktop_tokens').selectAll().orderBy('created_at', 'desc').executeTakeFirstOrThrow();
    const bob = await t.services.inventory.accounts.list(row.device_id);
    expect(row.account_id).toBe(bob.find((a) => a.username === 'bob')?.id);
  });

  it('asks for an account when the device has several, and says how to get a viewer when none is installed', async () => {
    const several = await gatehouse('vnc', 'Studio/desk');
    expect(several.code).toBe(1);
    expect(several.err).toContain('desk has several accounts you may use: choose one (alice, bob).');
    const pathBefore = process.env['PATH'] ?? '';
    vi.stubEnv('PATH', '/nonexistent');
    try {
      const viewer = await gatehouse('vnc', 'desk', '--account', 'alice', '--viewer');
      expect(viewer.code, viewer.err).toBe(0);
      expect(viewer.err).toContain('No VNC viewer found on PATH (xtigervncviewer, vncviewer). Install one');
      expect(viewer.out).toMatch(/^Connect a VNC viewer to 127\.0\.0\.1:7995 and type the one-time password \S{8} /);
    } finally {
      vi.stubEnv('PATH', pathBefore);
    }
  });
});
