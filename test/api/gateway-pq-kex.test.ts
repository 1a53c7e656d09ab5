import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRemoteGateway, type RunningRemoteGateway, type SshGateway } from '@gatehouse/gateway';
import pino from 'pino';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, auditEvents, type AuditEventView } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { startBuiltInGateway } from '../support/built-in-gateway.js';
import { dialects } from '../support/db.js';
import { freePort } from '../support/sshd.js';

const PQ = 'mlkem768x25519-sha256';
const OLD = 'curve25519-sha256';

interface Attempt {
  outcome: 'signed in' | 'refused';
  /** The key exchange negotiated. */
  kex: string | null;
  /** The description of the gateway's SSH_MSG_DISCONNECT, as ssh2's debug output shows it. */
  disconnect: string | null;
}

/** One ssh2 connection with a password, offering only `kex` (or ssh2's own list, ML-KEM first). */
function connect(port: number, username: string, password: string, kex?: string, localAddress?: string): Promise<Attempt> {
  return new Promise((resolve) => {
    const client = new ssh2.Client();
    const attempt: Attempt = { outcome: 'refused', kex: null, disconnect: null };
    client.on('handshake', (negotiated) => (attempt.kex = negotiated.kex));
    client.on('ready', () => {
      attempt.outcome = 'signed in';
      client.end();
    });
    client.on('error', () => undefined);
    client.on('close', () => resolve(attempt));
    client.connect({
      host: '127.0.0.1',
      port,
      username,
      password,
      readyTimeout: 30_000,
      ...(localAddress ? { localAddress } : {}),
      ...(kex ? { algorithms: { kex: [kex as ssh2.KexAlgorithm] } } : {}),
      debug: (line: string) => {
        const m = /Received DISCONNECT \(\d+, "(.*)"\)$/s.exec(line);
        if (m) attempt.disconnect = m[1] ?? null;
      },
    });
  });
}

/**
 * The gateway setting that requires a post-quantum key exchange of users' SSH clients: the
 * API (administrators only, audited), and its effect on the built-in gateway and on a
 * remote gateway's own SSH entry, with ssh2 clients limited to curve25519 or offering ML-KEM.
 */
describe.each(dialects)('requiring a post-quantum key exchange on %s', (dialect) => {
  let t: TestApp;
  let builtIn: SshGateway;
  let remote: RunningRemoteGateway;
  let dir: string;
  let admin: { id: string; username: string; token: string };
  let olga: { id: string; username: string; password: string; token: string };

  const settings = (token: string, body?: unknown) =>
    t.request(body === undefined ? 'GET' : 'PUT', `${API}/gateway-settings`, { token, ...(body === undefined ? {} : { body }) });
  const refusals = async (gateway: string) =>
    (
      (await auditEvents(t, admin.token, { action: 'gateway.auth', outcome: 'denied' })) as (AuditEventView & { ip: string | null })[]
    ).filter((e) => e.details.gateway === gateway);

  beforeAll(async () => {
    t = await createTestApp(dialect);
    dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-pq-kex-'));
    admin = await t.userWithToken('admin');
    olga = await t.userWithToken('operator');
    builtIn = await startBuiltInGateway(t, path.join(dir, 'recordings'));
    const serverKey = (await t.request('GET', `${API}/gateways/server-key`, { token: admin.token })).json<{ publicKey: string }>()
      .publicKey;
    remote = await startRemoteGateway(
      {
        host: '127.0.0.1',
        managementPort: 0,
        dataDir: path.join(dir, 'remote'),
        serverKey,
        logLevel: 'silent',
        sshPort: await freePort(),
        agentPort: 0,
        targetTimeoutSeconds: 5,
      },
      pino({ level: 'silent' }),
    );
    const created = await t.request('POST', `${API}/gateways`, {
      token: admin.token,
      body: { name: 'pq-remote', address: `127.0.0.1:${remote.managementPort}`, publicKey: remote.identity.publicKey },
    });
    expect(created.statusCode, created.body).toBe(201);
  });
  afterAll(async () => {
    await builtIn?.stop();
    await remote?.close();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is changed by administrators only, off by default, and the change is audited', async () => {
    const auditor = await t.userWithToken('auditor');
    expect((await settings(auditor.token)).json()).toEqual({ tunnelMode: false, portForwarding: false, requirePostQuantumKex: false });
    expect((await settings(olga.token, { requirePostQuantumKex: true })).statusCode).toBe(403);
    expect((await settings(auditor.token, { requirePostQuantumKex: true })).statusCode).toBe(403);
    const bad = await settings(admin.token, { requirePostQuantumKex: 'yes' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ error: { issues: { path: string }[] } }>().error.issues.map((i) => i.path)).toEqual(['requirePostQuantumKex']);

    const on = await settings(admin.token, { requirePostQuantumKex: true });
    expect(on.statusCode, on.body).toBe(200);
    expect(on.json()).toEqual({ tunnelMode: false, portForwarding: false, requirePostQuantumKex: true });
    expect((await settings(auditor.token)).json()).toMatchObject({ requirePostQuantumKex: true });
    const [event] = await auditEvents(t, admin.token, { action: 'gateway.settings' });
    expect(event).toMatchObject({
      actorName: admin.username,
      outcome: 'success',
      details: { fields: ['requirePostQuantumKex'], changes: { requirePostQuantumKex: { before: false, after: true } } },
    });
  });

  it('refuses a client limited to curve25519 at the built-in gateway with what to upgrade to, audited; ML-KEM clients sign in', async () => {
    await settings(admin.token, { requirePostQuantumKex: true });
    const old = await connect(builtIn.port, `${olga.username}:box`, olga.password, OLD);
    expect(old).toMatchObject({ outcome: 'refused', kex: OLD });
    expect(old.disconnect).toBe(
      `This gateway requires a post-quantum key exchange, and your SSH client negotiated ${OLD}. ` +
        `Upgrade to OpenSSH 9.9 or later, or use an SSH client that offers ${PQ}.`,
    );
    expect(await connect(builtIn.port, `${olga.username}:box`, olga.password)).toMatchObject({ outcome: 'signed in', kex: PQ });
    // Refused before any sign-in was tried: no password was checked, so none failed or succeeded.
    const [refused] = await refusals('default');
    expect(refused).toMatchObject({
      actorId: null,
      actorName: `${olga.username}:box`,
      ip: '127.0.0.1',
      details: { reason: 'key exchange not post-quantum', kex: OLD, username: `${olga.username}:box` },
    });
    const signIns = await auditEvents(t, admin.token, { action: 'gateway.auth', actor: olga.username });
    expect(signIns.map((e) => e.outcome)).toEqual(['success']);
    // The secret the client sent is nowhere in the records.
    expect(JSON.stringify(await auditEvents(t, admin.token, {}))).not.toContain(olga.password);

    await settings(admin.token, { requirePostQuantumKex: false });
    expect(await connect(builtIn.port, `${olga.username}:box`, olga.password, OLD)).toMatchObject({ outcome: 'signed in', kex: OLD });
  });

  it("refuses it at a remote gateway's SSH entry too, as the server decides and audits under that gateway's name", async () => {
    const port = remote.ssh!.port;
    await settings(admin.token, { requirePostQuantumKex: true });
    // The entry asks the server over its link, which the registration's sync has just opened.
    await expect
      .poll(async () => (await connect(port, `${olga.username}:box`, olga.password, OLD)).disconnect, { timeout: 20_000 })
      .toMatch(/requires a post-quantum key exchange.*OpenSSH 9\.9/);
    expect(await connect(port, `${olga.username}:box`, olga.password)).toMatchObject({ outcome: 'signed in', kex: PQ });
    expect((await refusals('pq-remote'))[0]).toMatchObject({ details: { reason: 'key exchange not post-quantum', kex: OLD } });

    await settings(admin.token, { requirePostQuantumKex: false });
    expect(await connect(port, `${olga.username}:box`, olga.password, OLD)).toMatchObject({ outcome: 'signed in', kex: OLD });
  });

  it('refuses every one of 30 old clients arriving at once, audits at most the refusal limit from one address, and lets ML-KEM ones in', async () => {
    await settings(admin.token, { requirePostQuantumKex: true });
    const from = '127.0.0.7';
    const attempts = await Promise.all([
      ...Array.from({ length: 30 }, () => connect(builtIn.port, `${olga.username}:box`, olga.password, OLD, from)),
      ...Array.from({ length: 5 }, () => connect(builtIn.port, `${olga.username}:box`, olga.password, undefined, from)),
    ]);
    expect(attempts.slice(0, 30).map((a) => a.outcome)).toEqual(Array<string>(30).fill('refused'));
    expect(attempts.slice(0, 30).every((a) => a.disconnect?.includes('OpenSSH 9.9'))).toBe(true);
    expect(attempts.slice(30).map((a) => a.outcome)).toEqual(Array<string>(5).fill('signed in'));
    // The refusal audit's limit per address and window (20 by default): the rest are counted, not written.
    expect((await refusals('default')).filter((e) => e.ip === from)).toHaveLength(20);
    await settings(admin.token, { requirePostQuantumKex: false });
  });
});
