import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { RunbookRunItemView, RunbookRunView } from '@gatehouse/api';
import SQLite from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AgentProcess, enrollAgent, freeLowPort, stopAgents } from '../support/agent.js';
import { ageKeygen, RestartableS3rver, runBreakGlassExport, s3rverBreakGlassSettings } from '../support/breakglass-e2e.js';
import { freeRanges, ip, isRoot } from '../support/netns.js';
import { killServers, removeTempDirs, setupAdmin, startServer, tempDir, type GatehouseServer, savedToken } from '../support/server.js';
import { runClient } from '../support/ssh-client.js';
import { ensureSystemUser, generateKeyPair, TEST_USER_PASSWORD, TestSshd } from '../support/sshd.js';

const API = '/api/v1';
const ADMIN_PASSWORD = 'runbooks e2e admin password';
/** A user of the namespace device whose plain ssh login (no runbook) proves its sshd works. */
const VERIFY_USER = 'gh-test-pw';
/**
 * The namespace device's privileged account: passwordless sudo there (a sudoers file seen
 * only inside the device, see below) and a password sshd takes, since TroubleshootSSH
 * verifies by a new login as the privileged account, and a restored default config allows
 * root only with a key in /root/.ssh, which this machine's root must not get.
 */
const DEVICE_ADMIN = 'gh-rb-admin';
const DEVICE_ADMIN_PASSWORD = `adm-${randomBytes(9).toString('base64url')}`;
/** The account ResetAccess rotates (its own OS user: the shared gh-test-pw keeps its fixed password). */
const ROTATED_USER = 'gh-rot-e2e';
const FLEET = 100;
const fleetUser = (i: number) => `ghrot${String(i).padStart(3, '0')}`;
/** The machine's own ed25519 host key: served by the device's sshd, and by one started from a restored default config. */
const MACHINE_HOST_KEY = '/etc/ssh/ssh_host_ed25519_key';

const LINK = isRoot ? (freeRanges(['198.18.20', '198.19.20', '203.0.113', '198.51.100', '192.0.2'], 1)[0] as string) : '198.18.20';
const HOST_SIDE = `${LINK}.1`;
const DEVICE = `${LINK}.2`;

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

interface ErrorBody {
  error: { code: string; message: string };
}

/** One line per step, for failure messages. */
const describeItem = (item: RunbookRunItemView | undefined) =>
  item
    ? `${item.deviceName}: ${item.verdict ?? item.state}${item.error ? ` (${item.error})` : ''}\n${item.steps
        .map(
          (s) =>
            `  ${s.id} [${s.type}] ${s.status}: ${s.evidence}${s.output ? `\n    ${s.output.trim().split('\n').slice(-5).join('\n    ')}` : ''}`,
        )
        .join('\n')}${item.accounts.length ? `\n  accounts: ${JSON.stringify(item.accounts)}` : ''}`
    : 'no item';

/** Runs `fn` over `items`, `width` at a time. */
async function inBatches<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  return out;
}

/**
 * Runbooks against real OpenSSH (issue 20). One server for the file; its built-in gateway
 * carries every command (the engine signs in to it as the admin). Two sshd targets:
 * - a device in a network namespace of its own, sshd on port 22 there with a config in a
 *   temporary directory, reached through its host agent (enrolled and running in the
 *   namespace, commands as root) for TroubleshootSSH, and through a second device record
 *   without an agent for plain ssh logins and the unreachable case;
 * - an sshd on 127.0.0.1 and a low port, where root logs in with a key (the privileged
 *   account), for ResetAccess and the rotation after break glass over 100 devices.
 */
describe.skipIf(!isRoot)('runbooks against real OpenSSH: TroubleshootSSH, ResetAccess, rotation after break glass', () => {
  const tag = randomBytes(3).toString('hex');
  const ns = `gh-rb-${tag}`;
  /** The device's own /etc/sudoers.d (see DEVICE_ADMIN). */
  const deviceSudoers = `/etc/netns/${ns}/sudoers.d`;
  const hostIf = `ghr${tag}`;
  let dir: string;
  let server: GatehouseServer;
  let token: string;
  let gatewayPort: number;
  let agentPort: number;
  /** sshd on 127.0.0.1 for ResetAccess and the fleet; root logs in with rootKey. */
  let localSshd: TestSshd;
  let rootKey: string;

  const request = (method: string, route: string, body?: unknown) =>
    server.request(`${API}${route}`, { method, body, headers: { authorization: `Bearer ${token}` } });
  const api = <T>(method: string, route: string, body?: unknown) => server.api<T>(token, method, route, body);

  /** POST /runbook-runs (or /breakglass/rotations): 202 and the run, then polled until finished. */
  const startRun = async (route: string, body: unknown): Promise<RunbookRunView> => {
    const res = await request('POST', route, body);
    expect(res.status, res.body).toBe(202);
    return JSON.parse(res.body) as RunbookRunView;
  };
  const finished = (id: string, timeout = 90_000, onPoll?: (run: RunbookRunView) => void) =>
    vi.waitFor(
      async () => {
        const run = await api<RunbookRunView>('GET', `/runbook-runs/${id}`);
        onPoll?.(run);
        if (run.state !== 'finished') throw new Error(`run ${id} is ${run.state}: ${JSON.stringify(run.counts)}`);
        return run;
      },
      { timeout, interval: 250 },
    );
  /** One runbook on one device, to its end: the device's item. */
  const runOn = async (deviceId: string, body: Record<string, unknown>) => {
    const started = await startRun('/runbook-runs', { deviceIds: [deviceId], ...body });
    const run = await finished(started.id);
    expect(run.items).toHaveLength(1);
    return { run, item: run.items?.[0] as RunbookRunItemView };
  };
  const step = (item: RunbookRunItemView, id: string) => {
    const found = item.steps.find((s) => s.id === id);
    if (!found) throw new Error(`no step ${id}:\n${describeItem(item)}`);
    return found;
  };
  /** ssh through the built-in gateway as the admin: `<device>:<account>`. */
  const gatewaySsh = async (target: string, command: string) => {
    const r = await runClient('ssh', ['-p', String(gatewayPort), `admin:${target}@127.0.0.1`, command], { password: ADMIN_PASSWORD });
    return { code: r.code, stdout: r.stdout.toString('utf8'), stderr: r.stderr };
  };
  /** ssh straight to an sshd with a password, no gateway. */
  const directSsh = async (host: string, port: number, user: string, password: string) => {
    const r = await runClient('ssh', ['-p', String(port), `${user}@${host}`, 'echo logged-in'], { password });
    return { code: r.code, stdout: r.stdout.toString('utf8'), stderr: r.stderr };
  };
  /** ssh straight to an sshd with a private key file, no gateway. */
  const directKeySsh = (port: number, user: string, keyFile: string) =>
    new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
      const args = ['-p', String(port), '-i', keyFile, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes'];
      args.push('-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', `${user}@127.0.0.1`, 'echo logged-in');
      execFile('ssh', args, { timeout: 30_000 }, (error, stdout) => {
        if (error && typeof error.code !== 'number') return reject(new Error(error.message));
        resolve({ code: error ? (error.code as number) : 0, stdout });
      });
    });
  const createDevice = async (projectId: string, name: string, privateIp: string, port?: number) =>
    (
      await api<{ id: string }>('POST', '/devices', {
        projectId,
        name,
        provider: 'on-prem',
        protocols: ['ssh'],
        privateIp,
        ...(port === undefined ? {} : { urlPort: String(port) }),
      })
    ).id;
  const createAccount = async (deviceId: string, username: string, secrets: { password?: string; privateKey?: string } = {}) =>
    (await api<{ id: string }>('POST', '/accounts', { deviceId, username, ...secrets })).id;
  const reveal = (accountId: string) =>
    api<{ password: string | null; privateKey: string | null }>('POST', `/accounts/${accountId}/reveal`, { reason: 'runbooks e2e check' });
  const lastSeq = async () => (await api<{ items: { seq: number }[] }>('GET', '/audit/events?limit=1')).items[0]?.seq ?? 0;
  /** The audit events of `action` after `seq`. */
  const auditSince = async (seq: number, action: string) =>
    (
      await api<{ items: { action: string; outcome: string; targetId: string | null; details: Record<string, unknown> }[] }>(
        'GET',
        `/audit/events?afterSeq=${seq}&order=asc&limit=1000`,
      )
    ).items.filter((e) => e.action === action);
  /** The vault's other credentials of an account (pending, previous, unverified), read from the embedded database. */
  const otherCredentials = (accountId: string) => {
    const db = new SQLite(path.join(server.dataDir, 'gatehouse.sqlite'), { readonly: true });
    try {
      return db.prepare('SELECT state, run_id AS runId FROM account_credentials WHERE account_id = ?').all(accountId) as {
        state: string;
        runId: string | null;
      }[];
    } finally {
      db.close();
    }
  };

  beforeAll(async () => {
    dir = tempDir('gatehouse-runbooks-');
    gatewayPort = await freeLowPort('0.0.0.0');
    agentPort = await freeLowPort('0.0.0.0');
    ip('netns', 'add', ns);
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('addr', 'add', `${HOST_SIDE}/24`, 'dev', hostIf);
    ip('link', 'set', hostIf, 'up');
    ip('-n', ns, 'addr', 'add', `${DEVICE}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');

    server = await startServer({
      dataDir: path.join(dir, 'data'),
      env: {
        GATEHOUSE_GATEWAY_PORT: String(gatewayPort),
        GATEHOUSE_GATEWAY_HOST: '0.0.0.0',
        GATEHOUSE_AGENT_PORT: String(agentPort),
        GATEHOUSE_AGENT_ADDRESS: `${HOST_SIDE}:${agentPort}`,
      },
    });
    const credentials = path.join(dir, 'credentials.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    token = savedToken(credentials);

    const key = generateKeyPair(dir, 'root_key');
    rootKey = key.privateKey;
    localSshd = await TestSshd.start(path.join(dir, 'sshd-local'), {
      port: await freeLowPort(),
      // The fleet's rotation opens several logins per device, 8 devices at once.
      config: ['MaxStartups 200', 'MaxSessions 100'],
      rootKeyLogin: true,
    });
    localSshd.authorize('root', key.publicKey);
  });

  afterAll(async () => {
    await stopAgents();
    killServers();
    await localSshd?.stop();
    try {
      // The device's sshd (the test's, or one a runbook started) and whatever else runs there.
      for (const pid of ip('netns', 'pids', ns).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // No namespace: beforeAll failed early.
    }
    for (const args of [
      ['netns', 'del', ns],
      ['link', 'del', hostIf],
    ]) {
      try {
        ip(...args);
      } catch {
        // Not made, or gone with the namespace.
      }
    }
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    try {
      rmdirSync('/etc/netns');
    } catch {
      // Not empty (another namespace's files), or not there.
    }
    removeTempDirs();
  });

  // Scenario 4 comes first: the export it rotates holds only the fleet's accounts (the
  // other scenarios' accounts, the shared gh-test-pw among them, are made after it).
  describe(`rotation after break glass over ${FLEET} devices`, () => {
    const passwords = new Map<string, string>();
    let exportId: string;
    let fleetIds: string[];

    beforeAll(async () => {
      for (let i = 1; i <= FLEET; i++) {
        const password = `fleet-${randomBytes(9).toString('base64url')}`;
        passwords.set(fleetUser(i), password);
        ensureSystemUser(fleetUser(i), { password });
      }
      const project = await api<{ id: string }>('POST', '/projects', { name: 'Fleet' });
      fleetIds = await inBatches(
        Array.from({ length: FLEET }, (_, k) => k + 1),
        8,
        async (i) => {
          const id = await createDevice(project.id, `fleet-${String(i).padStart(3, '0')}`, '127.0.0.1', localSshd.port);
          await createAccount(id, fleetUser(i), { password: passwords.get(fleetUser(i)) as string });
          return id;
        },
      );

      // The export, to a local S3 server, as an administrator sets break glass up.
      const s3 = await RestartableS3rver.start(path.join(dir, 's3rver'), ['breakglass']);
      const identity = ageKeygen(dir);
      const settings = s3rverBreakGlassSettings({ endpoint: s3.endpoint, recipient: identity.recipient, prefix: 'runbooks/' });
      expect((await api<{ saved: boolean }>('PUT', '/breakglass/settings', settings)).saved).toBe(true);
      const exported = await runBreakGlassExport(api);
      exportId = exported.id;
      await s3.stop();
      expect(exported, JSON.stringify(exported)).toMatchObject({ result: 'success', counts: { accounts: FLEET } });

      // The privileged account of each device, added after the export: not in the file.
      await inBatches(fleetIds, 8, (id) => createAccount(id, 'root', { privateKey: rootKey }));
    }, 240_000);

    it('a dry run lists every device and account of the export and changes nothing', async () => {
      const started = await startRun('/breakglass/rotations', { export: exportId });
      expect(started).toMatchObject({ kind: 'breakglass-rotation', apply: false, breakglassRunId: exportId });
      const run = await finished(started.id, 120_000);
      expect(run.counts.total).toBe(FLEET);
      const items = run.items ?? [];
      expect(items).toHaveLength(FLEET);
      for (const item of items) {
        expect(
          item.accounts.map((a) => [a.username, a.result]),
          describeItem(item),
        ).toEqual([[item.accounts[0]?.username, 'would-rotate']]);
      }
      expect(new Set(items.map((i) => i.accounts[0]?.username))).toEqual(new Set(passwords.keys()));
      // The report says which credentials of the file still log in: before the rotation, all of them.
      expect(items.filter((i) => i.accounts[0]?.fileCredentialWorks !== true).map(describeItem)).toEqual([]);
      const first = await directSsh('127.0.0.1', localSshd.port, fleetUser(1), passwords.get(fleetUser(1)) as string);
      expect(first.stdout, first.stderr).toBe('logged-in\n');
    }, 180_000);

    it(`applied 8 at a time: every credential of the file rotated and verified, none from the file works any more`, async () => {
      const done: number[] = [];
      let mostRunning = 0;
      const t0 = performance.now();
      const started = await startRun('/breakglass/rotations', { export: exportId, apply: true, concurrency: 8 });
      const run = await finished(started.id, 600_000, (r) => {
        done.push(r.counts.done);
        mostRunning = Math.max(mostRunning, (r.items ?? []).filter((i) => i.state === 'running').length);
      });
      const seconds = (performance.now() - t0) / 1000;
      console.log(`rotate-after-breakglass: ${FLEET} devices in ${seconds.toFixed(1)} s (concurrency 8, one sshd on 127.0.0.1)`);
      const items = run.items ?? [];
      const bad = items.filter((i) => i.verdict !== 'SUCCESS' || i.accounts.some((a) => a.result !== 'rotated'));
      expect(bad.map(describeItem).join('\n')).toBe('');
      expect(run.counts).toMatchObject({ total: FLEET, done: FLEET, success: FLEET, failed: 0, unverified: 0 });
      for (const item of items)
        expect(
          item.accounts.map((a) => a.fileCredentialWorks),
          describeItem(item),
        ).toEqual([false]);
      // The progress moved while it ran, and never more than 8 devices at once.
      expect(
        done.some((d) => d > 0 && d < FLEET),
        done.join(','),
      ).toBe(true);
      expect(mostRunning).toBeLessThanOrEqual(8);
      // The file's password no longer logs in; the vault's new one does, through the gateway.
      const old = await directSsh('127.0.0.1', localSshd.port, fleetUser(1), passwords.get(fleetUser(1)) as string);
      expect(old.code).toBe(255);
      const viaGateway = await gatewaySsh(`fleet-001:${fleetUser(1)}`, 'id -un');
      expect(viaGateway.stdout, viaGateway.stderr).toBe(`${fleetUser(1)}\n`);
    }, 660_000);
  });

  /** ResetAccess's device and account, and the account's current password as the vault holds it. */
  let deviceId: string;
  let accountId: string;
  const initial = `rot-${randomBytes(9).toString('base64url')}`;
  let current = initial;

  describe('ResetAccess on sshd at 127.0.0.1, root logging in with a key', () => {
    beforeAll(async () => {
      ensureSystemUser(ROTATED_USER, { password: initial });
      rmSync(path.join('/home', ROTATED_USER, '.ssh'), { recursive: true, force: true });
      const project = await api<{ id: string }>('POST', '/projects', { name: 'Reset' });
      deviceId = await createDevice(project.id, 'reset-box', '127.0.0.1', localSshd.port);
      await createAccount(deviceId, 'root', { privateKey: rootKey });
      accountId = await createAccount(deviceId, ROTATED_USER, { password: initial });
    });

    it('password: the new one is set, verified and current; the old one is kept as previous and no longer logs in', async () => {
      const seq = await lastSeq();
      const { item } = await runOn(deviceId, {
        runbook: 'ResetAccess',
        apply: true,
        inputs: { account: ROTATED_USER, credential: 'password' },
      });
      expect(item.verdict, describeItem(item)).toBe('SUCCESS');
      expect(step(item, 'rotate').status).toBe('rotated');

      const revealed = await reveal(accountId);
      expect(revealed.password).toBeTruthy();
      expect(revealed.password).not.toBe(initial);
      current = revealed.password as string;
      const oldLogin = await directSsh('127.0.0.1', localSshd.port, ROTATED_USER, initial);
      expect(oldLogin.code).toBe(255);
      const newLogin = await directSsh('127.0.0.1', localSshd.port, ROTATED_USER, current);
      expect(newLogin.stdout, newLogin.stderr).toBe('logged-in\n');
      const viaGateway = await gatewaySsh(`reset-box:${ROTATED_USER}`, 'id -un');
      expect(viaGateway.stdout, viaGateway.stderr).toBe(`${ROTATED_USER}\n`);
      expect(otherCredentials(accountId).map((c) => c.state)).toEqual(['previous']);
      expect(await auditSince(seq, 'account.rotated')).toEqual([expect.objectContaining({ outcome: 'success', targetId: accountId })]);

      // Neither password in the run's answer, the server's output, or the recordings of its sessions.
      const shown = JSON.stringify(item) + server.stdout + server.stderr;
      for (const secret of [initial, current]) expect(shown).not.toContain(secret);
      const { items: sessions } = await api<{ items: { id: string; recorded: boolean }[] }>(
        'GET',
        `/sessions?deviceId=${deviceId}&limit=100`,
      );
      expect(sessions.length).toBeGreaterThan(0);
      for (const s of sessions.filter((x) => x.recorded)) {
        const cast = await request('GET', `/sessions/${s.id}/recording`);
        for (const secret of [initial, current]) expect(cast.body).not.toContain(secret);
      }
    });

    it('a rotation whose verification fails (a key sshd does not read) is FAILED: the old password still logs in and is still current', async () => {
      // This sshd reads authorized keys from its own directory, not ~/.ssh/authorized_keys.
      const seq = await lastSeq();
      const { item } = await runOn(deviceId, { runbook: 'ResetAccess', apply: true, inputs: { account: ROTATED_USER, credential: 'key' } });
      expect(item.verdict, describeItem(item)).toBe('FAILED');
      const rotate = step(item, 'rotate');
      expect(rotate.status, describeItem(item)).toBe('failed');
      expect(rotate.evidence).not.toBe('');

      const revealed = await reveal(accountId);
      expect(revealed).toMatchObject({ password: current, privateKey: null });
      const stillWorks = await directSsh('127.0.0.1', localSshd.port, ROTATED_USER, current);
      expect(stillWorks.stdout, stillWorks.stderr).toBe('logged-in\n');
      const viaGateway = await gatewaySsh(`reset-box:${ROTATED_USER}`, 'id -un');
      expect(viaGateway.stdout, viaGateway.stderr).toBe(`${ROTATED_USER}\n`);
      // The host was put back (no new key line left) and no pending credential is left in the vault.
      const authorized = path.join('/home', ROTATED_USER, '.ssh', 'authorized_keys');
      expect(existsSync(authorized) ? readFileSync(authorized, 'utf8').trim() : '').toBe('');
      expect(otherCredentials(accountId).map((c) => c.state)).toEqual(['previous']);
      expect(await auditSince(seq, 'account.rotation_failed')).toEqual([expect.objectContaining({ outcome: 'failure' })]);
      expect(await auditSince(seq, 'account.rotated')).toEqual([]);
    });
    it('key: where sshd reads ~/.ssh/authorized_keys, the new key is added, verified and current; the old key line is removed', async () => {
      // A second sshd that reads this user's keys from ~/.ssh/authorized_keys, as a default config does.
      const keySshd = await TestSshd.start(path.join(dir, 'sshd-keys'), {
        port: await freeLowPort(),
        rootKeyLogin: true,
        config: [`Match User ${ROTATED_USER}`, '  AuthorizedKeysFile .ssh/authorized_keys'],
      });
      try {
        keySshd.authorize('root', readFileSync(path.join(dir, 'root_key.pub'), 'utf8').trim());
        const old = generateKeyPair(dir, 'rotated_key');
        const home = path.join('/home', ROTATED_USER);
        mkdirSync(path.join(home, '.ssh'), { recursive: true, mode: 0o700 });
        writeFileSync(path.join(home, '.ssh', 'authorized_keys'), `${old.publicKey}\n`, { mode: 0o600 });
        execFileSync('chown', ['-R', `${ROTATED_USER}:`, path.join(home, '.ssh')]);
        const project = await api<{ id: string }>('POST', '/projects', { name: 'Keys' });
        const keysBox = await createDevice(project.id, 'keys-box', '127.0.0.1', keySshd.port);
        await createAccount(keysBox, 'root', { privateKey: rootKey });
        const keyAccount = await createAccount(keysBox, ROTATED_USER, { privateKey: old.privateKey });
        expect((await directKeySsh(keySshd.port, ROTATED_USER, old.file)).stdout).toBe('logged-in\n');

        // No credential input: an account with a key and no password gets a new key.
        const { item } = await runOn(keysBox, { runbook: 'ResetAccess', apply: true, inputs: { account: ROTATED_USER } });
        expect(item.verdict, describeItem(item)).toBe('SUCCESS');
        expect(step(item, 'rotate').status).toBe('rotated');
        const revealed = await reveal(keyAccount);
        expect(revealed.privateKey).toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----/);
        expect(revealed.privateKey).not.toBe(old.privateKey);
        const fresh = path.join(dir, 'fresh_key');
        writeFileSync(fresh, revealed.privateKey as string, { mode: 0o600 });
        expect((await directKeySsh(keySshd.port, ROTATED_USER, fresh)).stdout).toBe('logged-in\n');
        expect((await directKeySsh(keySshd.port, ROTATED_USER, old.file)).code).toBe(255);
        const lines = readFileSync(path.join(home, '.ssh', 'authorized_keys'), 'utf8')
          .trim()
          .split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).not.toContain(old.publicKey.split(' ')[1] as string);
        expect(otherCredentials(keyAccount).map((c) => c.state)).toEqual(['previous']);
        const viaGateway = await gatewaySsh(`keys-box:${ROTATED_USER}`, 'id -un');
        expect(viaGateway.stdout, viaGateway.stderr).toBe(`${ROTATED_USER}\n`);
      } finally {
        await keySshd.stop();
      }
    });
  });

  describe('TroubleshootSSH on a device whose sshd runs in its own network namespace, reached through its host agent', () => {
    const configDir = () => path.join(dir, 'device-sshd');
    const sshdConfig = () => path.join(configDir(), 'sshd_config');
    let deviceSshd: TestSshd | undefined;
    let agentDeviceId: string;
    /** The same machine as a device record without an agent: logins go to its sshd. */
    let plainDeviceId: string;
    let inputs: Record<string, string | number>;
    /** TroubleshootSSH on a device of this namespace, as DEVICE_ADMIN. */
    const troubleshoot = (id: string, apply: boolean) =>
      runOn(id, { runbook: 'TroubleshootSSH', apply, inputs, privilegedAccount: DEVICE_ADMIN });

    const sshdPids = () =>
      ip('netns', 'pids', ns)
        .split('\n')
        .filter(Boolean)
        .map(Number)
        .filter((pid) => {
          try {
            return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sshd';
          } catch {
            return false;
          }
        });
    const listening22 = () => ip('netns', 'exec', ns, 'ss', '-Hltn', 'sport = :22').trim() !== '';
    /** Every sshd in the namespace stopped (the test's, or a daemon a runbook started). */
    const stopSshd = async () => {
      await deviceSshd?.stop();
      deviceSshd = undefined;
      for (const pid of sshdPids()) process.kill(pid, 'SIGTERM');
      await vi.waitFor(
        () => {
          if (sshdPids().length > 0 || listening22()) throw new Error('sshd still runs in the device');
        },
        { timeout: 10_000, interval: 50 },
      );
    };
    /** A fresh sshd on the device's port 22, with the test's config (plus `extra` lines). */
    const startSshd = async (extra: string[] = []) => {
      await stopSshd();
      deviceSshd = await TestSshd.start(configDir(), {
        listenAddress: DEVICE,
        port: 22,
        netns: ns,
        hostKey: MACHINE_HOST_KEY,
        config: extra,
      });
    };

    beforeAll(async () => {
      ensureSystemUser(VERIFY_USER, { password: TEST_USER_PASSWORD });
      ensureSystemUser(DEVICE_ADMIN, { password: DEVICE_ADMIN_PASSWORD });
      // `ip netns exec` mounts /etc/netns/<ns>/<x> over /etc/<x> for what it starts (the agent
      // and its sessions): the device's /etc/sudoers.d lets DEVICE_ADMIN use sudo; the machine's is untouched.
      mkdirSync(deviceSudoers, { recursive: true, mode: 0o755 });
      writeFileSync(path.join(deviceSudoers, DEVICE_ADMIN), `${DEVICE_ADMIN} ALL=(ALL:ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
      await startSshd();
      const project = await api<{ id: string }>('POST', '/projects', { name: 'Devices' });
      agentDeviceId = await createDevice(project.id, 'ns-box', DEVICE, 22);
      plainDeviceId = await createDevice(project.id, 'ns-sshd', DEVICE, 22);
      for (const id of [agentDeviceId, plainDeviceId]) {
        await createAccount(id, DEVICE_ADMIN, { password: DEVICE_ADMIN_PASSWORD });
        await createAccount(id, VERIFY_USER, { password: TEST_USER_PASSWORD });
      }
      // direct: on a machine with systemd, auto would start the machine's own ssh service, not the namespace's.
      inputs = { sshdConfig: sshdConfig(), port: 22, serviceManager: 'direct' };

      // The agent: enrolled through a forwarder on this side of the link, then running as root in the namespace.
      const httpsPort = Number(new URL(server.url).port);
      const forwarder = net.createServer((socket) => {
        const upstream = net.connect({ host: '127.0.0.1', port: httpsPort });
        socket.pipe(upstream).pipe(socket);
        socket.once('error', () => upstream.destroy());
        upstream.once('error', () => socket.destroy());
      });
      await new Promise<void>((resolve) => forwarder.listen(0, HOST_SIDE, resolve));
      const { port: forwardedPort } = forwarder.address() as net.AddressInfo;
      const stateDir = path.join(dir, 'agent', 'state');
      const { installCommand } = await api<{ installCommand: string }>('POST', `/devices/${agentDeviceId}/agent-tokens`, {});
      const enrollment = await enrollAgent({ installCommand, stateDir, server: `https://${HOST_SIDE}:${forwardedPort}`, netns: ns });
      forwarder.close();
      expect(enrollment.result.code, enrollment.result.stderr).toBe(0);
      const agent = AgentProcess.start({ stateDir, netns: ns });
      await vi.waitFor(
        async () => {
          const view = (await api<{ agent: { linkState: string } | null }>('GET', `/devices/${agentDeviceId}/agent`)).agent;
          if (view?.linkState !== 'up') throw new Error(`the agent's link is not up:\n${agent.log}`);
        },
        { timeout: 15_000, interval: 100 },
      );
      const login = await gatewaySsh(`ns-sshd:${VERIFY_USER}`, 'id -un');
      expect(login.stdout, login.stderr).toBe(`${VERIFY_USER}\n`);
    }, 120_000);

    it('never a false SUCCESS: sshd runs and every check passes, but it refuses logins (DenyUsers *): FAILED, by the login', async () => {
      await startSshd(['DenyUsers *']);
      const { item } = await troubleshoot(agentDeviceId, true);
      expect(item.verdict, describeItem(item)).toBe('FAILED');
      const checks = item.steps.filter((s) => s.type === 'check');
      expect(checks.length).toBeGreaterThanOrEqual(6);
      expect(checks.filter((s) => s.status !== 'passed').map((s) => `${s.id}: ${s.status} ${s.evidence}`)).toEqual([]);
      const login = step(item, 'login');
      expect(login.status, describeItem(item)).toBe('failed');
      expect(login.evidence).not.toBe('');
      expect(item.steps.filter((s) => s.type === 'fix' && s.status !== 'skipped')).toEqual([]);
    });

    it('sshd merely stopped: the dry run finds it and changes nothing; apply starts it through the agent and verifies by a new login', async () => {
      await startSshd();
      await stopSshd();
      const dry = await troubleshoot(agentDeviceId, false);
      expect(dry.item.verdict, describeItem(dry.item)).toBe('FAILED');
      expect(step(dry.item, 'running').status).toBe('failed');
      expect(step(dry.item, 'listening').status).toBe('failed');
      expect(step(dry.item, 'start-sshd').status).toBe('would-fix');
      expect(step(dry.item, 'installed').status).toBe('passed');
      expect(sshdPids()).toEqual([]);
      expect(listening22()).toBe(false);

      // The same machine without an agent cannot be reached at all: FAILED, and it says so.
      const unreachable = await troubleshoot(plainDeviceId, true);
      expect(unreachable.item.verdict, describeItem(unreachable.item)).toBe('FAILED');
      expect([unreachable.item.error, ...unreachable.item.steps.map((s) => s.evidence)].join('\n'), describeItem(unreachable.item)).toMatch(
        /could not (be reached|connect)|unreachable|refused/i,
      );
      expect(listening22()).toBe(false);

      const applied = await troubleshoot(agentDeviceId, true);
      expect(applied.item.verdict, describeItem(applied.item)).toBe('SUCCESS');
      expect(step(applied.item, 'running').status).toBe('fixed');
      // Started by running's fix, sshd already listens on 22 when this check comes.
      expect(step(applied.item, 'listening').status).toBe('passed');
      expect(step(applied.item, 'login').status).toBe('passed');
      expect(listening22()).toBe(true);

      const login = await gatewaySsh(`ns-sshd:${VERIFY_USER}`, 'id -un');
      expect(login.stdout, login.stderr).toBe(`${VERIFY_USER}\n`);
    });

    it('sshd_config removed and sshd stopped: apply restores it (0644, root-owned), starts sshd and verifies by a new login', async () => {
      await stopSshd();
      rmSync(sshdConfig());
      const { item } = await troubleshoot(agentDeviceId, true);
      expect(item.verdict, describeItem(item)).toBe('SUCCESS');
      expect(step(item, 'config-present').status).toBe('fixed');
      expect(step(item, 'login').status).toBe('passed');
      const stat = statSync(sshdConfig());
      expect((stat.mode & 0o7777).toString(8)).toBe('644');
      expect([stat.uid, stat.gid]).toEqual([0, 0]);
      expect(readFileSync(sshdConfig(), 'utf8')).toMatch(/^Port 22$/m);
      const login = await gatewaySsh(`ns-sshd:${VERIFY_USER}`, 'id -un');
      expect(login.stdout, login.stderr).toBe(`${VERIFY_USER}\n`);
    });

    it('a device with no address, reached only through its agent: apply starts sshd but no login can verify it: CHANGED-BUT-UNVERIFIED', async () => {
      await startSshd();
      await stopSshd();
      await api('PATCH', `/devices/${agentDeviceId}`, { privateIp: null });
      try {
        const { item } = await troubleshoot(agentDeviceId, true);
        expect(item.verdict, describeItem(item)).toBe('CHANGED-BUT-UNVERIFIED');
        expect(step(item, 'running').status).toBe('fixed');
        expect(step(item, 'login')).toMatchObject({ status: 'skipped', evidence: expect.stringContaining('no IP address') as unknown });
        expect(listening22()).toBe(true);
      } finally {
        await api('PATCH', `/devices/${agentDeviceId}`, { privateIp: DEVICE });
      }
    });

    it('a device that requires a maintenance window, none open: the gateway refuses the run’s sign-in: FAILED, sshd not started', async () => {
      await startSshd();
      await stopSshd();
      await api('PATCH', `/devices/${agentDeviceId}`, { maintenanceRequired: true });
      try {
        const { item } = await troubleshoot(agentDeviceId, true);
        expect(item.verdict, describeItem(item)).toBe('FAILED');
        expect([item.error, ...item.steps.map((s) => s.evidence)].join('\n'), describeItem(item)).toContain(
          'ns-box needs an approved maintenance window',
        );
        expect(item.steps.filter((s) => s.type === 'fix' && s.status !== 'skipped')).toEqual([]);
        expect(sshdPids()).toEqual([]);
      } finally {
        await api('PATCH', `/devices/${agentDeviceId}`, { maintenanceRequired: false });
      }
    });

    it('refuses bad input with 400 naming the problem, and changes nothing on any host', async () => {
      await startSshd();
      const configBefore = sha256(sshdConfig());
      const pidsBefore = sshdPids();
      const runsBefore = (await api<{ items: { id: string }[] }>('GET', '/runbook-runs?limit=500')).items.length;
      const bad = async (route: string, body: unknown) => {
        const res = await request('POST', route, body);
        expect(res.status, res.body).toBe(400);
        return (JSON.parse(res.body) as ErrorBody).error.message;
      };

      expect(await bad('/runbooks', { yaml: 'name: Broken\nversion: 1\nsteps: [\n' })).toMatch(/YAML/);
      const unknownType = await bad('/runbooks', {
        yaml: 'name: Reboot\nversion: 1\nsteps:\n  - id: reboot-now\n    type: reboot\n    title: reboot it\n    run: reboot\n',
      });
      expect(unknownType).toContain('steps[0] (reboot-now).type');
      expect(unknownType).toContain('unknown step type "reboot"');
      expect((await request('GET', '/runbooks/Reboot')).status).toBe(404);

      expect(await bad('/runbook-runs', { runbook: 'ResetAccess', deviceIds: [deviceId], apply: true })).toMatch(/input account/);
      expect(
        await bad('/runbook-runs', {
          runbook: 'TroubleshootSSH',
          deviceIds: [agentDeviceId],
          apply: true,
          inputs: { ...inputs, port: 'twenty-two' },
        }),
      ).toMatch(/input port must be a whole number/);

      const project = await api<{ id: string }>('POST', '/projects', { name: 'No root' });
      const bare = await createDevice(project.id, 'bare-box', DEVICE, 22);
      await createAccount(bare, VERIFY_USER, { password: TEST_USER_PASSWORD });
      const noRoot = await bad('/runbook-runs', { runbook: 'TroubleshootSSH', deviceIds: [bare], apply: true, inputs });
      expect(noRoot).toContain('bare-box');
      expect(noRoot).toContain('no privileged account "root"');

      // Nothing ran: no run was recorded, the device's sshd and its config are as they were.
      expect((await api<{ items: { id: string }[] }>('GET', '/runbook-runs?limit=500')).items).toHaveLength(runsBefore);
      expect(sha256(sshdConfig())).toBe(configBefore);
      expect(sshdPids()).toEqual(pidsBefore);
      expect(await reveal(accountId)).toMatchObject({ password: current });
      const stillWorks = await directSsh('127.0.0.1', localSshd.port, ROTATED_USER, current);
      expect(stillWorks.stdout, stillWorks.stderr).toBe('logged-in\n');
    });
  });
});
