import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ageKeygen,
  awsDownload,
  canIsolateNetwork,
  csvField,
  inventoryHeader,
  RestartableS3rver,
  runOffline,
  s3rverBreakGlassSettings,
  startHeldWorkbookUpload,
  waitFor,
  writeBulkInventory,
} from '../support/breakglass-e2e.js';
import { dialects } from '../support/db.js';
import {
  cli,
  e2eDatabase,
  killServers,
  removeTempDirs,
  savedToken,
  setupAdmin,
  startServer,
  tempDir,
  type CliOptions,
  type CliResult,
  type E2eDatabase,
  type GatehouseServer,
} from '../support/server.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, azuriteContainerSas, startAzurite } from '../support/storage.js';

/** What `gatehouse breakglass runs` prints for one run. */
interface RunView {
  id: string;
  trigger: string;
  result: 'running' | 'success' | 'failure';
  attempts: number;
  target: string | null;
  objects: { data?: string; manifest?: string };
  counts: { projects?: number; devices?: number; accounts?: number; privateKeys?: number };
  bytes: number | null;
  sha256: string | null;
  error: string | null;
  errorStage: string | null;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const modeOf = (file: string) => statSync(file).mode & 0o777;
const figures: string[] = [];
/** Whether the offline reader can be run with no network at all (a network namespace of its own). */
const isolate = canIsolateNetwork();

/**
 * A CLI bound to one server and one credentials file. `env` adds to the CLI's environment: another
 * replica than the one the profile was saved for needs GATEHOUSE_TOKEN, since a saved token only
 * goes to its own server.
 */
function cliFor(getServer: () => GatehouseServer, credentials: string, ca?: () => string, env: Record<string, string> = {}) {
  const gh = (args: string[], opts: CliOptions = {}) =>
    cli([...args, '--url', getServer().url, ...(ca ? ['--ca', ca()] : [])], {
      ...opts,
      env: { GATEHOUSE_CREDENTIALS: credentials, ...env, ...opts.env },
    });
  const json = async <T>(args: string[], opts: CliOptions = {}): Promise<T> => {
    const r = await gh([...args, '--json'], opts);
    if (r.code !== 0) throw new Error(`gatehouse ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };
  return { gh, json };
}

/** `configure --file`: writes the settings to a file first, as the holder of the settings would. */
async function configure(gh: (args: string[]) => Promise<CliResult>, dir: string, settings: Record<string, unknown>): Promise<CliResult> {
  const file = path.join(dir, `settings-${randomBytes(4).toString('hex')}.json`);
  writeFileSync(file, JSON.stringify(settings, null, 2), { mode: 0o600 });
  return gh(['breakglass', 'configure', '--file', file]);
}

/** The lines of a Test report, as `configure` and `test` print them. */
const stageLines = (stdout: string) => stdout.split('\n').filter((l) => /^(OK {2}|FAIL|SKIP|WARN) /.test(l));

const pemKey = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

afterAll(() => {
  if (figures.length > 0) console.log(`[figures] break glass:\n  ${figures.join('\n  ')}`);
});

describe.each(dialects)('break glass end to end on %s, to s3rver', (dialect) => {
  const tag = randomBytes(4).toString('hex');
  const formulaDevice = '=HYPERLINK("x")';
  const secrets = {
    web: `pw-web-1-${tag}`,
    formula: `pw-formula-${tag}`,
    db: `pw-db-1-${tag}`,
    passphrase: `key-passphrase-${tag}`,
    enable: `enable-${tag}`,
  };
  let dir: string;
  let dataDir: string;
  let credentials: string;
  let database: E2eDatabase;
  let server: GatehouseServer;
  let s3: RestartableS3rver;
  let identity: { identityFile: string; recipient: string };
  const prefix = `e2e-${dialect}/`;
  let gh: ReturnType<typeof cliFor>['gh'];
  let ghJson: ReturnType<typeof cliFor>['json'];
  /** Where the break-glass holder works on the day: the downloaded objects, the key files. */
  let day: string;

  beforeAll(async () => {
    dir = tempDir('gatehouse-bg-e2e-');
    dataDir = path.join(dir, 'data');
    credentials = path.join(dir, 'credentials.json');
    day = path.join(dir, 'day');
    mkdirSync(day);
    database = await e2eDatabase(dialect);
    s3 = await RestartableS3rver.start(path.join(dir, 's3rver'), ['breakglass']);
    ({ gh, json: ghJson } = cliFor(() => server, credentials));
    identity = ageKeygen(day);
  });
  afterAll(async () => {
    killServers();
    await s3?.stop();
    await database?.drop();
    removeTempDirs();
  });

  it('sets up, imports devices and accounts, and saves settings whose Test passes with privilege warnings', async () => {
    server = await startServer({ dataDir, env: database.env });
    await setupAdmin(server, 'break glass admin password', { env: { GATEHOUSE_CREDENTIALS: credentials } });
    const rows = [
      [
        'Ops',
        'web-1',
        'aws',
        'ssh',
        '198.51.100.10',
        '10.0.0.1',
        '',
        'gateway',
        '',
        'root',
        secrets.web,
        pemKey,
        'web-1-root.pem',
        secrets.passphrase,
        JSON.stringify({ enable: secrets.enable }),
      ],
      ['Ops', formulaDevice, 'on-prem', 'rdp', '', '10.0.0.2', '', 'direct', '', 'admin', secrets.formula, '', '', '', ''],
      ['Ops', 'db-1', 'gcp', 'database', '', '10.0.0.3', 'db.internal:5432', 'tunnel', '', 'postgres', secrets.db, '', '', '', ''],
      ['Finance: EU/Prod', 'fin-1', 'azure', 'https', '203.0.113.7', '', 'https://fin.example/', 'gateway', '', '', '', '', '', '', ''],
    ];
    const csv = path.join(dir, 'inventory.csv');
    writeFileSync(csv, `${inventoryHeader}\n${rows.map((r) => r.map(csvField).join(',')).join('\n')}\n`);
    const imported = await gh(['import', csv, '--json']);
    expect(imported.code, imported.stderr).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ rows: 4, projectsCreated: 2, devicesCreated: 4, accountsCreated: 3 });

    const saved = await configure(gh, dir, {
      provider: 's3',
      executeTime: '03:00',
      timeZone: 'Asia/Tokyo',
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
      bucket: 'breakglass',
      protocol: 'http',
      url: s3.endpoint,
      pathStyle: true,
      prefix,
      ageRecipients: [identity.recipient],
    });
    expect(saved.code, saved.stdout + saved.stderr).toBe(0);
    const lines = stageLines(saved.stdout);
    expect(lines.filter((l) => l.startsWith('OK ')).map((l) => l.split(/\s+/)[1])).toEqual(['container', 'authentication', 'connection']);
    // s3rver lets any key do anything: the privilege check says so, once per excess right.
    const warnings = lines.filter((l) => l.startsWith('WARN privilege'));
    expect(warnings.join('\n')).toMatch(/can READ objects/);
    expect(warnings.join('\n')).toMatch(/can LIST the bucket/);
    expect(warnings.join('\n')).toMatch(/can DELETE objects/);
    expect(saved.stdout).not.toContain('The key can write and nothing more.');
  });

  let run: RunView;

  it('runs now with --wait, shows the run in the history, and prints the signing key', async () => {
    const started = performance.now();
    const result = await gh(['breakglass', 'run', '--wait', '--json']);
    figures.push(`${dialect}: gatehouse breakglass run --wait, 4 devices: ${(performance.now() - started).toFixed(0)} ms`);
    expect(result.code, result.stderr).toBe(0);
    run = JSON.parse(result.stdout) as RunView;
    expect(run).toMatchObject({ result: 'success', trigger: 'manual', attempts: 1, error: null });
    // The AWS SDK warns on Node older than 22 (it refuses them from 2027): on 24, nothing.
    expect(server.stderr).not.toContain('NodeVersionSupportWarning');
    expect(server.stdout).not.toContain('NodeVersionSupportWarning');

    const history = await ghJson<{ items: RunView[] }>(['breakglass', 'runs']);
    expect(history.items[0]).toMatchObject({
      id: run.id,
      result: 'success',
      counts: { projects: 2, devices: 4, accounts: 3, privateKeys: 1 },
      objects: { data: `${prefix}breakglass.xlsx.age`, manifest: `${prefix}breakglass.manifest.json` },
      sha256: run.sha256,
    });
    expect(history.items[0]?.target).toContain('s3://breakglass');

    const key = await gh(['breakglass', 'signing-key']);
    expect(key.code, key.stderr).toBe(0);
    expect(key.stdout).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);
    expect(key.stderr).toMatch(/^Fingerprint: SHA256:/);
    writeFileSync(path.join(day, 'pub.pem'), key.stdout);
  });

  it('the break-glass holder downloads both objects with the aws CLI', () => {
    const sealed = awsDownload(s3.endpointUrl, 'breakglass', `${prefix}breakglass.xlsx.age`, path.join(day, 'breakglass.xlsx.age'));
    const manifestBytes = awsDownload(
      s3.endpointUrl,
      'breakglass',
      `${prefix}breakglass.manifest.json`,
      path.join(day, 'breakglass.manifest.json'),
    );
    const manifest = JSON.parse(manifestBytes.toString('utf8')) as { sha256: string; bytes: number; recipients: string[] };
    expect(sealed.subarray(0, 21).toString('latin1')).toBe('age-encryption.org/v1');
    expect(manifest).toMatchObject({ sha256: sha256(sealed), bytes: sealed.length, recipients: [identity.recipient] });
    expect(run.sha256).toBe(sha256(sealed));
  });

  it('the offline reader opens it with no server and no network: manifest verified, devices listed, age shown', async () => {
    expect((await server.stop()).code).toBe(0);
    const opened = await runOffline(
      ['breakglass', 'open', 'breakglass.xlsx.age', '--identity', identity.identityFile, '--public-key', 'pub.pem'],
      {
        cwd: day,
        isolateNetwork: isolate,
      },
    );
    figures.push(
      `${dialect}: offline reader, 4-device export, wall time spawn → exit${isolate ? ' (in its own network namespace)' : ''}: ${opened.ms.toFixed(0)} ms`,
    );
    expect(opened.code, opened.stderr).toBe(0);
    expect(opened.stderr).toBe('');
    expect(opened.stdout).toMatch(/^Manifest: verified, signed by SHA256:\S+; the file is whole \(\d+ bytes\)\.$/m);
    expect(opened.stdout).toMatch(/^Generated: \d{4}-\d\d-\d\dT[\d:.]+Z \(0\.\d hours old\)$/m);
    expect(opened.stdout).toMatch(/^Project Ops \(sheet Ops\): 3 devices$/m);
    // The project name has characters a sheet name may not: the sheet is renamed, the project is not.
    expect(opened.stdout).toMatch(/^Project Finance: EU\/Prod \(sheet [^)]+\): 1 device$/m);
    const listed = opened.stdout.split('\n').filter((l) => l.startsWith('  '));
    expect(listed.map((l) => l.trim().split(/\s{2}/)[0])).toEqual(['fin-1', '=HYPERLINK("x")', 'db-1', 'web-1']);
    expect(opened.stdout).toMatch(/^ {2}fin-1 {2}azure {2}https {2}203\.0\.113\.7 {2}- {2}\(no account\)$/m);
    // The listing shows no secret.
    for (const s of Object.values(secrets)) expect(opened.stdout).not.toContain(s);
    // How fast the reader starts is a figure (printed above; bench:breakglass measures it),
    // not a timed assertion: a loaded machine made this a random failure.
  });

  it("--device prints that device's credentials", async () => {
    const shown = await runOffline(
      ['breakglass', 'open', 'breakglass.xlsx.age', '--identity', identity.identityFile, '--public-key', 'pub.pem', '--device', 'web-1'],
      { cwd: day, isolateNetwork: isolate },
    );
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`^Password {12}${secrets.web}$`, 'm'));
    expect(shown.stdout).toMatch(/^Account {13}root$/m);
    expect(shown.stdout).toMatch(/^PEM file name {7}web-1-root\.pem$/m);
    expect(shown.stdout).toContain(`enable: ${secrets.enable}`);
    expect(shown.stdout).toMatch(/^project {13}Ops$/m);
    expect(shown.stdout).not.toContain(secrets.db);

    const formula = await runOffline(
      [
        'breakglass',
        'open',
        'breakglass.xlsx.age',
        '--identity',
        identity.identityFile,
        '--public-key',
        'pub.pem',
        '--device',
        formulaDevice,
      ],
      { cwd: day, isolateNetwork: isolate },
    );
    expect(formula.code, formula.stderr).toBe(0);
    expect(formula.stdout).toMatch(/^Device name {9}=HYPERLINK\("x"\)$/m);
    expect(formula.stdout).toMatch(new RegExp(`^Password {12}${secrets.formula}$`, 'm'));

    const none = await runOffline(
      ['breakglass', 'open', 'breakglass.xlsx.age', '--identity', identity.identityFile, '--public-key', 'pub.pem', '--device', 'web-9'],
      { cwd: day, isolateNetwork: isolate },
    );
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('No device named web-9');
  });

  it('--write-keys writes each PEM key as a 0600 file holding exactly the key', async () => {
    const keys = path.join(day, 'keys');
    const written = await runOffline(
      ['breakglass', 'open', 'breakglass.xlsx.age', '--identity', identity.identityFile, '--public-key', 'pub.pem', '--write-keys', keys],
      { cwd: day, isolateNetwork: isolate },
    );
    expect(written.code, written.stderr).toBe(0);
    expect(written.stdout).toContain(`wrote ${path.join(keys, 'web-1-root.pem')} (Ops / web-1 / root)`);
    expect(readdirSync(keys)).toEqual(['web-1-root.pem']);
    expect(modeOf(path.join(keys, 'web-1-root.pem'))).toBe(0o600);
    expect(modeOf(keys)).toBe(0o700);
    expect(readFileSync(path.join(keys, 'web-1-root.pem'), 'utf8')).toBe(pemKey);
  });

  it('refuses a file that does not match its manifest (exit 3), and a manifest signed by another key', async () => {
    const tampered = path.join(day, 'tampered');
    mkdirSync(tampered);
    const bytes = readFileSync(path.join(day, 'breakglass.xlsx.age'));
    // One bit, in the middle of the sealed payload.
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] ?? 0) ^ 0x01;
    writeFileSync(path.join(tampered, 'breakglass.xlsx.age'), bytes);
    copyFileSync(path.join(day, 'breakglass.manifest.json'), path.join(tampered, 'breakglass.manifest.json'));
    const refused = await runOffline(
      ['breakglass', 'open', 'breakglass.xlsx.age', '--identity', identity.identityFile, '--public-key', path.join(day, 'pub.pem')],
      { cwd: tampered, isolateNetwork: isolate },
    );
    expect(refused.code).toBe(3);
    expect(refused.stdout).toContain('Manifest: INVALID: the file does not match its manifest');
    expect(refused.stderr).toContain('Refusing to trust this file.');
    expect(refused.stdout).not.toContain('Project Ops');

    const otherKey = path.join(day, 'other.pub.pem');
    writeFileSync(otherKey, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString());
    const wrongKey = await runOffline(
      ['breakglass', 'open', 'breakglass.xlsx.age', '--identity', identity.identityFile, '--public-key', otherKey],
      { cwd: day, isolateNetwork: isolate },
    );
    expect(wrongKey.code).toBe(3);
    expect(wrongKey.stdout).toMatch(/Manifest: INVALID: the manifest was signed by key SHA256:\S+, not by the key you gave/);
    expect(wrongKey.stderr).toContain('Refusing to trust this file.');
    expect(wrongKey.stdout).not.toContain('Project Ops');
  });

  it('age -d and xlsx2csv -a read every sheet, and the formula-looking device name stays text', () => {
    const xlsx = path.join(day, 'breakglass.xlsx');
    execFileSync('age', ['-d', '-i', identity.identityFile, '-o', xlsx, path.join(day, 'breakglass.xlsx.age')]);
    const csv = execFileSync('xlsx2csv', ['-a', xlsx], { encoding: 'utf8' });
    const sheets = [...csv.matchAll(/^-------- \d+ - (.+)$/gm)].map((m) => m[1]);
    expect(sheets).toHaveLength(4);
    // Index, the projects by name, the keys; a project name Excel does not allow as a sheet name is mapped in the Index.
    expect(sheets).toEqual(['Index', 'Finance_ EU_Prod', 'Ops', 'PEM keys']);
    expect(csv).toContain('Finance: EU/Prod,Finance_ EU_Prod,1,0');
    expect(csv).toContain('Ops,Ops,3,3');
    expect(csv).toContain(`aws,web-1,ssh,198.51.100.10,10.0.0.1,,gateway,root,${secrets.web},web-1-root.pem,enable: ${secrets.enable}`);
    expect(csv).toContain(`on-prem,"=HYPERLINK(""x"")",rdp,,10.0.0.2,,direct,admin,${secrets.formula},,`);
    expect(csv).toContain('-----BEGIN PRIVATE KEY-----');
    // No sheet holds a formula: every cell is a string.
    const sheetXml = execFileSync('unzip', ['-p', xlsx, 'xl/worksheets/*.xml'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    expect(sheetXml).toContain('=HYPERLINK(&quot;x&quot;)');
    expect(sheetXml).not.toMatch(/<f[ >]/);
  });
});

describe('break glass end to end to Azurite, with a create/write-only container SAS', () => {
  let dir: string;
  let credentials: string;
  let server: GatehouseServer;
  let azurite: Awaited<ReturnType<typeof startAzurite>>;
  let gh: ReturnType<typeof cliFor>['gh'];
  let identity: { identityFile: string; recipient: string };
  let owner: ContainerClient;
  const container = 'breakglass';

  beforeAll(async () => {
    dir = tempDir('gatehouse-bg-azure-');
    credentials = path.join(dir, 'credentials.json');
    azurite = await startAzurite();
    owner = new ContainerClient(`${azurite.blobEndpoint}/${container}`, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
    await owner.create();
    identity = ageKeygen(dir);
    server = await startServer({ dataDir: path.join(dir, 'data') });
    ({ gh } = cliFor(() => server, credentials));
    await setupAdmin(server, 'break glass admin password', { env: { GATEHOUSE_CREDENTIALS: credentials } });
    const csv = path.join(dir, 'inventory.csv');
    writeFileSync(csv, `${inventoryHeader}\nCloud,vm-1,azure,ssh;rdp,,10.1.0.4,,gateway,,azureuser,pw-vm-1-azure,,,,\n`);
    expect((await gh(['import', csv])).code).toBe(0);
  });
  afterAll(async () => {
    killServers();
    await azurite?.stop();
    removeTempDirs();
  });

  it('configure shows three OK stages and no privilege warning; the run succeeds; the owner downloads a file the reader opens', async () => {
    const sasToken = await azuriteContainerSas(container);
    // The portal's "SAS connection string": no AccountName, no key.
    const saved = await configure(gh, dir, {
      provider: 'blob',
      executeTime: '02:30',
      connectionString: `BlobEndpoint=${azurite.blobEndpoint};SharedAccessSignature=${sasToken}`,
      container,
      ageRecipients: [identity.recipient],
    });
    expect(saved.code, saved.stdout + saved.stderr).toBe(0);
    const lines = stageLines(saved.stdout);
    expect(lines.map((l) => l.split(/\s+/).slice(0, 2).join(' '))).toEqual(['OK container', 'OK authentication', 'OK connection']);
    expect(saved.stdout).not.toContain('WARN');
    expect(saved.stdout).toContain('The key can write and nothing more.');
    const shown = await gh(['breakglass', 'settings', '--json']);
    expect(shown.stdout).not.toContain(sasToken);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      origin: 'database',
      settings: { sasToken: '********', accountKey: null, accountName: AZURITE_ACCOUNT, protocol: 'http' },
    });

    const result = await gh(['breakglass', 'run', '--wait', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const run = JSON.parse(result.stdout) as RunView;
    expect(run).toMatchObject({ result: 'success', counts: { devices: 1, accounts: 1 } });
    expect(run.target).toContain(`container ${container}`);

    const key = await gh(['breakglass', 'signing-key']);
    writeFileSync(path.join(dir, 'pub.pem'), key.stdout);
    const day = path.join(dir, 'day');
    mkdirSync(day);
    // The owner, with the account key: the writer's SAS may not read.
    await owner.getBlockBlobClient('gatehouse/breakglass.xlsx.age').downloadToFile(path.join(day, 'breakglass.xlsx.age'));
    await owner.getBlockBlobClient('gatehouse/breakglass.manifest.json').downloadToFile(path.join(day, 'breakglass.manifest.json'));
    expect(sha256(readFileSync(path.join(day, 'breakglass.xlsx.age')))).toBe(run.sha256);

    const opened = await runOffline(
      [
        'breakglass',
        'open',
        'breakglass.xlsx.age',
        '--identity',
        identity.identityFile,
        '--public-key',
        path.join(dir, 'pub.pem'),
        '--device',
        'vm-1',
      ],
      { cwd: day, isolateNetwork: isolate },
    );
    expect(opened.code, opened.stderr).toBe(0);
    expect(opened.stdout).toMatch(/^Manifest: verified/m);
    expect(opened.stdout).toMatch(/^Password {12}pw-vm-1-azure$/m);
  });
});

/**
 * Writes a directory the way Kubernetes mounts a secret: the files live in a timestamped
 * directory, `..data` links to it, and each key is a link through `..data`. An update
 * makes a new directory and swaps `..data` in one rename.
 */
class MountedSecret {
  private generation = 0;
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  write(values: Record<string, string>): void {
    const old = readdirSync(this.dir).filter((n) => n.startsWith('..20'));
    const data = `..2026_01_01_00_00_00.${String(++this.generation).padStart(9, '0')}`;
    mkdirSync(path.join(this.dir, data));
    for (const [k, v] of Object.entries(values)) writeFileSync(path.join(this.dir, data, k), v);
    symlinkSync(data, path.join(this.dir, '..data_tmp'));
    renameSync(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    for (const name of readdirSync(this.dir)) {
      if (name.startsWith('.')) continue;
      if (!(name in values)) rmSync(path.join(this.dir, name));
    }
    for (const k of Object.keys(values)) {
      try {
        symlinkSync(path.join('..data', k), path.join(this.dir, k));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    }
    for (const o of old) rmSync(path.join(this.dir, o), { recursive: true, force: true });
  }
}

describe('break-glass settings from a mounted Kubernetes secret', () => {
  const secretValue = `mounted-secret-${randomBytes(6).toString('hex')}`;
  const badValue = `not-a-boolean-${randomBytes(6).toString('hex')}`;
  let dir: string;
  let credentials: string;
  let server: GatehouseServer;
  let gh: ReturnType<typeof cliFor>['gh'];
  let ghJson: ReturnType<typeof cliFor>['json'];
  let mount: MountedSecret;
  let values: Record<string, string>;

  beforeAll(async () => {
    dir = tempDir('gatehouse-bg-mounted-');
    credentials = path.join(dir, 'credentials.json');
    const { recipient } = ageKeygen(dir);
    mount = new MountedSecret(path.join(dir, 'secret'));
    values = {
      provider: 's3',
      executeTime: '04:30',
      timeZone: 'Europe/Berlin',
      accessKeyId: 'S3RVER',
      secretAccessKey: secretValue,
      bucket: 'breakglass',
      protocol: 'http',
      url: '127.0.0.1:9',
      pathStyle: 'true',
      ageRecipients: `${recipient}\n`,
    };
    mount.write(values);
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_BREAKGLASS_CONFIG: mount.dir } });
    ({ gh, json: ghJson } = cliFor(() => server, credentials));
    await setupAdmin(server, 'break glass admin password', { env: { GATEHOUSE_CREDENTIALS: credentials } });
  });
  afterAll(() => {
    killServers();
    removeTempDirs();
  });

  interface SettingsView {
    origin: string;
    readOnly: boolean;
    error: string | null;
    settings: Record<string, unknown> | null;
  }

  it('shows the mounted settings read-only, secrets masked, and refuses configure', async () => {
    const shown = await gh(['breakglass', 'settings', '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    const view = JSON.parse(shown.stdout) as SettingsView;
    expect(view).toMatchObject({ origin: 'mounted', readOnly: true, error: null });
    expect(view.settings).toMatchObject({ executeTime: '04:30', timeZone: 'Europe/Berlin', secretAccessKey: '********', pathStyle: true });
    expect(shown.stdout).not.toContain(secretValue);

    const refused = await configure(gh, dir, { provider: 's3', executeTime: '01:00', bucket: 'other', ageRecipients: [] });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/mounted secret \(GATEHOUSE_BREAKGLASS_CONFIG\) and are read-only/);
  });

  it('picks up a changed file within seconds, without a restart', async () => {
    const changed = performance.now();
    mount.write({ ...values, executeTime: '05:45' });
    const seen = await waitFor(
      'the new executeTime in gatehouse breakglass settings',
      async () => {
        const view = await ghJson<SettingsView>(['breakglass', 'settings']);
        return view.settings?.executeTime === '05:45' ? view : undefined;
      },
      6_000,
      200,
    );
    figures.push(`mounted secret: change → seen by gatehouse breakglass settings: ${(performance.now() - changed).toFixed(0)} ms`);
    expect(seen).toMatchObject({ origin: 'mounted', readOnly: true });
  });

  it('logs an invalid value at error level naming the key, never the value, and refuses runs', async () => {
    mount.write({ ...values, pathStyle: badValue });
    const view = await waitFor(
      'the mounted configuration error',
      async () => {
        const v = await ghJson<SettingsView>(['breakglass', 'settings']);
        return v.error ? v : undefined;
      },
      6_000,
      200,
    );
    expect(view.settings).toBeNull();
    expect(view.error).toMatch(/pathStyle: must be true or false/);
    const logged = server.logs.filter((l) => l.level === 50 && String(l.problem).includes('pathStyle'));
    expect(logged).toHaveLength(1);
    expect(logged[0]?.msg).toBe('the mounted break-glass configuration is invalid');
    const run = await gh(['breakglass', 'run']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/Break glass cannot run: .*pathStyle/s);
    for (const out of [server.stdout, server.stderr, view.error ?? '', run.stderr]) {
      expect(out.includes(badValue), 'the invalid value was echoed').toBe(false);
      expect(out.includes(secretValue), 'the secret was echoed').toBe(false);
    }
  });
});

describe('two servers sharing one PostgreSQL database', () => {
  let dir: string;
  let credentials: string;
  let database: E2eDatabase;
  let a: GatehouseServer;
  let b: GatehouseServer;
  let held: Awaited<ReturnType<typeof startHeldWorkbookUpload>>;

  beforeAll(async () => {
    dir = tempDir('gatehouse-bg-replicas-');
    credentials = path.join(dir, 'credentials.json');
    database = await e2eDatabase('postgres');
    // The upload of the workbook waits at the proxy until both requests are answered: the
    // first run is surely still going on when the second is asked, on any machine.
    held = await startHeldWorkbookUpload(dir);
  });
  afterAll(async () => {
    killServers();
    await held?.close();
    await database?.drop();
    removeTempDirs();
  });

  it('starts one run when both are asked at nearly the same time, and refuses the other', async () => {
    const env = { ...database.env, GATEHOUSE_MASTER_KEY: randomBytes(32).toString('hex') };
    // The second replica starts once the first has set up: set-up belongs to one of them.
    a = await startServer({ dataDir: path.join(dir, 'data-a'), env });
    await setupAdmin(a, 'replica admin password', { env: { GATEHOUSE_CREDENTIALS: credentials } });
    b = await startServer({ dataDir: path.join(dir, 'data-b'), env });
    const viaA = cliFor(
      () => a,
      credentials,
      () => a.certFile,
    );
    const viaB = cliFor(
      () => b,
      credentials,
      () => b.certFile,
      { GATEHOUSE_TOKEN: savedToken(credentials) },
    );
    const csv = path.join(dir, 'inventory.csv');
    writeBulkInventory(csv, 200, 'replica');
    expect((await viaA.gh(['import', csv])).code).toBe(0);
    const { recipient } = ageKeygen(dir);
    // Saved through B, used by both: the settings live in the shared database.
    const saved = await configure(viaB.gh, dir, s3rverBreakGlassSettings({ endpoint: held.proxy.endpoint, recipient }));
    expect(saved.code, saved.stdout).toBe(0);

    const [onA, onB] = await Promise.all([viaA.gh(['breakglass', 'run', '--json']), viaB.gh(['breakglass', 'run', '--json'])]);
    expect([onA.code, onB.code].sort()).toEqual([0, 1]);
    const started = onA.code === 0 ? onA : onB;
    const refused = onA.code === 0 ? onB : onA;
    expect(refused.stderr).toContain('A break-glass run is already in progress (on this or another server). Wait for it to finish.');
    const run = JSON.parse(started.stdout) as RunView;
    expect(run.result).toBe('running');
    figures.push(`two replicas asked at once: the run started on ${onA.code === 0 ? 'A' : 'B'}, the other refused`);

    held.proxy.release();
    const done = await waitFor(
      'the run to finish',
      async () => {
        const { items } = await viaB.json<{ items: RunView[] }>(['breakglass', 'runs']);
        return items[0]?.result === 'running' ? undefined : items;
      },
      60_000,
      250,
    );
    expect(held.proxy.held()).toBe(1);
    expect(done).toHaveLength(1);
    expect(done[0]).toMatchObject({ id: run.id, result: 'success', counts: { devices: 200 } });

    // With the lease released, either replica runs the next one.
    const next = await viaB.gh(['breakglass', 'run', '--wait', '--json']);
    expect(next.code, next.stderr).toBe(0);
    expect(JSON.parse(next.stdout)).toMatchObject({ result: 'success' });
  });
});
