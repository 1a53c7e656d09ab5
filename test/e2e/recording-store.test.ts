import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AWS_CLI } from '../support/breakglass-e2e.js';
import { launchChromium, newPage, playRecording, screenshot, signIn } from '../support/browser.js';
import { missingCephBinaries, startCephRgw, type CephRgw, type RgwUser } from '../support/ceph.js';
import { seedDevice, setupAdminToken } from '../support/seed.js';
import { cli, e2eDatabase, killServers, removeTempDirs, startServer, tempDir, type E2eDatabase, type Env } from '../support/server.js';
import { runClient, sshCommand } from '../support/ssh-client.js';
import { ensureSystemUser, freePort, TEST_USER_PASSWORD, TestSshd } from '../support/sshd.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from '../support/storage.js';

/*
 * Recordings in object storage with the real `gatehouse server` and its built-in gateway:
 * a Ceph RADOS Gateway (SigV4, as an operator's S3 checks it) down for a while loses
 * nothing, and an Azure container (Azurite) gets each recording with its signature.
 */

const run = promisify(execFile);
const DEVICE_USER = 'gh-test-pw';
const ADMIN_PASSWORD = 'recording store admin password';
const METRICS_TOKEN = 'recording-store-metrics-token';
const BUCKET = 'gatehouse-recordings';

interface Session {
  id: string;
  startedAt: string;
  deviceName: string;
  kind: string | null;
  recordingStore?: string | null;
  recordingSha256: string | null;
  recordingSignature: { sha256: string } | null;
}

/** What the device printed, as the asciicast's output events hold it. */
function printed(cast: string): string {
  return cast
    .split('\n')
    .slice(1)
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as [number, string, string])
    .filter(([, kind]) => kind === 'o')
    .map(([, , data]) => data)
    .join('');
}

/** `<day>/<id>.cast` under the recordings directory, as the gateway names a recording. */
function recordingPath(dataDir: string, id: string): string {
  const root = path.join(dataDir, 'recordings');
  const day = readdirSync(root).find((d) => existsSync(path.join(root, d, `${id}.cast`)));
  if (!day) throw new Error(`no recording of session ${id} under ${root}`);
  return `${day}/${id}.cast`;
}

/** One test's server, device and admin: sessions through the built-in gateway and their rows. */
async function gatewayServer(dir: string, sshd: TestSshd, env: Env) {
  const sshPort = await freePort();
  const options = {
    dataDir: path.join(dir, 'data'),
    env: { GATEHOUSE_GATEWAY_PORT: String(sshPort), GATEHOUSE_METRICS_TOKEN: METRICS_TOKEN, ...env },
  };
  let server = await startServer(options);
  const { credentials, token } = await setupAdminToken(server, ADMIN_PASSWORD, dir);
  const { id: projectId } = await server.api<{ id: string }>(token, 'POST', '/projects', { name: 'Stored' });
  await seedDevice(server, token, {
    projectId,
    name: 'store-box',
    protocols: ['ssh'],
    urlPort: sshd.port,
    account: { username: DEVICE_USER, password: TEST_USER_PASSWORD },
  });
  const session = (id: string) => server.api<Session>(token, 'GET', `/sessions/${id}`);
  const sessionIds = async () =>
    new Set((await server.api<{ items: Session[] }>(token, 'GET', '/sessions?limit=50')).items.map((s) => s.id));
  /** The session started since `before`, once `ready` says so. */
  const newSession = (before: Set<string>, ready: (s: Session) => boolean, what: string) =>
    vi.waitFor(
      async () => {
        const s = (await server.api<{ items: Session[] }>(token, 'GET', '/sessions?limit=50')).items.find((i) => !before.has(i.id));
        if (!s || !ready(s)) throw new Error(`the new session is not ${what} yet`);
        return s;
      },
      { timeout: 60_000, interval: 100 },
    );
  /** Runs `command` through the gateway; its output and its session once signed. */
  const ssh = async (command: string) => {
    const before = await sessionIds();
    const out = await sshCommand(sshPort, 'admin:store-box', command, ADMIN_PASSWORD);
    expect(out.code, out.stderr).toBe(0);
    return { stdout: out.stdout, session: await newSession(before, (s) => s.recordingSignature != null, 'signed') };
  };
  /** Puts `local` as `remote` over SFTP through the gateway, then removes it: the session once its log is signed. */
  const sftp = async (local: string, remote: string) => {
    const before = await sessionIds();
    const run = await runClient('sftp', ['-P', String(sshPort), '-o', 'User=admin:store-box', '-b', '-', '127.0.0.1'], {
      password: ADMIN_PASSWORD,
      stdin: `put ${local} ${remote}\nrm ${remote}\n`,
    });
    expect(run.code, run.stderr).toBe(0);
    return newSession(before, (s) => s.kind === 'sftp' && s.recordingSignature != null, 'signed');
  };
  /** Waits until the session's recording (or SFTP log) is in the store: its object name. */
  const stored = (id: string) =>
    vi.waitFor(
      async () => {
        const name = (await session(id)).recordingStore;
        if (!name) throw new Error(`session ${id} is not in the store yet`);
        return name;
      },
      { timeout: 60_000, interval: 200 },
    );
  const backlog = async () => {
    const res = await server.request('/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.status, res.body).toBe(200);
    return Number(/^gatehouse_recording_upload_backlog (\d+)$/m.exec(res.body)?.[1]);
  };
  const gh = (...args: string[]) =>
    cli([...args, '--url', server.url, '--ca', server.certFile], { env: { GATEHOUSE_CREDENTIALS: credentials } });
  return {
    get server() {
      return server;
    },
    /** Stops the server (SIGTERM) and starts it again on the same data directory and settings. */
    async restart() {
      await server.stop(30_000);
      server = await startServer(options);
    },
    sshPort,
    token,
    session,
    ssh,
    sftp,
    stored,
    backlog,
    gh,
  };
}

const missingCeph = missingCephBinaries();
if (missingCeph.length > 0) {
  console.warn(
    `Skipping the Ceph recording store test: ${missingCeph.join(', ')} not installed ` +
      '(`apt-get install --no-install-recommends radosgw ceph-mon ceph-osd`, as scripts/test.sh does).',
  );
}

describe.skipIf(missingCeph.length > 0)('recordings in a Ceph RADOS Gateway bucket', () => {
  let dir: string;
  let sshd: TestSshd;
  let rgw: CephRgw;
  let user: RgwUser;
  let t: Awaited<ReturnType<typeof gatewayServer>>;

  /** The Debian aws CLI as the operator runs it against RGW, with the store's own key. */
  const aws = async (...args: string[]) => {
    const { stdout } = await run(AWS_CLI, ['--endpoint-url', `http://${rgw.endpoint}`, ...args], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        AWS_ACCESS_KEY_ID: user.accessKey,
        AWS_SECRET_ACCESS_KEY: user.secretKey,
        AWS_DEFAULT_REGION: 'us-east-1',
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
        AWS_PAGER: '',
      },
      timeout: 60_000,
    });
    return stdout;
  };

  /** `gatehouse sessions verify <file>` with the file, its .sig and the server's public key: no server, no sign-in. */
  const verifyOffline = async (file: string) => {
    const key = path.join(dir, 'server.pub');
    if (!existsSync(key)) expect((await t.gh('sessions', 'signing-key', '--output', key)).code).toBe(0);
    return cli(['sessions', 'verify', file, '--public-key', key], {
      env: { GATEHOUSE_CREDENTIALS: path.join(dir, 'none.json'), GATEHOUSE_URL: undefined, GATEHOUSE_DATA_DIR: undefined },
    });
  };

  beforeAll(async () => {
    dir = tempDir('gatehouse-recstore-');
    ensureSystemUser(DEVICE_USER, { password: TEST_USER_PASSWORD });
    [rgw, sshd] = await Promise.all([startCephRgw(), TestSshd.start(path.join(dir, 'sshd'))]);
    user = await rgw.createUser('gatehouse-recordings');
    await aws('s3', 'mb', `s3://${BUCKET}`);
    const settings = path.join(dir, 'recording-store.json');
    writeFileSync(
      settings,
      JSON.stringify({
        provider: 's3',
        url: rgw.endpoint,
        protocol: 'http',
        pathStyle: true,
        acl: 'none',
        region: 'us-east-1',
        bucket: BUCKET,
        accessKeyId: user.accessKey,
        secretAccessKey: user.secretKey,
        timeoutSeconds: 2,
      }),
      { mode: 0o600 },
    );
    t = await gatewayServer(dir, sshd, {
      GATEHOUSE_RECORDING_STORE_CONFIG: settings,
      GATEHOUSE_RECORDING_STORE_RETRY_DELAYS: '1',
    });
  }, 180_000);

  afterAll(async () => {
    if (rgw) process.kill(rgw.rgwPid, 'SIGCONT');
    killServers();
    await Promise.all([sshd?.stop(), rgw?.stop()]);
    removeTempDirs();
  });

  it('keeps a recording locally while RGW hangs, uploads it with its .sig when RGW is back; aws downloads it and verify checks it offline; playback reads the store', async () => {
    // RGW hangs (takes connections, answers nothing) while a session runs and ends.
    process.kill(rgw.rgwPid, 'SIGSTOP');
    const { stdout, session } = await t.ssh('seq 1 3000; echo recording-store-end');
    expect(stdout).toContain('recording-store-end');
    const relative = recordingPath(t.server.dataDir, session.id);
    const local = path.join(t.server.dataDir, 'recordings', relative);
    // The row is signed a moment before the .sig is written beside the file.
    await vi.waitFor(() => expect(existsSync(`${local}.sig`)).toBe(true), { timeout: 10_000, interval: 50 });
    expect(existsSync(local)).toBe(true);
    expect(await t.backlog()).toBeGreaterThan(0);
    // Retried, not given up: two failed tries at least, the local copy still there.
    await vi.waitFor(
      () => {
        const tries = t.server.logs.filter((l) => l.sessionId === session.id && String(l.msg).startsWith('could not upload a recording'));
        expect(tries.length).toBeGreaterThanOrEqual(2);
      },
      { timeout: 60_000, interval: 200 },
    );
    expect(existsSync(local)).toBe(true);
    expect((await t.session(session.id)).recordingStore ?? null).toBeNull();

    process.kill(rgw.rgwPid, 'SIGCONT');
    const resumed = performance.now();
    const objectName = `recordings/${relative}`;
    expect(await t.stored(session.id)).toBe(objectName);
    console.info(
      `Ceph RGW started in ${rgw.startMs} ms; the recording was in the bucket ${Math.round(performance.now() - resumed)} ms after RGW resumed`,
    );
    expect(existsSync(local) || existsSync(`${local}.sig`)).toBe(false);
    expect(await t.backlog()).toBe(0);

    // The operator's view: the object and its signature, listed and downloaded with aws.
    const listing = await aws('s3', 'ls', '--recursive', `s3://${BUCKET}/recordings/`);
    const names = listing
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/).at(-1));
    expect(names.sort()).toEqual([objectName, `${objectName}.sig`]);
    const copy = path.join(dir, 'from-rgw.cast');
    await aws('s3', 'cp', '--only-show-errors', `s3://${BUCKET}/${objectName}`, copy);
    await aws('s3', 'cp', '--only-show-errors', `s3://${BUCKET}/${objectName}.sig`, `${copy}.sig`);
    // Nothing lost: the recording holds every byte the session printed.
    const cast = readFileSync(copy, 'utf8');
    expect(printed(cast)).toBe(stdout);

    const offline = await verifyOffline(copy);
    expect(offline.stdout, offline.stderr).toContain(
      `Recording verified: ${readFileSync(copy).length} bytes, SHA-256 ${session.recordingSha256}`,
    );
    expect(offline.code).toBe(0);

    // Playback with the local copy gone: the API streams it from the bucket.
    const played = await t.server.request(`/api/v1/sessions/${session.id}/recording`, { headers: { authorization: `Bearer ${t.token}` } });
    expect(played.status, played.body).toBe(200);
    expect(played.headers['content-type']).toMatch(/^application\/x-asciicast/);
    expect(played.body).toBe(cast);
    // And the CLI's download of it (with its .sig from the row) verifies through the server.
    const viaCli = path.join(dir, 'via-cli.cast');
    const download = await t.gh('sessions', 'recording', session.id, '--output', viaCli);
    expect(download.code, download.stderr).toBe(0);
    expect(readFileSync(viaCli, 'utf8')).toBe(cast);
    const verified = await t.gh('sessions', 'verify', session.id);
    expect(verified.stdout, verified.stderr).toContain('Recording verified');
  }, 240_000);

  it('streams a long recording to RGW in parts while the session runs; after a kill mid-session the next start aborts the open upload and sends it again', async () => {
    // The device's command waits for a flag file the test makes (its user must see it).
    const flags = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-streamed-'));
    chmodSync(flags, 0o755);
    const command = (flag: string, bytes: number) =>
      `head -c ${bytes} /dev/urandom | base64; while [ ! -e ${flags}/${flag} ]; do sleep 0.1; done; echo streamed-end`;
    const uploads = async () =>
      (
        JSON.parse((await aws('s3api', 'list-multipart-uploads', '--bucket', BUCKET, '--output', 'json')) || '{}') as {
          Uploads?: { Key: string; UploadId: string }[];
        }
      ).Uploads ?? [];
    /** The one open upload once it has `parts` parts: its object name and session. */
    const openUpload = (parts: number) =>
      vi.waitFor(
        async () => {
          const [upload, ...more] = await uploads();
          if (!upload || more.length > 0) throw new Error(`not one open upload: ${JSON.stringify([upload, ...more])}`);
          const listed = JSON.parse(
            await aws('s3api', 'list-parts', '--bucket', BUCKET, '--key', upload.Key, '--upload-id', upload.UploadId, '--output', 'json'),
          ) as { Parts?: unknown[] };
          expect(listed.Parts?.length ?? 0).toBeGreaterThanOrEqual(parts);
          return { name: upload.Key, id: path.basename(upload.Key, '.cast') };
        },
        { timeout: 90_000, interval: 500 },
      );
    const download = async (name: string, file: string) => {
      await aws('s3', 'cp', '--only-show-errors', `s3://${BUCKET}/${name}`, file);
      await aws('s3', 'cp', '--only-show-errors', `s3://${BUCKET}/${name}.sig`, `${file}.sig`);
      const offline = await verifyOffline(file);
      expect(offline.stdout, offline.stderr).toContain('Recording verified');
      return readFileSync(file, 'utf8');
    };

    // More than two parts (base64 of 9 MB is 12 MB of output) while the session still runs.
    const long = sshCommand(t.sshPort, 'admin:store-box', command('long', 9_000_000), ADMIN_PASSWORD);
    const streamed = await openUpload(2);
    expect((await t.session(streamed.id)).recordingStore ?? null).toBeNull();
    writeFileSync(path.join(flags, 'long'), '');
    const out = await long;
    expect(out.code, out.stderr).toBe(0);
    expect(await t.stored(streamed.id)).toBe(streamed.name);
    expect(printed(await download(streamed.name, path.join(dir, 'streamed.cast')))).toBe(out.stdout);
    expect(await uploads()).toEqual([]);

    // Killed with one part in the bucket: the next start ends the session, signs what was
    // written and replaces the open upload.
    const cut = sshCommand(t.sshPort, 'admin:store-box', command('cut', 6_000_000), ADMIN_PASSWORD);
    const open = await openUpload(1);
    t.server.kill();
    await cut;
    writeFileSync(path.join(flags, 'cut'), '');
    await t.restart();
    expect(await t.stored(open.id)).toBe(open.name);
    await vi.waitFor(async () => expect(await uploads()).toEqual([]), { timeout: 30_000, interval: 500 });
    const cast = await download(open.name, path.join(dir, 'cut.cast'));
    expect(cast.length).toBeGreaterThan(5 * 1024 * 1024);
    rmSync(flags, { recursive: true, force: true });
  }, 300_000);

  it("keeps an SFTP session's operation log while RGW hangs, across a restart, then puts it and its .sig in the bucket; verify checks it offline", async () => {
    const payload = path.join(dir, 'payload.txt');
    writeFileSync(payload, 'an sftp payload line\n'.repeat(200));
    const remote = `gatehouse-recstore-${process.pid}.txt`;
    process.kill(rgw.rgwPid, 'SIGSTOP');
    const session = await t.sftp(payload, remote);
    const day = new Date(session.startedAt).toISOString().slice(0, 10);
    const local = path.join(t.server.dataDir, 'recordings', day, `${session.id}.sftp.jsonl`);
    await vi.waitFor(() => expect(existsSync(local) && existsSync(`${local}.sig`)).toBe(true), { timeout: 10_000, interval: 50 });
    expect(await t.backlog()).toBe(1);
    // Stopped with the upload pending, started again: the log is written again from its rows and uploaded.
    rmSync(local);
    await t.restart();
    process.kill(rgw.rgwPid, 'SIGCONT');
    const objectName = await t.stored(session.id);
    expect(objectName).toBe(`recordings/${day}/${session.id}.sftp.jsonl`);
    expect(existsSync(local) || existsSync(`${local}.sig`)).toBe(false);

    const copy = path.join(dir, 'sftp-log.jsonl');
    await aws('s3', 'cp', '--only-show-errors', `s3://${BUCKET}/${objectName}`, copy);
    await aws('s3', 'cp', '--only-show-errors', `s3://${BUCKET}/${objectName}.sig`, `${copy}.sig`);
    const [header, ...operations] = readFileSync(copy, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(header).toMatchObject({ sessionId: session.id, kind: 'sftp', user: 'admin', device: 'store-box', account: DEVICE_USER });
    expect(operations.filter((o) => o.op !== 'list')).toMatchObject([
      { op: 'upload', path: expect.stringMatching(new RegExp(`/${remote}$`)) as unknown, bytes: 21 * 200, result: 'success' },
      { op: 'remove', path: expect.stringMatching(new RegExp(`/${remote}$`)) as unknown, result: 'success' },
    ]);
    const offline = await verifyOffline(copy);
    expect(offline.stdout, offline.stderr).toContain(
      `Recording verified: ${readFileSync(copy).length} bytes, SHA-256 ${session.recordingSha256}`,
    );
    // Through the server by id: it says where the log is.
    const byId = await t.gh('sessions', 'verify', session.id);
    expect(byId.code).not.toBe(0);
    expect(byId.stderr).toContain(`its SFTP operation log is ${objectName}`);
  }, 120_000);

  it('plays a recording that is only in the bucket in the console, marked as stored in object storage', async () => {
    const { stdout, session } = await t.ssh('echo played-from-the-bucket-$((6*7))');
    expect(stdout).toContain('played-from-the-bucket-42');
    const objectName = await t.stored(session.id);
    const day = new Date(session.startedAt).toISOString().slice(0, 10);
    expect(existsSync(path.join(t.server.dataDir, 'recordings', day, `${session.id}.cast`))).toBe(false);

    const browser = await launchChromium(t.server.certFile);
    try {
      const { page, problems } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } }));
      await signIn(page, t.server.url, 'admin', ADMIN_PASSWORD);
      await page.getByRole('link', { name: 'Sessions' }).click();
      const row = page.getByRole('table', { name: 'Sessions' }).locator(`tbody tr[data-session="${session.id}"]`);
      await row.getByText('stored in object storage').waitFor();
      await row.getByRole('link').click();
      await page.getByText(objectName, { exact: true }).waitFor();
      // Played to the end: what the session printed, read from the bucket through the server.
      const player = await playRecording(page);
      await expect.poll(() => player.innerText(), { timeout: 20_000 }).toContain('played-from-the-bucket-42');
      await screenshot(page, '33c-playback-from-the-store');
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 120_000);
});

describe('recordings in an Azure container (Azurite), the server on PostgreSQL', () => {
  let dir: string;
  let sshd: TestSshd;
  let database: E2eDatabase;
  let azurite: Awaited<ReturnType<typeof startAzurite>>;
  let t: Awaited<ReturnType<typeof gatewayServer>>;
  const container = 'gatehouse-recordings';

  const containerClient = async () => {
    const { BlobServiceClient, StorageSharedKeyCredential } = await import('@azure/storage-blob');
    return new BlobServiceClient(azurite.blobEndpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).getContainerClient(
      container,
    );
  };

  beforeAll(async () => {
    dir = tempDir('gatehouse-recstore-blob-');
    ensureSystemUser(DEVICE_USER, { password: TEST_USER_PASSWORD });
    [azurite, sshd, database] = await Promise.all([startAzurite(), TestSshd.start(path.join(dir, 'sshd')), e2eDatabase('postgres')]);
    await (await containerClient()).create();
    const settings = path.join(dir, 'recording-store.json');
    writeFileSync(
      settings,
      JSON.stringify({
        provider: 'blob',
        blobEndpoint: azurite.blobEndpoint,
        container,
        accountName: AZURITE_ACCOUNT,
        accountKey: AZURITE_KEY,
        prefix: 'gatehouse/',
      }),
      { mode: 0o600 },
    );
    t = await gatewayServer(dir, sshd, { GATEHOUSE_RECORDING_STORE_CONFIG: settings, ...database.env });
  }, 120_000);

  afterAll(async () => {
    killServers();
    await Promise.all([sshd?.stop(), azurite?.stop(), database?.drop()]);
    removeTempDirs();
  });

  it("puts a session's recording, and an SFTP session's log, each with its .sig in the container", async () => {
    const { stdout, session } = await t.ssh('echo in-the-container');
    const objectName = await t.stored(session.id);
    expect(objectName).toMatch(new RegExp(`^gatehouse/\\d{4}-\\d{2}-\\d{2}/${session.id}\\.cast$`));
    const blobs = await containerClient();
    const names: string[] = [];
    for await (const b of blobs.listBlobsFlat({ prefix: 'gatehouse/' })) names.push(b.name);
    expect(names.sort()).toEqual([objectName, `${objectName}.sig`]);
    const cast = (await blobs.getBlobClient(objectName).downloadToBuffer()).toString('utf8');
    expect(printed(cast)).toBe(stdout);
    const sig = JSON.parse((await blobs.getBlobClient(`${objectName}.sig`).downloadToBuffer()).toString('utf8')) as { sha256: string };
    expect(sig.sha256).toBe(session.recordingSha256);

    const payload = path.join(dir, 'payload.txt');
    writeFileSync(payload, 'to the container\n');
    const sftp = await t.sftp(payload, `gatehouse-recstore-blob-${process.pid}.txt`);
    const log = await t.stored(sftp.id);
    expect(log).toMatch(new RegExp(`^gatehouse/\\d{4}-\\d{2}-\\d{2}/${sftp.id}\\.sftp\\.jsonl$`));
    const lines = (await blobs.getBlobClient(log).downloadToBuffer()).toString('utf8').trim().split('\n');
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ sessionId: sftp.id, kind: 'sftp' });
    expect(lines.slice(1).map((l) => (JSON.parse(l) as { op: string }).op)).toEqual(expect.arrayContaining(['upload', 'remove']));
    const logSig = JSON.parse((await blobs.getBlobClient(`${log}.sig`).downloadToBuffer()).toString('utf8')) as { sha256: string };
    expect(logSig.sha256).toBe(sftp.recordingSha256);
  }, 120_000);
});
