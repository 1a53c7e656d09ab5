import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dialects } from '../support/db.js';
import {
  cli,
  cliJson,
  e2eDatabase,
  killServers,
  removeTempDirs,
  setupAdmin,
  startServer,
  startServerExpectingFailure,
  tempDir,
  type CliOptions,
  type CliResult,
  type E2eDatabase,
  type Env,
  type GatehouseServer,
} from '../support/server.js';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const newKey = () => randomBytes(32).toString('hex');

/**
 * Asserts that none of `keys` appears in what a command wrote, without printing the key
 * in the failure message.
 */
function expectNoKeyIn(result: Pick<CliResult, 'stdout' | 'stderr'>, ...keys: string[]): void {
  for (const key of keys) {
    for (const form of [key, key.toUpperCase(), Buffer.from(key, 'hex').toString('base64')]) {
      expect(result.stdout.includes(form), 'key material on stdout').toBe(false);
      expect(result.stderr.includes(form), 'key material on stderr').toBe(false);
    }
  }
}

const privateKey = `-----BEGIN OPENSSH PRIVATE KEY-----\n${randomBytes(48).toString('base64')}\n-----END OPENSSH PRIVATE KEY-----\n`;

/** A world where one data directory and one database are started, stopped and re-keyed. */
function scenario(dialect: (typeof dialects)[number]) {
  const s = {
    dir: '',
    dataDir: '',
    credentials: '',
    database: undefined as unknown as E2eDatabase,
    server: undefined as GatehouseServer | undefined,
    /** Account id → the password it was created with (the last account also has a private key). */
    secrets: new Map<string, string>(),
    async init() {
      s.dir = tempDir();
      s.dataDir = path.join(s.dir, 'data');
      s.credentials = path.join(s.dir, 'credentials.json');
      s.database = await e2eDatabase(dialect);
    },
    async start(env: Env = {}) {
      s.server = await startServer({ dataDir: s.dataDir, env: { ...s.database.env, ...env } });
      return s.server;
    },
    startFailing(env: Env) {
      return startServerExpectingFailure({ dataDir: s.dataDir, env: { ...s.database.env, ...env } });
    },
    gh(args: string[], opts: CliOptions = {}) {
      return cli([...args, '--url', s.server?.url ?? ''], { ...opts, env: { GATEHOUSE_CREDENTIALS: s.credentials, ...opts.env } });
    },
    ghJson<T>(args: string[], opts: CliOptions = {}) {
      return cliJson<T>([...args, '--url', s.server?.url ?? ''], { ...opts, env: { GATEHOUSE_CREDENTIALS: s.credentials, ...opts.env } });
    },
    /** An offline command on this data directory and database. */
    offline(args: string[], env: Env = {}) {
      return cli([...args, '--data-dir', s.dataDir, ...s.database.offlineArgs], { env: { GATEHOUSE_CREDENTIALS: s.credentials, ...env } });
    },
    /** Sets up the administrator and several accounts with secrets of every kind. */
    async populate() {
      const server = s.server as GatehouseServer;
      await setupAdmin(server, 'an admin password of some length', { env: { GATEHOUSE_CREDENTIALS: s.credentials } });
      const project = await s.ghJson<{ id: string }>(['projects', 'create', 'Vaulted']);
      const keyFile = path.join(s.dir, 'id_ed25519');
      writeFileSync(keyFile, privateKey, { mode: 0o600 });
      for (let i = 0; i < 4; i++) {
        const device = await s.ghJson<{ id: string }>(['devices', 'create', `host-${i}`, '--project', project.id, '--provider', 'gcp']);
        const password = `pw-${i}-${randomBytes(9).toString('base64url')}`;
        const extra = i === 3 ? ['--private-key-file', keyFile] : [];
        const account = await s.ghJson<{ id: string }>(['accounts', 'create', device.id, `user${i}`, '--password-stdin', ...extra], {
          stdin: password,
        });
        s.secrets.set(account.id, password);
      }
    },
    /** Reveals every account and compares it with what was stored. */
    async expectEverySecretBack() {
      for (const [id, password] of s.secrets) {
        const revealed = await s.ghJson<{ password: string; privateKey: string | null }>([
          'accounts',
          'reveal',
          id,
          '--reason',
          'verify rotation',
        ]);
        expect(revealed.password).toBe(password);
      }
      const withKey = [...s.secrets.keys()].at(-1) as string;
      const revealed = await s.ghJson<{ privateKey: string }>(['accounts', 'reveal', withKey, '--reason', 'verify rotation']);
      expect(revealed.privateKey).toBe(privateKey);
    },
    async stop() {
      const stopped = await (s.server as GatehouseServer).stop();
      expect(stopped.code).toBe(0);
      s.server = undefined;
    },
  };
  return s;
}

describe.each(dialects)('master key in the data directory on %s', (dialect) => {
  const s = scenario(dialect);
  const keyFile = () => path.join(s.dataDir, 'master.key');
  beforeAll(async () => {
    await s.init();
    await s.start();
    await s.populate();
  });
  afterAll(async () => {
    killServers();
    await s.database.drop();
    removeTempDirs();
  });

  it('rotates with the server stopped: every secret reveals after a restart, and master.key changed', async () => {
    await s.stop();
    const before = readFileSync(keyFile(), 'utf8');
    const rotated = await s.offline(['vault', 'rotate-master-key']);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toMatch(/^Master key rotated: 1 data key re-wrapped; new key id [0-9a-f]{16}/);
    const after = readFileSync(keyFile(), 'utf8');
    expect(sha256(after) === sha256(before), 'master.key is unchanged').toBe(false);
    expect(after.trim()).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(keyFile()).mode & 0o777).toBe(0o600);
    expect(existsSync(`${keyFile()}.next`)).toBe(false);
    expectNoKeyIn(rotated, before.trim(), after.trim());

    await s.start();
    await s.expectEverySecretBack();
  });

  it('rotates with the server running: it keeps serving, and after a restart every secret reveals', async () => {
    const before = readFileSync(keyFile(), 'utf8');
    const rotated = await s.offline(['vault', 'rotate-master-key']);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(sha256(readFileSync(keyFile(), 'utf8')) === sha256(before), 'master.key is unchanged').toBe(false);
    expectNoKeyIn(rotated, before.trim(), readFileSync(keyFile(), 'utf8').trim());
    await s.expectEverySecretBack();

    await s.stop();
    await s.start();
    await s.expectEverySecretBack();
    const audit = await s.offline(['audit', 'export']);
    expect(audit.stdout.split('\n').filter((l) => l.includes('"vault.rotate_master_key"'))).toHaveLength(2);
  });

  it('refuses to start with a different GATEHOUSE_MASTER_KEY, naming the mismatch and what to do', async () => {
    await s.stop();
    const wrong = newKey();
    const result = await s.startFailing({ GATEHOUSE_MASTER_KEY: wrong });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/master key given \(id [0-9a-f]+\) is not the one this database's secrets are sealed with/);
    expect(result.stderr).toContain('Start with the right GATEHOUSE_MASTER_KEY or key file');
    expectNoKeyIn(result, wrong, readFileSync(keyFile(), 'utf8').trim());
  });

  it('refuses to start when master.key is missing beside a sealed database, and writes no new key', async () => {
    const backup = path.join(s.dir, 'master.key.backup');
    renameSync(keyFile(), backup);
    const result = await s.startFailing({});
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`No master key: ${keyFile()} does not exist`);
    expect(result.stderr).toContain(`restore ${keyFile()} from your backup`);
    expect(existsSync(keyFile())).toBe(false);
    renameSync(backup, keyFile());
  });

  it('refuses to start with an unreadable master key file, saying which file and what to do', async () => {
    const missing = path.join(s.dir, 'no-such.key');
    const gone = await s.startFailing({ GATEHOUSE_MASTER_KEY_FILE: missing });
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain(`Cannot read the master key file ${missing} (ENOENT). Check the path`);

    const directory = path.join(s.dir, 'a-directory.key');
    mkdirSync(directory);
    const notAFile = await s.startFailing({ GATEHOUSE_MASTER_KEY_FILE: directory });
    expect(notAFile.code).not.toBe(0);
    expect(notAFile.stderr).toContain(`Cannot read the master key file ${directory} (EISDIR)`);

    // A common mistake: the key file written in env-file form. The key inside must not be echoed.
    const real = readFileSync(keyFile(), 'utf8').trim();
    const garbage = path.join(s.dir, 'garbage.key');
    writeFileSync(garbage, `GATEHOUSE_MASTER_KEY=${real}\n`);
    const bad = await s.startFailing({ GATEHOUSE_MASTER_KEY_FILE: garbage });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain(`The master key in ${garbage} is not 32 bytes written as 64 hex or 44 base64 characters`);
    expectNoKeyIn(bad, real);

    const badEnv = await s.startFailing({ GATEHOUSE_MASTER_KEY: `${real.slice(0, 40)}!!` });
    expect(badEnv.code).not.toBe(0);
    expect(badEnv.stderr).toContain('The master key in GATEHOUSE_MASTER_KEY is not 32 bytes');
    expect(badEnv.stderr.includes(real.slice(0, 40)), 'key material on stderr').toBe(false);

    // None of the refused starts touched the key or the data.
    await s.start();
    await s.expectEverySecretBack();
  });
});

describe.each(dialects)('master key from GATEHOUSE_MASTER_KEY on %s', (dialect) => {
  const s = scenario(dialect);
  const oldKey = newKey();
  const nextKey = newKey();
  beforeAll(async () => {
    await s.init();
    await s.start({ GATEHOUSE_MASTER_KEY: oldKey });
    await s.populate();
  });
  afterAll(async () => {
    killServers();
    await s.database.drop();
    removeTempDirs();
  });

  it('keeps no key in the data directory', () => {
    expect(existsSync(path.join(s.dataDir, 'master.key'))).toBe(false);
  });

  it('rotation requires --new-key-file, and changes nothing without it', async () => {
    const refused = await s.offline(['vault', 'rotate-master-key'], { GATEHOUSE_MASTER_KEY: oldKey });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('The master key comes from GATEHOUSE_MASTER_KEY');
    expect(refused.stderr).toContain('--new-key-file');
    expectNoKeyIn(refused, oldKey);
    await s.expectEverySecretBack();
  });

  it('rotates with --new-key-file; the old key then makes the server refuse to start, the new one works', async () => {
    await s.stop();
    const file = path.join(s.dir, 'new.key');
    writeFileSync(file, `${nextKey}\n`, { mode: 0o600 });
    const rotated = await s.offline(['vault', 'rotate-master-key', '--new-key-file', file], { GATEHOUSE_MASTER_KEY: oldKey });
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toContain('Set GATEHOUSE_MASTER_KEY (or the key file) to the new key before restarting the server.');
    expectNoKeyIn(rotated, oldKey, nextKey);
    expect(existsSync(path.join(s.dataDir, 'master.key'))).toBe(false);

    const stale = await s.startFailing({ GATEHOUSE_MASTER_KEY: oldKey });
    expect(stale.code).not.toBe(0);
    expect(stale.stderr).toContain("is not the one this database's secrets are sealed with");
    expect(stale.stderr).toContain('if you just rotated it, use the new key');
    expectNoKeyIn(stale, oldKey, nextKey);

    await s.start({ GATEHOUSE_MASTER_KEY: nextKey });
    await s.expectEverySecretBack();
    await s.stop();

    // The same key from a mounted file works too.
    await s.start({ GATEHOUSE_MASTER_KEY_FILE: file });
    await s.expectEverySecretBack();
  });
});
