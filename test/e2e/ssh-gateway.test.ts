import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { TARGET_FORMAT } from '@gatehouse/gateway';
import * as OTPAuth from 'otpauth';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runClient } from '../support/ssh-client.js';
import {
  freePort,
  ensureSystemUser,
  fingerprintOfKeyFile,
  generateKeyPair,
  TEST_USER_PASSWORD,
  TestSshd,
  waitForPort,
} from '../support/sshd.js';
import { cli, killServers, removeTempDirs, setupAdmin, startServer, tempDir, type GatehouseServer, savedToken } from '../support/server.js';

const API = '/api/v1';
const PW_USER = 'gh-test-pw';
const KEY_USER = 'gh-test-key';
const PW_USER_PASSWORD = TEST_USER_PASSWORD;
const ADMIN_PASSWORD = 'gateway admin password';
const OPERATOR_PASSWORD = 'gateway operator password';

interface Session {
  id: string;
  username: string;
  deviceName: string;
  accountUsername: string;
  gateway: string;
  kind: string | null;
  command: string | null;
  result: string;
  exitStatus: number | null;
  reason: string | null;
  bytesIn: number;
  bytesOut: number;
  startedAt: string;
  endedAt: string | null;
  recorded: boolean;
}

interface AuditEvent {
  seq: number;
  action: string;
  outcome: string;
  actorName: string;
  details: Record<string, unknown>;
}

describe('the built-in SSH gateway, with OpenSSH on both sides', () => {
  let dir: string;
  let server: GatehouseServer;
  let sshd: TestSshd;
  let gatewayPort: number;
  let token: string;
  const ids: Record<string, string> = {};

  const api = async <T>(method: string, route: string, body?: unknown, as = token): Promise<T> => {
    const res = await server.request(`${API}${route}`, { method, body, headers: { authorization: `Bearer ${as}` } });
    if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${res.body}`);
    return (res.body === '' ? undefined : JSON.parse(res.body)) as T;
  };
  const ssh = (user: string, args: string[], opts: { password?: string; stdin?: string } = {}) =>
    runClient('ssh', ['-p', String(gatewayPort), `${user}@127.0.0.1`, ...args], {
      password: opts.password ?? ADMIN_PASSWORD,
      stdin: opts.stdin,
    });
  const sessions = async () => (await api<{ items: Session[] }>('GET', '/sessions?limit=500')).items;
  /** The newest session that matches, once it has ended: the gateway records the end just after the client sees it. */
  const endedSession = async (match: (s: Session) => boolean) =>
    vi
      .waitFor(
        async () => {
          const found = (await sessions()).find(match);
          if (!found?.endedAt) throw new Error('the session has not ended yet');
          return found;
        },
        { timeout: 30_000, interval: 50 },
      )
      .catch(async () => (await sessions()).find(match));
  const auditSince = async (seq: number) =>
    (await api<{ items: AuditEvent[] }>('GET', `/audit/events?afterSeq=${seq}&order=asc&limit=1000`)).items;
  const lastSeq = async () => (await api<{ items: AuditEvent[] }>('GET', '/audit/events?limit=1')).items[0]?.seq ?? 0;
  const recording = (id: string | undefined) =>
    server.request(`${API}/sessions/${id}/recording`, { headers: { authorization: `Bearer ${token}` } });
  /** The output a session's recording holds so far ('' while it has none). */
  const recordedOutput = async (id: string | undefined) => {
    const cast = await recording(id);
    if (cast.status !== 200) return '';
    return cast.body
      .trimEnd()
      .split('\n')
      .slice(1)
      .flatMap((l) => {
        try {
          return [(JSON.parse(l) as [number, string, string])[2]];
        } catch {
          return []; // a line still being written
        }
      })
      .join('');
  };
  /** The active session that matches, once the gateway has recorded it. */
  const activeSession = (match: (s: Session) => boolean) =>
    vi.waitFor(
      async () => {
        const found = (await sessions()).find((s) => s.result === 'active' && match(s));
        if (!found) throw new Error('no such active session yet');
        return found;
      },
      { timeout: 30_000, interval: 100 },
    );
  /** The labels of a recording's marker ("m") events. */
  const markersOf = (cast: string) =>
    cast
      .trimEnd()
      .split('\n')
      .slice(1)
      .map((l) => JSON.parse(l) as [number, string, string])
      .filter((e) => e[1] === 'm')
      .map((e) => e[2]);
  /** Every audit event after `seq`, page by page. */
  const allAuditSince = async (seq: number) => {
    const all: AuditEvent[] = [];
    for (let page = await auditSince(seq); page.length > 0; page = await auditSince(all.at(-1)?.seq ?? seq)) all.push(...page);
    return all;
  };
  /** Polls `check` until it holds; fails naming `what` after `timeoutMs`. */
  const until = (what: () => string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000) =>
    vi.waitFor(
      async () => {
        if (!(await check())) throw new Error(`Timed out waiting: ${what()}`);
      },
      { timeout: timeoutMs, interval: 200 },
    );
  /** The device's sshd connections: one child process of the listening sshd each. */
  const deviceConnections = () => {
    try {
      return execFileSync('pgrep', ['-P', String(sshd.pid)], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean).length;
    } catch {
      return 0; // pgrep exits 1 when it finds none
    }
  };
  /** OpenSSH signing in to the gateway with a key registered to the admin (no password, no argon2). */
  const keyedSsh = (keyFile: string, args: string[]) =>
    spawn(
      'ssh',
      [
        ...['-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes'],
        ...['-o', 'ConnectTimeout=60', '-o', 'PreferredAuthentications=publickey', '-i', keyFile, '-p', String(gatewayPort)],
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
  /** What a finished OpenSSH client printed, and its exit code. */
  const outcomeOf = (child: ChildProcess) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      let stdout = '';
      let stderr = '';
      child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  /** Runs `fn` with a login key registered to the admin (removed afterwards). */
  const withAdminKey = async <T>(name: string, fn: (keyFile: string) => Promise<T>): Promise<T> => {
    const login = generateKeyPair(dir, name);
    const key = await api<{ id: string }>('POST', '/ssh-keys', { publicKey: login.publicKey });
    try {
      return await fn(login.file);
    } finally {
      await api('DELETE', `/ssh-keys/${key.id}`);
    }
  };
  const recordingFiles = () => {
    const root = path.join(server.dataDir, 'recordings');
    if (!existsSync(root)) return [];
    return readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.cast'));
  };

  beforeAll(async () => {
    dir = tempDir('gatehouse-ssh-');
    ensureSystemUser(PW_USER, { password: PW_USER_PASSWORD });
    ensureSystemUser(KEY_USER);
    // Many connections at once (200 ssh -N) may be unauthenticated together; the rest is stock (MaxSessions 10).
    sshd = await TestSshd.start(path.join(dir, 'sshd'), { config: ['MaxStartups 300', 'MaxSessions 10'] });
    const key = generateKeyPair(dir, 'device_key', 'key passphrase');
    // Without a passphrase: cheap to load for the many connections of one test (no bcrypt per connection).
    const plainKey = generateKeyPair(dir, 'device_key_plain');
    sshd.authorize(KEY_USER, `${key.publicKey}\n${plainKey.publicKey}`);

    gatewayPort = await freePort();
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(gatewayPort) } });
    const credentials = path.join(dir, 'credentials.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    token = savedToken(credentials);

    const project = await api<{ id: string }>('POST', '/projects', { name: 'Lab' });
    const other = await api<{ id: string }>('POST', '/projects', { name: 'Other' });
    const device = async (projectId: string, name: string, port: number) =>
      (
        await api<{ id: string }>('POST', '/devices', {
          projectId,
          name,
          provider: 'on-prem',
          protocols: ['ssh', 'sftp'],
          privateIp: '127.0.0.1',
          urlPort: String(port),
        })
      ).id;
    ids.pwBox = await device(project.id, 'pw-box', sshd.port);
    ids.keyBox = await device(project.id, 'key-box', sshd.port);
    ids.deadBox = await device(project.id, 'dead-box', await freePort());
    ids.idleBox = await device(project.id, 'idle-box', sshd.port);
    ids.twinLab = await device(project.id, 'twin', sshd.port);
    ids.twinOther = await device(other.id, 'twin', sshd.port);
    await api('POST', '/accounts', { deviceId: ids.pwBox, username: PW_USER, password: PW_USER_PASSWORD });
    await api('POST', '/accounts', { deviceId: ids.keyBox, username: KEY_USER, privateKey: key.privateKey, passphrase: 'key passphrase' });
    await api('POST', '/accounts', { deviceId: ids.deadBox, username: PW_USER, password: PW_USER_PASSWORD });
    await api('POST', '/accounts', { deviceId: ids.idleBox, username: KEY_USER, privateKey: plainKey.privateKey });
    for (const twin of [ids.twinLab, ids.twinOther])
      await api('POST', '/accounts', { deviceId: twin, username: PW_USER, password: PW_USER_PASSWORD });
    await api('POST', '/users', { username: 'olga', role: 'operator', password: OPERATOR_PASSWORD });
  });

  afterAll(async () => {
    killServers();
    await sshd?.stop();
    removeTempDirs();
  });

  it('runs a command with a password credential: output, exit status and a session with its recording', async () => {
    const run = await ssh('admin:pw-box', ['echo out-$((6*7)); echo err >&2; exit 3']);
    expect(run.stderr).toContain('err');
    expect(run.stdout.toString()).toBe('out-42\n');
    expect(run.code, run.stderr).toBe(3);
    // No bare "Gatehouse" line above the password prompt.
    expect(run.stderr).not.toMatch(/^Gatehouse\r?$/m);
    console.log(`exec through the gateway (password credential), connection to exit: ${Math.round(run.ms)} ms`);

    const session = await endedSession((s) => s.kind === 'exec' && s.deviceName === 'pw-box');
    expect(session).toMatchObject({
      username: 'admin',
      accountUsername: PW_USER,
      gateway: 'default',
      command: 'echo out-$((6*7)); echo err >&2; exit 3',
      result: 'success',
      exitStatus: 3,
      recorded: true,
    });
    expect(session?.bytesOut).toBeGreaterThanOrEqual('out-42\nerr\n'.length);
    const cast = await server.request(`${API}/sessions/${session?.id}/recording`, { headers: { authorization: `Bearer ${token}` } });
    expect(cast.status).toBe(200);
    // The CLI lists the session and writes the same recording.
    const viaCli = await cli(['sessions', 'recording', session?.id ?? '', '--url', server.url, '--ca', server.certFile], {
      env: { GATEHOUSE_TOKEN: token },
    });
    expect(viaCli.code, viaCli.stderr).toBe(0);
    expect(viaCli.stdout).toBe(cast.body);
    const listed = await cli(['sessions', 'list', '--device', ids.pwBox ?? '', '--json', '--url', server.url, '--ca', server.certFile], {
      env: { GATEHOUSE_TOKEN: token },
    });
    expect((JSON.parse(listed.stdout) as { items: { id: string }[] }).items.map((i) => i.id)).toContain(session?.id);
    const [header, ...events] = cast.body
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    expect(header).toMatchObject({ version: 2, command: 'echo out-$((6*7)); echo err >&2; exit 3' });
    expect(events.map((e) => (e as [number, string, string])[2]).join('')).toContain('out-42');
  });

  it('runs a command with a private key credential (with a passphrase) and passes stdin through to EOF', async () => {
    const run = await ssh('admin:key-box', ['wc -c; whoami'], { stdin: 'twelve bytes' });
    expect(run.stderr).not.toContain('gatehouse:');
    expect(
      run.stdout
        .toString()
        .split('\n')
        .map((l) => l.trim()),
    ).toEqual(['12', KEY_USER, '']);
    expect(run.code).toBe(0);
  });

  it('records a pty shell driven by a script as asciicast v2', async () => {
    const run = await ssh('admin:pw-box', ['-tt'], { stdin: 'echo shell-$((40+2))\nstty size\nexit 0\n' });
    expect(run.code).toBe(0);
    expect(run.stdout.toString()).toContain('shell-42');

    const session = await endedSession((s) => s.kind === 'shell');
    expect(session).toMatchObject({ result: 'success', recorded: true, exitStatus: 0 });
    const cast = await server.request(`${API}/sessions/${session?.id}/recording`, { headers: { authorization: `Bearer ${token}` } });
    expect(cast.headers['content-type']).toContain('application/x-asciicast');
    const lines = cast.body.trimEnd().split('\n');
    const header = JSON.parse(lines[0] ?? '') as {
      version: number;
      width: number;
      height: number;
      timestamp: number;
      env: { TERM: string };
    };
    expect(header.version).toBe(2);
    expect(header.width).toBeGreaterThan(0);
    expect(header.height).toBeGreaterThan(0);
    expect(Math.abs(header.timestamp - Date.now() / 1000)).toBeLessThan(120);
    expect(typeof header.env.TERM).toBe('string');
    const events = lines.slice(1).map((l) => JSON.parse(l) as [number, string, string]);
    expect(events.length).toBeGreaterThan(0);
    let previous = 0;
    for (const [time, kind, data] of events) {
      expect(typeof time).toBe('number');
      expect(time).toBeGreaterThanOrEqual(previous);
      previous = time;
      expect(['o', 'r']).toContain(kind);
      expect(typeof data).toBe('string');
    }
    expect(events.map((e) => e[2]).join('')).toContain('shell-42');
  });

  it('proxies sftp byte for byte: put and get with matching SHA-256, also with scp', async () => {
    const payload = randomBytes(3 * 1024 * 1024 + 17);
    const local = path.join(dir, 'upload.bin');
    const back = path.join(dir, 'download.bin');
    writeFileSync(local, payload);
    const remote = `gatehouse-${randomBytes(4).toString('hex')}.bin`;
    // OpenSSH's rename goes by the posix-rename extension; "-" lets the batch go on past a failure.
    const batch = `put ${local} ${remote}\nget ${remote} ${back}\nrename ${remote} ${remote}.moved\n-rename ${remote} x\nrm ${remote}.moved\n`;
    const run = await runClient('sftp', ['-P', String(gatewayPort), '-o', 'User=admin:pw-box', '-b', '-', '127.0.0.1'], {
      password: ADMIN_PASSWORD,
      stdin: batch,
    });
    expect(run.code, run.stderr).toBe(0);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(sha(readFileSync(back))).toBe(sha(payload));

    const scpBack = path.join(dir, 'scp-back.bin');
    const up = await runClient('scp', ['-P', String(gatewayPort), '-o', 'User=admin:key-box', local, `127.0.0.1:${remote}`], {
      password: ADMIN_PASSWORD,
    });
    expect(up.code, up.stderr).toBe(0);
    const down = await runClient('scp', ['-P', String(gatewayPort), '-o', 'User=admin:key-box', `127.0.0.1:${remote}`, scpBack], {
      password: ADMIN_PASSWORD,
    });
    expect(down.code, down.stderr).toBe(0);
    expect(sha(readFileSync(scpBack))).toBe(sha(payload));

    const sftp = await endedSession((s) => s.kind === 'sftp' && s.deviceName === 'pw-box');
    expect(sftp).toMatchObject({ result: 'success', recorded: false });
    expect(sftp?.bytesIn).toBeGreaterThan(payload.length);
    expect(sftp?.bytesOut).toBeGreaterThan(payload.length);

    // The transfer log: what an auditor reads instead of a terminal recording.
    type FileOp = { op: string; path: string; bytes: number; result: string; error: string | null };
    const ops = async (id: string | undefined) => (await api<{ items: FileOp[] }>('GET', `/sessions/${id}/file-operations`)).items;
    const sftpOps = (await ops(sftp?.id)).filter((o) => o.op !== 'list');
    expect(sftpOps.map((o) => [o.op, path.basename(o.path), o.bytes, o.result])).toEqual([
      ['upload', remote, payload.length, 'success'],
      ['download', remote, payload.length, 'success'],
      ['rename', remote, 0, 'success'],
      ['rename', remote, 0, 'failure'],
      ['remove', `${remote}.moved`, 0, 'success'],
    ]);
    // scp (the SFTP protocol underneath, as OpenSSH 9 does it) and the original protocol (-O).
    const scpSessions = (await sessions()).filter((s) => s.deviceName === 'key-box' && s.kind === 'sftp').slice(0, 2);
    const scpOps = (await Promise.all(scpSessions.map((s) => ops(s.id)))).flat().filter((o) => o.op !== 'list');
    expect(scpOps.map((o) => [o.op, o.bytes, o.result]).sort()).toEqual([
      ['download', payload.length, 'success'],
      ['upload', payload.length, 'success'],
    ]);
    const legacy = await runClient(
      'scp',
      ['-O', '-P', String(gatewayPort), '-o', 'User=admin:key-box', local, `127.0.0.1:legacy-${remote}`],
      {
        password: ADMIN_PASSWORD,
      },
    );
    expect(legacy.code, legacy.stderr).toBe(0);
    const legacySession = await endedSession((s) => s.kind === 'exec' && s.command === `scp -t legacy-${remote}`);
    // The file's bytes, not the protocol's lines and status bytes around them.
    expect(await ops(legacySession?.id)).toEqual([
      expect.objectContaining({ op: 'upload', path: `legacy-${remote}`, bytes: payload.length, result: 'success' }),
    ]);
    // A legacy download of a text file: logged with its size, and its content stays out of the recording.
    const text = 'a line of the legacy scp text file\n'.repeat(2000);
    writeFileSync(path.join(dir, 'legacy.txt'), text);
    const legacyScp = (from: string, to: string) =>
      runClient('scp', ['-O', '-P', String(gatewayPort), '-o', 'User=admin:key-box', from, to], { password: ADMIN_PASSWORD });
    expect((await legacyScp(path.join(dir, 'legacy.txt'), '127.0.0.1:legacy.txt')).code).toBe(0);
    const fetched = await legacyScp('127.0.0.1:legacy.txt', path.join(dir, 'legacy-back.txt'));
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(readFileSync(path.join(dir, 'legacy-back.txt'), 'utf8')).toBe(text);
    const legacyDown = await endedSession((s) => s.kind === 'exec' && s.command === 'scp -f legacy.txt');
    expect(await ops(legacyDown?.id)).toEqual([expect.objectContaining({ op: 'download', path: 'legacy.txt', bytes: text.length })]);
    const legacyCast = (await recording(legacyDown?.id)).body;
    expect(legacyCast).not.toContain('a line of the legacy scp text file');
    expect(markersOf(legacyCast).join('\n')).toContain(`SHA-256 of all stdout: `);
    // A refused operation is logged with the device's reason.
    const denied = await runClient('sftp', ['-P', String(gatewayPort), '-o', 'User=admin:pw-box', '-b', '-', '127.0.0.1'], {
      password: ADMIN_PASSWORD,
      stdin: `-put ${local} /etc/gatehouse-denied.bin\n`,
    });
    expect(denied.code, denied.stderr).toBe(0);
    const deniedSession = await endedSession((s) => s.kind === 'sftp' && s.deviceName === 'pw-box' && s.id !== sftp?.id);
    expect((await ops(deniedSession?.id)).filter((o) => o.op !== 'list')).toMatchObject([
      {
        op: 'upload',
        path: '/etc/gatehouse-denied.bin',
        bytes: 0,
        result: 'failure',
        error: expect.stringMatching(/ermission denied/) as unknown,
      },
    ]);
  });

  it('forwards a local port through the device only when the policy allows it (off by default)', async () => {
    // A TCP echo service the device can reach, the way a database behind it would be.
    const echo = net.createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const echoPort = (echo.address() as net.AddressInfo).port;
    const tryForward = async () => {
      const localPort = await freePort();
      const tunnel = spawn(
        'sshpass',
        [
          ...['-p', ADMIN_PASSWORD, 'ssh', '-N', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'],
          ...['-o', 'PubkeyAuthentication=no', '-o', 'ExitOnForwardFailure=yes', '-L', `127.0.0.1:${localPort}:127.0.0.1:${echoPort}`],
          ...['-p', String(gatewayPort), 'admin:pw-box@127.0.0.1'],
        ],
        { stdio: 'ignore' },
      );
      try {
        await waitForPort(localPort);
        return await new Promise<string>((resolve) => {
          const socket = net.connect({ host: '127.0.0.1', port: localPort }, () => socket.write('ping-through-device'));
          let got = '';
          socket.on('data', (d: Buffer) => {
            got += d.toString();
            if (got === 'ping-through-device') socket.end();
          });
          socket.once('close', () => resolve(got));
          socket.once('error', () => resolve(got));
          setTimeout(() => socket.destroy(), 5000);
        });
      } finally {
        tunnel.kill();
      }
    };
    try {
      const seq = await lastSeq();
      expect(await tryForward()).toBe('');
      const denied = (await auditSince(seq)).find((e) => e.action === 'gateway.forward');
      expect(denied).toMatchObject({ outcome: 'denied', details: { destination: `127.0.0.1:${echoPort}` } });

      const set = await cli(['gateways', 'forwarding', 'on', '--url', server.url, '--ca', server.certFile], {
        env: { GATEHOUSE_TOKEN: token },
      });
      expect(set.code, set.stderr).toBe(0);
      expect(await tryForward()).toBe('ping-through-device');
      // waitForPort's probe opened a forward too (no bytes): the session to check is the one that carried the ping.
      const forwarded = await endedSession((s) => s.kind === 'forward' && s.command === `127.0.0.1:${echoPort}` && s.bytesIn > 0);
      expect(forwarded).toMatchObject({ deviceName: 'pw-box', result: 'success', recorded: false });
      expect(forwarded?.bytesIn).toBe('ping-through-device'.length);
    } finally {
      await api('PUT', '/gateway-settings', { portForwarding: false });
      echo.close();
    }
  });

  it('makes every ssh -N connection a session: 200 at once are live, counted, and ended by an administrator', async () => {
    const login = generateKeyPair(dir, 'idle_login_key');
    const key = await api<{ id: string }>('POST', '/ssh-keys', { publicKey: login.publicKey });
    const N = 200;
    const baseline = deviceConnections();
    const before = await lastSeq();
    const live = async () =>
      (await api<{ items: Session[] }>('GET', '/sessions?result=active&limit=500')).items.filter((s) => s.kind === 'connection');
    const clients: { child: ChildProcess; exited: Promise<number | null> }[] = [];
    try {
      // In waves, so that the test does not measure how many handshakes the machine does at once.
      while (clients.length < N) {
        for (let i = 0; i < 25; i++) {
          const child = keyedSsh(login.file, ['-N', 'admin:idle-box@127.0.0.1']);
          clients.push({ child, exited: new Promise((resolve) => child.once('exit', resolve)) });
        }
        let seen = 0;
        await until(
          () => `${clients.length} ssh -N live as sessions, ${seen} are`,
          async () => (seen = (await live()).length) >= clients.length,
        );
      }
      const sessionsLive = await live();
      expect(sessionsLive).toHaveLength(N);
      for (const s of sessionsLive) {
        expect(s).toMatchObject({ username: 'admin', deviceName: 'idle-box', gateway: 'default', command: null, recorded: false });
      }
      expect((await api<{ liveSessions: number }>('GET', '/gateways/default')).liveSessions).toBeGreaterThanOrEqual(N);
      // At least one device connection per session. (Not baseline + N: a connection of an
      // earlier test that was still closing when the baseline was taken may be gone now.)
      expect(deviceConnections()).toBeGreaterThanOrEqual(N);

      // The administrator ends them (the API the console's End button calls).
      const ids = sessionsLive.map((s) => s.id);
      for (let i = 0; i < ids.length; i += 20) {
        await Promise.all(ids.slice(i, i + 20).map((id) => api('POST', `/sessions/${id}/end`, { reason: 'idle sweep' })));
      }
      expect(await Promise.all(clients.map((c) => c.exited))).toEqual(clients.map(() => 255));
      await until(
        () => `the device's sshd back to at most ${baseline} connections, has ${deviceConnections()}`,
        () => deviceConnections() <= baseline,
      );
      const ended = (await sessions()).filter((s) => ids.includes(s.id));
      expect(ended).toHaveLength(N);
      for (const s of ended) expect(s).toMatchObject({ result: 'failure', reason: 'admin ended this session: idle sweep' });
      const events = await allAuditSince(before);
      const about = (action: string) => events.filter((e) => e.action === action && ids.includes(e.details.sessionId as string));
      expect(about('session.start').filter((e) => e.details.kind === 'connection')).toHaveLength(N);
      const ends = about('session.end');
      expect(ends).toHaveLength(N);
      for (const e of ends) {
        expect(e).toMatchObject({ outcome: 'failure', details: { kind: 'connection', device: 'idle-box' } });
        expect(e.details.durationMs).toBeGreaterThan(0);
      }
      expect(events.filter((e) => e.action === 'session.terminate' && e.outcome === 'success')).toHaveLength(N);
    } finally {
      for (const c of clients) c.child.kill();
      await api('DELETE', `/ssh-keys/${key.id}`);
    }
  }, 300_000);

  it('runs 12 parallel commands over one ControlMaster connection as a direct connection does (device: MaxSessions 10)', async () => {
    // Each command waits until all 12 run at once (or 15 s): more sessions than the device takes on one connection.
    const meeting = `${mkdtempSync('/tmp/gatehouse-maxsessions-')}/meeting`;
    chmodSync(path.dirname(meeting), 0o755); // the device's user reaches it
    const command = (i: number) =>
      `touch ${meeting}/$(date +%s%N)-${i}; n=0; while [ $(ls ${meeting} | wc -l) -lt 12 ] && [ $n -lt 150 ]; do sleep 0.1; n=$((n+1)); done; echo ok-${i}`;
    const twelveOverOneMaster = async (ssh: (args: string[]) => ChildProcess, destination: string) => {
      rmSync(meeting, { recursive: true, force: true });
      mkdirSync(meeting);
      chmodSync(meeting, 0o777);
      const control = path.join(dir, `cm-${randomBytes(4).toString('hex')}`);
      const master = ssh(['-N', '-o', 'ControlMaster=yes', '-o', `ControlPath=${control}`, destination]);
      try {
        await until(
          () => `the ControlMaster socket ${control}`,
          () => existsSync(control),
        );
        const runs = Array.from({ length: 12 }, (_, i) =>
          outcomeOf(ssh(['-o', 'ControlMaster=no', '-o', `ControlPath=${control}`, destination, command(i)])),
        );
        return (await Promise.all(runs)).map((r, i) => ({ code: r.code, stdout: r.stdout, i }));
      } finally {
        master.kill();
      }
    };
    try {
      const direct = await twelveOverOneMaster(
        (args) =>
          spawn(
            'ssh',
            [
              ...[
                '-o',
                'BatchMode=yes',
                '-o',
                'StrictHostKeyChecking=no',
                '-o',
                'UserKnownHostsFile=/dev/null',
                '-o',
                'IdentitiesOnly=yes',
              ],
              ...['-i', path.join(dir, 'device_key_plain'), '-p', String(sshd.port), ...args],
            ],
            { stdio: ['ignore', 'pipe', 'pipe'] },
          ),
        `${KEY_USER}@127.0.0.1`,
      );
      const through = await withAdminKey('cm_login_key', (keyFile) =>
        twelveOverOneMaster((args) => keyedSsh(keyFile, args), 'admin:idle-box@127.0.0.1'),
      );
      const expected = Array.from({ length: 12 }, (_, i) => ({ code: 0, stdout: `ok-${i}\n`, i }));
      expect(direct).toEqual(expected);
      expect(through).toEqual(expected);
    } finally {
      rmSync(path.dirname(meeting), { recursive: true, force: true });
    }
  });

  it('refuses agent, X11 and remote forwarding (ssh -A -X -R) and audits each request', async () => {
    await withAdminKey('fwd_login_key', async (keyFile) => {
      // ssh -A needs an agent to forward, -X a display.
      const agentSocket = path.join(dir, `agent-${randomBytes(4).toString('hex')}.sock`);
      const agent = spawn('ssh-agent', ['-D', '-a', agentSocket], { stdio: 'ignore' });
      try {
        await until(
          () => 'ssh-agent listening',
          () => existsSync(agentSocket),
        );
        const before = await lastSeq();
        const child = spawn(
          'ssh',
          [
            ...['-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes'],
            ...['-i', keyFile, '-p', String(gatewayPort), '-A', '-X', '-R', '127.0.0.1:0:127.0.0.1:22', 'admin:idle-box@127.0.0.1'],
            'echo still-served',
          ],
          { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SSH_AUTH_SOCK: agentSocket, DISPLAY: '127.0.0.1:99' } },
        );
        const run = await outcomeOf(child);
        expect(run.stdout, run.stderr).toBe('still-served\n');
        let refused: AuditEvent[] = [];
        await until(
          () => `gateway.forward events for agent, x11 and remote: ${JSON.stringify(refused.map((e) => e.details.kind))}`,
          async () => (refused = (await auditSince(before)).filter((e) => e.action === 'gateway.forward')).length >= 3,
        );
        expect(refused.map((e) => e.details.kind).sort()).toEqual(['agent', 'remote', 'x11']);
        for (const e of refused) {
          expect(e).toMatchObject({ outcome: 'denied', actorName: 'admin', details: { device: 'idle-box' } });
          expect(e.details.reason).toEqual(expect.stringContaining('the gateway does not forward'));
        }
        expect(refused.find((e) => e.details.kind === 'remote')?.details.destination).toBe('127.0.0.1:0');
      } finally {
        agent.kill();
      }
    });
  });

  it('passes on why a forward was refused (ssh -J, forwarding off) or failed (ssh -L to a closed port)', async () => {
    await withAdminKey('jump_login_key', async (keyFile) => {
      // Forwarding off: ssh -J prints why.
      const config = path.join(dir, 'jump_config');
      writeFileSync(
        config,
        [
          'Host gatehouse-gw',
          '  HostName 127.0.0.1',
          `  Port ${gatewayPort}`,
          '  User admin:idle-box',
          `  IdentityFile ${keyFile}`,
          'Host behind-the-device',
          '  HostName 127.0.0.1',
          `  Port ${sshd.port}`,
          '  ProxyJump gatehouse-gw',
          'Host *',
          '  BatchMode yes',
          '  StrictHostKeyChecking no',
          '  UserKnownHostsFile /dev/null',
          '  IdentitiesOnly yes',
          '',
        ].join('\n'),
      );
      const jump = await outcomeOf(spawn('ssh', ['-F', config, 'behind-the-device', 'true'], { stdio: ['ignore', 'pipe', 'pipe'] }));
      expect(jump.code).toBe(255);
      expect(jump.stderr).toContain(
        'administratively prohibited: Port forwarding is off. An administrator can allow it in the gateway settings.',
      );

      // Forwarding on: a -L to a closed port says so, as direct OpenSSH does.
      await api('PUT', '/gateway-settings', { portForwarding: true });
      const localPort = await freePort();
      const closedPort = await freePort();
      const tunnel = keyedSsh(keyFile, ['-N', '-L', `127.0.0.1:${localPort}:127.0.0.1:${closedPort}`, 'admin:idle-box@127.0.0.1']);
      let stderr = '';
      tunnel.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      try {
        await waitForPort(localPort, 60_000);
        await until(
          () => `ssh -L to print why the forward failed; it printed ${JSON.stringify(stderr)}`,
          async () => {
            await new Promise<void>((resolve) => {
              const socket = net.connect({ host: '127.0.0.1', port: localPort });
              socket.on('data', () => undefined);
              socket.once('close', () => resolve());
              socket.once('error', () => resolve());
            });
            return stderr.includes('open failed');
          },
        );
        expect(stderr).toContain('open failed: connect failed: Connection refused');
      } finally {
        tunnel.kill();
        await api('PUT', '/gateway-settings', { portForwarding: false });
      }
    });
  });

  it('refuses a device that does not exist, or an ambiguous name, with a message', async () => {
    const unknown = await ssh('admin:no-such-box', ['true']);
    expect(unknown.code).toBe(255);
    expect(unknown.stderr).toContain('There is no device "no-such-box" you may use');
    const twin = await ssh('admin:twin', ['true']);
    expect(twin.code).toBe(255);
    expect(twin.stderr).toContain('<user>+<project>.<device>');
    const named = await ssh('admin:Other/twin', ['whoami']);
    expect(named.stdout.toString()).toBe(`${PW_USER}\n`);
  });

  it('refuses an operator without a grant, and audits it', async () => {
    const before = await lastSeq();
    const run = await ssh('olga:pw-box', ['true'], { password: OPERATOR_PASSWORD });
    expect(run.code).toBe(255);
    expect(run.stderr).toContain('There is no device "pw-box" you may use');
    const events = await auditSince(before);
    expect(events).toContainEqual(expect.objectContaining({ action: 'gateway.auth', outcome: 'success', actorName: 'olga' }));
    expect(events).toContainEqual(
      expect.objectContaining({
        action: 'gateway.authorize',
        outcome: 'denied',
        actorName: 'olga',
        details: expect.objectContaining({ reason: 'no grant for the device' }) as unknown,
      }),
    );
    // Only olga's: a session of an earlier test (a forward still closing) may log its own events meanwhile.
    expect(events.some((e) => e.action === 'session.start' && e.actorName === 'olga')).toBe(false);

    // A wrong password is a failed gateway.auth, as a failed API sign-in is.
    const wrong = await ssh('olga:pw-box', ['true'], { password: 'not the password' });
    expect(wrong.code).not.toBe(0);
    expect(await auditSince(before)).toContainEqual(
      expect.objectContaining({
        action: 'gateway.auth',
        outcome: 'failure',
        details: expect.objectContaining({ reason: 'wrong password' }) as unknown,
      }),
    );
  });

  it('takes the empty answers of an ssh without a terminal or a password source for no password attempt', async () => {
    const before = await lastSeq();
    // A new session (setsid) has no terminal: OpenSSH answers each password prompt empty.
    const child = spawn(
      'ssh',
      [
        ...['-p', String(gatewayPort), '-o', 'BatchMode=no', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'],
        ...['-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=keyboard-interactive', '-o', 'NumberOfPasswordPrompts=3'],
        'olga:pw-box@127.0.0.1',
        'true',
      ],
      { detached: true, stdio: ['ignore', 'ignore', 'ignore'], env: { PATH: process.env.PATH, HOME: process.env.HOME } },
    );
    expect(await new Promise((resolve) => child.once('close', resolve))).toBe(255);
    const failures = (await auditSince(before)).filter((e) => e.action === 'gateway.auth' && e.actorName === 'olga');
    expect(failures).toEqual([]);
  });

  it('signs users in with a public key registered to them, and refuses keys that are not', async () => {
    const mine = generateKeyPair(dir, 'admin_login_key');
    const stranger = generateKeyPair(dir, 'stranger_key');
    const keyed = (user: string, keyFile: string, command: string) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(
          'ssh',
          [
            ...['-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes'],
            ...['-o', 'PreferredAuthentications=publickey', '-i', keyFile, '-p', String(gatewayPort), `${user}@127.0.0.1`, command],
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.once('close', (code) => resolve({ code, stdout, stderr }));
      });

    // A private key pasted by mistake is refused by field, and never echoed.
    const wrong = await server.request(`${API}/ssh-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: { publicKey: mine.privateKey },
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body).toContain('publicKey is a private key');
    expect(wrong.body).not.toContain(mine.privateKey.split('\n')[1]);

    const added = await cli(['ssh-keys', 'add', `${mine.file}.pub`, '--json', '--url', server.url, '--ca', server.certFile], {
      env: { GATEHOUSE_TOKEN: token },
    });
    expect(added.code, added.stderr).toBe(0);
    const key = JSON.parse(added.stdout) as { id: string; fingerprint: string; name: string };
    expect(key.fingerprint).toBe(fingerprintOfKeyFile(`${mine.file}.pub`));
    expect(key.name).toBe('admin_login_key');

    const seq = await lastSeq();
    const run = await keyed('admin:pw-box', mine.file, 'echo key-$((1+1))');
    expect(run.stdout, run.stderr).toBe('key-2\n');
    expect(run.code).toBe(0);
    const signedIn = (await auditSince(seq)).find((e) => e.action === 'gateway.auth' && e.outcome === 'success');
    expect(signedIn).toMatchObject({ actorName: 'admin', details: { method: 'publickey', fingerprint: key.fingerprint } });

    const refused = await keyed('admin:pw-box', stranger.file, 'echo never');
    expect(refused.code).toBe(255);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain('Permission denied (publickey');

    // An operator whose key is fine but who has no grant is told why, on the channel.
    const olga = (await api<{ items: { id: string; username: string }[] }>('GET', '/users')).items.find((u) => u.username === 'olga');
    await api('POST', '/ssh-keys', { publicKey: readFileSync(`${stranger.file}.pub`, 'utf8'), userId: olga?.id });
    const denied = await keyed('olga:pw-box', stranger.file, 'echo never');
    expect(denied.code).toBe(255);
    expect(denied.stdout).toBe('');
    expect(denied.stderr).toContain('There is no device "pw-box" you may use');

    // Removed, the key no longer signs anyone in.
    await api('DELETE', `/ssh-keys/${key.id}`);
    expect((await keyed('admin:pw-box', mine.file, 'echo never')).code).toBe(255);
  });

  it('asks a user with TOTP for the authenticator code, and takes each code once', async () => {
    const password = 'tina has totp on';
    await api('POST', '/users', { username: 'tina', role: 'admin', password });
    const login = await server.request(`${API}/auth/login`, { method: 'POST', body: { username: 'tina', password } });
    const cookie = String([login.headers['set-cookie']].flat()[0]).split(';')[0] ?? '';
    const session = { cookie, 'x-csrf-token': (JSON.parse(login.body) as { csrfToken: string }).csrfToken };
    const enroll = await server.request(`${API}/auth/totp/enroll`, { method: 'POST', body: {}, headers: session });
    const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32((JSON.parse(enroll.body) as { secret: string }).secret) });
    const code = (steps: number) => totp.generate({ timestamp: Date.now() + steps * 30_000 });
    const confirm = await server.request(`${API}/auth/totp/confirm`, { method: 'POST', body: { code: code(0) }, headers: session });
    expect(confirm.status).toBe(200);

    /** Signs in with a raw SSH client that answers each prompt, and runs one command. */
    const attempt = (answer: string) =>
      new Promise<{ prompts: string[]; output?: string }>((resolve) => {
        const prompts: string[] = [];
        const client = new ssh2.Client();
        client.on('keyboard-interactive', (_name, _instructions, _lang, asked, finish) => {
          prompts.push(...asked.map((p) => p.prompt));
          finish(asked.map((p) => (p.prompt.startsWith('Password') ? password : answer)));
        });
        client.on('ready', () => {
          client.exec('echo signed-in-with-totp', (error, channel) => {
            if (error) return resolve({ prompts });
            let output = '';
            channel.on('data', (d: Buffer) => (output += d.toString()));
            channel.on('close', () => {
              client.end();
              resolve({ prompts, output });
            });
          });
        });
        client.on('error', () => resolve({ prompts }));
        client.on('close', () => resolve({ prompts }));
        client.connect({ host: '127.0.0.1', port: gatewayPort, username: 'tina:pw-box', tryKeyboard: true, readyTimeout: 10_000 });
      });

    // A code no period around now would accept.
    const wrongCode = ['000000', '111111', '222222', '333333'].find((c) => ![-1, 0, 1, 2].some((k) => code(k) === c)) ?? '444444';
    const wrong = await attempt(wrongCode);
    expect(wrong.prompts).toEqual(expect.arrayContaining(['Password: ', 'Authenticator code: ']));
    expect(wrong.output).toBeUndefined();
    // The confirm used this period's code: the next one signs in, once.
    const right = await attempt(code(1));
    expect(right.output).toBe('signed-in-with-totp\n');
    const replayed = await attempt(code(1));
    expect(replayed.output).toBeUndefined();
  });

  it('reports an unreachable device to the user and the audit log, and records nothing', async () => {
    const before = await lastSeq();
    const files = recordingFiles().length;
    const run = await ssh('admin:dead-box', ['true']);
    expect(run.code).toBe(255);
    expect(run.stderr).toContain('refused the connection');
    const failed = (await sessions()).find((s) => s.deviceName === 'dead-box');
    expect(failed).toMatchObject({ result: 'failure', recorded: false, kind: null });
    expect(failed?.reason).toContain('refused the connection');
    const events = await auditSince(before);
    expect(events).toContainEqual(
      expect.objectContaining({
        action: 'session.start',
        outcome: 'failure',
        details: expect.objectContaining({
          device: 'dead-box',
          reason: expect.stringContaining('refused the connection') as unknown,
        }) as unknown,
      }),
    );
    expect(recordingFiles()).toHaveLength(files);
  });

  it('refuses a device whose host key changed, naming both fingerprints', async () => {
    const stored = await api<{ hostKey: { fingerprint: string } }>('GET', `/devices/${ids.pwBox}/host-key`);
    expect(stored.hostKey.fingerprint).toBe(sshd.hostKeyFingerprint);
    const old = sshd.hostKeyFingerprint;
    await sshd.restart({ newHostKey: true });
    const before = await lastSeq();
    const files = recordingFiles().length;
    const run = await ssh('admin:pw-box', ['true']);
    expect(run.code).toBe(255);
    expect(run.stderr).toContain('has changed');
    expect(run.stderr).toContain(old);
    expect(run.stderr).toContain(sshd.hostKeyFingerprint);
    // It says how to forget the old key once the new one is checked: the CLI and the console page, no raw API path.
    expect(run.stderr).toContain('./gatehouse devices host-key forget Lab/pw-box --protocol ssh');
    expect(run.stderr).toContain(`/devices/${ids.pwBox}`);
    expect(run.stderr).not.toContain('/api/v1/');
    expect(recordingFiles()).toHaveLength(files);
    const actions = (await auditSince(before)).map((e) => `${e.action} ${e.outcome}`);
    expect(actions).toContain('device.host_key_mismatch failure');
    expect(actions).toContain('session.start failure');

    // After an administrator checked it and forgot the stored key with the command the message gave, the new one is trusted.
    const forgot = await cli(
      ['devices', 'host-key', 'forget', 'Lab/pw-box', '--protocol', 'ssh', '--url', server.url, '--ca', server.certFile],
      {
        env: { GATEHOUSE_TOKEN: token },
      },
    );
    expect(forgot.code, forgot.stderr).toBe(0);
    expect(forgot.stdout).toContain('Forgot the ssh key of Lab/pw-box: ');
    expect(forgot.stdout).toContain(`${old}.`);
    const again = await ssh('admin:pw-box', ['whoami']);
    expect(again.stdout.toString()).toBe(`${PW_USER}\n`);
  });

  it.each([
    ['a:', 'empty'],
    [':b', 'empty'],
    ['admin:pw-box:', 'empty'],
    [`admin:${'x'.repeat(600)}`, 'longer than'],
    ['アドミン:pw-box', 'not valid'],
  ])('refuses the user name %j cleanly', async (user, message) => {
    const run = await ssh(user, ['true']);
    expect(run.code).toBe(255);
    expect(run.stderr).toContain(message);
    expect(run.stdout.length).toBe(0);
  });

  it('records a command killed by a signal as such, with the signal', async () => {
    const before = await lastSeq();
    const run = await ssh('admin:pw-box', ['echo before-kill; kill -KILL $$']);
    expect(run.stdout.toString()).toBe('before-kill\n');
    const killed = await endedSession((s) => s.command === 'echo before-kill; kill -KILL $$');
    expect(killed).toMatchObject({ result: 'failure', exitStatus: null, reason: 'The command was killed by signal SIGKILL.' });
    const end = (await auditSince(before)).find((e) => e.action === 'session.end' && e.details.sessionId === killed?.id);
    expect(end).toMatchObject({ outcome: 'failure', details: { exitStatus: null, exitSignal: 'SIGKILL' } });
  });

  it('tells a client without keyboard-interactive why it closes the connection', async () => {
    const withPassword = (user: string, password: string) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(
          'sshpass',
          [
            ...['-p', password, 'ssh', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=info'],
            ...['-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password'],
            ...['-p', String(gatewayPort), '-l', user, '127.0.0.1', 'true'],
          ],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        );
        let stderr = '';
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.once('close', (code) => resolve({ code, stderr }));
      });
    const malformed = await withPassword('a:b:c:d', ADMIN_PASSWORD);
    expect(malformed.code).not.toBe(0);
    expect(malformed.stderr).toMatch(/Received disconnect from 127\.0\.0\.1 port \d+:11: The user name has too many ":" parts\./);
  });

  it('tells a user signing in by key who left out the device how to name one', async () => {
    await withAdminKey('forgot_device_key', async (keyFile) => {
      for (const user of ['admin', 'admin:', 'admin+']) {
        // The refusal comes at the key's first offer, before keyboard-interactive could show text;
        // OpenSSH's defaults too (no terminal: detached, so a prompt would fail rather than wait).
        for (const methods of ['publickey', 'publickey,keyboard-interactive,password']) {
          const child = spawn(
            'ssh',
            [
              ...['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes'],
              ...['-o', `PreferredAuthentications=${methods}`, '-i', keyFile, '-p', String(gatewayPort), '-l', user, '127.0.0.1', 'true'],
            ],
            { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
          );
          const run = await outcomeOf(child);
          expect(run.code, `${user} with ${methods}`).toBe(255);
          expect(run.stderr, `${user} with ${methods}`).toMatch(/Received disconnect from 127\.0\.0\.1 port \d+:11: .+/);
          expect(run.stderr, `${user} with ${methods}`).toContain(TARGET_FORMAT);
        }
      }
    });
  });

  it('audits every refused user name, and shows no invisible or text-direction character back', async () => {
    const before = await lastSeq();
    const hostile = ['a:b:c:d', 'fuzz:', 'admin:\u202epw-box', 'admin:pw\u200bbox', 'admin:pw-box:\u2066root'];
    const runs = [];
    for (const user of hostile) {
      // A UTF-8 locale: OpenSSH prints the gateway's text as it came, not octal escapes.
      const run = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(
          'sshpass',
          [
            ...['-p', ADMIN_PASSWORD, 'ssh', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'],
            ...['-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=keyboard-interactive', '-p', String(gatewayPort)],
            ...['-l', user, '127.0.0.1', 'true'],
          ],
          { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C.UTF-8' } },
        );
        let stderr = '';
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.once('close', (code) => resolve({ code, stderr }));
      });
      runs.push(run);
      expect(run.code, user).toBe(255);
    }
    const invisible = /[\u200b-\u200f\u202a-\u202e\u2066-\u2069]/;
    for (const run of runs) expect(run.stderr).not.toMatch(invisible);
    expect(runs[0]?.stderr).toContain('too many ":" parts');
    expect(runs[2]?.stderr).toContain('invisible or text-direction characters');
    const events = (await auditSince(before)).filter((e) => e.action.startsWith('gateway.'));
    expect(JSON.stringify(events)).not.toMatch(invisible);
    const refused = events.filter((e) => e.action === 'gateway.auth' && e.details.reason === 'malformed user name');
    expect(refused.map((e) => e.details.username)).toEqual([
      'a:b:c:d',
      'fuzz:',
      'admin:\\u{202e}pw-box',
      'admin:pw\\u{200b}box',
      'admin:pw-box:\\u{2066}root',
    ]);
    expect(refused[0]).toMatchObject({
      outcome: 'failure',
      details: { gateway: 'default', problem: expect.stringContaining('too many') as unknown },
    });
  });

  // OpenSSH itself refuses to send these; a hostile client sends them anyway.
  it.each([
    ['control characters', 'admin:pw\u0001box'],
    ['an escape sequence', 'admin:\u001b[2Jpw-box'],
    ['NUL', 'admin\u0000:pw-box'],
    ['a lone surrogate', 'admin:pw-box\ud800'],
    ['64 KiB', `admin:${'y'.repeat(65_536)}`],
  ])('refuses a user name with %s from a raw SSH client, and serves the next', async (_what, username) => {
    const outcome = await new Promise<string>((resolve) => {
      const client = new ssh2.Client();
      client.on('keyboard-interactive', (_name, _instructions, _lang, prompts, finish) => finish(prompts.map(() => ADMIN_PASSWORD)));
      client.on('ready', () => {
        client.end();
        resolve('signed in');
      });
      client.on('error', (error: Error & { level?: string }) => resolve(`refused (${error.level ?? 'error'})`));
      client.on('close', () => resolve('closed'));
      client.connect({ host: '127.0.0.1', port: gatewayPort, username, tryKeyboard: true, readyTimeout: 10_000 });
    });
    // ssh2 answers an instruction-only prompt by itself, so the message is not seen here (OpenSSH shows it, above).
    expect(outcome).not.toBe('signed in');
    const run = await ssh('admin:pw-box', ['echo next']);
    expect(run.stdout.toString(), run.stderr).toBe('next\n');
  });

  it('survives garbage on the port and keeps serving', async () => {
    const garbage = [
      randomBytes(4096),
      Buffer.from('SSH-2.0-x\r\n'),
      Buffer.concat([Buffer.from('SSH-2.0-x\r\n'), randomBytes(2048)]),
      Buffer.alloc(70_000, 0x41),
    ];
    for (const bytes of garbage) {
      await new Promise<void>((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port: gatewayPort }, () => socket.end(bytes));
        socket.on('data', () => undefined);
        socket.once('error', () => resolve());
        socket.once('close', () => resolve());
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 3000);
      });
    }
    const run = await ssh('admin:pw-box', ['echo still-here']);
    expect(run.stdout.toString()).toBe('still-here\n');
  });

  it('fuzz: hundreds of random user names and byte streams are refused cleanly, and the gateway keeps serving', async () => {
    // A seeded generator: a failure names the seed, and the same run can be repeated.
    const seed = Number(process.env.GATEHOUSE_FUZZ_SEED ?? Date.now() % 100_000);
    let state = seed;
    const next = () => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
    const pieces = [
      ':',
      '::',
      '/',
      'admin',
      'pw-box',
      'x',
      '',
      ' ',
      '\u0000',
      '\u0007',
      '\u001b[31m',
      '\r\n',
      'é',
      '日本',
      '\ud83d\ude00',
      '\ud800',
      '%n',
      '${x}',
      "'",
      '"',
      '\\',
      '../',
    ];
    const names = Array.from({ length: 300 }, () => {
      let name = Array.from({ length: 1 + Math.floor(next() * 8) }, () => pick(pieces)).join('');
      if (next() < 0.05) name += 'z'.repeat(Math.floor(next() * 5000));
      return name === 'admin:pw-box' ? 'admin:pw-box:x:' : name;
    });
    const tryName = (username: string) =>
      new Promise<string>((resolve) => {
        const client = new ssh2.Client();
        const timer = setTimeout(() => {
          client.end();
          resolve('timeout');
        }, 15_000);
        const done = (outcome: string) => {
          clearTimeout(timer);
          resolve(outcome);
        };
        client.on('keyboard-interactive', (_n, _i, _l, prompts, finish) => finish(prompts.map(() => 'not the password')));
        client.on('ready', () => {
          client.end();
          done('signed in');
        });
        client.on('error', () => done('refused'));
        client.on('close', () => done('closed'));
        client.connect({
          host: '127.0.0.1',
          port: gatewayPort,
          username,
          password: 'not the password',
          tryKeyboard: true,
          readyTimeout: 10_000,
        });
      });
    const outcomes: string[] = [];
    for (let i = 0; i < names.length; i += 20) outcomes.push(...(await Promise.all(names.slice(i, i + 20).map(tryName))));
    expect(
      outcomes.filter((o) => o === 'signed in' || o === 'timeout'),
      `seed ${seed}`,
    ).toEqual([]);
    await Promise.all(
      Array.from({ length: 50 }, () => {
        const bytes =
          next() < 0.5
            ? randomBytes(Math.floor(next() * 9000))
            : Buffer.concat([Buffer.from('SSH-2.0-fuzz\r\n'), randomBytes(Math.floor(next() * 9000))]);
        return new Promise<void>((resolve) => {
          const socket = net.connect({ host: '127.0.0.1', port: gatewayPort }, () => socket.end(bytes));
          socket.on('data', () => undefined);
          socket.once('error', () => resolve());
          socket.once('close', () => resolve());
          setTimeout(() => {
            socket.destroy();
            resolve();
          }, 5000);
        });
      }),
    );
    const run = await ssh('admin:pw-box', ['echo after-fuzz']);
    expect(run.stdout.toString(), `seed ${seed}`).toBe('after-fuzz\n');
    expect(server.stderr, `seed ${seed}`).not.toMatch(/uncaught|unhandled/i);
  });

  it('keeps a binary exec download (cat, rsync) as its size and SHA-256 and says so in a small recording', async () => {
    // World-readable, so the device's account can read it.
    const share = mkdtempSync('/tmp/gatehouse-download-');
    chmodSync(share, 0o755);
    const file = path.join(share, 'payload.bin');
    const payload = randomBytes(8 * 1024 * 1024);
    writeFileSync(file, payload, { mode: 0o644 });
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const into = path.join(dir, 'rsync-copy.bin');
    const rsh = `ssh -p ${gatewayPort} -l admin:pw-box -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o PubkeyAuthentication=no`;
    let cat: Awaited<ReturnType<typeof runClient>>;
    let rsync: { code: number | null; stderr: string };
    try {
      cat = await runClient('ssh', ['-p', String(gatewayPort), 'admin:pw-box@127.0.0.1', `cat ${file}; echo done >&2`], {
        password: ADMIN_PASSWORD,
        timeoutMs: 120_000,
      });
      // rsync over the gateway: its protocol on stdout is not text either.
      rsync = await new Promise((resolve) => {
        const child = spawn('sshpass', ['-p', ADMIN_PASSWORD, 'rsync', '-e', rsh, `127.0.0.1:${file}`, into], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.once('close', (code) => resolve({ code, stderr }));
      });
    } finally {
      rmSync(share, { recursive: true, force: true });
    }
    expect(cat.code, cat.stderr).toBe(0);
    expect(sha(cat.stdout)).toBe(sha(payload));
    expect(rsync.code, rsync.stderr).toBe(0);
    expect(sha(readFileSync(into))).toBe(sha(payload));
    const catCast = (await recording((await endedSession((s) => s.command === `cat ${file}; echo done >&2`))?.id)).body;
    const rsyncCast = (await recording((await endedSession((s) => s.command?.startsWith('rsync --server --sender') === true))?.id)).body;
    const perMib = (cast: string) => Math.round(Buffer.byteLength(cast) / (payload.length / (1024 * 1024)));
    console.log(`recording bytes per MiB downloaded by exec: cat ${perMib(catCast)}, rsync ${perMib(rsyncCast)}`);

    const [header, ...events] = catCast
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    // No terminal was asked for: the recording claims none.
    expect(header).not.toHaveProperty('env');
    expect(markersOf(catCast)).toEqual([
      expect.stringContaining('stdout is not text from byte 0 on'),
      `Gatehouse: stdout not recorded: ${payload.length} of ${payload.length} bytes; SHA-256 of all stdout: ${sha(payload)}`,
    ]);
    // stderr is text, and recorded as it is.
    expect(events).toContainEqual([expect.any(Number), 'o', 'done\n']);
    const summary = markersOf(rsyncCast).find((m) => m.startsWith('Gatehouse: stdout not recorded:'));
    expect(summary).toMatch(/^Gatehouse: stdout not recorded: (\d+) of \1 bytes; SHA-256 of all stdout: [0-9a-f]{64}$/);
    expect(Number(/(\d+) of/.exec(summary ?? '')?.[1])).toBeGreaterThan(payload.length);
    expect(Buffer.byteLength(catCast)).toBeLessThan(4096);
    expect(Buffer.byteLength(rsyncCast)).toBeLessThan(4096);
  });

  it('never lets a vaulted credential reach the sessions, the audit log or the server log', async () => {
    const seen = [
      (await server.request(`${API}/sessions?limit=500`, { headers: { authorization: `Bearer ${token}` } })).body,
      (await server.request(`${API}/audit/export`, { headers: { authorization: `Bearer ${token}` } })).body,
      server.stdout,
      server.stderr,
    ].join('\n');
    expect(seen).toContain('pw-box');
    for (const secret of [PW_USER_PASSWORD, 'key passphrase', 'BEGIN OPENSSH PRIVATE KEY']) expect(seen).not.toContain(secret);
  });

  // Last: it stops the server.
  it('closes the recording and ends the session when the server stops mid-session', async () => {
    const running = ssh('admin:pw-box', ['echo started-$((1+1)); sleep 60']);
    const active = await activeSession((s) => s.command?.includes('sleep 60') === true);
    await expect.poll(() => recordedOutput(active.id), { timeout: 30_000, interval: 100 }).toContain('started-2');
    const stopped = await server.stop();
    expect(stopped.code).toBe(0);
    const run = await running;
    expect(run.stdout.toString()).toContain('started-2');
    expect(run.stderr, `code ${run.code} ${JSON.stringify(run.stderr)}`).toContain('The gateway is stopping.');
    expect(run.code).not.toBe(0);

    server = await startServer({ dataDir: server.dataDir, env: { GATEHOUSE_GATEWAY_PORT: String(gatewayPort) } });
    const ended = (await sessions()).find((s) => s.id === active.id);
    expect(ended).toMatchObject({ result: 'failure', reason: 'The gateway is stopping.' });
    expect(ended?.endedAt).not.toBeNull();
    const cast = await server.request(`${API}/sessions/${active.id}/recording`, { headers: { authorization: `Bearer ${token}` } });
    const lines = cast.body.trimEnd().split('\n');
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ version: 2 });
    expect(
      lines
        .slice(1)
        .map((l) => (JSON.parse(l) as [number, string, string])[2])
        .join(''),
    ).toContain('started-2');
    const audit = await allAuditSince(0);
    expect(audit).toContainEqual(
      expect.objectContaining({
        action: 'session.end',
        outcome: 'failure',
        details: expect.objectContaining({ sessionId: active.id }) as unknown,
      }),
    );
  });

  it('ends the session and leaves a readable recording when the server is killed mid-session (kill -9)', async () => {
    const running = ssh('admin:pw-box', ['echo killed-$((2+2)); sleep 60']);
    const active = await activeSession((s) => s.command?.includes('killed-') === true);
    // The gateway flushes the recording every 250 ms: wait until the echo is on disk.
    await expect.poll(() => recordedOutput(active.id), { timeout: 30_000, interval: 100 }).toContain('killed-4');
    server.kill();
    await server.exited;
    const run = await running;
    expect(run.code).not.toBe(0);
    // Simulate the worst case too: a write cut off in the middle of a line.
    const file = recordingFiles().find((f) => f.includes(active.id));
    expect(file).toBeDefined();
    writeFileSync(path.join(server.dataDir, 'recordings', file ?? ''), '[1.5, "o", "half a li', { flag: 'a' });

    server = await startServer({ dataDir: server.dataDir, env: { GATEHOUSE_GATEWAY_PORT: String(gatewayPort) } });
    const ended = (await sessions()).find((s) => s.id === active.id);
    expect(ended).toMatchObject({ result: 'failure' });
    expect(ended?.reason).toContain('The gateway stopped before the session ended');
    const cast = await server.request(`${API}/sessions/${active.id}/recording`, { headers: { authorization: `Bearer ${token}` } });
    const [header, ...events] = cast.body
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    expect(header).toMatchObject({ version: 2 });
    expect(events.map((e) => (e as [number, string, string])[2]).join('')).toContain('killed-4');
    expect(cast.body.endsWith('\n')).toBe(true);
    const end = (await allAuditSince(0)).find((e) => e.action === 'session.end' && e.details.sessionId === active.id);
    expect(end).toMatchObject({ outcome: 'failure', details: { device: 'pw-box', kind: 'exec' } });
  });
});
