import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEventView } from '../support/api-helpers.js';
import { runClient } from '../support/ssh-client.js';
import { ensureSystemUser, freePort, TEST_USER_PASSWORD, TestSshd } from '../support/sshd.js';
import { killServers, removeTempDirs, setupAdmin, startServer, tempDir, type GatehouseServer, savedToken } from '../support/server.js';

const API = '/api/v1';
const DEVICE_USER = 'gh-test-pw';
const ADMIN_PASSWORD = 'maintenance admin password';
const PASSWORD = 'maintenance operator password';

interface Window {
  id: string;
  state: string;
  phase: string;
  close: { state: string | null; attempts: number; nextAt: string | null };
  hooks: { phase: string; attempt: number; ok: boolean; output: string; error: string | null }[];
}
interface Session {
  id: string;
  username: string;
  kind: string | null;
  result: string;
  reason: string | null;
}
interface HookCall {
  phase: string;
  attempt: number;
  env: { phase?: string; windowId?: string; keys: string[] };
  payload: {
    phase: string;
    reason?: string;
    window: { id: string; project: { name: string }; devices: { name: string }[]; users: string[]; reason: string; approvedBy: string[] };
  };
}

/**
 * Maintenance windows end to end: the built `gatehouse server` (maintenance tick 200 ms,
 * hooks configured) between real OpenSSH clients and an OpenSSH sshd. Windows last a
 * minute (the shortest a request takes), so the default warning (5 minutes) comes at once.
 */
describe('maintenance windows through the built-in gateway', () => {
  let dir: string;
  let server: GatehouseServer;
  let sshd: TestSshd;
  let gatewayPort: number;
  let token: string;
  let hookLog: string;
  const ids: Record<string, string> = {};
  /** An id the set-up stored (a missing one is a broken test, said plainly). */
  const idOf = (name: string): string => {
    const id = ids[name];
    if (id === undefined) throw new Error(`the set-up stored no id for ${name}`);
    return id;
  };
  const env = () => ({
    GATEHOUSE_GATEWAY_PORT: String(gatewayPort),
    GATEHOUSE_MAINTENANCE_TICK_MS: '200',
    GATEHOUSE_MAINTENANCE_CLOSE_RETRY_BASE_MS: '200',
    GATEHOUSE_MAINTENANCE_OPEN_HOOK: path.join(dir, 'hook.cjs'),
    GATEHOUSE_MAINTENANCE_CLOSE_HOOK: path.join(dir, 'hook.cjs'),
  });

  const call = async (method: string, route: string, body?: unknown, as = token) => {
    const res = await server.request(`${API}${route}`, { method, body, headers: { authorization: `Bearer ${as}` } });
    return { status: res.status, json: <T>() => JSON.parse(res.body) as T, body: res.body };
  };
  const api = async <T>(method: string, route: string, body?: unknown, as = token): Promise<T> => {
    const res = await call(method, route, body, as);
    if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${res.body}`);
    return (res.body === '' ? undefined : res.json()) as T;
  };
  const ssh = (user: string, args: string[], password = PASSWORD) =>
    runClient('ssh', ['-p', String(gatewayPort), `${user}@127.0.0.1`, ...args], { password, timeoutMs: 20_000 });
  /** An interactive ssh -tt that stays connected: what it printed so far, and its exit. */
  const shell = (user: string) => {
    const child: ChildProcessWithoutNullStreams = spawn(
      'sshpass',
      [
        ...['-p', PASSWORD, 'ssh', '-tt', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'],
        ...['-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=keyboard-interactive,password'],
        ...['-p', String(gatewayPort), `${user}@127.0.0.1`],
      ],
      { stdio: 'pipe' },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    return { child, output: () => out, exited: new Promise<number | null>((resolve) => child.once('close', resolve)) };
  };
  const windowOf = (id: string) => api<Window>('GET', `/requests/${id}`);
  /** A one-minute window on the box for `users`, requested by the admin and approved by pete. */
  const approvedWindow = async (users: string[], reason: string) => {
    const w = await api<Window>('POST', '/requests', {
      projectId: ids.project,
      deviceIds: [ids.box],
      userIds: users.map((u) => ids[u]),
      durationMinutes: 1,
      reason,
    });
    await api('POST', `/requests/${w.id}/approve`, { comment: 'ok' }, ids.peteToken);
    return w.id;
  };
  const sessionsOf = async (username: string) =>
    (await api<{ items: Session[] }>('GET', '/sessions?limit=200')).items.filter((s) => s.username === username);
  const auditAbout = async (targetId: string) =>
    (await api<{ items: AuditEventView[] }>('GET', '/audit/events?limit=500')).items.filter((e) => e.targetId === targetId);
  const hookCalls = (): HookCall[] =>
    existsSync(hookLog)
      ? readFileSync(hookLog, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as HookCall)
      : [];

  beforeAll(async () => {
    dir = tempDir('gatehouse-maintenance-');
    hookLog = path.join(dir, 'hook-calls.jsonl');
    // The hook: logs what it was given; "[fail-open]" in the reason fails the opening, "[fail-close-N]" the first N closings.
    writeFileSync(
      path.join(dir, 'hook.cjs'),
      `#!${process.execPath}
const fs = require('node:fs');
let input = '';
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  const payload = JSON.parse(input);
  const counter = ${JSON.stringify(dir)} + '/' + payload.phase + '-' + payload.window.id + '.count';
  const attempt = (fs.existsSync(counter) ? Number(fs.readFileSync(counter, 'utf8')) : 0) + 1;
  fs.writeFileSync(counter, String(attempt));
  const env = { phase: process.env.GATEHOUSE_HOOK_PHASE, windowId: process.env.GATEHOUSE_WINDOW_ID, keys: Object.keys(process.env) };
  fs.appendFileSync(${JSON.stringify(hookLog)}, JSON.stringify({ phase: payload.phase, attempt, env, payload }) + '\\n');
  const fail = /\\[fail-(open|close)(?:-(\\d+))?\\]/.exec(payload.window.reason);
  if (fail && fail[1] === payload.phase && (fail[2] === undefined || attempt <= Number(fail[2]))) {
    console.error('the cloud said no (attempt ' + attempt + ')');
    process.exit(3);
  }
  console.log(payload.phase + ' hook ran for ' + payload.window.id);
});
`,
    );
    chmodSync(path.join(dir, 'hook.cjs'), 0o755);
    ensureSystemUser(DEVICE_USER, { password: TEST_USER_PASSWORD });
    sshd = await TestSshd.start(path.join(dir, 'sshd'));
    gatewayPort = await freePort();
    server = await startServer({ dataDir: path.join(dir, 'data'), env: env() });
    const credentials = path.join(dir, 'credentials.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    token = savedToken(credentials);

    ids.project = (await api<{ id: string }>('POST', '/projects', { name: 'Plant' })).id;
    ids.box = (
      await api<{ id: string }>('POST', '/devices', {
        projectId: ids.project,
        name: 'box',
        provider: 'on-prem',
        protocols: ['ssh'],
        privateIp: '127.0.0.1',
        urlPort: String(sshd.port),
      })
    ).id;
    await api('POST', '/accounts', { deviceId: ids.box, username: DEVICE_USER, password: TEST_USER_PASSWORD });
    for (const name of ['pete', 'uma', 'kim', 'otto']) {
      ids[name] = (await api<{ id: string }>('POST', '/users', { username: name, role: 'operator', password: PASSWORD })).id;
      await api('POST', '/grants', { userId: ids[name], projectId: ids.project });
    }
    const signIn = await server.request(`${API}/auth/login`, { method: 'POST', body: { username: 'pete', password: PASSWORD } });
    const cookie = String([signIn.headers['set-cookie']].flat()[0]).split(';')[0] ?? '';
    const { csrfToken } = JSON.parse(signIn.body) as { csrfToken: string };
    const peteToken = await server.request(`${API}/tokens`, {
      method: 'POST',
      body: { name: 'e2e', scope: 'full' },
      headers: { cookie, 'x-csrf-token': csrfToken },
    });
    expect(peteToken.status, peteToken.body).toBe(201);
    ids.peteToken = (JSON.parse(peteToken.body) as { token: string }).token;
    await api('PUT', `/projects/${ids.project}/approvers`, { userIds: [ids.pete] });
    await api('PATCH', `/projects/${ids.project}`, { maintenanceRequired: true });
  });

  afterAll(async () => {
    killServers();
    await sshd?.stop();
    removeTempDirs();
  });

  it('refuses everyone outside a window with the explaining message, also ssh -N and -L, and audits why', async () => {
    for (const user of ['uma', 'admin']) {
      const run = await ssh(`${user}:box`, ['true'], user === 'admin' ? ADMIN_PASSWORD : PASSWORD);
      expect(run.code).toBe(255);
      expect(run.stderr).toContain('box needs an approved maintenance window, and none is open for you now.');
      expect(run.stderr).toContain('./gatehouse requests create --device Plant/box');
    }
    const localPort = await freePort();
    for (const args of [['-N'], ['-N', '-L', `127.0.0.1:${localPort}:127.0.0.1:${sshd.port}`]]) {
      const run = await ssh('uma:box', args);
      expect(run.code).toBe(255);
      expect(run.stderr).toContain('needs an approved maintenance window');
    }
    const denied = (await api<{ items: AuditEventView[] }>('GET', '/audit/events?limit=50')).items.filter(
      (e) => e.action === 'gateway.authorize' && e.outcome === 'denied' && e.details.reason === 'no maintenance window',
    );
    expect(denied.map((e) => e.actorName).sort()).toEqual(['admin', 'uma', 'uma', 'uma']);
    expect(await sessionsOf('uma')).toEqual([]);
  });

  it('keeps access closed when the opening hook fails, and says so', async () => {
    const id = await approvedWindow(['uma'], 'patch the kernel [fail-open]');
    await expect.poll(async () => (await windowOf(id)).state, { timeout: 10_000 }).toBe('failed');
    const w = await windowOf(id);
    expect(w.hooks).toMatchObject([{ phase: 'open', attempt: 1, ok: false }]);
    expect(w.hooks[0]?.output).toContain('the cloud said no');
    expect((await auditAbout(id)).map((e) => e.action)).toContain('maintenance.open_failed');
    const run = await ssh('uma:box', ['true']);
    expect(run.stderr).toContain('needs an approved maintenance window');
  });

  it("opens windows after their opening hook ran with the window's details, for the named users only", async () => {
    ids.umaWindow = await approvedWindow(['uma'], 'replace the disk [fail-close-2]');
    ids.kimWindow = await approvedWindow(['kim'], 'rotate the logs');
    for (const id of [ids.umaWindow, ids.kimWindow])
      await expect.poll(async () => (await windowOf(id)).state, { timeout: 10_000 }).toBe('open');
    const opened = hookCalls().find((c) => c.phase === 'open' && c.payload.window.id === ids.umaWindow);
    expect(opened?.payload.window).toMatchObject({
      project: { name: 'Plant' },
      devices: [{ name: 'box' }],
      users: ['uma'],
      reason: 'replace the disk [fail-close-2]',
      approvedBy: ['pete'],
    });
    expect(opened?.env).toMatchObject({ phase: 'open', windowId: ids.umaWindow });
    expect(
      opened?.env.keys.filter((k) => k.startsWith('GATEHOUSE_') && !['GATEHOUSE_HOOK_PHASE', 'GATEHOUSE_WINDOW_ID'].includes(k)),
    ).toEqual([]);

    expect((await ssh('uma:box', ['whoami'])).stdout.toString()).toBe(`${DEVICE_USER}\n`);
    expect((await ssh('kim:box', ['whoami'])).stdout.toString()).toBe(`${DEVICE_USER}\n`);
    const otto = await ssh('otto:box', ['whoami']);
    expect(otto.code).toBe(255);
    expect(otto.stderr).toContain('needs an approved maintenance window');
    const admin = await ssh('admin:box', ['whoami'], ADMIN_PASSWORD);
    expect(admin.stderr).toContain('needs an approved maintenance window');
  });

  it('a server killed (SIGKILL) with a window open closes it after restart, running the closing hook', async () => {
    server.kill();
    await server.exited;
    server = await startServer({ dataDir: server.dataDir, env: env() });
    // Checked at the end of the file: the window ends a minute after it opened.
  });

  it('warns a live session in its terminal, then ends it at the window end, saying why', async () => {
    const term = shell('uma:box');
    term.child.stdin.write('echo inside-$((6*7))\n');
    await expect.poll(term.output, { timeout: 20_000 }).toContain('inside-42');
    await expect.poll(term.output, { timeout: 10_000 }).toContain(`*** Gatehouse: maintenance window ${ids.umaWindow} ends at `);
    expect(await term.exited).toBe(255);
    const reason = `The maintenance window ${ids.umaWindow} ended.`;
    expect(term.output()).toContain(reason);
    expect(term.output().indexOf('*** Gatehouse')).toBeLessThan(term.output().indexOf(reason));
    const session = (await sessionsOf('uma')).find((s) => s.kind === 'shell');
    expect(session).toMatchObject({ result: 'failure', reason });
  }, 120_000);

  it('raises an alert for each failed closing hook and retries it until it succeeds', async () => {
    await expect.poll(async () => (await windowOf(idOf('umaWindow'))).close.state, { timeout: 20_000 }).toBe('done');
    const w = await windowOf(idOf('umaWindow'));
    expect(w).toMatchObject({ state: 'expired', close: { attempts: 3 } });
    expect(w.hooks.filter((h) => h.phase === 'close').map((h) => h.ok)).toEqual([false, false, true]);
    const actions = (await auditAbout(idOf('umaWindow'))).map((e) => e.action).reverse();
    expect(actions.filter((a) => a === 'maintenance.close_failed')).toHaveLength(2);
    expect(actions.at(-1)).toBe('maintenance.closed');
    expect(server.stdout + server.stderr).toContain('maintenance.close_failed');
  });

  it('(the killed server) closed the window that was open, and ran its closing hook', async () => {
    await expect.poll(async () => (await windowOf(idOf('kimWindow'))).close.state, { timeout: 20_000 }).toBe('done');
    expect(await windowOf(idOf('kimWindow'))).toMatchObject({ state: 'expired' });
    expect(hookCalls().filter((c) => c.phase === 'close' && c.payload.window.id === ids.kimWindow)).toMatchObject([
      { attempt: 1, payload: { reason: 'expired' } },
    ]);
  });

  it('ends the sessions of a revoked window at once', async () => {
    const id = await approvedWindow(['uma'], 'one more fix');
    await expect.poll(async () => (await windowOf(id)).state, { timeout: 10_000 }).toBe('open');
    const term = shell('uma:box');
    term.child.stdin.write('echo again-$((1+1))\n');
    await expect.poll(term.output, { timeout: 20_000 }).toContain('again-2');
    const revokedAt = Date.now();
    await api('POST', `/requests/${id}/revoke`, { comment: 'stop now' });
    expect(await term.exited).toBe(255);
    expect(Date.now() - revokedAt).toBeLessThan(5_000);
    expect(term.output()).toContain(`The maintenance window ${id} was revoked by admin.`);
    await expect.poll(async () => (await windowOf(id)).close.state).toBe('done');
    expect(hookCalls().find((c) => c.phase === 'close' && c.payload.window.id === id)?.payload.reason).toBe('revoked');
    expect((await ssh('uma:box', ['true'])).stderr).toContain('needs an approved maintenance window');
  });
});
