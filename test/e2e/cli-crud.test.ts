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
    const changed = await gh(['accounts', 'update', account.id, '--username', 'admin', '--password-stdin'], { stdin: 'second-password\n' });
    expect(changed.code).toBe(0);
    expect(changed.stdout).not.toContain('second-password');
    expect(JSON.parse(changed.stdout)).toMatchObject({ username: 'admin', password: '********' });
    const revealed = await ghJson<{ password: string }>(['accounts', 'reveal', account.id, '--reason', 'e2e']);
    expect(revealed.password).toBe('second-password');
    expect(await ghJson(['accounts', 'update', account.id, '--clear-password'])).toMatchObject({ password: null });

    // A delete answers with no body: the CLI says what it did (it printed "undefined").
    expect(await gh(['accounts', 'delete', account.id])).toMatchObject({ code: 0, stdout: `Account ${account.id} deleted.\n` });
    expect(await gh(['devices', 'delete', device.id])).toMatchObject({ code: 0, stdout: `Device ${device.id} deleted.\n` });
    expect(await gh(['projects', 'delete', project.id])).toMatchObject({ code: 0, stdout: `Project ${project.id} deleted.\n` });
    const gone = await gh(['projects', 'show', project.id]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('does not exist');
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
    expect(await gh(['gateways', 'delete', gateway.id])).toMatchObject({ code: 0, stdout: `Gateway ${gateway.id} deleted.\n` });
  });

  it('users: create, change role, disable, unlock, delete', async () => {
    const user = await ghJson<{ id: string }>(['users', 'create', 'olivia', '--role', 'operator', '--password-stdin'], {
      stdin: 'olivia-password-1\n',
    });
    expect(await ghJson(['users', 'update', user.id, '--role', 'auditor', '--disable'])).toMatchObject({ role: 'auditor', disabled: true });
    expect(await ghJson(['users', 'update', user.id, '--enable'])).toMatchObject({ disabled: false });
    expect(await ghJson(['users', 'unlock', user.id])).toMatchObject({ lockedUntil: null });
    expect(await gh(['users', 'delete', user.id])).toMatchObject({ code: 0, stdout: `User ${user.id} deleted.\n` });
    const list = await ghJson<{ items: { username: string }[] }>(['users', 'list']);
    expect(list.items.map((u) => u.username)).toEqual(['admin']);
  });
});
