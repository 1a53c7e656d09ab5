import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SshGateway } from '@gatehouse/gateway';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { API } from '../support/api-helpers.js';
import { createReplicaApp, createTestApp, type TestApp } from '../support/app.js';
import { startBuiltInGateway } from '../support/built-in-gateway.js';
import { dialects } from '../support/db.js';
import { ensureSystemUser, TEST_USER_PASSWORD, TestSshd } from '../support/sshd.js';

const DEVICE_USER = 'gh-test-pw';

interface Session {
  id: string;
  kind: string | null;
  command: string | null;
  result: string;
  reason: string | null;
}

/** An OpenSSH client that stays connected: what it printed so far, its stdin, and its exit. */
interface LiveClient {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/**
 * Warning a live session without ending it, and ending it with a reason, through the
 * built-in gateway (in process, with the server's broker and API) between real OpenSSH
 * clients and an OpenSSH sshd.
 */
describe.each(dialects)('warning and ending live sessions on %s', (dialect) => {
  let t: TestApp;
  let gateway: SshGateway;
  let sshd: TestSshd;
  let dir: string;
  let admin: { username: string; password: string; token: string };
  const clients: LiveClient[] = [];

  beforeAll(async () => {
    t = await createTestApp(dialect);
    dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-warn-'));
    ensureSystemUser(DEVICE_USER, { password: TEST_USER_PASSWORD });
    sshd = await TestSshd.start(path.join(dir, 'sshd'));
    admin = await t.userWithToken('admin');
    const project = (await t.request('POST', `${API}/projects`, { token: admin.token, body: { name: 'Lab' } })).json<{ id: string }>();
    const device = await t.request('POST', `${API}/devices`, {
      token: admin.token,
      body: {
        projectId: project.id,
        name: 'box',
        provider: 'on-prem',
        protocols: ['ssh'],
        privateIp: '127.0.0.1',
        urlPort: String(sshd.port),
      },
    });
    expect(device.statusCode, device.body).toBe(201);
    const deviceId = device.json<{ id: string }>().id;
    await t.request('POST', `${API}/accounts`, {
      token: admin.token,
      body: { deviceId, username: DEVICE_USER, password: TEST_USER_PASSWORD },
    });
    gateway = await startBuiltInGateway(t, path.join(t.services.config.dataDir, 'recordings'));
    t.gateways.builtInSessions = gateway;
  });
  afterAll(async () => {
    for (const c of clients) c.child.kill();
    await gateway?.stop();
    await sshd?.stop();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const connect = (args: string[]): LiveClient => {
    const child = spawn(
      'sshpass',
      [
        ...['-p', admin.password, 'ssh', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'],
        ...['-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=keyboard-interactive,password'],
        ...['-p', String(gateway.port), `${admin.username}:box@127.0.0.1`, ...args],
      ],
      { stdio: 'pipe' },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const client = { child, stdout: () => stdout, stderr: () => stderr, exited: new Promise<number | null>((r) => child.once('close', r)) };
    clients.push(client);
    return client;
  };
  const session = (id: string) => t.request('GET', `${API}/sessions/${id}`, { token: admin.token }).then((r) => r.json<Session>());
  const liveSession = (match: (s: Session) => boolean) =>
    vi.waitFor(
      async () => {
        const items = (await t.request('GET', `${API}/sessions?result=active`, { token: admin.token })).json<{ items: Session[] }>().items;
        const found = items.find(match);
        if (!found) throw new Error('no such live session yet');
        return found;
      },
      { timeout: 20_000, interval: 100 },
    );
  /** The output events of a session's recording, as one text. */
  const recorded = async (id: string) => {
    const cast = await t.request('GET', `${API}/sessions/${id}/recording`, { token: admin.token });
    return cast.body
      .trimEnd()
      .split('\n')
      .slice(1)
      .map((l) => JSON.parse(l) as [number, string, string])
      .filter((e) => e[1] === 'o')
      .map((e) => e[2])
      .join('');
  };
  const endSession = (id: string, reason: string) =>
    t.request('POST', `${API}/sessions/${id}/end`, { token: admin.token, body: { reason } });

  it('shows a warning in the terminal of a live shell, which goes on, and then ends it with the reason in the row and the recording', async () => {
    const shell = connect(['-tt']);
    shell.child.stdin.write('echo ready-$((1+2))\n');
    await expect.poll(shell.stdout, { timeout: 20_000 }).toContain('ready-3');
    const live = await liveSession((s) => s.kind === 'shell');

    const warning = 'Gatehouse: maintenance window w-1 ends at 10:00 UTC; this session will be ended then.';
    expect(await t.gateways.warnSession({ id: live.id, entryGateway: 'default' }, warning)).toBe(true);
    await expect.poll(shell.stdout).toContain(`\r\n*** ${warning} ***\r\n`);
    // The session goes on, and the device's shell never saw the text as input.
    shell.child.stdin.write('echo still-$((2+3))\n');
    await expect.poll(shell.stdout).toContain('still-5');
    expect(shell.stdout()).not.toMatch(/not found|syntax error/);
    expect((await session(live.id)).result).toBe('active');

    expect((await endSession(live.id, 'the window closed')).statusCode).toBe(200);
    expect(await shell.exited).toBe(255);
    const told = `${admin.username} ended this session: the window closed`;
    expect(shell.stdout() + shell.stderr()).toContain(told);
    expect(shell.stdout().indexOf(warning)).toBeLessThan(shell.stdout().indexOf('still-5'));
    await expect.poll(() => session(live.id)).toMatchObject({ result: 'failure', reason: told });
    const replay = await recorded(live.id);
    expect(replay).toContain(`*** ${warning} ***`);
    expect(replay.indexOf(warning)).toBeLessThan(replay.indexOf('still-5'));
    expect(replay.indexOf('still-5')).toBeLessThan(replay.lastIndexOf(told));
  });

  it('warns a command without a terminal on stderr, leaving its output as the device wrote it', async () => {
    const exec = connect(['echo go; read line; echo "got $line"']);
    await expect.poll(exec.stdout, { timeout: 20_000 }).toBe('go\n');
    const live = await liveSession((s) => s.kind === 'exec');
    expect(await t.gateways.warnSession({ id: live.id, entryGateway: 'default' }, 'ends soon')).toBe(true);
    await expect.poll(exec.stderr).toContain('*** ends soon ***');
    exec.child.stdin.end('more\n');
    expect(await exec.exited).toBe(0);
    expect(exec.stdout()).toBe('go\ngot more\n');
    await expect.poll(() => session(live.id)).toMatchObject({ result: 'success' });
    expect(await recorded(live.id)).toContain('*** ends soon ***');
  });

  it.runIf(dialect === 'postgres')(
    'carries a warning asked on another replica through the session row: this replica shows it once',
    async () => {
      const other = await createReplicaApp(t);
      const stop = t.gateways.watchSessionRequests();
      try {
        const shell = connect(['-tt']);
        shell.child.stdin.write('echo ready-$((3+4))\n');
        await expect.poll(shell.stdout, { timeout: 20_000 }).toContain('ready-7');
        const live = await liveSession((s) => s.kind === 'shell' && s.result === 'active');
        // The other replica's built-in gateway does not hold it (it has none): asked for in the row.
        const warning = 'Gatehouse: maintenance window w-2 ends at 11:00 UTC; this session will be ended then.';
        expect(await other.gateways.warnSession({ id: live.id, entryGateway: 'default' }, warning)).toBe(true);
        await expect.poll(shell.stdout, { timeout: 10_000 }).toContain(`*** ${warning} ***`);
        // Claimed when shown: another pass shows nothing more.
        await t.gateways.deliverSessionRequests();
        shell.child.stdin.write('echo after-$((4+5))\n');
        await expect.poll(shell.stdout).toContain('after-9');
        expect(shell.stdout().split(warning)).toHaveLength(2);
        expect(await t.gatewaySessions.find(live.id)).toMatchObject({ result: 'active' });
        expect(await other.gateways.warnSession({ id: '00000000-0000-4000-8000-000000000000', entryGateway: 'default' }, 'x')).toBe(false);
        expect((await endSession(live.id, 'done')).statusCode).toBe(200);
        expect(await shell.exited).toBe(255);
      } finally {
        stop();
        await other.close();
      }
    },
  );

  it('takes a warning for an ssh -N connection without showing anything, and knows no other session', async () => {
    const idle = connect(['-N']);
    const live = await liveSession((s) => s.kind === 'connection');
    expect(await t.gateways.warnSession({ id: live.id, entryGateway: 'default' }, 'ends soon')).toBe(true);
    expect(await t.gateways.warnSession({ id: '00000000-0000-4000-8000-000000000000', entryGateway: 'default' }, 'x')).toBe(false);
    expect((await session(live.id)).result).toBe('active');
    expect((await endSession(live.id, 'done')).statusCode).toBe(200);
    expect(await idle.exited).toBe(255);
    expect(idle.stdout()).toBe('');
    expect(idle.stderr()).not.toContain('ends soon');
  });
});
