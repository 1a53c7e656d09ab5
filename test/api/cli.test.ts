import { readFileSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer } from 'node:https';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freeLowPort } from '../support/agent.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { runCliInProcess } from '../support/cli-in-process.js';

/** One in-process server over TLS: its URL, data directory and an administrator who signs in with a password. */
interface Served {
  t: TestApp;
  url: string;
  dataDir: string;
  ca: string;
  admin: { username: string; password: string; token: string };
}

async function serve(dialect: 'sqlite' | 'postgres'): Promise<Served> {
  const t = await createTestApp(dialect, {}, { tls: true });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  const url = `https://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
  const dataDir = t.database.dataDir;
  return { t, url, dataDir, ca: path.join(dataDir, 'tls', 'server.crt'), admin: await t.userWithToken('admin') };
}

/**
 * The CLI a newcomer uses (issue 22): tables by default and JSON with --json or -o json,
 * names wherever an id is asked, deletes that say what they deleted, a dry-run import that
 * says what it would do, and named profiles for two servers.
 */
describe('gatehouse CLI output, names and profiles', () => {
  let a: Served;
  let b: Served;
  let credentials: string;
  const gatehouse = (args: string[], opts: { stdin?: string } = {}) => runCliInProcess(args, opts);
  const ok = async (args: string[], opts: { stdin?: string } = {}) => {
    const run = await gatehouse(args, opts);
    expect(run.code, `gatehouse ${args.join(' ')}: ${run.err}`).toBe(0);
    return run;
  };
  const json = async <T>(args: string[]): Promise<T> => JSON.parse((await ok([...args, '--json'])).out) as T;

  beforeAll(async () => {
    [a, b] = await Promise.all([serve('sqlite'), serve('postgres')]);
    credentials = path.join(a.dataDir, 'credentials.json');
    vi.stubEnv('GATEHOUSE_CREDENTIALS', credentials);
    vi.stubEnv('GATEHOUSE_PROFILE', undefined);
    vi.stubEnv('GATEHOUSE_URL', undefined);
    vi.stubEnv('GATEHOUSE_TOKEN', undefined);
    vi.stubEnv('GATEHOUSE_CA', undefined);
    vi.stubEnv('GATEHOUSE_DATA_DIR', undefined);
    const login = await ok(['login', '--username', a.admin.username, '--password-stdin', '--url', a.url, '--data-dir', a.dataDir], {
      stdin: `${a.admin.password}\n`,
    });
    expect(login.err).toContain(`API token saved in ${credentials} (profile default)`);
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await Promise.all([a?.t.close(), b?.t.close()]);
  });

  it('lists as tables with counted, correctly plural footers; --json and -o json print the API answer', async () => {
    expect((await ok(['projects', 'list'])).out).toBe('No projects yet: ./gatehouse projects create <name> makes one.\n');
    const created = await ok(['projects', 'create', 'Payments', '--description', 'card data']);
    expect(created.out).toMatch(/^Name +Payments$/m);
    expect(created.out).toMatch(/^Description +card data$/m);
    // The device's project is given by name, not id.
    await ok([
      'devices',
      'create',
      'db-1',
      '--project',
      'Payments',
      '--provider',
      'aws',
      '--protocol',
      'ssh',
      'sftp',
      '--private-ip',
      '10.0.0.5',
    ]);

    const table = (await ok(['devices', 'list', '--project', 'Payments'])).out.split('\n');
    expect(table[0]).toMatch(/^PROJECT +NAME +PROVIDER +PROTOCOLS +ADDRESS +TAGS +ID$/);
    expect(table[1]).toMatch(/^Payments +db-1 +aws +ssh, sftp +10\.0\.0\.5 +- +[0-9a-f-]{36}$/);
    expect(table.slice(2)).toEqual(['', '1 device.', '']);

    const page = await json<{ items: { name: string }[]; total: number }>(['devices', 'list', '--project', 'Payments']);
    expect(page).toMatchObject({ total: 1, items: [{ name: 'db-1' }] });
    expect(JSON.parse((await ok(['devices', 'list', '-o', 'json'])).out)).toEqual(page);

    await ok(['projects', 'create', 'Lab']);
    expect((await ok(['projects', 'list'])).out).toMatch(/\n\n2 projects\.\n$/);
    await ok(['devices', 'create', 'db-2', '--project', 'Payments', '--provider', 'aws']);
    expect((await ok(['devices', 'list', '--limit', '1'])).out).toMatch(
      /^Payments +db-1 .*\n\n1–1 of 2 devices \(--offset 1 for more\)\.\n$/m,
    );
    expect((await ok(['devices', 'list', '--limit', '1', '--offset', '1'])).out).toMatch(/^Payments +db-2 .*\n\n2–2 of 2 devices\.\n$/m);
  });

  it('takes names and project/device paths where ids were asked, and lists the candidates of an ambiguous name', async () => {
    await ok(['projects', 'create', 'Ops']);
    await ok(['devices', 'create', 'web', '--project', 'Ops', '--provider', 'aws']);
    await ok(['devices', 'create', 'web', '--project', 'Lab', '--provider', 'gcp']);
    const ambiguous = await gatehouse(['devices', 'show', 'web']);
    expect(ambiguous.code).toBe(1);
    const ids = await json<{ items: { id: string; projectId: string }[] }>(['devices', 'list', '--search', 'web']);
    expect(ids.items).toHaveLength(2);
    expect(ambiguous.err).toMatch(
      /<device> web: 2 devices have that name: say which, as (Lab|Ops)\/web \([0-9a-f-]{36}\) or (Lab|Ops)\/web/,
    );
    expect((await ok(['devices', 'show', 'Lab/web'])).out).toMatch(/^Provider +gcp$/m);

    const unknown = await gatehouse(['devices', 'list', '--project', 'Nope']);
    expect(unknown.err).toBe('gatehouse: --project Nope: names no project you can see (./gatehouse projects list shows them).\n');

    // Accounts as device/user, on a device named alone (only one db-1) or by its path.
    await ok(['accounts', 'create', 'db-1', 'root', '--password-stdin'], { stdin: 'first-secret\n' });
    const accounts = await ok(['accounts', 'list', 'Payments/db-1']);
    expect(accounts.out).toMatch(/^USER +PASSWORD +KEY +ID\nroot +stored +- +[0-9a-f-]{36}\n\n1 account\.\n$/);
    expect(accounts.out).not.toContain('first-secret');
    const account = await json<{ id: string; username: string }>(['accounts', 'show', 'Payments/db-1/root']);
    expect(account.username).toBe('root');
    expect((await ok(['accounts', 'reveal', 'db-1/root', '--reason', 'cli test'])).out).toMatch(/^Password +first-secret$/m);

    // Deletes say what they deleted, with the id.
    expect((await ok(['accounts', 'delete', 'db-1/root'])).out).toBe(`Account Payments/db-1/root (${account.id}) deleted.\n`);
    const web = await json<{ id: string }>(['devices', 'show', 'Ops/web']);
    expect((await ok(['devices', 'delete', 'Ops/web'])).out).toBe(`Device Ops/web (${web.id}) deleted.\n`);
    const ops = await json<{ id: string }>(['projects', 'show', 'Ops']);
    expect(await json(['projects', 'delete', 'Ops'])).toEqual({ deleted: { kind: 'project', name: 'Ops', id: ops.id } });

    // Users and gateways by name.
    await ok(['users', 'create', 'olivia', '--role', 'operator', '--password-stdin'], { stdin: 'olivia-password-1\n' });
    expect((await ok(['users', 'update', 'olivia', '--role', 'auditor'])).out).toMatch(/^Role +auditor$/m);
    await ok(['users', 'grant', 'olivia', 'Lab', '--device', 'Lab/web']);
    expect((await ok(['users', 'list'])).out).toMatch(/^olivia +auditor +active +no +- +[0-9a-f-]{36}$/m);
    const gateways = await ok(['gateways', 'list']);
    expect(gateways.out).toMatch(/^NAME +SEGMENT +STATUS/);
  });

  it('import --dry-run says what would be imported, never "Imported."', async () => {
    const file = path.join(a.dataDir, 'inventory.csv');
    writeFileSync(
      file,
      'project,device,provider,protocols,public_ip,private_ip,url_port,access_type,tags,account,password,private_key,pem_file_name,passphrase,extra_credential\n' +
        'Imported,imp-1,aws,ssh,,10.1.0.1,,gateway,,deploy,pw-1,,,,\n' +
        'Imported,imp-2,aws,ssh,,10.1.0.2,,gateway,,,,,,,\n',
    );
    const dry = await ok(['import', file, '--dry-run']);
    expect(dry.err).toContain('Checked (dry run): nothing was written.');
    expect(dry.err).not.toContain('Imported.');
    expect(dry.out).toBe(
      'Dry run: 2 rows: 1 project, 2 devices, 1 account would be created; 0 devices, 0 accounts would be updated. Run it again without --dry-run to import.\n',
    );
    expect((await ok(['devices', 'list', '--project', 'Lab'])).out).toContain('1 device.');
    expect(await gatehouse(['devices', 'list', '--project', 'Imported'])).toMatchObject({ code: 1 });
    expect((await ok(['import', file])).out).toBe(
      'Imported 2 rows: 1 project, 2 devices, 1 account created; 0 devices, 0 accounts updated.\n',
    );
  });

  it('keeps one profile per server: --profile and GATEHOUSE_PROFILE pick it; nothing saved for one server goes to another', async () => {
    // A second server's sign-in does not silently replace the first one's.
    const replaced = await gatehouse(
      ['login', '--username', b.admin.username, '--password-stdin', '--url', b.url, '--data-dir', b.dataDir],
      {
        stdin: `${b.admin.password}\n`,
      },
    );
    expect(replaced.code).toBe(1);
    expect(replaced.err).toContain(`Profile default holds the sign-in for ${a.url}, not ${b.url}. Keep both: add --profile <name>`);
    await ok(['login', '--profile', 'b', '--username', b.admin.username, '--password-stdin', '--url', b.url, '--data-dir', b.dataDir], {
      stdin: `${b.admin.password}\n`,
    });

    expect((await ok(['projects', 'list', '--profile', 'b'])).out).toBe('No projects yet: ./gatehouse projects create <name> makes one.\n');
    expect((await ok(['projects', 'list'])).out).toContain('Payments');
    vi.stubEnv('GATEHOUSE_PROFILE', 'b');
    try {
      await ok(['projects', 'create', 'OnlyOnB']);
      const profiles = await ok(['profiles']);
      expect(profiles.out).toMatch(new RegExp(`^\\* +b +${b.url.replaceAll('.', '\\.')} +${b.admin.username} +${b.ca}$`, 'm'));
      expect(profiles.out).toMatch(new RegExp(`^ +default +${a.url.replaceAll('.', '\\.')} +${a.admin.username}`, 'm'));
    } finally {
      vi.stubEnv('GATEHOUSE_PROFILE', undefined);
    }
    expect((await ok(['projects', 'list'])).out).not.toContain('OnlyOnB');
    const saved = readFileSync(credentials, 'utf8');
    const { profiles: all } = JSON.parse(saved) as { profiles: Record<string, { url: string; token: string; ca: string }> };
    const listed = await ok(['profiles', '--json']);
    for (const p of Object.values(all)) expect(listed.out).not.toContain(p.token);

    // A profile's token goes to no other server: with --url B and no token of its own, the command stops before any request.
    const elsewhere = await gatehouse(['projects', 'list', '--url', b.url, '--ca', b.ca]);
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.err).toContain(`Profile default holds the API token for ${a.url}, not ${b.url}`);
    expect(elsewhere.err).toContain(`./gatehouse login --url ${b.url} --profile <name>`);
    // With a token of its own (GATEHOUSE_TOKEN) --url and --ca win over the profile's.
    vi.stubEnv('GATEHOUSE_TOKEN', b.admin.token);
    try {
      expect((await ok(['projects', 'list', '--url', b.url, '--ca', b.ca])).out).toContain('OnlyOnB');
    } finally {
      vi.stubEnv('GATEHOUSE_TOKEN', undefined);
    }
    const missing = await gatehouse(['projects', 'list', '--profile', 'nope']);
    expect(missing.err).toContain('--profile nope: no such profile');

    // An explicit --data-dir wins over the CA a profile saved (it used to fail "not trusted by <A's CA>").
    writeFileSync(credentials, JSON.stringify({ profiles: { ...all, stale: { ...all.b, ca: a.ca } } }));
    const stale = await gatehouse(['projects', 'list', '--profile', 'stale']);
    expect(stale.err).toContain(`not trusted by ${a.ca}`);
    expect((await ok(['projects', 'list', '--profile', 'stale', '--data-dir', b.dataDir])).out).toContain('OnlyOnB');
  });

  it('never sends a saved token to another server: a plain HTTPS listener at another --url records no authorization header', async () => {
    const tls = path.join(b.dataDir, 'tls');
    const seen: IncomingHttpHeaders[] = [];
    const listener = createServer(
      { key: readFileSync(path.join(tls, 'server.key')), cert: readFileSync(path.join(tls, 'server.crt')) },
      (req, res) => {
        seen.push(req.headers);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"items":[]}');
      },
    );
    const port = await freeLowPort();
    await new Promise<void>((resolve) => listener.listen(port, '127.0.0.1', resolve));
    const other = `https://127.0.0.1:${port}`;
    try {
      for (const args of [
        ['projects', 'list', '--url', other, '--ca', b.ca],
        ['devices', 'list', '--url', other, '--data-dir', b.dataDir],
        ['projects', 'list', '--profile', 'b', '--url', other],
      ]) {
        const run = await gatehouse(args);
        expect(run.code, args.join(' ')).toBe(1);
        expect(run.err).toContain(`not ${other}: a saved token is sent only to the server it was saved for`);
      }
      vi.stubEnv('GATEHOUSE_URL', other);
      expect((await gatehouse(['projects', 'list', '--ca', b.ca])).err).toContain(`holds the API token for ${a.url}, not ${other}`);
      vi.stubEnv('GATEHOUSE_URL', undefined);
      // Signing in there under a new profile sends the password, never the old profile's token.
      await gatehouse(['login', '--profile', 'other', '--username', 'x', '--password-stdin', '--url', other, '--ca', b.ca], {
        stdin: 'not-a-real-password\n',
      });
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.every((h) => h.authorization === undefined)).toBe(true);
    } finally {
      vi.stubEnv('GATEHOUSE_URL', undefined);
      await new Promise((resolve) => listener.close(resolve));
    }
  });

  it('reads the single-profile file of earlier versions as the default profile, and keeps it when another is saved', async () => {
    const { profiles } = JSON.parse(readFileSync(credentials, 'utf8')) as { profiles: Record<string, object> };
    writeFileSync(credentials, JSON.stringify(profiles.default));
    expect((await ok(['projects', 'list'])).out).toContain('Payments');
    await ok(['login', '--profile', 'b', '--username', b.admin.username, '--password-stdin', '--url', b.url, '--ca', b.ca], {
      stdin: `${b.admin.password}\n`,
    });
    const migrated = JSON.parse(readFileSync(credentials, 'utf8')) as { profiles: Record<string, { url: string }> };
    expect(Object.keys(migrated.profiles).sort()).toEqual(['b', 'default']);
    expect(migrated.profiles.default?.url).toBe(a.url);
    expect((await ok(['projects', 'list'])).out).toContain('Payments');
  });
});
