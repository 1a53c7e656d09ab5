import path from 'node:path';
import { generateLinkIdentity } from '@gatehouse/gateway';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cli,
  cliJson,
  killServers,
  removeTempDirs,
  setupAdmin,
  startServer,
  tempDir,
  type CliOptions,
  type GatehouseServer,
} from '../support/server.js';

/** Create, read, update and delete of every inventory resource and of users, through the CLI alone. */
describe('gatehouse CLI create/read/update/delete', () => {
  let server: GatehouseServer;
  let credentials: string;
  const gh = (args: string[], opts: CliOptions = {}) =>
    cli([...args, '--url', server.url], { ...opts, env: { GATEHOUSE_CREDENTIALS: credentials, ...opts.env } });
  const ghJson = <T>(args: string[], opts: CliOptions = {}) =>
    cliJson<T>([...args, '--url', server.url], { ...opts, env: { GATEHOUSE_CREDENTIALS: credentials, ...opts.env } });

  beforeAll(async () => {
    const dir = tempDir();
    credentials = path.join(dir, 'credentials.json');
    server = await startServer({ dataDir: path.join(dir, 'data') });
    await setupAdmin(server, 'correct horse battery staple', { env: { GATEHOUSE_CREDENTIALS: credentials } });
  });
  afterAll(() => {
    killServers();
    removeTempDirs();
  });

  it('projects, devices and accounts', async () => {
    const project = await ghJson<{ id: string }>(['projects', 'create', 'Ops', '--description', 'first']);
    expect(await ghJson(['projects', 'update', project.id, '--name', 'Operations'])).toMatchObject({
      name: 'Operations',
      description: 'first',
    });
    expect(await ghJson(['projects', 'show', project.id])).toMatchObject({ name: 'Operations' });

    const device = await ghJson<{ id: string }>([
      'devices',
      'create',
      'web-1',
      '--project',
      project.id,
      '--provider',
      'aws',
      '--protocol',
      'ssh',
      '--tag',
      'a',
      'b',
    ]);
    const updated = await ghJson(['devices', 'update', device.id, '--public-ip', '203.0.113.9', '--tag', 'gateway-office1']);
    // Fields not given keep their values.
    expect(updated).toMatchObject({ name: 'web-1', protocols: ['ssh'], publicIp: '203.0.113.9', tags: ['gateway-office1'] });
    expect(await ghJson(['devices', 'show', device.id])).toMatchObject({ publicIp: '203.0.113.9' });

    const account = await ghJson<{ id: string }>(['accounts', 'create', device.id, 'root', '--password-stdin'], {
      stdin: 'first-password\n',
    });
    const changed = await gh(['accounts', 'update', account.id, '--username', 'admin', '--password-stdin', '--json'], {
      stdin: 'second-password\n',
    });
    expect(changed.code).toBe(0);
    expect(changed.stdout).not.toContain('second-password');
    expect(JSON.parse(changed.stdout)).toMatchObject({ username: 'admin', password: '********' });
    const revealed = await ghJson<{ password: string }>(['accounts', 'reveal', account.id, '--reason', 'e2e']);
    expect(revealed.password).toBe('second-password');
    expect(await ghJson(['accounts', 'update', account.id, '--clear-password'])).toMatchObject({ password: null });

    // A delete answers with no body: the CLI says what it deleted, by name and id (it printed "undefined").
    expect(await gh(['accounts', 'delete', account.id])).toMatchObject({
      code: 0,
      stdout: `Account Operations/web-1/admin (${account.id}) deleted.\n`,
    });
    expect(await gh(['devices', 'delete', device.id])).toMatchObject({
      code: 0,
      stdout: `Device Operations/web-1 (${device.id}) deleted.\n`,
    });
    expect(await gh(['projects', 'delete', 'Operations'])).toMatchObject({
      code: 0,
      stdout: `Project Operations (${project.id}) deleted.\n`,
    });
    const gone = await gh(['projects', 'show', project.id]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`<project> ${project.id}: names no project you can see`);
  });

  it("setup of a second server: refused into the first one's profile, kept beside it with --profile, which later commands pick", async () => {
    const second = await startServer({ dataDir: path.join(tempDir(), 'data-b') });
    const env = { GATEHOUSE_CREDENTIALS: credentials };
    const setup = (args: string[]) =>
      cli(['setup', '--data-dir', second.dataDir, '--url', second.url, '--password-stdin', ...args], {
        stdin: 'second server password\n',
        env,
      });
    const refused = await setup([]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `Profile default holds the sign-in for ${server.url}, not ${second.url}. Keep both: add --profile <name>`,
    );
    const done = await setup(['--profile', 'second']);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toContain('Administrator admin created. API token saved in');

    await cli(['projects', 'create', 'OnSecond', '--profile', 'second'], { env });
    const onSecond = await cli(['projects', 'list', '--profile', 'second'], { env });
    expect(onSecond.stdout).toMatch(/^OnSecond +- +- +[0-9a-f-]{36}\n\n1 project\.\n$/m);
    expect((await cli(['projects', 'list', '--json'], { env: { ...env, GATEHOUSE_PROFILE: 'second' } })).stdout).toContain('"OnSecond"');
    expect((await gh(['projects', 'list'])).stdout).not.toContain('OnSecond');
    const profiles = await cli(['profiles'], { env });
    expect(profiles.stdout).toMatch(new RegExp(`^\\* +default +${server.url.replaceAll('.', '\\.')} +admin +`, 'm'));
    expect(profiles.stdout).toMatch(new RegExp(`^ +second +${second.url.replaceAll('.', '\\.')} +admin +${second.certFile}$`, 'm'));
  });

  it('gateways: register and delete', async () => {
    const { publicKey } = generateLinkIdentity('gatehouse-gateway');
    const gateway = await ghJson<{ id: string }>([
      'gateways',
      'register',
      'office1-a',
      '--address',
      '127.0.0.1:9',
      '--public-key',
      publicKey,
    ]);
    expect(await gh(['gateways', 'delete', 'office1-a'])).toMatchObject({
      code: 0,
      stdout: `Gateway office1-a (${gateway.id}) deleted.\n`,
    });
  });

  it('users: create, change role, disable, unlock, delete', async () => {
    const user = await ghJson<{ id: string }>(['users', 'create', 'olivia', '--role', 'operator', '--password-stdin'], {
      stdin: 'olivia-password-1\n',
    });
    expect(await ghJson(['users', 'update', user.id, '--role', 'auditor', '--disable'])).toMatchObject({ role: 'auditor', disabled: true });
    expect(await ghJson(['users', 'update', user.id, '--enable'])).toMatchObject({ disabled: false });
    expect(await ghJson(['users', 'unlock', user.id])).toMatchObject({ lockedUntil: null });
    expect(await gh(['users', 'delete', user.id])).toMatchObject({ code: 0, stdout: `User olivia (${user.id}) deleted.\n` });
    const list = await ghJson<{ items: { username: string }[] }>(['users', 'list']);
    expect(list.items.map((u) => u.username)).toEqual(['admin']);
  });

  it('maintenance requests: create, list, approve by another user, show; deny needs a comment; bad input names the option', async () => {
    const project = await ghJson<{ id: string }>(['projects', 'create', 'Maint']);
    const device = await ghJson<{ id: string }>([
      'devices',
      'create',
      'db-1',
      '--project',
      project.id,
      '--provider',
      'aws',
      '--protocol',
      'ssh',
    ]);
    await ghJson(['accounts', 'create', device.id, 'postgres']);
    const olivia = await ghJson<{ id: string }>(['users', 'create', 'olivia', '--role', 'operator', '--password-stdin'], {
      stdin: 'olivia-password-1\n',
    });
    await ghJson<{ id: string }>(['users', 'create', 'bert', '--role', 'operator', '--password-stdin'], { stdin: 'bert-password-12\n' });
    await ghJson(['users', 'grant', olivia.id, project.id]);
    expect(await ghJson(['devices', 'update', device.id, '--maintenance-required', 'true'])).toMatchObject({ maintenanceRequired: true });
    const notBool = await gh(['projects', 'update', project.id, '--maintenance-required', 'yes']);
    expect(notBool.code).toBe(1);
    expect(notBool.stderr).toContain('--maintenance-required');
    // olivia approves for the project too, but never her own requests.
    const approvers = await ghJson<{ users: { username: string }[] }>(['projects', 'approvers', 'Maint', '--set', 'bert,olivia']);
    expect(approvers.users.map((u) => u.username).sort()).toEqual(['bert', 'olivia']);
    expect(await ghJson(['maintenance', 'settings', '--approvals', '1', '--max-duration', '240'])).toMatchObject({
      requiredApprovals: 1,
      maxDurationMinutes: 240,
    });

    // Each user with their own saved token.
    const as = async (username: string, password: string) => {
      const env = { GATEHOUSE_CREDENTIALS: path.join(tempDir(), 'credentials.json') };
      const login = await cli(['login', '--username', username, '--password-stdin', '--url', server.url, '--ca', server.certFile], {
        stdin: `${password}\n`,
        env,
      });
      expect(login.code, login.stderr).toBe(0);
      return { env };
    };
    const asOlivia = await as('olivia', 'olivia-password-1');
    const asBert = await as('bert', 'bert-password-12');

    const request = await ghJson<{ id: string; state: string; devices: { name: string }[]; users: { username: string }[] }>(
      [
        'requests',
        'create',
        '--device',
        'Maint/db-1',
        '--account',
        'postgres',
        '--duration',
        '30',
        '--reason',
        'patch openssl',
        '--ticket',
        'CHG-1',
      ],
      asOlivia,
    );
    expect(request).toMatchObject({ state: 'pending', devices: [{ name: 'db-1' }], users: [{ username: 'olivia' }] });

    const table = await gh(['requests', 'list', '--phase', 'pending'], asOlivia);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+PHASE\s+STATE/);
    expect(table.stdout).toMatch(new RegExp(`${request.id}\\s+pending\\s+pending\\s+Maint\\s+db-1\\s+olivia\\s+olivia`));
    const page = await ghJson<{ items: { id: string; startsAt: string }[] }>(['requests', 'list', '--json'], asBert);
    expect(page.items.map((w) => w.id)).toEqual([request.id]);
    expect(page.items[0]?.startsAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);

    const own = await gh(['requests', 'approve', request.id], asOlivia);
    expect(own.code).toBe(1);
    expect(own.stderr).toContain('someone else must approve');
    const approved = await ghJson<{ state: string }>(['requests', 'approve', request.id, '--comment', 'go ahead'], asBert);
    expect(approved.state).toMatch(/^(approved|open)$/);
    expect(await ghJson(['requests', 'show', request.id], asOlivia)).toMatchObject({
      reason: 'patch openssl',
      ticket: 'CHG-1',
      decisions: [{ username: 'bert', decision: 'approve', comment: 'go ahead' }],
    });

    // A later request, denied: the CLI and the API both want the reason.
    const later = await ghJson<{ id: string }>(
      [
        'requests',
        'create',
        '--project',
        'Maint',
        '--start',
        new Date(Date.now() + 3 * 3600_000).toISOString(),
        '--duration',
        '60',
        '--reason',
        'reindex',
      ],
      asOlivia,
    );
    const noComment = await gh(['requests', 'deny', later.id], asBert);
    expect(noComment.code).toBe(1);
    expect(noComment.stderr).toContain("required option '--comment <text>'");
    const blank = await gh(['requests', 'deny', later.id, '--comment', ' '], asBert);
    expect(blank.code).toBe(1);
    expect(blank.stderr).toMatch(/- comment: is required/);
    expect(await ghJson(['requests', 'deny', later.id, '--comment', 'not during the freeze'], asBert)).toMatchObject({
      state: 'denied',
      decisions: [{ username: 'bert', decision: 'deny', comment: 'not during the freeze' }],
    });

    // Bad input: the error names the option it came from, and nothing is written.
    const zero = await gh(
      ['requests', 'create', '--device', 'Maint/db-1', '--duration', '0', '--start', '2020-01-01T00:00:00Z', '--reason', 'x'],
      asOlivia,
    );
    expect(zero.code).toBe(1);
    expect(zero.stderr).toMatch(/- --duration: /);
    expect(zero.stderr).toMatch(/- --start: /);
    const unknown = await gh(['requests', 'create', '--device', 'Maint/db-9', '--duration', '10', '--reason', 'x'], asOlivia);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('--device Maint/db-9: project Maint has no device db-9');
    const tooLong = await gh(['requests', 'create', '--project', 'Maint', '--duration', '600', '--reason', 'x'], asOlivia);
    expect(tooLong.stderr).toMatch(/- --duration: .*240/);
    expect((await ghJson<{ total: number }>(['requests', 'list', '--json'], asOlivia)).total).toBe(2);
  });
});
