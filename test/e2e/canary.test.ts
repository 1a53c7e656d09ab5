import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dialects } from '../support/db.js';
import {
  cli,
  e2eDatabase,
  killServers,
  removeTempDirs,
  setupAdmin,
  startServer,
  tempDir,
  type CliOptions,
  type CliResult,
  type E2eDatabase,
  type GatehouseServer,
} from '../support/server.js';

const header =
  'project,device,provider,protocols,public_ip,private_ip,url_port,access_type,tags,account,password,private_key,pem_file_name,passphrase,extra_credential';

/** Every stored text of a PostgreSQL database, one row per line. */
async function dumpPostgres(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables = await client.query<{ table_name: string }>(
      "select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'",
    );
    const rows: string[] = [];
    for (const { table_name } of tables.rows) {
      const result = await client.query<{ row: string }>(`select row_to_json(t)::text as row from "${table_name}" t`);
      rows.push(...result.rows.map((r) => r.row));
    }
    return rows.join('\n');
  } finally {
    await client.end();
  }
}

describe.each(dialects)('secrets planted through the CLI on %s', (dialect) => {
  const tag = randomBytes(6).toString('hex');
  /** Each secret the test plants, by where it went in. */
  const canaries = {
    adminPassword: `canary-admin-${tag}-pw`,
    operatorPassword: `canary-operator-${tag}-pw`,
    accountPassword: `canary-account-${tag}-pw`,
    privateKey: `canaryKEY${tag}AAAA`,
    importedPassword: `canary-import-${tag}-pw`,
    importedPassphrase: `canary-passphrase-${tag}`,
    importedExtra: `canary-enable-${tag}`,
    refusedImport: `canary-refused-${tag}`,
    brokenJson: `canary-json-${tag}`,
    failedCreate: `canary-failed-${tag}`,
    wrongLogin: `canary-wrong-login-${tag}`,
  };
  const outputs: { command: string; result: CliResult }[] = [];
  let dir: string;
  let dataDir: string;
  let credentials: string;
  let database: E2eDatabase;
  let server: GatehouseServer;

  /** Runs the CLI against the server and keeps what it printed for the leak checks. */
  const gh = async (args: string[], opts: CliOptions = {}) => {
    const result = await cli([...args, '--url', server.url], { ...opts, env: { GATEHOUSE_CREDENTIALS: credentials, ...opts.env } });
    outputs.push({ command: args.slice(0, 2).join(' '), result });
    return result;
  };
  /** What a command run with --json printed. */
  const json = <T>(result: CliResult): T => {
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as T;
  };

  beforeAll(async () => {
    dir = tempDir();
    dataDir = path.join(dir, 'data');
    credentials = path.join(dir, 'credentials.json');
    database = await e2eDatabase(dialect);
    // The most talkative log level: a leak anywhere in the logs shows.
    server = await startServer({ dataDir, env: { ...database.env, GATEHOUSE_LOG_LEVEL: 'trace' } });
  });
  afterAll(async () => {
    killServers();
    await database.drop();
    removeTempDirs();
  });

  let accountIds: string[] = [];

  it('plants secrets through every CLI path that takes one, including the ones that fail', async () => {
    outputs.push({
      command: 'setup',
      result: await setupAdmin(server, canaries.adminPassword, { env: { GATEHOUSE_CREDENTIALS: credentials } }),
    });
    const project = json<{ id: string }>(await gh(['projects', 'create', 'Canaries', '--json']));
    const device = json<{ id: string }>(
      await gh(['devices', 'create', 'canary-host', '--project', project.id, '--provider', 'aws', '--json']),
    );

    const keyFile = path.join(dir, 'canary.pem');
    writeFileSync(keyFile, `-----BEGIN OPENSSH PRIVATE KEY-----\n${canaries.privateKey}\n-----END OPENSSH PRIVATE KEY-----\n`);
    const account = json<{ id: string }>(
      await gh(['accounts', 'create', device.id, 'root', '--password-stdin', '--private-key-file', keyFile, '--json'], {
        stdin: canaries.accountPassword,
      }),
    );

    const duplicate = await gh(['accounts', 'create', device.id, 'root', '--password-stdin'], { stdin: canaries.failedCreate });
    expect(duplicate.stderr).toContain('This device already has an account "root".');
    const nowhere = await gh(['accounts', 'create', 'no-such-device', 'root', '--password-stdin'], { stdin: canaries.failedCreate });
    expect(nowhere.stderr).toContain('<device> no-such-device: names no device you can see');

    expect(
      (await gh(['users', 'create', 'operator1', '--role', 'operator', '--password-stdin'], { stdin: canaries.operatorPassword })).code,
    ).toBe(0);
    const shortPassword = await gh(['users', 'create', 'operator2', '--role', 'operator', '--password-stdin'], { stdin: 'too-short' });
    expect(shortPassword.stderr).toContain('password must be at least 12 characters');
    const wrongLogin = await gh(['login', '--username', 'admin', '--password-stdin', '--ca', server.certFile], {
      stdin: canaries.wrongLogin,
      env: { GATEHOUSE_CREDENTIALS: path.join(dir, 'other-credentials.json') },
    });
    expect(wrongLogin.stderr).toContain('Wrong username or password.');

    const good = path.join(dir, 'good.csv');
    writeFileSync(
      good,
      `${header}\nCanaries,imported-host,azure,ssh,,,,,,admin,${canaries.importedPassword},,,${canaries.importedPassphrase},"{""enable"":""${canaries.importedExtra}""}"\n`,
    );
    expect((await gh(['import', good])).code).toBe(0);
    const refused = path.join(dir, 'refused.csv');
    writeFileSync(
      refused,
      `${header}\nCanaries,refused-host,aws,martian,,,,,,admin,${canaries.refusedImport},,,${canaries.refusedImport},"{""x"":1,""y"":""${canaries.refusedImport}""}"\n` +
        `Canaries,refused-host-2,aws,ssh,,,,,,,${canaries.refusedImport},not a key ${canaries.refusedImport},,,${canaries.refusedImport}\n`,
    );
    const refusedResult = await gh(['import', refused]);
    expect(refusedResult.code).toBe(1);
    expect(refusedResult.stderr).toContain('The import has 4 problems; nothing was written.');
    const broken = path.join(dir, 'broken.json');
    writeFileSync(broken, `[{"project": "Canaries", "password": ${canaries.brokenJson}}]`);
    const brokenResult = await gh(['import', broken]);
    expect(brokenResult.code).toBe(1);
    expect(brokenResult.stderr).toContain('The request body is not valid JSON.');

    const accounts = json<{ items: { id: string; username: string }[] }>(await gh(['accounts', 'list', device.id, '--json']));
    accountIds = [account.id];
    expect(accounts.items.map((a) => a.username)).toEqual(['root']);
  });

  it('shows the secrets on `accounts reveal`, and only there', async () => {
    const revealed = await gh(['accounts', 'reveal', accountIds[0] ?? '', '--reason', 'canary check']);
    expect(revealed.code).toBe(0);
    expect(revealed.stdout).toContain(canaries.accountPassword);
    expect(revealed.stdout).toContain(canaries.privateKey);

    const devices = json<{ items: { id: string; name: string }[] }>(await gh(['devices', 'list', '--search', 'imported-host', '--json']));
    const imported = json<{ items: { id: string }[] }>(await gh(['accounts', 'list', devices.items[0]?.id ?? '', '--json']));
    const importedSecrets = await gh(['accounts', 'reveal', imported.items[0]?.id ?? '', '--reason', 'canary check', '--json']);
    expect(JSON.parse(importedSecrets.stdout)).toMatchObject({
      password: canaries.importedPassword,
      passphrase: canaries.importedPassphrase,
      extraCredential: { enable: canaries.importedExtra },
    });

    for (const args of [
      ['devices', 'list'],
      ['projects', 'list'],
      ['users', 'list'],
      ['export', '--format', 'csv'],
      ['export', '--format', 'json'],
    ])
      expect((await gh(args)).code).toBe(0);
    for (const args of [
      ['audit', 'export'],
      ['audit', 'verify'],
    ]) {
      const result = await cli([...args, '--data-dir', dataDir, ...database.offlineArgs]);
      expect(result.code).toBe(0);
      outputs.push({ command: args.join(' '), result });
    }

    for (const { command, result } of outputs) {
      if (command === 'accounts reveal') continue;
      for (const [name, canary] of Object.entries(canaries)) {
        expect(result.stdout.includes(canary), `${name} on the stdout of gatehouse ${command}`).toBe(false);
        expect(result.stderr.includes(canary), `${name} on the stderr of gatehouse ${command}`).toBe(false);
      }
    }
  });

  it("never writes a secret to the server's stdout or stderr", async () => {
    expect((await server.stop()).code).toBe(0);
    // The logs did record the requests: the check below looks at real output.
    expect(server.logs.filter((l) => (l.req as { url?: string } | undefined)?.url === '/api/v1/inventory/import')).toHaveLength(3);
    for (const [name, canary] of Object.entries(canaries)) {
      expect(server.stdout.includes(canary), `${name} in the server's stdout`).toBe(false);
      expect(server.stderr.includes(canary), `${name} in the server's stderr`).toBe(false);
    }
  });

  it('stores no secret in clear in the database', async () => {
    let stored: string;
    if (dialect === 'sqlite') {
      stored = readdirSync(dataDir)
        .filter((f) => f.startsWith('gatehouse.sqlite'))
        .map((f) => readFileSync(path.join(dataDir, f)).toString('latin1'))
        .join('\n');
      expect(stored).toContain('canary-host');
    } else {
      stored = await dumpPostgres(database.env.DATABASE_URL ?? '');
      expect(stored).toContain('canary-host');
    }
    for (const [name, canary] of Object.entries(canaries)) expect(stored.includes(canary), `${name} in the database`).toBe(false);
  });
});
