import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { generateLinkIdentity, ManagementServer, warnGatewaySession, type LinkIdentity } from '@gatehouse/gateway';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

describe.each(dialects)('gateways API on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  let gateway: ManagementServer;
  const identity = generateLinkIdentity('gatehouse-gateway');

  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = (await t.userWithToken('admin')).token;
    const serverKey = (await t.request('GET', '/api/v1/gateways/server-key', { token: admin })).json<{ publicKey: string }>().publicKey;
    gateway = await ManagementServer.start({ identity, serverKey, host: '127.0.0.1', port: 0, version: '9.9.9', logger: quiet });
  });
  afterAll(async () => {
    await gateway.stop();
    await t.close();
  });

  it('keeps one server key, sealed in the database', async () => {
    const first = (await t.request('GET', '/api/v1/gateways/server-key', { token: admin })).json<{
      publicKey: string;
      fingerprint: string;
    }>();
    expect(first.publicKey).toMatch(/^MCowBQYDK2VwAyEA/);
    expect(first.fingerprint).toMatch(/^SHA256:/);
    const stored = await t.services.settings.get('gateway.link_key');
    expect(stored).toMatch(/^gh1\./);
    expect(stored).not.toContain('PRIVATE KEY');
    const again = (await t.request('GET', '/api/v1/gateways/server-key', { token: admin })).json<{ publicKey: string }>();
    expect(again.publicKey).toBe(first.publicKey);
  });

  it('registers a gateway, syncs it at once, and changes and removes it', async () => {
    const created = await t.request('POST', '/api/v1/gateways', {
      token: admin,
      body: { name: 'office1-a', segment: 'gateway-office1', address: `127.0.0.1:${gateway.port}`, publicKey: identity.publicKey },
    });
    expect(created.statusCode, created.body).toBe(201);
    const g = created.json<{ id: string; status: string; version: string; fingerprint: string }>();
    expect(g).toMatchObject({ status: 'online', version: '9.9.9', fingerprint: identity.fingerprint });

    const list = (await t.request('GET', '/api/v1/gateways', { token: admin })).json<{
      items: { name: string; status: string }[];
      tunnelMode: boolean;
    }>();
    expect(list.items.map((i) => i.name)).toEqual(['default', 'office1-a']);
    // The in-process app runs no SSH listener: its built-in gateway is off.
    expect(list.items[0]?.status).toBe('offline');
    expect(list.tunnelMode).toBe(false);

    const moved = await t.request('PATCH', `/api/v1/gateways/${g.id}`, {
      token: admin,
      body: { segment: 'gateway-office2', address: '127.0.0.1:1' },
    });
    expect(moved.statusCode, moved.body).toBe(200);
    expect(moved.json()).toMatchObject({ segment: 'gateway-office2', status: 'unknown' });
    const synced = await t.request('POST', `/api/v1/gateways/${g.id}/sync`, { token: admin });
    expect(synced.json<{ statusReason: string }>().statusReason).toContain('unreachable');

    const other = generateLinkIdentity('x');
    await t.request('PATCH', `/api/v1/gateways/${g.id}`, {
      token: admin,
      body: { address: `127.0.0.1:${gateway.port}`, publicKey: other.publicKey },
    });
    const mismatch = (await t.request('GET', `/api/v1/gateways/${g.id}`, { token: admin })).json<{
      status: string;
      statusReason: string;
    }>();
    expect(mismatch.status).toBe('offline');
    expect(mismatch.statusReason).toContain(`presented key ${identity.fingerprint}`);

    expect((await t.request('DELETE', `/api/v1/gateways/${g.id}`, { token: admin })).statusCode).toBe(204);
    expect((await t.request('GET', `/api/v1/gateways/${g.id}`, { token: admin })).statusCode).toBe(404);
    const actions = (await t.request('GET', '/api/v1/audit/events?limit=50', { token: admin }))
      .json<{ items: { action: string }[] }>()
      .items.map((e) => e.action);
    for (const action of ['gateway.register', 'gateway.update', 'gateway.key_mismatch', 'gateway.delete'])
      expect(actions).toContain(action);
  });

  it("ends and warns a live session of a remote gateway's SSH entry over its management endpoint", async () => {
    const created = await t.request('POST', '/api/v1/gateways', {
      token: admin,
      body: { name: 'entry-gw', segment: null, address: `127.0.0.1:${gateway.port}`, publicKey: identity.publicKey },
    });
    expect(created.statusCode, created.body).toBe(201);
    const asked: { what: string; id: string; text: string }[] = [];
    const live = '7b3c2f0e-1111-4222-8333-944455556666';
    gateway.liveSessions = {
      endSession: async (id, reason) => {
        asked.push({ what: 'end', id, text: reason });
        return id === live;
      },
      warnSession: async (id, text) => {
        asked.push({ what: 'warn', id, text });
        return id === live;
      },
    };
    const gone = '00000000-0000-4000-8000-000000000000';
    try {
      expect(await t.gateways.warnSession({ id: live, entryGateway: 'entry-gw' }, 'Gatehouse: the window ends at 10:00.')).toBe(true);
      expect(await t.gateways.warnSession({ id: gone, entryGateway: 'entry-gw' }, 'x')).toBe(false);
      expect(await t.gateways.endSession({ id: live, entryGateway: 'entry-gw' }, 'admin ended this session.')).toBe(true);
      expect(await t.gateways.endSession({ id: gone, entryGateway: 'entry-gw' }, 'x')).toBe(false);
      // Only the server's key is heard, as for ending.
      const endpoint = { name: 'entry-gw', address: `127.0.0.1:${gateway.port}`, publicKey: identity.publicKey };
      expect(await warnGatewaySession(endpoint, generateLinkIdentity('stranger'), live, 'not from the server', 5000)).toBe(false);
      expect(asked).toEqual([
        { what: 'warn', id: live, text: 'Gatehouse: the window ends at 10:00.' },
        { what: 'warn', id: gone, text: 'x' },
        { what: 'end', id: live, text: 'admin ended this session.' },
        { what: 'end', id: gone, text: 'x' },
      ]);
      if (dialect === 'postgres') {
        // Another replica's built-in gateway may hold it: the end or warning is asked for in its row (there is none: false).
        expect(await t.gateways.endSession({ id: live, entryGateway: 'default' }, 'x')).toBe(false);
        expect(await t.gateways.warnSession({ id: live, entryGateway: 'default' }, 'x')).toBe(false);
      } else {
        await expect(t.gateways.endSession({ id: live, entryGateway: 'default' }, 'x')).rejects.toThrow(/built-in gateway is off/);
        await expect(t.gateways.warnSession({ id: live, entryGateway: 'default' }, 'x')).rejects.toThrow(/built-in gateway is off/);
      }
      for (const ask of [t.gateways.endSession.bind(t.gateways), t.gateways.warnSession.bind(t.gateways)]) {
        await expect(ask({ id: live, entryGateway: 'gone' }, 'x')).rejects.toThrow(/no longer registered/);
      }
    } finally {
      gateway.liveSessions = undefined;
      await t.request('DELETE', `/api/v1/gateways/${created.json<{ id: string }>().id}`, { token: admin });
    }
  });

  it('refuses bad registrations by field, and the built-in gateway cannot be changed or removed', async () => {
    const bad = await t.request('POST', '/api/v1/gateways', {
      token: admin,
      body: { name: 'default', segment: 'office', address: 'host:99999', publicKey: 'AAAA' },
    });
    expect(bad.statusCode).toBe(400);
    const issues = bad.json<{ error: { issues: { path: string }[] } }>().error.issues.map((i) => i.path);
    expect(issues.sort()).toEqual(['address', 'name', 'segment']);
    const key = await t.request('POST', '/api/v1/gateways', { token: admin, body: { name: 'k', address: 'h:1', publicKey: 'AAAA' } });
    expect(key.json<{ error: { issues: { path: string }[] } }>().error.issues.map((i) => i.path)).toEqual(['publicKey']);
    expect((await t.request('DELETE', '/api/v1/gateways/default', { token: admin })).statusCode).toBe(400);
    expect((await t.request('PATCH', '/api/v1/gateways/default', { token: admin, body: { segment: 'gateway-x' } })).statusCode).toBe(400);
  });

  it('turns tunnel mode on and off, audited, for administrators only', async () => {
    const operator = (await t.userWithToken('operator')).token;
    expect((await t.request('PUT', '/api/v1/gateway-settings', { token: operator, body: { tunnelMode: true } })).statusCode).toBe(403);
    expect((await t.request('GET', '/api/v1/gateways', { token: operator })).statusCode).toBe(403);
    const on = await t.request('PUT', '/api/v1/gateway-settings', { token: admin, body: { tunnelMode: true } });
    expect(on.json()).toEqual({ tunnelMode: true, portForwarding: false, requirePostQuantumKex: false });
    expect((await t.request('GET', '/api/v1/gateway-settings', { token: admin })).json()).toEqual({
      tunnelMode: true,
      portForwarding: false,
      requirePostQuantumKex: false,
    });
    expect((await t.request('PUT', '/api/v1/gateway-settings', { token: admin, body: { tunnelMode: 'yes' } })).statusCode).toBe(400);
    await t.request('PUT', '/api/v1/gateway-settings', { token: admin, body: { tunnelMode: false } });
  });
});

describe.each(dialects)('session search on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = (await t.userWithToken('admin')).token;
    const row = (id: string, username: string, deviceName: string, startedAt: string, result: string) => ({
      id,
      user_id: null,
      username,
      project_id: null,
      project_name: 'Ops',
      device_id: null,
      device_name: deviceName,
      account_id: null,
      account_username: 'root',
      gateway: 'default',
      kind: 'shell',
      command: null,
      remote_address: '127.0.0.1',
      started_at: startedAt,
      result,
      reason: null,
      recording: null,
      segment: null,
      entry_gateway: 'default',
    });
    await t.gatewaySessions.start(row('s1', 'Alice', 'db-1', '2026-11-30T10:00:00.000Z', 'success'));
    await t.gatewaySessions.start(row('s2', 'bob', 'DB-2', '2026-12-01T10:00:00.000Z', 'active'));
    await t.gatewaySessions.start(row('s3', 'alice', 'web_1', '2026-12-01T12:00:00.000Z', 'failure'));
  });
  afterAll(() => t.close());

  const ids = async (query: string) =>
    (await t.request('GET', `/api/v1/sessions?${query}`, { token: admin })).json<{ items: { id: string }[] }>().items.map((s) => s.id);

  it('finds sessions by part of the user or device name, by start time and by result', async () => {
    expect(await ids('user=ALI')).toEqual(['s3', 's1']);
    expect(await ids('device=db')).toEqual(['s2', 's1']);
    // A LIKE wildcard in the search is only itself.
    expect(await ids('device=_')).toEqual(['s3']);
    expect(await ids(`from=${encodeURIComponent('2026-12-01T00:00:00+09:00')}`)).toEqual(['s3', 's2']);
    expect(await ids('from=2026-12-01T00:00:00Z&to=2026-12-01T11:00:00Z')).toEqual(['s2']);
    expect(await ids('result=active')).toEqual(['s2']);
    const bad = await t.request('GET', '/api/v1/sessions?from=yesterday', { token: admin });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ error: { issues: { path: string }[] } }>().error.issues[0]?.path).toBe('querystring.from');
  });
});

describe.each(dialects)('what a remote gateway may ask over its link, on %s', (dialect) => {
  let t: TestApp;
  let operator: { id: string; username: string; password: string };
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    t = await createTestApp(dialect);
    operator = await t.userWithToken('operator', 'olga');
    const admin = (await t.userWithToken('admin')).token;
    const project = (await t.request('POST', '/api/v1/projects', { token: admin, body: { name: 'Link' } })).json<{ id: string }>();
    for (const [name, tags] of [
      ['in-seg', ['gateway-a']],
      ['other-seg', ['gateway-b']],
    ] as const) {
      const d = await t.request('POST', '/api/v1/devices', {
        token: admin,
        body: { projectId: project.id, name, provider: 'on-prem', protocols: ['ssh'], privateIp: '127.0.0.1', tags },
      });
      ids[name] = d.json<{ id: string }>().id;
      const a = await t.request('POST', '/api/v1/accounts', {
        token: admin,
        body: { deviceId: ids[name], username: 'root', password: `secret-${name}` },
      });
      ids[`${name}-account`] = a.json<{ id: string }>().id;
    }
    await t.request('POST', '/api/v1/grants', { token: admin, body: { userId: operator.id, projectId: project.id } });
    const key = generateLinkIdentity('g').publicKey;
    ids.gwA = (
      await t.gateways.gateways.create({ name: 'ga', segment: 'gateway-a', address: '127.0.0.1:1', publicKey: key, fingerprint: 'x' })
    ).id;
    ids.gwB = (
      await t.gateways.gateways.create({ name: 'gb', segment: 'gateway-b', address: '127.0.0.1:2', publicKey: key, fingerprint: 'y' })
    ).id;
  });
  afterAll(() => t.close());

  /** One call up a gateway's link, as the server receives it (named arguments, unchecked: the server checks). */
  const call = async (gatewayId: string, procedure: string, input?: unknown) =>
    t.gateways.links.handle(await t.gateways.gateways.get(gatewayId), procedure, input);
  const signIn = async (gatewayId: string) => {
    const r = (await call(gatewayId, 'authenticate', { username: 'olga', password: operator.password, remoteAddress: '127.0.0.9' })) as {
      ok: boolean;
      user: { id: string; username: string; ticket: string };
    };
    expect(r.ok).toBe(true);
    return r.user;
  };

  it('releases a credential only for the device and account the server authorized for that sign-in, in the gateway segment', async () => {
    const user = await signIn(ids.gwA as string);
    const target = { accountId: ids['in-seg-account'], deviceId: ids['in-seg'] };
    // Not authorized yet: nothing.
    await expect(call(ids.gwA as string, 'fetchCredential', { user, target })).rejects.toThrow('did not authorize');
    const decision = (await call(ids.gwA as string, 'authorize', {
      user,
      target: { user: 'olga', device: 'in-seg' },
      remoteAddress: '127.0.0.9',
    })) as {
      allow: boolean;
    };
    expect(decision.allow).toBe(true);
    expect(await call(ids.gwA as string, 'fetchCredential', { user, target })).toMatchObject({
      allow: true,
      credential: { username: 'root', password: 'secret-in-seg' },
    });
    // Another account, a forged user, another gateway's ticket: refused.
    const otherTarget = { accountId: ids['other-seg-account'], deviceId: ids['other-seg'] };
    await expect(call(ids.gwA as string, 'fetchCredential', { user, target: otherTarget })).rejects.toThrow('did not authorize');
    await expect(call(ids.gwA as string, 'fetchCredential', { user: { ...user, ticket: 'forged' }, target })).rejects.toThrow('not known');
    await expect(call(ids.gwB as string, 'fetchCredential', { user, target })).rejects.toThrow('not known');
    await expect(call(ids.gwA as string, 'fetchCredential', { user: { id: user.id, username: user.username }, target })).rejects.toThrow(
      'not known',
    );
  });

  it("refuses a device outside the gateway's segment, and sessions it did not start", async () => {
    const user = await signIn(ids.gwA as string);
    const decision = (await call(ids.gwA as string, 'authorize', {
      user,
      target: { user: 'olga', device: 'other-seg' },
      remoteAddress: '127.0.0.9',
    })) as {
      allow: boolean;
      message: string;
    };
    expect(decision).toEqual({ allow: false, message: expect.stringContaining('other-seg is in segment gateway-b') as unknown });
    await expect(
      call(ids.gwA as string, 'fetchCredential', { user, target: { accountId: ids['other-seg-account'], deviceId: ids['other-seg'] } }),
    ).rejects.toThrow();
    await expect(
      call(ids.gwA as string, 'checkHostKey', {
        target: { accountId: ids['other-seg-account'], deviceId: ids['other-seg'] },
        key: { algorithm: 'ssh-ed25519', fingerprint: 'SHA256:x' },
      }),
    ).rejects.toThrow();
    await expect(
      call(ids.gwA as string, 'sessionEnded', {
        sessionId: '00000000-0000-4000-8000-000000000000',
        end: { endedAt: 'x', bytesIn: 0, bytesOut: 0, result: 'success', exitStatus: 0, reason: null },
      }),
    ).rejects.toThrow('No such session');
    await expect(
      call(ids.gwA as string, 'authenticate', { username: 'olga', password: 'wrong', remoteAddress: 'x' }),
    ).resolves.toMatchObject({ ok: false });
    await expect(call(ids.gwA as string, 'dropTables')).rejects.toThrow('Unknown link call');
    await expect(call(ids.gwA as string, 'authorize', { user: 'not a user' })).rejects.toThrow(
      'The input of link call authorize is malformed: user: ',
    );
  });
});

/**
 * A TCP front for a gateway's management port that can stop answering, as a gateway under
 * SIGSTOP does: the kernel still accepts connections, nothing reads them. It counts the
 * connections that came while it hung: each one is a connection that waited on it.
 */
async function hangingFront(port: number) {
  const front = {
    hung: false,
    waitedOnIt: 0,
    server: net.createServer((client) => {
      client.on('error', () => undefined);
      if (front.hung) {
        front.waitedOnIt++;
        return;
      }
      const upstream = net.connect(port, '127.0.0.1');
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      client.pipe(upstream).pipe(client);
    }),
  };
  await new Promise<void>((resolve) => front.server.listen(0, '127.0.0.1', resolve));
  return Object.assign(front, { port: (front.server.address() as net.AddressInfo).port });
}

describe.each(dialects)('a gateway that stops answering: the circuit breaker, on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  const steadyIdentity = generateLinkIdentity('gatehouse-gateway');
  const hungIdentity = generateLinkIdentity('gatehouse-gateway');
  let steady: ManagementServer;
  let flaky: ManagementServer;
  let front: Awaited<ReturnType<typeof hangingFront>>;
  let device: net.Server;

  beforeAll(async () => {
    // A gateway that does not answer costs a connection min(target timeout, 5 s): 1 s here.
    t = await createTestApp(dialect, { gatewayTargetTimeoutSeconds: 1 });
    admin = (await t.userWithToken('admin')).token;
    const serverKey = (await t.request('GET', '/api/v1/gateways/server-key', { token: admin })).json<{ publicKey: string }>().publicKey;
    const start = (identity: LinkIdentity) =>
      ManagementServer.start({ identity, serverKey, host: '127.0.0.1', port: 0, version: '9.9.9', logger: quiet });
    [steady, flaky] = await Promise.all([start(steadyIdentity), start(hungIdentity)]);
    front = await hangingFront(flaky.port);
    device = net.createServer((s) => s.end());
    await new Promise<void>((resolve) => device.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    front.server.close();
    device.close();
    await Promise.all([steady.stop(), flaky.stop()]);
    await t.close();
  });

  it('skips a gateway from the first connection it fails, in the whole segment at once, and chooses it again after its next good sync', async () => {
    const register = async (name: string, port: number, identity: LinkIdentity) => {
      const res = await t.request('POST', '/api/v1/gateways', {
        token: admin,
        body: { name, segment: 'gateway-breaker', address: `127.0.0.1:${port}`, publicKey: identity.publicKey },
      });
      expect(res.json<{ status: string }>().status).toBe('online');
      return res.json<{ id: string }>().id;
    };
    await register('steady', steady.port, steadyIdentity);
    const flakyId = await register('flaky', front.port, hungIdentity);
    const dial = t.gateways.dialer();
    const target = {
      projectId: 'p',
      projectName: 'Ops',
      deviceId: randomUUID(),
      deviceName: 'seg-box',
      accountId: 'a',
      accountUsername: 'root',
      host: '127.0.0.1',
      port: (device.address() as net.AddressInfo).port,
      segment: 'gateway-breaker',
      accessType: 'ssh',
    };
    const connect = async () => {
      const outcome = await dial(target, { user: { id: 'u', username: 'admin' }, remoteAddress: '127.0.0.1' });
      if (!outcome.ok) throw new Error(outcome.reason);
      outcome.socket.destroy();
      return outcome.gateway;
    };
    const seq = (await t.request('GET', '/api/v1/audit/events?limit=1', { token: admin })).json<{ items: { seq: number }[] }>().items[0]
      ?.seq;

    front.hung = true;
    // Connections come four at a time until one of them chose the hung gateway first (one in two each).
    for (let round = 0; round < 10 && front.waitedOnIt === 0; round++) {
      expect(await Promise.all([connect(), connect(), connect(), connect()])).toEqual(['steady', 'steady', 'steady', 'steady']);
    }
    expect(front.waitedOnIt).toBeGreaterThan(0);
    // From then on, not one new connection tries it: each one's gateway.select event says
    // it failed over from nothing. (Counting connections at the front would also count the
    // status sync the breaker asks for, which may come while these run on a busy machine.)
    const seqBefore = (await t.request('GET', '/api/v1/audit/events?limit=1', { token: admin })).json<{ items: { seq: number }[] }>()
      .items[0]?.seq;
    for (let i = 0; i < 12; i++) expect(await connect()).toBe('steady');
    const selections = (
      await t.request('GET', `/api/v1/audit/events?afterSeq=${seqBefore ?? 0}&action=gateway.select&limit=100`, { token: admin })
    ).json<{ items: { details: { gateway?: string; failedOver?: unknown[] } }[] }>().items;
    expect(selections).toHaveLength(12);
    for (const e of selections) expect(e.details).toMatchObject({ gateway: 'steady', failedOver: [] });

    const shown = (await t.request('GET', `/api/v1/gateways/${flakyId}`, { token: admin })).json<{
      status: string;
      statusReason: string;
    }>();
    expect(shown.status).toBe('offline');
    expect(shown.statusReason).toContain('did not answer within 1 s when a connection to seg-box tried it');
    expect(shown.statusReason).toContain('skip it until a status sync succeeds');
    const events = () =>
      t
        .request('GET', `/api/v1/audit/events?afterSeq=${seq ?? 0}&order=asc&limit=500`, { token: admin })
        .then((r) => r.json<{ items: { action: string; details: Record<string, unknown> }[] }>().items);
    // However many connections found it hung at once, the breaker opened once.
    const opened = (await events()).filter((e) => e.action === 'gateway.offline');
    expect(opened).toHaveLength(1);
    expect(opened[0]?.details).toMatchObject({ gateway: 'flaky', segment: 'gateway-breaker', circuit: 'open', device: 'seg-box' });

    // The first good sync brings it back.
    front.hung = false;
    const goodSync = await t.request('POST', `/api/v1/gateways/${flakyId}/sync`, { token: admin });
    expect(goodSync.json<{ status: string }>().status).toBe('online');
    expect((await events()).filter((e) => e.action === 'gateway.online').map((e) => e.details.gateway)).toEqual(['flaky']);
    const used = new Set<string>();
    for (let i = 0; i < 40 && !used.has('flaky'); i++) used.add(await connect());
    expect(used).toContain('flaky');
  });
});
