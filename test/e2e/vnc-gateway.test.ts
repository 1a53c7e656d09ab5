import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { decodeRfbRecording } from '@gatehouse/core';
import { vncAuthResponse, vncPasswordFile } from '@gatehouse/gateway';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freeLowPort } from '../support/agent.js';
import { consoleDesktop } from '../support/console-desktop.js';
import { RfbRefusedError, RfbTestClient } from '../support/rfb-client.js';
import { seedDevice, setupAdminToken } from '../support/seed.js';
import {
  baseEnv,
  cli,
  e2eDatabase,
  gatehouseBin,
  killServers,
  removeTempDirs,
  startServer,
  tempDir,
  type E2eDatabase,
  type GatehouseServer,
  savedToken,
} from '../support/server.js';
import { startVncTarget, stopVncTargets, VNC_TARGET_COLOUR, VNC_TARGET_SIZE, type RunningVncTarget } from '../support/vnc.js';

const ADMIN_PASSWORD = 'vnc gateway admin';
const VNC_PASSWORD = 'vault-pw';

interface Session {
  id: string;
  kind: string | null;
  result: string;
  reason: string | null;
  bytesIn: number;
  bytesOut: number;
  recorded: boolean;
  endedAt: string | null;
}

interface AuditEvent {
  action: string;
  outcome: string;
  targetId: string | null;
  details: Record<string, unknown>;
}

/**
 * VNC through the built-in gateway, end to end: the built `gatehouse server` with its VNC
 * port, a real TigerVNC target holding the vaulted password, one-time tokens, and
 * `xtigervncviewer` (under Xvfb) as the user's viewer; the refusals, an administrator's end,
 * the server's stop and the console's WebSocket through an in-process RFB client, which
 * reads SecurityResult's reason as a viewer shows it.
 */
describe('VNC gateway', () => {
  let dir: string;
  let database: E2eDatabase;
  let server: GatehouseServer;
  let target: RunningVncTarget;
  let token: string;
  let vncPort: number;
  let serverEnv: Record<string, string>;
  const ids: Record<string, string> = {};
  const children: ChildProcess[] = [];

  const api = async <T>(method: string, route: string, body?: unknown): Promise<T> => server.api<T>(token, method, route, body);
  const sessionsOf = async (deviceId: string) => (await api<{ items: Session[] }>('GET', `/sessions?deviceId=${deviceId}`)).items;
  const recordings = () => {
    const root = path.join(server.dataDir, 'recordings');
    return existsSync(root) ? readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.rfb')) : [];
  };
  const issue = async (deviceId: string, as = token) =>
    server.api<{ id: string; token: string; address: string }>(as, 'POST', `/devices/${deviceId}/vnc-token`, {});
  /**
   * An operator with a grant on the Lab project, signed in with the CLI (made once): the
   * cases below issue their tokens as her, as tokens are limited to 10 a minute per user.
   */
  let operator: Promise<{ credentials: string; token: string }> | undefined;
  const vera = () =>
    (operator ??= (async () => {
      const password = 'vnc gateway operator';
      const { projectId } = await api<{ projectId: string }>('GET', `/devices/${ids.desk}`);
      const user = await api<{ id: string }>('POST', '/users', { username: 'vera', role: 'operator', password });
      await api('POST', '/grants', { userId: user.id, projectId });
      const file = path.join(dir, 'vera.json');
      const login = await cli(['login', '--url', server.url, '--ca', server.certFile, '--username', 'vera', '--password-stdin'], {
        stdin: `${password}\n`,
        env: { GATEHOUSE_CREDENTIALS: file },
      });
      expect(login.code, login.stderr).toBe(0);
      return { credentials: file, token: savedToken(file) };
    })());
  /** The reason the gateway gave the client for refusing `password`. */
  const refusal = async (password: string): Promise<string> => {
    const error = await RfbTestClient.connect(vncPort, { password }).then(
      (client) => {
        client.close();
        throw new Error('The gateway let the client in.');
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RfbRefusedError);
    return (error as RfbRefusedError).reason;
  };
  /** A statement on the server's PostgreSQL database. */
  const query = async <R extends object = object>(text: string, values: unknown[]): Promise<R[]> => {
    const client = new pg.Client({ connectionString: database.env.DATABASE_URL });
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end();
    }
  };
  /** The `session.start` failure event the gateway wrote for `deviceId` with `reason`. */
  const startFailure = async (deviceId: string, reason: string) => {
    const events = await api<{ items: AuditEvent[] }>('GET', `/audit/events?action=session.start&outcome=failure&targetId=${deviceId}`);
    return events.items.find((e) => e.details.reason === reason);
  };

  beforeAll(async () => {
    dir = tempDir('gatehouse-vnc-');
    // PostgreSQL: the expired token is made by moving its expiry into the past in the database.
    database = await e2eDatabase('postgres');
    vncPort = await freeLowPort();
    target = await startVncTarget({ kind: 'tigervnc', password: VNC_PASSWORD });
    serverEnv = {
      ...database.env,
      GATEHOUSE_GATEWAY_PORT: String(await freeLowPort()),
      GATEHOUSE_VNC_PORT: String(vncPort),
      // Every client here comes from 127.0.0.1: the refused tokens must not throttle the address.
      GATEHOUSE_LOCKOUT_THRESHOLD: '50',
    };
    server = await startServer({ dataDir: path.join(dir, 'data'), env: serverEnv });
    await vi.waitFor(() => expect(server.stdout).toContain(`VNC viewers connect on port ${vncPort}`));
    ({ token } = await setupAdminToken(server, ADMIN_PASSWORD, dir));
    const lab = await api<{ id: string }>('POST', '/projects', { name: 'Lab' });
    const plant = await api<{ id: string }>('POST', '/projects', { name: 'Plant' });
    const desk = async (key: string, projectId: string, port: number, password: string) => {
      const seed = { projectId, name: key, protocols: ['vnc'], urlPort: `vnc://127.0.0.1:${port}`, account: { username: 'vnc', password } };
      ids[key] = (await seedDevice(server, token, seed)).deviceId;
    };
    await desk('desk', lab.id, target.port, VNC_PASSWORD);
    await desk('stale', lab.id, target.port, 'not-it-1');
    await desk('gone', lab.id, await freeLowPort(), VNC_PASSWORD);
    await desk('plant-desk', plant.id, target.port, VNC_PASSWORD);
    await api('PATCH', `/projects/${plant.id}`, { maintenanceRequired: true });
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    killServers();
    await stopVncTargets();
    await database?.drop();
    removeTempDirs();
  });

  /** A display for the viewers, started once. */
  let display: Promise<string> | undefined;
  /** xtigervncviewer with `password` (in a 0600 password file) on `address` (`host::port`), under Xvfb; its stderr so far. */
  const startViewer = async (password: string, address: string) => {
    const passwordFile = path.join(dir, `viewer-passwd-${children.length}`);
    writeFileSync(passwordFile, vncPasswordFile(password), { mode: 0o600 });
    display ??= startXvfb(children);
    const viewer = spawn('xtigervncviewer', ['-PasswordFile', passwordFile, address], {
      env: { ...process.env, DISPLAY: await display },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(viewer);
    let output = '';
    viewer.stderr.on('data', (d: Buffer) => (output += d.toString()));
    return { viewer, output: () => output };
  };
  /** The newest vnc session of the desk once it is live and its recording holds frames (what the viewer was sent). */
  const liveRecordedSession = async (diagnostics: () => string) => {
    await expect
      .poll(async () => (await sessionsOf(ids.desk as string)).find((s) => s.kind === 'vnc')?.result, {
        timeout: 20_000,
        message: diagnostics(),
      })
      .toBe('active');
    const [live] = await sessionsOf(ids.desk as string);
    const file = () => recordings().find((f) => f.endsWith(`${live?.id}.rfb`));
    await expect.poll(() => file(), { timeout: 10_000 }).toBeDefined();
    const recording = () => readFileSync(path.join(server.dataDir, 'recordings', file() as string));
    await expect.poll(() => decodeRfbRecording(recording()).frames.length, { timeout: 20_000, message: diagnostics() }).toBeGreaterThan(0);
    return { live: live as Session, recording };
  };
  /** The session once it ended as the viewer closing it ends it. */
  const endedWell = async (id: string) => {
    await expect
      .poll(async () => (await sessionsOf(ids.desk as string)).find((s) => s.id === id)?.result, { timeout: 15_000 })
      .toBe('success');
    const ended = (await sessionsOf(ids.desk as string)).find((s) => s.id === id);
    expect(ended).toMatchObject({ kind: 'vnc', result: 'success', recorded: true });
    expect(ended?.bytesIn).toBeGreaterThan(0);
    expect(ended?.bytesOut).toBeGreaterThan(0);
    return ended;
  };

  it('relays xtigervncviewer with a one-time token, records the session and ends it when the viewer quits', async () => {
    // The token as the console gets it.
    const { token: oneTime, address } = await issue(ids.desk as string);
    expect(address).toBe(`127.0.0.1:${vncPort}`);
    const { viewer, output } = await startViewer(oneTime, `127.0.0.1::${vncPort}`);
    const { live, recording } = await liveRecordedSession(output);

    viewer.kill('SIGTERM');
    await endedWell(live.id);
    const decoded = decodeRfbRecording(recording());
    expect(decoded.header).toMatchObject({
      width: VNC_TARGET_SIZE.width,
      height: VNC_TARGET_SIZE.height,
      protocol: 'vnc',
      name: 'Lab/desk:vnc',
    });
    expect(decoded.frames.reduce((n, f) => n + f.data.length, 0)).toBeGreaterThan(0);

    // The token was good once.
    expect(await refusal(oneTime)).toMatch(/used/);
  });

  it('lets xtigervncviewer in with the address and token `gatehouse vnc` prints', async () => {
    const printed = await cli(['vnc', 'Lab/desk', '--url', server.url, '--ca', server.certFile, '--minutes', '2'], {
      env: { GATEHOUSE_CREDENTIALS: (await vera()).credentials },
    });
    expect(printed.code, printed.stderr).toBe(0);
    const match = /^Connect a VNC viewer to (\S+):(\d+) and type the one-time password (\S{8}) \(good once, until \d\d:\d\d UTC\)\.$/m.exec(
      printed.stdout,
    );
    expect(match, printed.stdout).not.toBeNull();
    const [, host, port, oneTime] = match as RegExpExecArray;
    expect(`${host}:${port}`).toBe(`127.0.0.1:${vncPort}`);

    const { viewer, output } = await startViewer(oneTime as string, `${host}::${port}`);
    const { live } = await liveRecordedSession(output);
    viewer.kill('SIGTERM');
    await endedWell(live.id);
    expect(await refusal(oneTime as string)).toMatch(/used/);
  });

  it('starts xtigervncviewer itself with `gatehouse vnc --viewer`, and removes the password file when it ends', async () => {
    // The CLI's temporary directory, where the password file is made.
    const tmp = tempDir('gatehouse-vnc-cli-');
    const run = spawn(process.execPath, [gatehouseBin, 'vnc', 'desk', '--viewer', '--url', server.url, '--ca', server.certFile], {
      env: baseEnv({ GATEHOUSE_CREDENTIALS: (await vera()).credentials, DISPLAY: await (display ??= startXvfb(children)), TMPDIR: tmp }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(run);
    let output = '';
    run.stdout.on('data', (d: Buffer) => (output += d.toString()));
    run.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => run.once('close', (code) => resolve(code)));

    const { live } = await liveRecordedSession(() => output);
    expect(output).toContain(`Starting xtigervncviewer for desk (vnc) through 127.0.0.1:${vncPort}.`);
    // The token reached the viewer in a private file only, not on the CLI's output.
    expect(output).not.toMatch(/one-time password/);
    const [passwordDir] = readdirSync(tmp);
    expect(statSync(path.join(tmp, passwordDir as string)).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(tmp, passwordDir as string, 'passwd')).mode & 0o777).toBe(0o600);

    // Stopping the CLI (as Ctrl-C does) stops the viewer, which ends the session.
    run.kill('SIGTERM');
    expect(await exited, output).toBe(0);
    expect(readdirSync(tmp)).toEqual([]);
    await endedWell(live.id);
  });

  it('closes the device connection and starts no session when the viewer hangs up while the device is being connected', async () => {
    // A device that takes the connection and never speaks: the gateway's handshake with it waits (15 s by default).
    const deviceSide: net.Socket[] = [];
    const silent = net.createServer((socket) => {
      socket.on('error', () => undefined);
      deviceSide.push(socket);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { projectId } = await api<{ projectId: string }>('GET', `/devices/${ids.desk}`);
      const device = await api<{ id: string }>('POST', '/devices', {
        projectId,
        name: 'silent-desk',
        provider: 'on-prem',
        protocols: ['vnc'],
        privateIp: '127.0.0.1',
        urlPort: `vnc://127.0.0.1:${(silent.address() as net.AddressInfo).port}`,
      });
      await api('POST', '/accounts', { deviceId: device.id, username: 'vnc', password: VNC_PASSWORD });
      const { token: oneTime } = await issue(device.id, (await vera()).token);

      // A viewer's handshake by hand, up to its VncAuth answer; then it hangs up.
      const viewer = net.connect({ host: '127.0.0.1', port: vncPort });
      const read = bytesOf(viewer);
      expect((await read(12)).toString('latin1')).toBe('RFB 003.008\n');
      viewer.write('RFB 003.008\n', 'latin1');
      expect([...(await read(2))]).toEqual([1, 2]);
      viewer.write(Buffer.of(2));
      viewer.write(vncAuthResponse(await read(16), oneTime));
      await vi.waitFor(() => expect(deviceSide).toHaveLength(1), { timeout: 10_000 });
      const deviceClosed = new Promise((resolve) => deviceSide[0]?.once('close', resolve));
      const hungUp = performance.now();
      viewer.destroy();
      await deviceClosed;
      expect(performance.now() - hungUp).toBeLessThan(5000);

      await expect.poll(async () => (await sessionsOf(device.id)).length, { timeout: 10_000 }).toBe(1);
      const [failed] = await sessionsOf(device.id);
      expect(failed).toMatchObject({ result: 'failure', recorded: false, reason: 'The user hung up before the desktop was open.' });
      expect(await startFailure(device.id, failed?.reason as string)).toBeDefined();
      expect(deviceSide).toHaveLength(1);
    } finally {
      silent.close();
    }
  });

  it('refuses a token used at once by several clients to all but one', async () => {
    const { token: oneTime } = await issue(ids.desk as string);
    const tries = await Promise.allSettled(Array.from({ length: 5 }, () => RfbTestClient.connect(vncPort, { password: oneTime })));
    const admitted = tries.flatMap((t) => (t.status === 'fulfilled' ? [t.value] : []));
    expect(admitted).toHaveLength(1);
    await admitted[0]?.waitForColour(10, 10, VNC_TARGET_COLOUR);
    admitted[0]?.close();
    await expect.poll(async () => (await sessionsOf(ids.desk as string))[0]?.result, { timeout: 10_000 }).toBe('success');
  });

  it('tells the client why it was refused, audits the failure and records nothing', async () => {
    const before = recordings();
    // The device refuses the vaulted password.
    let reason = await refusal((await issue(ids.stale as string)).token);
    expect(reason).toContain('refused the vaulted VNC password');
    expect(await startFailure(ids.stale as string, reason)).toBeDefined();
    // Nothing listens on the device's port.
    reason = await refusal((await issue(ids.gone as string)).token);
    expect(reason).toContain('refused the connection');
    expect(await startFailure(ids.gone as string, reason)).toBeDefined();
    // An expired token (its expiry moved into the past, as the clock would).
    const expired = await issue(ids.desk as string);
    const client = new pg.Client({ connectionString: database.env.DATABASE_URL });
    await client.connect();
    try {
      await client.query('update desktop_tokens set expires_at = $1 where id = $2', [
        new Date(Date.now() - 60_000).toISOString(),
        expired.id,
      ]);
    } finally {
      await client.end();
    }
    expect(await refusal(expired.token)).toMatch(/expired/);
    // A token nobody issued.
    expect(await refusal('nothing1')).toBeTruthy();
    // The project needs a maintenance window and none is open.
    reason = await refusal((await issue(ids['plant-desk'] as string)).token);
    expect(reason).toContain('needs an approved maintenance window');
    // Those two were refused before any connection: their own events say why.
    const refusals = async (action: string, outcome: string) =>
      (await api<{ items: AuditEvent[] }>('GET', `/audit/events?action=${action}&outcome=${outcome}`)).items.map((e) => e.details.reason);
    expect(await refusals('desktop.token_redeemed', 'failure')).toContain('expired');
    expect(await refusals('gateway.authorize', 'denied')).toContain('no maintenance window');
    expect(recordings()).toEqual(before);
    for (const device of ['stale', 'gone']) {
      const [failed] = await sessionsOf(ids[device] as string);
      expect(failed).toMatchObject({ result: 'failure', recorded: false });
    }
  });

  it('ends a live VNC session when an administrator ends it', async () => {
    const viewer = await RfbTestClient.connect(vncPort, { password: (await issue(ids.desk as string)).token });
    await viewer.waitForColour(10, 10, VNC_TARGET_COLOUR);
    const [live] = await sessionsOf(ids.desk as string);
    expect(live).toMatchObject({ kind: 'vnc', result: 'active' });
    await api('POST', `/sessions/${live?.id}/end`, { reason: 'Desk maintenance' });
    await viewer.waitFor(() => viewer.isClosed);
    const [ended] = await sessionsOf(ids.desk as string);
    expect(ended).toMatchObject({ id: live?.id, result: 'failure', recorded: true });
    expect(ended?.reason).toContain('Desk maintenance');
  });

  it('opens the desktop in the console WebSocket for a signed-in user, and refuses without the CSRF token', async () => {
    const { csrfToken, open, firstMessage } = await consoleDesktop(server, 'admin', ADMIN_PASSWORD);

    expect(await firstMessage(open({ csrfToken: 'guess', deviceId: ids.desk }))).toMatchObject({ type: 'error' });
    const down = await firstMessage(open({ csrfToken, deviceId: ids.gone }));
    expect(down).toMatchObject({ type: 'error' });
    expect(down.message).toContain('refused the connection');

    const ws = open({ csrfToken, deviceId: ids.desk });
    const started = await firstMessage(ws);
    expect(started).toMatchObject({ type: 'started', target: 'Lab/desk:vnc', recorded: true });
    const viewer = await RfbTestClient.over(started.stream as Duplex);
    await viewer.waitForColour(10, 10, VNC_TARGET_COLOUR);
    viewer.close();
    await expect
      .poll(async () => (await sessionsOf(ids.desk as string)).find((s) => s.id === started.sessionId)?.result, { timeout: 10_000 })
      .toBe('success');
  });

  it('ends live desktop sessions when the server stops', async () => {
    const viewer = await RfbTestClient.connect(vncPort, { password: (await issue(ids.desk as string)).token });
    await viewer.waitForColour(10, 10, VNC_TARGET_COLOUR);
    const [live] = await sessionsOf(ids.desk as string);
    expect(live).toMatchObject({ kind: 'vnc', result: 'active' });
    await server.stop();
    await viewer.waitFor(() => viewer.isClosed);
    const rows = await query<{ result: string; reason: string | null; ended_at: string | null }>(
      'select result, reason, ended_at from gateway_sessions where id = $1',
      [live?.id],
    );
    expect(rows[0]).toMatchObject({ result: 'failure', reason: 'The gateway is stopping.' });
    expect(rows[0]?.ended_at).not.toBeNull();
  });

  it('cuts the recording of a session a killed server left open back to its last whole frame', async () => {
    server = await startServer({ dataDir: server.dataDir, env: serverEnv });
    await vi.waitFor(() => expect(server.stdout).toContain(`VNC viewers connect on port ${vncPort}`));
    const viewer = await RfbTestClient.connect(vncPort, { password: (await issue(ids.desk as string)).token });
    await viewer.waitForColour(10, 10, VNC_TARGET_COLOUR);
    const [live] = await sessionsOf(ids.desk as string);
    expect(live).toMatchObject({ kind: 'vnc', result: 'active' });
    const file = path.join(server.dataDir, 'recordings', recordings().find((f) => f.endsWith(`${live?.id}.rfb`)) as string);
    // The recorder writes every 250 ms: wait until a frame is on disk.
    await expect.poll(() => decodeRfbRecording(readFileSync(file)).frames.length, { timeout: 10_000 }).toBeGreaterThan(0);
    server.kill();
    await server.exited;
    await viewer.waitFor(() => viewer.isClosed);
    const onDisk = readFileSync(file);
    const frames = decodeRfbRecording(onDisk).frames;
    const last = frames.at(-1) as { data: Uint8Array };
    // What a player reads: up to the end of the last whole frame.
    const whole = onDisk.subarray(0, last.data.byteOffset - onDisk.byteOffset + last.data.length);
    // The worst case too: a write cut off in the middle of a frame (a head announcing 4096 bytes, and 100 of them).
    const head = Buffer.alloc(8);
    head.writeUInt32BE(4096, 4);
    writeFileSync(file, Buffer.concat([head, Buffer.alloc(100, 7)]), { flag: 'a' });

    server = await startServer({ dataDir: server.dataDir, env: serverEnv });
    const ended = (await sessionsOf(ids.desk as string)).find((s) => s.id === live?.id);
    expect(ended).toMatchObject({ result: 'failure', recorded: true });
    expect(ended?.reason).toContain('The gateway stopped before the session ended');
    expect(readFileSync(file)).toEqual(whole);
    expect(decodeRfbRecording(readFileSync(file)).frames).toHaveLength(frames.length);
  });
});

/** An Xvfb for the viewer on a display it picks itself (-displayfd). */
function startXvfb(children: ChildProcess[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('Xvfb', ['-displayfd', '3', '-nolisten', 'tcp', '-screen', '0', '1024x768x24'], {
      stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    });
    children.push(child);
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => resolve(`:${d.toString().trim()}`));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`Xvfb exited (${code})`)));
  });
}

/** Reads exact byte counts from a socket, in order. */
function bytesOf(socket: net.Socket): (count: number) => Promise<Buffer> {
  let buffered = Buffer.alloc(0);
  let waiting: (() => void) | undefined;
  socket.on('data', (data: Buffer) => {
    buffered = Buffer.concat([buffered, data]);
    waiting?.();
  });
  return async (count) => {
    while (buffered.length < count) await new Promise<void>((resolve) => (waiting = resolve));
    const out = buffered.subarray(0, count);
    buffered = buffered.subarray(count);
    return out;
  };
}
