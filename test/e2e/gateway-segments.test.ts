import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { RemoteGatewayProcess, stopGateways } from '../support/gateway.js';
import { runClient, sshCommand } from '../support/ssh-client.js';
import { cli, killServers, removeTempDirs, setupAdmin, startServer, tempDir, type GatehouseServer, savedToken } from '../support/server.js';
import { ensureSystemUser, freePort, TEST_USER_PASSWORD, TestSshd } from '../support/sshd.js';

const API = '/api/v1';
const DEVICE_USER = 'gh-test-pw';
const DEVICE_PASSWORD = TEST_USER_PASSWORD;
const ADMIN_PASSWORD = 'segments admin password';
const SEG_A = 'gateway-seg-a';
const SEG_B = 'gateway-seg-b';

interface Gateway {
  id: string;
  name: string;
  segment: string | null;
  status: string;
  statusReason: string | null;
  lastContactAt: string | null;
  latencyMs: number | null;
  version: string | null;
  liveSessions: number;
  builtIn: boolean;
}

interface Session {
  id: string;
  deviceName: string;
  gateway: string;
  segment: string | null;
  entryGateway: string;
  result: string;
  reason: string | null;
  startedAt: string;
  endedAt: string | null;
}

interface AuditEvent {
  seq: number;
  action: string;
  outcome: string;
  targetId: string | null;
  details: Record<string, unknown>;
}

/** `ssh` through the built-in gateway with the Gatehouse password typed by sshpass. */
const ssh = (port: number, user: string, command: string) => sshCommand(port, user, command, ADMIN_PASSWORD);

describe('gateways: segments, status sync, failover and tunnel mode, with real gateway processes', () => {
  let dir: string;
  let server: GatehouseServer;
  let sshd: TestSshd;
  let sshPort: number;
  let token: string;
  let serverKey: string;
  const gateways: Record<string, RemoteGatewayProcess> = {};
  const ids: Record<string, string> = {};

  const api = async <T>(method: string, route: string, body?: unknown): Promise<T> => {
    const res = await server.request(`${API}${route}`, { method, body, headers: { authorization: `Bearer ${token}` } });
    if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${res.body}`);
    return (res.body === '' ? undefined : JSON.parse(res.body)) as T;
  };
  const list = async () => (await api<{ items: Gateway[]; tunnelMode: boolean }>('GET', '/gateways')).items;
  const statusOf = async (name: string) => (await list()).find((g) => g.name === name);
  const waitForStatus = async (name: string, status: string, timeoutMs = 20_000) => {
    const started = Date.now();
    await vi.waitFor(
      async () => {
        const g = await statusOf(name);
        if (g?.status !== status) throw new Error(`${name} is ${g?.status} (${g?.statusReason}) after ${timeoutMs} ms, not ${status}`);
      },
      { timeout: timeoutMs, interval: 100 },
    );
    return Date.now() - started;
  };
  /** What `find` finds, once it finds it (it is asked again every `interval` ms). */
  const found = <T>(what: string, find: () => Promise<T | undefined>, interval = 100) =>
    vi.waitFor(
      async () => {
        const value = await find();
        if (value === undefined) throw new Error(`Not yet: ${what}`);
        return value;
      },
      { timeout: 30_000, interval },
    );
  const recording = (id: string) => server.request(`${API}/sessions/${id}/recording`, { headers: { authorization: `Bearer ${token}` } });
  /** A session's recording, once the server holds it. */
  const recordingOf = (id: string) =>
    found(`the recording of session ${id}`, async () => {
      const cast = await recording(id);
      return cast.status === 200 ? cast : undefined;
    });
  /** The output events of a recording so far (a line still being written is left out). */
  const outputOf = (cast: string) =>
    cast
      .trimEnd()
      .split('\n')
      .slice(1)
      .flatMap((l) => {
        try {
          const event = JSON.parse(l) as [number, string, string];
          return event[1] === 'o' ? [event[2]] : [];
        } catch {
          return [];
        }
      })
      .join('');
  const lastSeq = async () => (await api<{ items: AuditEvent[] }>('GET', '/audit/events?limit=1')).items[0]?.seq ?? 0;
  const auditSince = async (seq: number, action?: string) =>
    (await api<{ items: AuditEvent[] }>('GET', `/audit/events?afterSeq=${seq}&order=asc&limit=1000`)).items.filter(
      (e) => action === undefined || e.action === action,
    );
  const sessionsSince = async (iso: string) =>
    (await api<{ items: Session[] }>('GET', '/sessions?limit=500')).items.filter((s) => s.startedAt >= iso);
  /** `n` exec connections, `parallel` at a time; every one must succeed. */
  const connectMany = async (device: string, n: number, parallel = 4) => {
    const results: { code: number | null; stdout: string; stderr: string }[] = [];
    for (let i = 0; i < n; i += parallel) {
      results.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(parallel, n - i) }, () => ssh(sshPort, `admin:${device}`, 'echo via-gateway')),
        )),
      );
    }
    return results;
  };
  const register = (name: string, segment: string | null, g: RemoteGatewayProcess) =>
    api<Gateway>('POST', '/gateways', { name, segment, address: g.address, publicKey: g.publicKey });

  beforeAll(async () => {
    dir = tempDir('gatehouse-segments-');
    ensureSystemUser(DEVICE_USER, { password: DEVICE_PASSWORD });
    sshd = await TestSshd.start(path.join(dir, 'sshd'));
    sshPort = await freePort();
    server = await startServer({
      dataDir: path.join(dir, 'data'),
      // Input recording on: the remote SSH entry must follow the server's setting.
      env: { GATEHOUSE_GATEWAY_PORT: String(sshPort), GATEHOUSE_GATEWAY_RECORD_INPUT: 'true' },
    });
    const credentials = path.join(dir, 'credentials.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    token = savedToken(credentials);
    serverKey = (await api<{ publicKey: string }>('GET', '/gateways/server-key')).publicKey;

    const started = await Promise.all(
      ['a1', 'a2', 'b1', 'b2'].map((name) => RemoteGatewayProcess.start({ dataDir: path.join(dir, `gw-${name}`), serverKey })),
    );
    for (const [i, name] of ['a1', 'a2', 'b1', 'b2'].entries()) gateways[name] = started[i] as RemoteGatewayProcess;

    const project = await api<{ id: string }>('POST', '/projects', { name: 'Segments' });
    ids.project = project.id;
    const device = async (name: string, tags: string[]) => {
      const d = await api<{ id: string }>('POST', '/devices', {
        projectId: project.id,
        name,
        provider: 'on-prem',
        protocols: ['ssh'],
        privateIp: '127.0.0.1',
        urlPort: String(sshd.port),
        tags,
      });
      await api('POST', '/accounts', { deviceId: d.id, username: DEVICE_USER, password: DEVICE_PASSWORD });
      return d.id;
    };
    ids.a = await device('a-box', [SEG_A]);
    ids.b = await device('b-box', ['web', SEG_B]);
    ids.open = await device('open-box', []);
  });

  afterAll(async () => {
    await stopGateways();
    killServers();
    await sshd?.stop();
    removeTempDirs();
  });

  it('registers gateways by key: they are online at once with version, last contact and latency', async () => {
    const seq = await lastSeq();
    for (const name of ['a1', 'a2']) {
      const created = await register(name, SEG_A, gateways[name] as RemoteGatewayProcess);
      expect(created).toMatchObject({ name, segment: SEG_A, status: 'online', version: '0.1.0', liveSessions: 0 });
      ids[name] = created.id;
    }
    for (const name of ['b1', 'b2']) ids[name] = (await register(name, SEG_B, gateways[name] as RemoteGatewayProcess)).id;
    const all = await list();
    expect(all.map((g) => [g.name, g.status])).toEqual([
      ['default', 'online'],
      ['a1', 'online'],
      ['a2', 'online'],
      ['b1', 'online'],
      ['b2', 'online'],
    ]);
    for (const g of all.filter((x) => !x.builtIn)) {
      expect(g.lastContactAt).not.toBeNull();
      expect(g.latencyMs).toBeGreaterThanOrEqual(0);
    }
    const events = await auditSince(seq, 'gateway.register');
    expect(events.map((e) => e.details.name)).toEqual(['a1', 'a2', 'b1', 'b2']);
    expect(events[0]?.details.fingerprint).toBe(gateways.a1?.fingerprint);

    // The CLI shows the same, as a table.
    const table = await cli(['gateways', 'list', '--url', server.url, '--ca', server.certFile], { env: { GATEHOUSE_TOKEN: token } });
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^a1\s+gateway-seg-a\s+online\s+/m);
    expect(table.stdout).toContain('Tunnel mode: off');
  });

  it('refuses a bad registration by field, and a name already taken', async () => {
    const res = await server.request(`${API}/gateways`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: { name: 'x y', segment: 'office', address: 'nowhere', publicKey: 'not-a-key-SECRETISH' },
    });
    expect(res.status).toBe(400);
    const body = JSON.parse(res.body) as { error: { issues: { path: string }[] } };
    expect(body.error.issues.map((i) => i.path).sort()).toEqual(['address', 'name', 'segment']);
    const key = await server.request(`${API}/gateways`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: { name: 'c1', address: '127.0.0.1:1', publicKey: 'not-a-key-SECRETISH' },
    });
    expect(key.status).toBe(400);
    expect(key.body).toContain('publicKey');
    expect(key.body).not.toContain('SECRETISH');
    const dup = await server.request(`${API}/gateways`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: { name: 'a1', address: '127.0.0.1:1', publicKey: gateways.a1?.publicKey },
    });
    expect(dup.status).toBe(409);
  });

  it('keeps tagged devices inside their segment and spreads untagged ones over every gateway', async () => {
    const since = new Date().toISOString();
    for (const r of await connectMany('a-box', 12)) expect(r.stdout, r.stderr).toBe('via-gateway\n');
    for (const r of await connectMany('b-box', 12)) expect(r.stdout, r.stderr).toBe('via-gateway\n');
    for (const r of await connectMany('open-box', 40)) expect(r.stdout, r.stderr).toBe('via-gateway\n');
    const sessions = await sessionsSince(since);
    const used = (device: string) => new Set(sessions.filter((s) => s.deviceName === device).map((s) => s.gateway));
    expect(used('a-box')).toEqual(new Set(['a1', 'a2']));
    expect(used('b-box')).toEqual(new Set(['b1', 'b2']));
    expect(used('open-box')).toEqual(new Set(['default', 'a1', 'a2', 'b1', 'b2']));
    for (const s of sessions) {
      expect(s.entryGateway).toBe('default');
      expect(s.result).toBe('success');
    }
    expect(sessions.filter((s) => s.deviceName === 'a-box').every((s) => s.segment === SEG_A)).toBe(true);
  });

  it('names each gateway once when none of them reaches the device', async () => {
    const deadPort = await freePort();
    const dead = await api<{ id: string }>('POST', '/devices', {
      projectId: ids.project,
      name: 'dead-a',
      provider: 'on-prem',
      protocols: ['ssh'],
      privateIp: '127.0.0.1',
      urlPort: String(deadPort),
      tags: [SEG_A],
    });
    await api('POST', '/accounts', { deviceId: dead.id, username: DEVICE_USER, password: DEVICE_PASSWORD });
    const run = await ssh(sshPort, 'admin:dead-a', 'true');
    expect(run.code).toBe(255);
    const where = `dead-a (127.0.0.1:${deadPort})`;
    expect(run.stderr).toContain(`No gateway of segment ${SEG_A} could reach ${where}.`);
    for (const name of ['a1', 'a2']) {
      expect(run.stderr).toContain(`${name}: ${where} refused the connection`);
      expect(run.stderr).not.toContain(`${name}: ${name}:`);
    }
  });

  it('fails over when the chosen gateway stops, then marks it offline within 15 s and stops choosing it', async () => {
    let failedOver: AuditEvent | undefined;
    let offlineMs = 0;
    // A connection chooses a1 only by chance (one in two): a few rounds make it certain enough.
    for (let round = 0; round < 3 && !failedOver; round++) {
      if (round > 0) {
        await gateways.a1?.run();
        await waitForStatus('a1', 'online');
      }
      const seq = await lastSeq();
      gateways.a1?.kill();
      const stoppedAt = Date.now();
      const results = await connectMany('a-box', 8, 8);
      for (const r of results) expect(r.stdout, r.stderr).toBe('via-gateway\n');
      const selections = await auditSince(seq, 'gateway.select');
      failedOver = selections.find((e) => (e.details.failedOver as { gateway: string }[]).some((t) => t.gateway === 'a1'));
      expect(selections.every((e) => e.outcome === 'success' && e.details.gateway === 'a2')).toBe(true);
      await waitForStatus('a1', 'offline', 15_000);
      offlineMs = Date.now() - stoppedAt;
    }
    expect(failedOver, 'no connection chose a1 in three rounds').toBeDefined();
    console.log(`a1 stopped → offline in ${offlineMs} ms`);
    expect(offlineMs).toBeLessThan(15_000);
    const a1 = await statusOf('a1');
    expect(a1?.statusReason).toContain('unreachable');

    // Offline: never chosen, not even as a failover candidate.
    const seq = await lastSeq();
    for (const r of await connectMany('a-box', 6)) expect(r.stdout, r.stderr).toBe('via-gateway\n');
    const selections = await auditSince(seq, 'gateway.select');
    expect(selections).toHaveLength(6);
    for (const e of selections) expect(e.details).toMatchObject({ gateway: 'a2', failedOver: [] });
    const offline = await auditSince(0, 'gateway.offline');
    expect(offline.some((e) => e.details.gateway === 'a1')).toBe(true);
  });

  it('refuses with a message naming the segment when every gateway of it is down, and audits it', async () => {
    await gateways.a2?.stop();
    await waitForStatus('a2', 'offline', 15_000);
    const seq = await lastSeq();
    const since = new Date().toISOString();
    const run = await ssh(sshPort, 'admin:a-box', 'echo never');
    expect(run.code).toBe(255);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`No online gateway in segment ${SEG_A} to reach a-box`);
    const [event] = await auditSince(seq, 'gateway.select');
    expect(event).toMatchObject({
      outcome: 'failure',
      targetId: ids.a,
      details: { segment: SEG_A, reason: 'no gateway online in segment' },
    });
    const failed = (await sessionsSince(since)).find((s) => s.deviceName === 'a-box');
    expect(failed).toMatchObject({ result: 'failure', segment: SEG_A });
    expect(failed?.reason).toContain(SEG_A);
    // The other segment is untouched, and nothing outside segment a carried a-box.
    expect((await ssh(sshPort, 'admin:b-box', 'echo still')).stdout).toBe('still\n');
  });

  it('marks a gateway online again once it answers', async () => {
    await gateways.a1?.run();
    const ms = await waitForStatus('a1', 'online', 20_000);
    console.log(`a1 restarted → online in ${ms} ms`);
    expect((await ssh(sshPort, 'admin:a-box', 'echo back')).stdout).toBe('back\n');
    const online = await auditSince(0, 'gateway.online');
    expect(online.some((e) => e.details.gateway === 'a1')).toBe(true);
  });

  it('skips a hung gateway (SIGSTOP) from the first connection that timed out on it, and uses it again after its next good sync', async () => {
    const seq = await lastSeq();
    const triedB1 = (e: AuditEvent) => (e.details.failedOver as { gateway: string }[]).some((t) => t.gateway === 'b1');
    gateways.b1?.pause();
    // Whatever fails here, b1 runs again for the tests after this one.
    onTestFinished(() => gateways.b1?.resume());
    // One connection in two chooses b1 first: it waits for b1 to time out, then b2 carries it.
    let first: AuditEvent | undefined;
    for (let i = 0; i < 16 && !first; i++) {
      const r = await ssh(sshPort, 'admin:b-box', 'echo via-gateway');
      expect(r.stdout, r.stderr).toBe('via-gateway\n');
      first = (await auditSince(seq, 'gateway.select')).find(triedB1);
    }
    expect(first, 'no connection chose b1 in 16').toBeDefined();
    expect(JSON.stringify(first?.details.failedOver)).toContain('did not answer within 5 s');
    // From then on not one new connection waits on b1: its breaker is open.
    const afterFirst = await lastSeq();
    for (const r of await connectMany('b-box', 8, 1)) expect(r.stdout, r.stderr).toBe('via-gateway\n');
    const selections = await auditSince(afterFirst, 'gateway.select');
    expect(selections).toHaveLength(8);
    expect(selections.filter(triedB1).length, 'connections that waited on the hung b1').toBe(0);
    expect(selections.every((e) => e.outcome === 'success' && e.details.gateway === 'b2')).toBe(true);
    const b1 = await statusOf('b1');
    expect(b1?.status).toBe('offline');
    const opened = (await auditSince(seq, 'gateway.offline')).filter((e) => e.details.gateway === 'b1');
    expect(opened).toHaveLength(1);
    expect(opened[0]?.details).toMatchObject({ circuit: 'open', device: 'b-box', segment: SEG_B });

    // Running again: the next good status sync closes the breaker, and b1 is chosen again.
    const resumed = await lastSeq();
    gateways.b1?.resume();
    await waitForStatus('b1', 'online', 40_000);
    expect((await auditSince(resumed, 'gateway.online')).map((e) => e.details.gateway)).toEqual(['b1']);
    const since = new Date().toISOString();
    for (let i = 0; i < 24; i++) {
      expect((await ssh(sshPort, 'admin:b-box', 'echo back')).stdout).toBe('back\n');
      if ((await sessionsSince(since)).some((s) => s.gateway === 'b1')) break;
    }
    expect(
      (await sessionsSince(since)).some((s) => s.gateway === 'b1'),
      'b1 was not chosen again in 24 connections',
    ).toBe(true);
  });

  it('refuses and audits a gateway whose key is not the registered one, and names a gateway that does not trust the server', async () => {
    const impostor = await RemoteGatewayProcess.start({ dataDir: path.join(dir, 'gw-impostor'), serverKey });
    const seq = await lastSeq();
    // Registered with b1's key, but another gateway (another key) answers at the address.
    const wrong = await api<Gateway>('POST', '/gateways', {
      name: 'wrong-key',
      segment: SEG_B,
      address: impostor.address,
      publicKey: gateways.b1?.publicKey,
    });
    expect(wrong.status).toBe('offline');
    expect(wrong.statusReason).toContain(`presented key ${impostor.fingerprint}`);
    const [mismatch] = await auditSince(seq, 'gateway.key_mismatch');
    expect(mismatch).toMatchObject({ outcome: 'denied', details: { gateway: 'wrong-key', presented: impostor.fingerprint } });
    // Never chosen: b-box goes through b1 and b2 only.
    // Each connection picks b1 or b2 at random: connect until both served one (6 gave one
    // gateway only about once in 32 runs), at most 36 connections.
    const since = new Date().toISOString();
    const used = async () => new Set((await sessionsSince(since)).map((s) => s.gateway));
    for (let round = 0; round < 6 && (round === 0 || (await used()).size < 2); round++) await connectMany('b-box', 6);
    expect(await used()).toEqual(new Set(['b1', 'b2']));
    await api('DELETE', `/gateways/${wrong.id}`);
    await impostor.stop();

    // A gateway started with another server's key answers nothing but "not trusted".
    const distrustful = await RemoteGatewayProcess.start({
      dataDir: path.join(dir, 'gw-distrustful'),
      serverKey: gateways.a1?.publicKey ?? '',
    });
    const registered = await api<Gateway>('POST', '/gateways', {
      name: 'distrustful',
      address: distrustful.address,
      publicKey: distrustful.publicKey,
    });
    expect(registered.status).toBe('offline');
    expect(registered.statusReason).toContain("does not trust this server's key");
    // The gateway logs its refusal after answering the server: wait for the line.
    await vi.waitFor(() => expect(distrustful.stdout).toContain('not the Gatehouse server this gateway trusts'), {
      timeout: 10_000,
      interval: 50,
    });
    await api('DELETE', `/gateways/${registered.id}`);
    await distrustful.stop();
  });

  it('closes the recording and audits the end when the gateway carrying a session is killed mid-session', async () => {
    const c1 = await RemoteGatewayProcess.start({ dataDir: path.join(dir, 'gw-c1'), serverKey });
    await register('c1', 'gateway-seg-c', c1);
    const project = (await api<{ items: { id: string; name: string }[] }>('GET', '/projects')).items.find((p) => p.name === 'Segments');
    const device = await api<{ id: string }>('POST', '/devices', {
      projectId: project?.id,
      name: 'c-box',
      provider: 'on-prem',
      protocols: ['ssh'],
      privateIp: '127.0.0.1',
      urlPort: String(sshd.port),
      tags: ['gateway-seg-c'],
    });
    await api('POST', '/accounts', { deviceId: device.id, username: DEVICE_USER, password: DEVICE_PASSWORD });
    const running = ssh(sshPort, 'admin:c-box', 'echo through-c1; sleep 60');
    const active = await found('an active session to c-box', async () =>
      (await sessionsSince('')).find((s) => s.deviceName === 'c-box' && s.result === 'active'),
    );
    expect(active).toMatchObject({ gateway: 'c1', segment: 'gateway-seg-c' });
    await expect.poll(async () => outputOf((await recording(active.id)).body), { timeout: 30_000, interval: 100 }).toContain('through-c1');
    const seq = await lastSeq();
    c1.kill();
    const run = await running;
    expect(run.stdout).toContain('through-c1');
    expect(run.stderr).toContain('The connection to c-box closed.');
    expect(run.code).not.toBe(0);
    const ended = await found(
      'the end of the session to c-box',
      async () => (await sessionsSince('')).find((s) => s.id === active.id && s.endedAt),
      50,
    );
    expect(ended).toMatchObject({ result: 'failure', reason: 'The connection to c-box closed.' });
    const cast = await recording(active.id);
    const [header, ...events] = cast.body
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    expect(header).toMatchObject({ version: 2, command: 'echo through-c1; sleep 60' });
    expect(events.map((e) => (e as [number, string, string])[2]).join('')).toContain('through-c1');
    const end = (await auditSince(seq, 'session.end')).find((e) => e.details.sessionId === active.id);
    expect(end).toMatchObject({ outcome: 'failure', details: { gateway: 'c1', segment: 'gateway-seg-c' } });
    await waitForStatus('c1', 'offline', 15_000);
  });

  it("serves users on its own SSH port for its segment's devices, and hands the recording to the server", async () => {
    const entryPort = await freePort();
    const e1 = await RemoteGatewayProcess.start({ dataDir: path.join(dir, 'gw-e1'), serverKey, sshPort: entryPort });
    expect(e1.stdout).toContain(`SSH entry:   port ${entryPort}`);
    await register('e1', 'gateway-seg-e', e1);
    const project = (await api<{ items: { id: string; name: string }[] }>('GET', '/projects')).items.find((p) => p.name === 'Segments');
    const device = await api<{ id: string }>('POST', '/devices', {
      projectId: project?.id,
      name: 'e-box',
      provider: 'on-prem',
      protocols: ['ssh'],
      privateIp: '127.0.0.1',
      urlPort: String(sshd.port),
      tags: ['gateway-seg-e'],
    });
    await api('POST', '/accounts', { deviceId: device.id, username: DEVICE_USER, password: DEVICE_PASSWORD });
    const seq = await lastSeq();
    // The link comes up just after the first sync.
    const run = await vi.waitFor(
      async () => {
        const attempt = await ssh(entryPort, 'admin:e-box', 'echo via-entry-$((3*3))');
        expect(attempt.stdout, attempt.stderr).not.toBe('');
        return attempt;
      },
      { timeout: 30_000, interval: 250 },
    );
    expect(run.stdout, run.stderr).toBe('via-entry-9\n');
    expect(run.code).toBe(0);
    const session = await found(
      'the end of the session to e-box',
      async () => (await sessionsSince('')).find((s) => s.deviceName === 'e-box' && s.result !== 'failure' && s.endedAt),
      50,
    );
    expect(session).toMatchObject({ gateway: 'e1', entryGateway: 'e1', segment: 'gateway-seg-e', result: 'success' });
    // The recording moves from the gateway to the server.
    const cast = await recordingOf(session.id);
    const [header, ...events] = cast.body
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    expect(header).toMatchObject({ version: 2, command: 'echo via-entry-$((3*3))' });
    expect(events.map((e) => (e as [number, string, string])[2]).join('')).toContain('via-entry-9');
    // What the user typed is recorded too, as the server's setting asks.
    const typed = await runClient('ssh', ['-p', String(entryPort), 'admin:e-box@127.0.0.1', 'read line; echo "got $line"'], {
      password: ADMIN_PASSWORD,
      stdin: 'typed-at-the-entry\n',
    });
    expect(typed.stdout.toString(), typed.stderr).toBe('got typed-at-the-entry\n');
    const typedSession = await found(
      'the end of the typed session to e-box',
      async () =>
        (await sessionsSince('')).find((s) => s.deviceName === 'e-box' && s.id !== session.id && s.result === 'success' && s.endedAt),
      50,
    );
    const typedCast = await recordingOf(typedSession.id);
    const inputs = typedCast.body
      .trimEnd()
      .split('\n')
      .slice(1)
      .map((l) => JSON.parse(l) as [number, string, string])
      .filter((e) => e[1] === 'i');
    expect(inputs.map((e) => e[2]).join('')).toContain('typed-at-the-entry');
    const left = readdirSync(path.join(dir, 'gw-e1', 'recordings'), { recursive: true, encoding: 'utf8' }).filter((f) =>
      f.endsWith('.cast'),
    );
    expect(left).toEqual([]);
    const auth = (await auditSince(seq, 'gateway.auth')).find((e) => e.outcome === 'success');
    expect(auth?.details).toMatchObject({ gateway: 'e1' });

    // Not a device of its segment, nor anything in tunnel mode: refused with where to go instead.
    const outside = await ssh(entryPort, 'admin:a-box', 'echo never');
    expect(outside.code).toBe(255);
    expect(outside.stderr).toContain('a-box is in segment gateway-seg-a; this gateway (e1) serves gateway-seg-e');
    await api('PUT', '/gateway-settings', { tunnelMode: true });
    const tunnelled = await ssh(entryPort, 'admin:e-box', 'echo never');
    expect(tunnelled.stderr).toContain('reached only through the default gateway');
    await api('PUT', '/gateway-settings', { tunnelMode: false });
    const denied = await auditSince(seq, 'gateway.authorize');
    expect(denied.some((e) => e.outcome === 'denied' && e.details.reason === 'outside the gateway segment')).toBe(true);
    await e1.stop();
  });

  it('sends every connection through the default gateway in tunnel mode', async () => {
    const seq = await lastSeq();
    await api('PUT', '/gateway-settings', { tunnelMode: true });
    const since = new Date().toISOString();
    for (const r of await connectMany('b-box', 4)) expect(r.stdout, r.stderr).toBe('via-gateway\n');
    for (const r of await connectMany('open-box', 4)) expect(r.stdout, r.stderr).toBe('via-gateway\n');
    expect(new Set((await sessionsSince(since)).map((s) => s.gateway))).toEqual(new Set(['default']));
    const [setting] = await auditSince(seq, 'gateway.settings');
    expect(setting?.details).toEqual({
      fields: ['tunnelMode'],
      changes: { tunnelMode: { before: false, after: true } },
      via: 'token',
      tokenId: expect.any(String) as unknown,
    });
    expect((await list()).length).toBeGreaterThan(1);
    await api('PUT', '/gateway-settings', { tunnelMode: false });
  });

  it('tells the operator of `gatehouse gateway` what is missing, by name', async () => {
    const missing = await cli(['gateway', '--data-dir', path.join(dir, 'gw-x'), '--management-port', '0']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('serverKey --server-key (GATEHOUSE_SERVER_KEY): is required');
    const bad = await cli(['gateway', '--data-dir', path.join(dir, 'gw-x'), '--server-key', 'garbage-VALUE', '--management-port', 'x']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('serverKey --server-key');
    expect(bad.stderr).toContain('managementPort --management-port');
    expect(bad.stderr).not.toContain('garbage-VALUE');
  });
});
