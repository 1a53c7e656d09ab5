import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import type { AuditEvent, GatewaySession } from '@gatehouse/api';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freeLowPort } from '../support/agent.js';
import { runOnServerDatabase } from '../support/e2e-sql.js';
import {
  baseEnv,
  cli,
  e2eDatabase,
  gatehouseBin,
  killServers,
  removeTempDirs,
  setupAdmin,
  startServer,
  tempDir,
  type E2eDatabase,
  type GatehouseServer,
  savedToken,
} from '../support/server.js';
import { TEST_USER_PASSWORD } from '../support/sshd.js';
import { startXrdp, type XrdpTarget } from '../../bench/xrdp.js';

const API = '/api/v1';
const RDP_USER = 'gh-rdp-tunnel';
const ADMIN_PASSWORD = 'rdp tunnel admin password';
const OPERATOR_PASSWORD = 'rdp tunnel operator password';

type Session = GatewaySession;

/** A long-running child and what it printed so far. */
interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Running {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let [out, err] = ['', ''];
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

describe('gatehouse rdp: native RDP clients through the built-in gateway, with xrdp and xfreerdp', () => {
  let dir: string;
  let server: GatehouseServer;
  let xrdp: XrdpTarget;
  let xvfb: Running;
  let display: string;
  let token: string;
  let rdpPort: number;
  let adminCredentials: string;
  let olgaCredentials: string;
  const ids = { project: '', rdpBox: '', deadBox: '', sshBox: '', olga: '' };
  const children: Running[] = [];

  const api = async <T>(method: string, route: string, body?: unknown, as = token): Promise<T> => {
    const res = await server.request(`${API}${route}`, { method, body, headers: { authorization: `Bearer ${as}` } });
    if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${res.body}`);
    return (res.body === '' ? undefined : JSON.parse(res.body)) as T;
  };
  const sessions = async () => (await api<{ items: Session[] }>('GET', '/sessions?limit=500')).items;
  const lastSeq = async () => (await api<{ items: AuditEvent[] }>('GET', '/audit/events?limit=1')).items[0]?.seq ?? 0;
  const auditSince = async (seq: number) =>
    (await api<{ items: AuditEvent[] }>('GET', `/audit/events?afterSeq=${seq}&order=asc&limit=1000`)).items;
  const waitFor = <T>(what: string, find: () => Promise<T | undefined> | T | undefined, timeout = 30_000) =>
    vi.waitFor(
      async () => {
        const value = await find();
        if (value === undefined || value === false) throw new Error(`Not yet: ${what}`);
        return value;
      },
      { timeout, interval: 100 },
    );
  /** `gatehouse rdp …` running until it is stopped; resolves once its tunnel listens. */
  const gatehouseRdp = async (args: string[], opts: { credentials?: string; env?: NodeJS.ProcessEnv } = {}) => {
    const env = baseEnv({ GATEHOUSE_CREDENTIALS: opts.credentials ?? adminCredentials, DISPLAY: undefined, ...opts.env });
    const port = args.includes('--port') ? [] : ['--port', String(await freeLowPort())];
    const cliRun = run(process.execPath, [gatehouseBin, 'rdp', '--url', server.url, '--ca', server.certFile, ...port, ...args], env);
    children.push(cliRun);
    const listening = await waitFor(`gatehouse rdp listening (stdout: ${cliRun.stdout()} stderr: ${cliRun.stderr()})`, () => {
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(cliRun.stdout());
      return match ? Number(match[1]) : undefined;
    });
    return { ...cliRun, port: listening };
  };
  const logins = () => xrdp.log().split(`login successful for user ${RDP_USER} `).length - 1;
  /** One tunnel connection made by hand: TLS to the gateway, a ticket, and the gateway's one-line answer. */
  const tunnelAnswer = (ticket: string, localAddress = '127.0.0.1') =>
    new Promise<string>((resolve, reject) => {
      const tcp = net.connect({ host: '127.0.0.1', port: rdpPort, localAddress });
      const socket = tls.connect({ socket: tcp, servername: 'localhost', ca: readFileSync(server.certFile) }, () =>
        socket.write(`GATEHOUSE-RDP/1 ${ticket}\n`),
      );
      let answer = '';
      socket.setEncoding('utf8').on('data', (s: string) => {
        answer += s;
        if (answer.includes('\n')) {
          socket.destroy();
          resolve(answer.trim());
        }
      });
      socket.once('error', reject);
      socket.once('close', () => resolve(answer.trim()));
    });
  const issue = (deviceId: string, as = token) =>
    api<{ id: string; ticket: string; address: string; expiresAt: string }>('POST', `/devices/${deviceId}/rdp-tunnel`, {}, as);

  beforeAll(async () => {
    dir = tempDir('gatehouse-rdp-');
    xrdp = await startXrdp({ user: RDP_USER, password: TEST_USER_PASSWORD });
    for (let n = 200 + Math.floor(Math.random() * 300); ; n++) {
      if (existsSync(`/tmp/.X11-unix/X${n}`) || existsSync(`/tmp/.X${n}-lock`)) continue;
      display = `:${n}`;
      break;
    }
    xvfb = run('Xvfb', [display, '-screen', '0', '1024x768x24', '-nolisten', 'tcp'], baseEnv());
    await waitFor('Xvfb', () => existsSync(`/tmp/.X11-unix/X${display.slice(1)}`));

    rdpPort = await freeLowPort();
    server = await startServer({
      dataDir: path.join(dir, 'data'),
      env: { GATEHOUSE_GATEWAY_PORT: String(await freeLowPort()), GATEHOUSE_RDP_PORT: String(rdpPort) },
    });
    adminCredentials = path.join(dir, 'admin.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: adminCredentials } });
    token = savedToken(adminCredentials);

    const project = await api<{ id: string }>('POST', '/projects', { name: 'Desks' });
    ids.project = project.id;
    const device = async (name: string, protocols: string[], urlPort: string) =>
      (
        await api<{ id: string }>('POST', '/devices', {
          projectId: project.id,
          name,
          provider: 'on-prem',
          protocols,
          privateIp: '127.0.0.1',
          urlPort,
        })
      ).id;
    ids.rdpBox = await device('rdp-box', ['rdp'], `rdp://127.0.0.1:${xrdp.port}`);
    ids.deadBox = await device('dead-rdp', ['rdp'], `rdp://127.0.0.1:${await freeLowPort()}`);
    ids.sshBox = await device('ssh-only', ['ssh'], '22');
    for (const deviceId of [ids.rdpBox, ids.deadBox, ids.sshBox])
      await api('POST', '/accounts', { deviceId, username: RDP_USER, password: TEST_USER_PASSWORD });
    ids.olga = (await api<{ id: string }>('POST', '/users', { username: 'olga', role: 'operator', password: OPERATOR_PASSWORD })).id;
    olgaCredentials = path.join(dir, 'olga.json');
    const login = await cli(['login', '--url', server.url, '--ca', server.certFile, '--username', 'olga', '--password-stdin'], {
      stdin: `${OPERATOR_PASSWORD}\n`,
      env: { GATEHOUSE_CREDENTIALS: olgaCredentials },
    });
    expect(login.code, login.stderr).toBe(0);
  });

  afterAll(async () => {
    for (const c of children) c.child.kill('SIGKILL');
    xvfb?.child.kill('SIGTERM');
    killServers();
    await xrdp?.stop();
    removeTempDirs();
  });

  it('tunnels xfreerdp to xrdp, which signs the user in; the session has its bytes and duration, and audit events', async () => {
    const seq = await lastSeq();
    const tunnel = await gatehouseRdp(['rdp-box', '--no-client']);
    expect(tunnel.stdout()).toContain(`xfreerdp /v:127.0.0.1:${tunnel.port} /u:${RDP_USER}`);
    expect(tunnel.stdout()).toMatch(/mstsc/);
    const before = logins();
    const started = performance.now();
    const client = run(
      'xfreerdp',
      [`/v:127.0.0.1:${tunnel.port}`, `/u:${RDP_USER}`, `/p:${TEST_USER_PASSWORD}`, '/cert:ignore'],
      baseEnv({ DISPLAY: display }),
    );
    children.push(client);
    await waitFor(`xrdp logs the login (xfreerdp: ${client.stderr()}; tunnel: ${tunnel.stderr()})`, () => logins() > before);
    console.log(`xfreerdp through gatehouse rdp to an xrdp login: ${Math.round(performance.now() - started)} ms`);
    client.child.kill('SIGTERM');
    await client.exited;

    const ended = await waitFor('the rdp session ended', async () => {
      const mine = (await sessions()).filter((s) => s.kind === 'rdp' && s.deviceName === 'rdp-box');
      return mine.length > 0 && mine.every((s) => s.endedAt !== null) ? mine : undefined;
    });
    const main = ended.reduce((a, b) => (a.bytesOut >= b.bytesOut ? a : b));
    expect(main).toMatchObject({ username: 'admin', accountUsername: RDP_USER, result: 'success', recorded: false });
    expect(main.bytesIn).toBeGreaterThan(1000);
    expect(main.bytesOut).toBeGreaterThan(1000);
    expect(Date.parse(main.endedAt ?? '') - Date.parse(main.startedAt)).toBeGreaterThan(0);

    const events = await auditSince(seq);
    expect(events.find((e) => e.action === 'desktop.token_issued')?.details).toMatchObject({ protocol: 'rdp', device: 'rdp-box' });
    expect(events.find((e) => e.action === 'desktop.token_redeemed' && e.outcome === 'success')?.details).toMatchObject({
      protocol: 'rdp',
      first: true,
    });
    expect(events.find((e) => e.action === 'session.start' && e.details.sessionId === main.id)).toMatchObject({
      outcome: 'success',
      details: { kind: 'rdp', recorded: false, device: 'rdp-box' },
    });
    const end = events.find((e) => e.action === 'session.end' && e.details.sessionId === main.id);
    expect(end).toMatchObject({ outcome: 'success', details: { kind: 'rdp', bytesIn: main.bytesIn, bytesOut: main.bytesOut } });
    expect(end?.details.durationMs).toBeGreaterThan(0);

    tunnel.child.kill('SIGTERM');
    expect(await tunnel.exited).toBe(0);
  });

  it('starts xfreerdp itself with --client, passing what follows --; stopping gatehouse rdp stops it', async () => {
    const before = logins();
    const tunnel = await gatehouseRdp(['rdp-box', '--client', '--', '/cert:ignore', `/p:${TEST_USER_PASSWORD}`], {
      env: { DISPLAY: display },
    });
    // The line comes just after the one that says the tunnel listens, which is all gatehouseRdp waits for.
    await waitFor(`gatehouse rdp starts xfreerdp (${tunnel.stdout()})`, () => tunnel.stdout().includes('Starting xfreerdp'));
    expect(tunnel.stdout()).toMatch(/Starting xfreerdp \/v:127\.0\.0\.1:\d+ \/u:gh-rdp-tunnel \/cert:ignore/);
    await waitFor(`xrdp logs the login (${tunnel.stdout()} ${tunnel.stderr()})`, () => logins() > before);
    tunnel.child.kill('SIGTERM');
    expect(await tunnel.exited).toBe(0);
    await waitFor('no rdp session left open', async () => (await sessions()).every((s) => s.kind !== 'rdp' || s.endedAt !== null));
  });

  it('refuses forged and elsewhere-used tickets, with audit events; one run reuses its ticket', async () => {
    const seq = await lastSeq();
    expect(await tunnelAnswer('00000000-0000-4000-8000-000000000000.AAAAAAAA')).toMatch(/^ERROR The tunnel ticket is not valid/);
    expect(await tunnelAnswer('not a ticket at all')).toMatch(/^ERROR This port takes \.\/gatehouse rdp tunnels only/);
    const issued = await issue(ids.rdpBox);
    expect(await tunnelAnswer(`${issued.id}.wrongsec`)).toMatch(/^ERROR The tunnel ticket is not valid/);

    // Ten connections at once from one address (an RDP client's reconnects): all get through.
    const answers = await Promise.all(Array.from({ length: 10 }, () => tunnelAnswer(issued.ticket)));
    expect(
      answers.every((a) => a.startsWith('OK ')),
      answers.join('\n'),
    ).toBe(true);
    // From another address the same ticket is refused.
    expect(await tunnelAnswer(issued.ticket, '127.0.0.2')).toMatch(/^ERROR The tunnel ticket is in use from another address/);

    // Two addresses racing for a fresh ticket: exactly one claims it.
    const fresh = await issue(ids.rdpBox);
    const race = await Promise.all([tunnelAnswer(fresh.ticket, '127.0.0.3'), tunnelAnswer(fresh.ticket, '127.0.0.4')]);
    expect(
      race.filter((a) => a.startsWith('OK ')),
      race.join('\n'),
    ).toHaveLength(1);

    const refused = (await auditSince(seq)).filter((e) => e.action === 'desktop.token_redeemed' && e.outcome === 'failure');
    expect(refused.map((e) => e.details.reason)).toEqual(expect.arrayContaining(['no such ticket', 'used from another address']));
    for (const e of refused) expect(JSON.stringify(e)).not.toContain(issued.ticket.split('.')[1]);
    await waitFor('the hand-made sessions ended', async () => (await sessions()).every((s) => s.kind !== 'rdp' || s.endedAt !== null));
  });

  it('refuses a device without a grant, a grant revoked since the ticket, a device without RDP, and a device that is down', async () => {
    const noGrant = await cli(['rdp', 'rdp-box', '--no-client', '--url', server.url, '--ca', server.certFile], {
      env: { GATEHOUSE_CREDENTIALS: olgaCredentials },
    });
    expect(noGrant.code).not.toBe(0);
    expect(noGrant.stderr).toMatch(/names no device you can see/);
    const olgaToken = savedToken(olgaCredentials);
    const denied = await server.request(`${API}/devices/${ids.rdpBox}/rdp-tunnel`, {
      method: 'POST',
      body: {},
      headers: { authorization: `Bearer ${olgaToken}` },
    });
    expect(denied.status).toBe(404);

    // A grant lets her in; revoked while her tunnel runs, the next connection is refused.
    const grant = await api<{ id: string }>('POST', '/grants', { userId: ids.olga, projectId: ids.project, deviceId: ids.rdpBox });
    const tunnel = await gatehouseRdp(['rdp-box', '--no-client'], { credentials: olgaCredentials });
    await api('DELETE', `/grants/${grant.id}`);
    const seq = await lastSeq();
    const local = net.connect({ host: '127.0.0.1', port: tunnel.port });
    await new Promise((resolve) => local.once('close', resolve));
    expect(tunnel.stderr()).toMatch(/gatehouse rdp: There is no device .* you may use/);
    expect((await auditSince(seq)).find((e) => e.action === 'gateway.authorize')).toMatchObject({
      outcome: 'denied',
      actorName: 'olga',
      details: { protocol: 'rdp', reason: 'no grant for the device' },
    });
    tunnel.child.kill('SIGTERM');
    await tunnel.exited;

    const sshOnly = await server.request(`${API}/devices/${ids.sshBox}/rdp-tunnel`, {
      method: 'POST',
      body: {},
      headers: { authorization: `Bearer ${token}` },
    });
    expect(sshOnly.status).toBe(409);
    expect(sshOnly.body).toMatch(/does not list RDP among its protocols/);

    // A device nobody listens on: the connection fails, as a failed session with its reason.
    const deadSeq = await lastSeq();
    const dead = await issue(ids.deadBox);
    expect(await tunnelAnswer(dead.ticket)).toMatch(/^ERROR (default: )?dead-rdp \(127\.0\.0\.1:\d+\) refused the connection/);
    expect((await auditSince(deadSeq)).find((e) => e.action === 'session.start')).toMatchObject({
      outcome: 'failure',
      details: { device: 'dead-rdp', reason: expect.stringMatching(/refused the connection/) as unknown },
    });
  });
});

/**
 * An expired ticket, on both databases: the expiry is compared in the redeeming statement,
 * whose timestamps are text on SQLite and PostgreSQL alike. No RDP peer is needed: the
 * gateway refuses before it dials.
 */
describe.each(['sqlite', 'postgres'] as const)('gatehouse rdp: an expired ticket on %s', (dialect) => {
  let database: E2eDatabase;
  let server: GatehouseServer;
  let token: string;
  let rdpPort: number;
  let deviceId: string;

  beforeAll(async () => {
    database = await e2eDatabase(dialect);
    rdpPort = await freeLowPort();
    server = await startServer({
      dataDir: path.join(tempDir('gatehouse-rdp-expiry-'), 'data'),
      env: { ...database.env, GATEHOUSE_GATEWAY_PORT: String(await freeLowPort()), GATEHOUSE_RDP_PORT: String(rdpPort) },
    });
    const credentials = path.join(path.dirname(server.dataDir), 'admin.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    token = savedToken(credentials);
    const project = await server.api<{ id: string }>(token, 'POST', '/projects', { name: 'Desks' });
    deviceId = (
      await server.api<{ id: string }>(token, 'POST', '/devices', {
        projectId: project.id,
        name: 'rdp-box',
        provider: 'on-prem',
        protocols: ['rdp'],
        privateIp: '127.0.0.1',
        urlPort: `rdp://127.0.0.1:${await freeLowPort()}`,
      })
    ).id;
    await server.api(token, 'POST', '/accounts', { deviceId, username: RDP_USER, password: TEST_USER_PASSWORD });
  });

  afterAll(async () => {
    killServers();
    await database?.drop();
    removeTempDirs();
  });

  /** Moves a ticket's expiry into the past in the server's database, as minutes passing would. */
  const expire = async (id: string) =>
    expect(
      await runOnServerDatabase(dialect, { dataDir: server.dataDir, database }, 'UPDATE desktop_tokens SET expires_at = $1 WHERE id = $2', [
        new Date(Date.now() - 1000).toISOString(),
        id,
      ]),
    ).toBe(1);

  it('refuses it with the time it expired, audited without the secret', async () => {
    const seq = (await server.api<{ items: AuditEvent[] }>(token, 'GET', '/audit/events?limit=1')).items[0]?.seq ?? 0;
    const expired = await server.api<{ id: string; ticket: string }>(token, 'POST', `/devices/${deviceId}/rdp-tunnel`, {});
    await expire(expired.id);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: rdpPort, servername: 'localhost', ca: readFileSync(server.certFile) }, () =>
        socket.write(`GATEHOUSE-RDP/1 ${expired.ticket}\n`),
      );
      let text = '';
      socket.setEncoding('utf8').on('data', (s: string) => (text += s));
      socket.once('error', reject);
      socket.once('close', () => resolve(text.trim()));
    });
    expect(answer).toMatch(/^ERROR The tunnel ticket expired at \d\d:\d\d UTC/);
    const events = (await server.api<{ items: AuditEvent[] }>(token, 'GET', `/audit/events?afterSeq=${seq}&order=asc&limit=1000`)).items;
    const refused = events.find((e) => e.action === 'desktop.token_redeemed' && e.outcome === 'failure');
    expect(refused).toMatchObject({ actorName: 'admin', details: { desktopTokenId: expired.id, reason: 'expired' } });
    expect(JSON.stringify(events)).not.toContain(expired.ticket.split('.')[1]);
    // Nothing was dialled for it.
    expect((await server.api<{ items: Session[] }>(token, 'GET', '/sessions')).items).toEqual([]);
  });
});
