import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { RunbookRunView } from '@gatehouse/api';
import type { SshGateway } from '@gatehouse/gateway';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { startBuiltInGateway } from '../support/built-in-gateway.js';
import { dialects } from '../support/db.js';
import { canLogIn, ensureSystemUser, generateKeyPair, TestSshd } from '../support/sshd.js';
import { BreakGlassRuns } from '@gatehouse/db';

const ROTATED_USER = 'gh-rb-rotate';
const FIRST_PASSWORD = 'first-Password-7q';
const KEY_USER = 'gh-rb-key';

/**
 * Runbooks through the real built-in gateway (in process) to a real OpenSSH sshd, as root
 * by key: TroubleshootSSH's dry run on a healthy sshd and on a wrong port, and ResetAccess
 * rotating a password (the new one logs in, the old one does not, the vault keeps it as previous).
 */
describe.each(dialects)('runbooks against OpenSSH on %s', (dialect) => {
  let t: TestApp;
  let gateway: SshGateway;
  let sshd: TestSshd;
  let dir: string;
  let admin: { id: string; username: string; token: string };
  let deviceId: string;
  let rotatedAccountId: string;

  beforeAll(async () => {
    t = await createTestApp(dialect);
    dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-runbooks-'));
    ensureSystemUser(ROTATED_USER, { password: FIRST_PASSWORD });
    sshd = await TestSshd.start(path.join(dir, 'sshd'), { rootKeyLogin: true });
    const rootKey = generateKeyPair(dir, 'root-key');
    sshd.authorize('root', rootKey.publicKey);
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
    deviceId = device.json<{ id: string }>().id;
    await t.request('POST', `${API}/accounts`, {
      token: admin.token,
      body: { deviceId, username: 'root', privateKey: rootKey.privateKey },
    });
    const rotated = await t.request('POST', `${API}/accounts`, {
      token: admin.token,
      body: { deviceId, username: ROTATED_USER, password: FIRST_PASSWORD },
    });
    rotatedAccountId = rotated.json<{ id: string }>().id;
    gateway = await startBuiltInGateway(t, path.join(t.services.config.dataDir, 'recordings'));
    t.gateways.builtInSessions = gateway;
  });
  afterAll(async () => {
    await t?.services.runbooks.idle();
    await gateway?.stop();
    await sshd?.stop();
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Starts a run and waits for it to finish, polling as the CLI does. */
  const runToEnd = async (body: Record<string, unknown>): Promise<RunbookRunView> => {
    const started = await t.request('POST', `${API}/runbook-runs`, { token: admin.token, body: { deviceIds: [deviceId], ...body } });
    expect(started.statusCode, started.body).toBe(202);
    const id = started.json<RunbookRunView>().id;
    let run: RunbookRunView | undefined;
    await expect
      .poll(
        async () => {
          run = (await t.request('GET', `${API}/runbook-runs/${id}`, { token: admin.token })).json<RunbookRunView>();
          return run.state;
        },
        { timeout: 60_000, interval: 200 },
      )
      .toBe('finished');
    return run as RunbookRunView;
  };
  const statuses = (run: RunbookRunView) => Object.fromEntries((run.items?.[0]?.steps ?? []).map((s) => [s.id, s.status]));
  const troubleshoot = (inputs: Record<string, unknown>, apply = false) =>
    runToEnd({
      runbook: 'TroubleshootSSH',
      apply,
      inputs: { sshdConfig: path.join(sshd.dir, 'sshd_config'), user: ROTATED_USER, ...inputs },
    });
  const verdictOf = (run: RunbookRunView) => run.items?.[0]?.verdict;

  it('TroubleshootSSH dry run on a healthy sshd: every check holds and a new login works, SUCCESS; each command a session of the run', async () => {
    const run = await troubleshoot({});
    expect(run.items?.[0]?.verdict, JSON.stringify(run.items?.[0]?.steps, null, 1)).toBe('SUCCESS');
    expect(statuses(run)).toEqual({
      privileged: 'passed',
      installed: 'passed',
      'config-present': 'passed',
      'restore-config': 'skipped',
      'config-valid': 'passed',
      running: 'passed',
      'start-sshd': 'skipped',
      listening: 'passed',
      'restart-sshd': 'skipped',
      'host-keys': 'passed',
      'fix-host-keys': 'skipped',
      'authorized-keys': 'passed',
      'fix-authorized-keys': 'skipped',
      disk: 'passed',
      login: 'passed',
    });
    expect(run.counts).toMatchObject({ total: 1, done: 1, success: 1 });
    const sessions = await t.services.db.kysely
      .selectFrom('gateway_sessions')
      .select(['id', 'kind'])
      .where('runbook_run_id', '=', run.id)
      .execute();
    expect(sessions.length).toBeGreaterThanOrEqual(10);
    expect(sessions.every((s) => s.kind === 'exec')).toBe(true);
  });

  it('TroubleshootSSH dry run expecting another port: listening fails, its fix is only planned, FAILED', async () => {
    const run = await troubleshoot({ port: 1 });
    expect(statuses(run)).toMatchObject({ running: 'passed', listening: 'failed', 'restart-sshd': 'would-fix', login: 'passed' });
    expect(run.items?.[0]?.verdict).toBe('FAILED');
    expect(run.items?.[0]?.steps.find((s) => s.id === 'listening')?.evidence).toContain('no sshd listens on port 1');
  });

  it('ResetAccess rotates a password: the new one logs in, the old one no longer does, and the vault keeps it as previous', async () => {
    const run = await runToEnd({ runbook: 'ResetAccess', inputs: { account: ROTATED_USER, credential: 'password' }, apply: true });
    expect(statuses(run), JSON.stringify(run.items?.[0]?.steps, null, 1)).toEqual({
      privileged: 'passed',
      'account-exists': 'passed',
      rotate: 'rotated',
    });
    expect(run.items?.[0]?.verdict).toBe('SUCCESS');
    const current = (await t.services.inventory.accounts.reveal(rotatedAccountId)).password as string;
    expect(current).not.toBe(FIRST_PASSWORD);
    expect(current).toHaveLength(24);
    expect(await canLogIn(sshd.port, ROTATED_USER, current)).toBe(true);
    expect(await canLogIn(sshd.port, ROTATED_USER, FIRST_PASSWORD)).toBe(false);
    const previous = await t.services.accountCredentials.previousOf(rotatedAccountId);
    expect(previous?.state).toBe('previous');
    expect((await t.services.accountCredentials.reveal(previous?.id as string)).password).toBe(FIRST_PASSWORD);
    expect((await t.services.accountCredentials.list(rotatedAccountId)).filter((c) => c.state === 'pending')).toEqual([]);
    // The new password is in no answer, audit event or log line.
    const shown = await t.request('GET', `${API}/runbook-runs/${run.id}`, { token: admin.token });
    expect(shown.body).not.toContain(current);
    const audit = await t.services.db.kysely.selectFrom('audit_events').select(['action', 'details']).execute();
    expect(JSON.stringify(audit)).not.toContain(current);
    expect(audit.map((a) => a.action)).toContain('account.rotated');
    expect(t.logs.text).not.toContain(current);
  });

  it('rotation after a break-glass export, dry run: every credential of the file is listed as would-rotate, and whether it still logs in', async () => {
    const runs = new BreakGlassRuns(t.services.db);
    const exported = await runs.start('manual', 's3://bucket');
    await runs.update(exported.id, {
      result: 'success',
      sha256: 'ab'.repeat(32),
      objects: { manifest: 'gatehouse/2026/export.manifest.json' },
      finishedAt: new Date().toISOString(),
    });
    const started = await t.request('POST', `${API}/breakglass/rotations`, { token: admin.token, body: { export: 'abababab' } });
    expect(started.statusCode, started.body).toBe(202);
    expect(started.json<RunbookRunView>()).toMatchObject({ kind: 'breakglass-rotation', breakglassRunId: exported.id, apply: false });
    const id = started.json<RunbookRunView>().id;
    let run: RunbookRunView | undefined;
    await expect
      .poll(
        async () => (run = (await t.request('GET', `${API}/runbook-runs/${id}`, { token: admin.token })).json<RunbookRunView>()).state,
        {
          timeout: 60_000,
        },
      )
      .toBe('finished');
    const accounts = run?.items?.[0]?.accounts ?? [];
    expect(accounts.map((a) => [a.username, a.result, a.fileCredentialWorks])).toEqual([
      [ROTATED_USER, 'would-rotate', true],
      ['root', 'would-rotate', true],
    ]);
    const unknown = await t.request('POST', `${API}/breakglass/rotations`, { token: admin.token, body: { export: 'cdcdcdcd' } });
    expect(unknown.statusCode).toBe(400);
  });

  it('ResetAccess whose new key does not log in: the host is put back, and the old key still logs in and stays current', async () => {
    // This sshd reads authorized keys from its own directory, not ~/.ssh: the appended key cannot work.
    ensureSystemUser(KEY_USER);
    const key = generateKeyPair(dir, 'key-user');
    sshd.authorize(KEY_USER, key.publicKey);
    const account = await t.request('POST', `${API}/accounts`, {
      token: admin.token,
      body: { deviceId, username: KEY_USER, privateKey: key.privateKey },
    });
    const accountId = account.json<{ id: string }>().id;
    const run = await runToEnd({ runbook: 'ResetAccess', inputs: { account: KEY_USER }, apply: true });
    const rotate = run.items?.[0]?.steps.find((s) => s.id === 'rotate');
    expect(rotate?.status, rotate?.evidence).toBe('failed');
    expect(rotate?.evidence).toContain('the new key was removed from authorized_keys');
    expect(rotate?.evidence).toContain('the old credential logs in and stays current');
    expect(verdictOf(run)).toBe('FAILED');
    expect((await t.services.inventory.accounts.reveal(accountId)).privateKey).toBe(key.privateKey);
    expect(await t.services.accountCredentials.list(accountId)).toEqual([]);
    const home = execFileSync('getent', ['passwd', KEY_USER], { encoding: 'utf8' }).split(':')[5] as string;
    expect(readFileSync(path.join(home, '.ssh', 'authorized_keys'), 'utf8')).not.toContain('ssh-ed25519');
    const failed = await t.services.db.kysely
      .selectFrom('audit_events')
      .select('target_id')
      .where('action', '=', 'account.rotation_failed')
      .execute();
    expect(failed.map((e) => e.target_id)).toContain(accountId);
  });

  it('TroubleshootSSH apply: a group-writable ~/.ssh is made go-w and checked again, then a new login: SUCCESS', async () => {
    // (A host key readable by others would do too, but then this sshd takes no new connection: that is the agent's case.)
    const home = execFileSync('getent', ['passwd', ROTATED_USER], { encoding: 'utf8' }).split(':')[5] as string;
    const dotSsh = path.join(home, '.ssh');
    mkdirSync(dotSsh, { recursive: true });
    execFileSync('chown', [ROTATED_USER, dotSsh]);
    chmodSync(dotSsh, 0o777);
    const run = await troubleshoot({}, true);
    expect(statuses(run)).toMatchObject({ 'authorized-keys': 'fixed', 'fix-authorized-keys': 'ran', login: 'passed' });
    expect(run.items?.[0]?.steps.find((s) => s.id === 'authorized-keys')?.evidence).toContain('is writable by group or others');
    expect(verdictOf(run)).toBe('SUCCESS');
    expect(statSync(dotSsh).mode & 0o777).toBe(0o755);
  });

  it('TroubleshootSSH apply: a removed sshd_config is restored from the safe default, 0644 root:root, and verified: SUCCESS', async () => {
    const config = path.join(sshd.dir, 'sshd_config');
    rmSync(config);
    const run = await troubleshoot({}, true);
    expect(statuses(run), JSON.stringify(run.items?.[0]?.steps, null, 1)).toMatchObject({
      'config-present': 'fixed',
      'restore-config': 'ran',
      'config-valid': 'passed',
      login: 'passed',
    });
    expect(verdictOf(run)).toBe('SUCCESS');
    const restored = statSync(config);
    expect(restored.mode & 0o777).toBe(0o644);
    expect(restored.uid).toBe(0);
    expect(readFileSync(config, 'utf8')).toContain(`Port ${sshd.port}`);
  });
});
