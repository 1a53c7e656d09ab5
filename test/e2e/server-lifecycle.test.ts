import { statSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { dialects } from '../support/db.js';
import {
  cli,
  cliJson,
  e2eDatabase,
  fingerprintOfFile,
  killServers,
  removeTempDirs,
  setupAdmin,
  startServer,
  tempDir,
  type CliOptions,
  type E2eDatabase,
  type GatehouseServer,
} from '../support/server.js';

const header =
  'project,device,provider,protocols,public_ip,private_ip,url_port,access_type,tags,account,password,private_key,pem_file_name,passphrase,extra_credential';

/** An inventory CSV of `rows` accounts, two per device, in `projects` projects. */
function writeInventoryCsv(file: string, rows: number, prefix: string, projects = 10): void {
  const lines = [header];
  for (let i = 0; i < rows; i++) {
    const d = Math.floor(i / 2);
    lines.push(
      `${prefix}-project-${d % projects},${prefix}-host-${d},aws,ssh;rdp,,10.${(d >> 16) & 255}.${(d >> 8) & 255}.${d & 255},,gateway,gateway-office1,user${i % 2},pw-${prefix}-${i},,,,`,
    );
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}

const modeOf = (file: string) => statSync(file).mode & 0o777;

interface Page {
  items: { id: string; name: string; tags: string[] }[];
  total: number;
}

describe.each(dialects)('gatehouse server on %s', (dialect) => {
  let dir: string;
  let dataDir: string;
  let database: E2eDatabase;
  let server: GatehouseServer;
  let credentials: string;
  const adminPassword = 'correct horse battery staple';
  const rootPassword = 'S3cret-root-password!';
  const figures: string[] = [];

  /** The CLI against the running server, with this suite's credentials. */
  const gh = (args: string[], opts: CliOptions = {}) =>
    cli([...args, '--url', server.url], { ...opts, env: { GATEHOUSE_CREDENTIALS: credentials, ...opts.env } });
  const ghJson = <T>(args: string[], opts: CliOptions = {}) =>
    cliJson<T>([...args, '--url', server.url], { ...opts, env: { GATEHOUSE_CREDENTIALS: credentials, ...opts.env } });
  const start = () => startServer({ dataDir, env: database.env });

  beforeAll(async () => {
    dir = tempDir();
    dataDir = path.join(dir, 'data');
    credentials = path.join(dir, 'credentials.json');
    database = await e2eDatabase(dialect);
  });
  afterAll(async () => {
    killServers();
    await database.drop();
    removeTempDirs();
    console.log(`[figures] ${dialect}:\n  ${figures.join('\n  ')}`);
  });

  it('first start creates the data directory, the master key, the certificate, the audit checkpoint key and the set-up token, all private', async () => {
    expect(existsSync(dataDir)).toBe(false);
    server = await start();
    figures.push(`spawn → listening, first start (TLS key generated, database migrated): ${server.startupMs.toFixed(0)} ms`);

    expect(modeOf(path.join(dataDir, 'master.key'))).toBe(0o600);
    expect(readFileSync(path.join(dataDir, 'master.key'), 'utf8').trim()).toMatch(/^[0-9a-f]{64}$/);
    expect(modeOf(path.join(dataDir, 'tls', 'server.key'))).toBe(0o600);
    expect(modeOf(path.join(dataDir, 'audit-checkpoint.key'))).toBe(0o600);
    expect(existsSync(path.join(dataDir, 'tls', 'server.crt'))).toBe(true);
    expect(modeOf(path.join(dataDir, 'setup-token'))).toBe(0o600);
    expect(existsSync(path.join(dataDir, 'gatehouse.sqlite'))).toBe(dialect === 'sqlite');

    const fingerprint = fingerprintOfFile(server.certFile);
    expect(server.stdout).toContain(`Certificate SHA-256 fingerprint: ${fingerprint}`);
    expect(server.stderr).toBe('');
  });

  it('answers /healthz and /readyz over TLS verified against tls/server.crt, and only to clients that trust it', async () => {
    const health = await server.request('/healthz');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ status: 'ok' });
    expect(health.peerFingerprint).toBe(fingerprintOfFile(server.certFile));

    const ready = await server.request('/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready', database: dialect });

    // Without the certificate as CA, Node's default trust store must refuse the connection.
    await expect(server.request('/healthz', { ca: null })).rejects.toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  });

  it('gatehouse setup creates the administrator with the set-up token and saves an API token', async () => {
    const result = await setupAdmin(server, adminPassword, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    expect(result.stderr).toContain('Administrator admin created.');
    expect(modeOf(credentials)).toBe(0o600);
    const saved = (JSON.parse(readFileSync(credentials, 'utf8')) as { profiles: { default: { url: string; token: string; ca: string } } })
      .profiles.default;
    expect(saved).toMatchObject({ url: server.url, ca: server.certFile, username: 'admin' });
    expect(saved.token).toMatch(/^gatehouse_pat_/);
    // The token is one-time: it is gone once used.
    expect(existsSync(path.join(dataDir, 'setup-token'))).toBe(false);
    const again = await cli(['setup', '--data-dir', dataDir, '--url', server.url, '--password-stdin'], {
      stdin: adminPassword,
      env: { GATEHOUSE_CREDENTIALS: credentials },
    });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('set-up is done already');

    // Idle: the resident size has settled (two samples 200 ms apart within 1 MiB).
    let last: number | undefined;
    await expect
      .poll(
        () => {
          const [before, now] = [last, server.rssKiB()];
          last = now;
          return before !== undefined && Math.abs(now - before) < 1024;
        },
        { timeout: 30_000, interval: 200 },
      )
      .toBe(true);
    figures.push(`idle RSS after setup: ${(server.rssKiB() / 1024).toFixed(1)} MiB`);
  });

  let deviceId: string;
  let accountId: string;

  it('creates a project, a device tagged for a gateway segment and an account, then lists, exports (masked) and reveals', async () => {
    const project = await ghJson<{ id: string; name: string }>(['projects', 'create', 'Office']);
    expect(project.name).toBe('Office');
    const device = await ghJson<{ id: string; tags: string[]; projectId: string }>([
      'devices',
      'create',
      'office-gw-1',
      '--project',
      project.id,
      '--provider',
      'on-prem',
      '--protocol',
      'ssh',
      '--private-ip',
      '10.0.0.5',
      '--tag',
      'gateway-office1',
    ]);
    expect(device).toMatchObject({ projectId: project.id, tags: ['gateway-office1'] });
    deviceId = device.id;

    const created = await gh(['accounts', 'create', deviceId, 'root', '--password-stdin', '--json'], { stdin: `${rootPassword}\n` });
    expect(created.code).toBe(0);
    expect(created.stdout).not.toContain(rootPassword);
    const account = JSON.parse(created.stdout) as { id: string; username: string; password: string };
    expect(account).toMatchObject({ username: 'root', password: '********' });
    accountId = account.id;

    const listed = await ghJson<Page>(['devices', 'list']);
    expect(listed.total).toBe(1);
    expect(listed.items[0]).toMatchObject({ id: deviceId, name: 'office-gw-1', tags: ['gateway-office1'] });

    const csv = await gh(['export', '--format', 'csv']);
    expect(csv.code).toBe(0);
    expect(csv.stdout).not.toContain(rootPassword);
    const [head, ...rows] = csv.stdout.trim().split('\n');
    expect(head).toBe(header);
    expect(rows).toHaveLength(1);
    const columns = header.split(',');
    const row = Object.fromEntries((rows[0] ?? '').split(',').map((v, i): [string, string] => [columns[i] ?? `column ${i}`, v]));
    expect(row).toMatchObject({ project: 'Office', device: 'office-gw-1', account: 'root', password: '********', tags: 'gateway-office1' });

    const revealed = await ghJson<{ password: string }>(['accounts', 'reveal', accountId, '--reason', 'x']);
    expect(revealed.password).toBe(rootPassword);
  });

  it('imports a 20,000-row CSV with progress on stderr', async () => {
    const file = path.join(dir, 'inventory-20k.csv');
    writeInventoryCsv(file, 20_000, 'bulk');
    const started = performance.now();
    const result = await gh(['import', file, '--json']);
    figures.push(`import of 20,000 CSV rows through the CLI: ${(performance.now() - started).toFixed(0)} ms`);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/Uploading inventory-20k\.csv: \d+% /);
    expect(result.stderr).toContain('Uploading inventory-20k.csv: 100% ');
    expect(result.stderr).toContain('Imported.');
    expect(JSON.parse(result.stdout)).toMatchObject({ rows: 20_000, projectsCreated: 10, devicesCreated: 10_000, accountsCreated: 20_000 });

    const page = await ghJson<Page>(['devices', 'list', '--search', 'bulk-host-9999']);
    expect(page.items.map((d) => d.name)).toEqual(['bulk-host-9999']);
    expect((await ghJson<Page>(['devices', 'list', '--limit', '1'])).total).toBe(10_001);
    const accounts = await ghJson<{ items: { id: string; username: string }[] }>(['accounts', 'list', page.items[0]?.id ?? '']);
    expect(accounts.items.map((a) => a.username)).toEqual(['user0', 'user1']);
    const secret = await ghJson<{ password: string }>(['accounts', 'reveal', accounts.items[1]?.id ?? '', '--reason', 'check import']);
    expect(secret.password).toBe('pw-bulk-19999');
  });

  it('refuses an import with bad rows: exit 1, every bad row and field named, nothing written', async () => {
    const file = path.join(dir, 'inventory-bad.csv');
    writeInventoryCsv(file, 20_000, 'again');
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    // Line n of the file is "row n" to the importer (the header is row 1).
    const spoil = (row: number, column: number, value: string) => {
      const cells = (lines[row - 1] ?? '').split(',');
      cells[column] = value;
      lines[row - 1] = cells.join(',');
    };
    spoil(2, 2, ''); // provider
    spoil(5000, 4, '300.1.2.3'); // public_ip
    spoil(12_345, 0, ''); // project
    spoil(12_345, 3, 'ssh;gopher'); // protocols
    spoil(20_001, 8, '-bad tag'); // tags
    writeFileSync(file, `${lines.join('\n')}\n`);
    const before = await gh(['export', '--format', 'csv']);

    const result = await gh(['import', file, '--json']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('Import refused; nothing was written.');
    expect(result.stderr).toContain('The import has 5 problems');
    const listed = result.stderr.split('\n').filter((l) => l.startsWith('  - '));
    expect(listed).toEqual([
      '  - row 2.provider: is required',
      '  - row 5000.public_ip: must be an IPv4 or IPv6 address',
      '  - row 12345.project: is required',
      '  - row 12345.protocols[1]: must be one of ssh, sftp, rdp, vnc, http, https, telnet, ftp, mysql, postgresql, mssql, oracle, mongodb, redis, database, in any case (PostgreSQL, SQL Server, MariaDB are read too)',
      expect.stringMatching(/^ {2}- row 20001\.tags\[0\]: must be 1-63 letters/) as string,
    ]);

    expect((await ghJson<Page>(['devices', 'list', '--search', 'again-host', '--limit', '1'])).total).toBe(0);
    const after = await gh(['export', '--format', 'csv']);
    expect(after.stdout === before.stdout, 'the export changed after a refused import').toBe(true);
  });

  it('lists every bad row even when there are many', async () => {
    const file = path.join(dir, 'inventory-many-bad.csv');
    writeInventoryCsv(file, 20_000, 'many');
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    const bad: number[] = [];
    for (let row = 2; row <= 20_001; row += 250) {
      lines[row - 1] = (lines[row - 1] ?? '').replace(',aws,', ',,');
      bad.push(row);
    }
    writeFileSync(file, `${lines.join('\n')}\n`);

    const result = await gh(['import', file, '--json']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`The import has ${bad.length} problems`);
    const listed = result.stderr.split('\n').filter((l) => l.startsWith('  - '));
    expect(listed).toEqual(bad.map((row) => `  - row ${row}.provider: is required`));
    expect((await ghJson<Page>(['devices', 'list', '--search', 'many-host', '--limit', '1'])).total).toBe(0);
  });

  it('SIGTERM lets an import in flight finish, then exits 0 within seconds', async () => {
    const file = path.join(dir, 'inventory-2k.csv');
    writeInventoryCsv(file, 2_000, 'late');
    const seen = server.stdout.length;
    const importing = gh(['import', file, '--json']);
    // Signal as soon as the server has the request.
    await vi.waitFor(() => expect(server.stdout.slice(seen)).toContain('"url":"/api/v1/inventory/import"'), {
      timeout: 30_000,
      interval: 25,
    });
    const stopped = await server.stop();
    const imported = await importing;
    figures.push(`SIGTERM → exit during an import: ${stopped.ms.toFixed(0)} ms`);
    expect(imported.code, imported.stderr).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ rows: 2_000, devicesCreated: 1_000 });
    expect(stopped.code).toBe(0);
    expect(server.logs.some((l) => l.msg === 'shutting down' && l.signal === 'SIGTERM')).toBe(true);
  });

  it('restarts on the same data directory with everything kept and no new set-up token', async () => {
    const certificate = readFileSync(server.certFile, 'utf8');
    server = await start();
    figures.push(`spawn → listening, restart: ${server.startupMs.toFixed(0)} ms`);
    expect(existsSync(path.join(dataDir, 'setup-token'))).toBe(false);
    expect(server.stdout).not.toContain('No administrator yet');
    expect(readFileSync(server.certFile, 'utf8')).toBe(certificate);

    // The saved API token, the inventory and the sealed secret all survived.
    expect((await ghJson<Page>(['devices', 'list', '--limit', '1'])).total).toBe(11_001);
    expect((await ghJson<{ password: string }>(['accounts', 'reveal', accountId, '--reason', 'after restart'])).password).toBe(
      rootPassword,
    );

    const idle = await server.stop();
    figures.push(`SIGTERM → exit when idle: ${idle.ms.toFixed(0)} ms`);
    expect(idle.code).toBe(0);
    expect(idle.ms).toBeLessThan(5_000);
  });
});
