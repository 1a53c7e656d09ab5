import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeLowPort } from '../support/agent.js';
import { ageKeygen, RestartableS3rver, runBreakGlassExport, s3rverBreakGlassSettings } from '../support/breakglass-e2e.js';
import {
  baseEnv,
  cli,
  cliJson,
  killServers,
  removeTempDirs,
  setupAdmin,
  startServer,
  tempDir,
  type CliOptions,
  type GatehouseServer,
  gatehouseBin,
  savedToken,
} from '../support/server.js';
import { ensureSystemUser, generateKeyPair, TestSshd } from '../support/sshd.js';

/** A runbook an administrator writes: one check, its fix, and the login that verifies. */
const DISK_RUNBOOK = `name: DiskRoom
version: 1
description: The root file system has room; with apply, old compressed logs are removed.
inputs:
  minFreeMiB: { type: integer, default: 64, description: MiB that must be free on / }
steps:
  - id: disk
    type: check
    title: the root file system has room
    run: test "$(df -Pm / | awk 'NR==2 {print $4}')" -ge {{minFreeMiB}}
  - id: clean
    type: fix
    for: disk
    title: remove compressed logs
    run: find /var/log -name '*.gz' -delete
  - id: login
    type: verify-login
    title: a new SSH login works
`;

/** Two mistakes: an unknown variable in a step's command, and a fix for no earlier check. */
const BAD_RUNBOOK = `name: DiskRoom
version: 1
steps:
  - id: disk
    type: check
    title: the root file system has room
    run: test "$(df -Pm / | awk 'NR==2 {print $4}')" -ge {{minFreeMiB}}
  - id: clean
    type: fix
    for: nowhere
    title: remove compressed logs
    run: find /var/log -name '*.gz' -delete
`;

/** The runbook commands of the CLI against one real server. */
describe('gatehouse runbooks / runbook (CLI)', () => {
  let server: GatehouseServer;
  let sshd: TestSshd;
  let dir: string;
  let rootKey: ReturnType<typeof generateKeyPair>;
  const env = () => ({ GATEHOUSE_CREDENTIALS: path.join(dir, 'credentials.json') });
  const gh = (args: string[], opts: CliOptions = {}) => cli([...args, '--url', server.url], { ...opts, env: env() });
  const ghJson = <T>(args: string[], opts: CliOptions = {}) => cliJson<T>([...args, '--url', server.url], { ...opts, env: env() });
  const file = (name: string, text: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, text);
    return f;
  };

  beforeAll(async () => {
    dir = tempDir();
    // The device of the rotation: an OpenSSH sshd where root logs in with a vaulted key.
    sshd = await TestSshd.start(path.join(dir, 'sshd'), { rootKeyLogin: true, port: await freeLowPort() });
    rootKey = generateKeyPair(dir, 'root_key');
    sshd.authorize('root', rootKey.publicKey);
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(await freeLowPort()) } });
    await setupAdmin(server, 'correct horse battery staple', { env: env() });
  });
  afterAll(async () => {
    killServers();
    await sshd?.stop();
    removeTempDirs();
  });

  it('lists the built-in runbooks', async () => {
    const list = await gh(['runbooks', 'list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^NAME\s+VERSION\s+BUILT-IN\s+STEPS\s+DESCRIPTION$/m);
    expect(list.stdout).toMatch(/^TroubleshootSSH\s+1\s+yes\s/m);
    expect(list.stdout).toMatch(/^ResetAccess\s+1\s+yes\s/m);
  });

  // First: the export holds only the accounts made for it (the other tests' come later).
  it('breakglass rotate: a dry run, then applied with the progress line on a terminal and the report', async () => {
    const token = savedToken(env().GATEHOUSE_CREDENTIALS);
    const api = <T>(method: string, route: string, body?: unknown) => server.api<T>(token, method, route, body);
    const project = await ghJson<{ id: string }>(['projects', 'create', 'Glass']);
    const devices: string[] = [];
    const passwords = new Map<string, string>();
    for (const n of [1, 2]) {
      const user = `gh-clirot-${n}`;
      passwords.set(user, `file-${randomBytes(9).toString('base64url')}`);
      ensureSystemUser(user, { password: passwords.get(user) });
      const device = await ghJson<{ id: string }>(
        ['devices', 'create', `g-${n}`, '--project', project.id, '--provider', 'on-prem', '--protocol', 'ssh'].concat([
          '--private-ip',
          '127.0.0.1',
          '--url-port',
          String(sshd.port),
        ]),
      );
      devices.push(device.id);
      await ghJson(['accounts', 'create', device.id, user, '--password-stdin'], { stdin: `${passwords.get(user)}\n` });
    }
    const s3 = await RestartableS3rver.start(path.join(dir, 's3rver'), ['breakglass']);
    await api('PUT', '/breakglass/settings', s3rverBreakGlassSettings({ endpoint: s3.endpoint, recipient: ageKeygen(dir).recipient }));
    const { id: exportId, result } = await runBreakGlassExport(api);
    expect(result).toBe('success');
    await s3.stop();
    // The privileged accounts come after the export: not in the file.
    for (const id of devices) await ghJson(['accounts', 'create', id, 'root', '--private-key-file', rootKey.file]);

    const dry = await gh(['breakglass', 'rotate', '--export', exportId]);
    // Nothing is verified by a dry run: its devices are FAILED, and it says what it would do.
    expect(dry.code, dry.stderr).toBe(1);
    expect(dry.stdout).toMatch(/^Glass\/g-1 {2}FAILED {2}not verified: the dry run plans 1 change/m);
    expect(dry.stdout).toContain('Accounts: 0 rotated · 0 failed · 0 skipped · 2 would rotate');
    expect(dry.stdout).toMatch(/^Glass\/g-2\s+gh-clirot-2\s+would-rotate\s+—\s+yes$/m);

    // On a terminal (script gives the CLI one): one progress line, rewritten, then the report.
    const args = ['breakglass', 'rotate', '--export', exportId, '--apply', '--concurrency', '2', '--url', server.url];
    const command = [process.execPath, gatehouseBin, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], { env: baseEnv(env()), stdio: ['ignore', 'pipe', 'pipe'] });
    let tty = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (tty += d));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code, tty).toBe(0);
    expect(tty).toMatch(/\r\x1b\[K2\/2 devices · 2 SUCCESS · 0 FAILED · 0 CHANGED-BUT-UNVERIFIED · [\d.]+ s\r?\n/);
    expect(tty).not.toMatch(/^Glass\/g-1 {2}SUCCESS/m);
    expect(tty).toContain('Accounts: 2 rotated · 0 failed · 0 skipped');
    expect(tty).toMatch(/^Glass\/g-1\s+gh-clirot-1\s+rotated\s+new password set and verified by a new login\s+no\r?$/m);
    expect(tty).toMatch(/^Glass\/g-2\s+gh-clirot-2\s+rotated\s+new password set and verified by a new login\s+no\r?$/m);
    expect(tty).not.toContain('Dry run');

    // The new passwords are in the vault, and were never printed.
    for (const id of devices) {
      const { items } = await api<{ items: { id: string; username: string }[] }>('GET', `/devices/${id}/accounts`);
      const rotated = items.find((a) => a.username.startsWith('gh-clirot-'));
      const { password } = await api<{ password: string }>('POST', `/accounts/${rotated?.id ?? ''}/reveal`, { reason: 'e2e' });
      expect(password).not.toBe(passwords.get(rotated?.username ?? ''));
      expect(tty).not.toContain(password);
    }
  }, 180_000);

  it('refuses a bad document naming each step and field; adds, shows and removes a good one', async () => {
    const bad = await gh(['runbooks', 'add', file('bad.yaml', BAD_RUNBOOK)]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('is not a valid runbook; nothing was added');
    expect(bad.stderr).toMatch(/^ {2}steps\[0\] \(disk\)\.run: uses \{\{minFreeMiB\}\}/m);
    expect(bad.stderr).toMatch(/^ {2}steps\[1\] \(clean\)\.for: names "nowhere"/m);
    expect((await gh(['runbooks', 'list'])).stdout).not.toContain('DiskRoom');

    const added = await gh(['runbooks', 'add', file('disk.yaml', DISK_RUNBOOK)]);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/^Added runbook DiskRoom v1 \(sha256 [0-9a-f]{12}…, 3 steps\)\.$/m);

    const shown = await gh(['runbooks', 'show', 'DiskRoom']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^DiskRoom v1$/m);
    expect(shown.stdout).toMatch(/^ {2}minFreeMiB\s+integer\s+no\s+64\s+MiB that must be free on \/$/m);
    expect(shown.stdout).toMatch(/^ {2}clean\s+fix\s+remove compressed logs$/m);
    expect((await gh(['runbooks', 'show', 'DiskRoom', '--yaml'])).stdout).toBe(DISK_RUNBOOK);
    expect(await ghJson(['runbooks', 'show', 'DiskRoom', '--json'])).toMatchObject({ name: 'DiskRoom', builtIn: false });

    expect(await gh(['runbooks', 'remove', 'DiskRoom'])).toMatchObject({ code: 0, stdout: 'Runbook DiskRoom removed.\n' });
    const gone = await gh(['runbooks', 'show', 'DiskRoom']);
    expect(gone.code).not.toBe(0);
    expect((await gh(['runbooks', 'list'])).stdout).not.toContain('DiskRoom');
  });

  it('a run on a device without a privileged account is refused before anything runs', async () => {
    const project = await ghJson<{ id: string }>(['projects', 'create', 'Ops']);
    const device = await ghJson<{ id: string }>([
      'devices',
      'create',
      'web-1',
      '--project',
      project.id,
      '--provider',
      'on-prem',
      '--protocol',
      'ssh',
      '--private-ip',
      '127.0.0.1',
    ]);
    await ghJson(['accounts', 'create', device.id, 'deploy']);

    for (const target of ['Ops/web-1', 'web-1', device.id]) {
      const run = await gh(['runbook', 'run', 'TroubleshootSSH', '--device', target]);
      expect(run.code, target).not.toBe(0);
      expect(run.stderr).toContain('web-1 has no privileged account "root" in the vault: add one, or name one with --privileged-account');
    }
    const unknown = await gh(['runbook', 'run', 'TroubleshootSSH', '--device', 'Ops/web-9']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('--device Ops/web-9: project Ops has no device web-9');
    const noTarget = await gh(['runbook', 'run', 'TroubleshootSSH']);
    expect(noTarget.stderr).toContain('--device or --project is required');

    // Nothing was started.
    const runs = await ghJson<{ items: { runbook: { name: string } }[] }>(['runbook', 'runs', '--json']);
    expect(runs.items.map((r) => r.runbook.name)).not.toContain('TroubleshootSSH');
  });

  it('accounts rotate: a dry run through the gateway says what it would do and changes nothing', async () => {
    const project = await ghJson<{ id: string }>(['projects', 'create', 'Lab']);
    const device = await ghJson<{ id: string }>([
      'devices',
      'create',
      'ssh-box',
      '--project',
      project.id,
      '--provider',
      'on-prem',
      '--protocol',
      'ssh',
      '--private-ip',
      '127.0.0.1',
      '--url-port',
      String(sshd.port),
    ]);
    await ghJson(['accounts', 'create', device.id, 'root', '--private-key-file', rootKey.file]);
    // nobody exists on every host; its password is only in the vault.
    const nobody = await ghJson<{ id: string }>(['accounts', 'create', device.id, 'nobody', '--password-stdin'], {
      stdin: 'vaulted-password-1\n',
    });

    const run = await gh(['accounts', 'rotate', 'Lab/ssh-box', 'nobody', '--length', '20']);
    // Nothing it would change is verified yet: a dry run that plans a change is FAILED (exit 1), and says why.
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(1);
    expect(run.stdout).toMatch(/^Run \S+ · ResetAccess v1 · dry run · as root · by admin/m);
    expect(run.stdout).toMatch(/^Lab\/ssh-box$/m);
    expect(run.stdout).toMatch(/^ {2}✓ passed {8}root may run commands as root/m);
    expect(run.stdout).toMatch(/^ {2}… would rotate {2}set a new credential/m);
    expect(run.stdout).toMatch(/^ {2}Verdict: FAILED · not verified: the dry run plans 1 change; rotate: would set /m);
    expect(run.stdout).toContain('Re-run with --apply');

    // Nothing changed: the vaulted password is the one given, and no rotation was recorded.
    const revealed = await ghJson<{ password: string }>(['accounts', 'reveal', nobody.id, '--reason', 'e2e: dry run changed nothing']);
    expect(revealed.password).toBe('vaulted-password-1');
    const runs = await ghJson<{ items: { runbook: { name: string }; apply: boolean }[] }>(['runbook', 'runs', '--json']);
    expect(runs.items[0]).toMatchObject({ runbook: { name: 'ResetAccess' }, apply: false });
    expect(readFileSync(path.join(sshd.dir, 'sshd.log'), 'utf8')).toContain('Accepted publickey for root');
  });

  it('runbook run on a project: a line per device, the table, exit 0 when every device is SUCCESS; --json is the run alone', async () => {
    // The devices of the break-glass test: the test's sshd, root logging in with a key.
    const args = ['runbook', 'run', 'TroubleshootSSH', '--project', 'Glass', '--input', `sshdConfig=${path.join(sshd.dir, 'sshd_config')}`];
    const run = await gh(args);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/^Run \S+ · TroubleshootSSH v1 · dry run · as root · by admin/m);
    for (const d of ['g-1', 'g-2']) {
      expect(run.stdout).toMatch(new RegExp(`^Glass/${d} {2}SUCCESS {2}9 post-conditions checked and held; login: `, 'm'));
      expect(run.stdout).toMatch(new RegExp(`^Glass/${d}\\s+SUCCESS\\s+9 post-conditions checked and held`, 'm'));
    }
    expect(run.stdout).toMatch(/^DEVICE\s+VERDICT\s+EVIDENCE$/m);
    expect(run.stdout).toContain('no change is planned');

    const json = await gh([...args, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const view = JSON.parse(json.stdout) as { state: string; counts: { total: number; success: number }; items: unknown[] };
    expect(view).toMatchObject({ state: 'finished', counts: { total: 2, success: 2 } });
    expect(view.items).toHaveLength(2);

    const shown = await gh(['runbook', 'show-run', (JSON.parse(json.stdout) as { id: string }).id]);
    expect(shown.stdout).toMatch(/^Glass\/g-1$/m);
    expect(shown.stdout).toMatch(/^ {2}✓ passed {8}a new SSH login to sshd works/m);
  }, 120_000);

  it('accounts rotate --apply: the password rotated and verified, never printed, and where to find it', async () => {
    const rotated = await gh(['accounts', 'rotate', 'g-1', 'gh-clirot-1', '--length', '16', '--classes', 'lower,digit', '--apply']);
    expect(rotated.code, `${rotated.stdout}\n${rotated.stderr}`).toBe(0);
    expect(rotated.stdout).toMatch(/^ {2}↻ rotated {7}set a new credential and verify it by a new login/m);
    expect(rotated.stdout).toMatch(/^ {2}Verdict: SUCCESS · /m);
    expect(rotated.stdout).not.toContain('Dry run');
    const hint = /gatehouse accounts reveal (\S+) --reason/.exec(rotated.stderr);
    expect(hint, rotated.stderr).not.toBeNull();
    const { password } = await ghJson<{ password: string }>(['accounts', 'reveal', hint?.[1] ?? '', '--reason', 'e2e: the rotated one']);
    expect(password).toMatch(/^[a-z2-9]{16}$/);
    expect(`${rotated.stdout}${rotated.stderr}`).not.toContain(password);
  });

  it('rotation policies: set on a project, shown for its device, overridden, cleared', async () => {
    const project = await ghJson<{ id: string }>(['projects', 'create', 'Rot']);
    await ghJson(['devices', 'create', 'db-1', '--project', project.id, '--provider', 'on-prem', '--protocol', 'ssh']);
    expect((await gh(['rotation', 'show', '--project', 'Rot'])).stdout).toMatch(/^No rotation policy on project Rot/);

    const set = await gh(['rotation', 'set', '--project', 'Rot', '--every', '30', '--length', '32', '--classes', 'lower,digit']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/^Rotation policy of project Rot:$/m);
    expect(set.stdout).toMatch(/^ {2}Every\s+30 days$/m);
    expect(set.stdout).toMatch(/^ {2}New credential\s+the kind the account has; passwords of 32 characters \(lower, digit\)$/m);
    expect((await gh(['rotation', 'show', '--device', 'Rot/db-1'])).stdout).toMatch(
      /^Rotation policy of device db-1 \(from its project\):$/m,
    );

    const own = await gh(['rotation', 'set', '--device', 'db-1', '--after-session', '--credential', 'key']);
    expect(own.code, own.stderr).toBe(0);
    expect(own.stdout).toMatch(/^Rotation policy of device db-1:$/m);
    expect(own.stdout).toMatch(/^ {2}After each session\s+yes$/m);
    expect(own.stdout).toMatch(/^ {2}New credential\s+a new Ed25519 key$/m);
    expect(await ghJson(['rotation', 'show', '--device', 'Rot/db-1', '--json'])).toMatchObject({ scope: 'device', afterSession: true });

    expect((await gh(['rotation', 'set', '--project', 'Rot'])).stderr).toContain('Say what to set');
    expect((await gh(['rotation', 'set', '--project', 'Rot', '--classes', 'emoji'])).stderr).toContain('Password class "emoji" is unknown');
    expect((await gh(['rotation', 'show'])).stderr).toContain('Give --project <project> or --device <device>');

    expect(await gh(['rotation', 'clear', '--device', 'Rot/db-1'])).toMatchObject({
      code: 0,
      stdout: 'Rotation policy of device db-1 removed.\n',
    });
    expect((await gh(['rotation', 'show', '--device', 'Rot/db-1'])).stdout).toContain('(from its project)');
    expect((await gh(['rotation', 'clear', '--project', 'Rot'])).code).toBe(0);
    expect((await gh(['rotation', 'show', '--device', 'Rot/db-1'])).stdout).toMatch(/^No rotation policy on device db-1/);
  });

  it('breakglass rotate with no export to rotate says so and fails', async () => {
    const none = await gh(['breakglass', 'rotate']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^gatehouse: .*export/im);
  });
});
