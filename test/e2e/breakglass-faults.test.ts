import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ageKeygen,
  AlertHook,
  awsDownload,
  inventoryHeader,
  RestartableS3rver,
  runOffline,
  startAccessDeniedS3,
  startSilentTcp,
  waitFor,
  writeBulkInventory,
  type StandIn,
} from '../support/breakglass-e2e.js';
import {
  cli,
  killServers,
  removeTempDirs,
  setupAdmin,
  startServer,
  tempDir,
  type CliOptions,
  type GatehouseServer,
} from '../support/server.js';

/** A run as `gatehouse breakglass run --wait` and `runs` print it. */
interface RunView {
  id: string;
  result: 'running' | 'success' | 'failure';
  attempts: number;
  startedAt: string;
  finishedAt: string | null;
  counts: { devices?: number };
  bytes: number | null;
  sha256: string | null;
  error: string | null;
  errorStage: string | null;
  uploadedBytes?: number | null;
}

const prefix = 'faults/';
const DATA = `${prefix}breakglass.xlsx.age`;
const MANIFEST = `${prefix}breakglass.manifest.json`;
/**
 * Seconds a request to the storage may go unanswered (GATEHOUSE_BREAKGLASS_TIMEOUT_SECONDS):
 * with the default 30 the timeout case alone would take over a minute.
 */
const TIMEOUT_SECONDS = 2;
const figures: string[] = [];

describe('break-glass runs that fail', () => {
  let dir: string;
  let dataDir: string;
  let credentials: string;
  let server: GatehouseServer;
  let s3: RestartableS3rver;
  let hook: AlertHook;
  let denied: StandIn;
  let silent: StandIn;
  let identity: { identityFile: string; recipient: string };
  /** The export every fault must leave as it was. */
  let previous: { data: Buffer; manifest: Buffer };

  const env = {
    // One retry, at once: each case fails in seconds, not minutes.
    GATEHOUSE_BREAKGLASS_RETRY_DELAYS: '0',
    GATEHOUSE_BREAKGLASS_TIMEOUT_SECONDS: String(TIMEOUT_SECONDS),
  };
  const start = () => startServer({ dataDir, env });
  const gh = (args: string[], opts: CliOptions = {}) =>
    cli([...args, '--url', server.url], { ...opts, env: { GATEHOUSE_CREDENTIALS: credentials, ...opts.env } });
  const runs = async () => {
    const r = await gh(['breakglass', 'runs']);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { items: RunView[] }).items;
  };
  const settings = (extra: Record<string, unknown> = {}) => ({
    provider: 's3',
    executeTime: '03:00',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    bucket: 'breakglass',
    protocol: 'http',
    url: s3.endpoint,
    pathStyle: true,
    prefix,
    ageRecipients: [identity.recipient],
    alertWebhookUrl: hook.url,
    ...extra,
  });
  /** `configure`; `--force` saves settings whose Test fails, so that a run meets the fault too. */
  const configure = async (extra: Record<string, unknown> = {}, ...flags: string[]) => {
    const file = path.join(dir, 'settings.json');
    writeFileSync(file, JSON.stringify(settings(extra)), { mode: 0o600 });
    return gh(['breakglass', 'configure', '--file', file, ...flags]);
  };
  /** Both objects, as the break-glass holder downloads them with the aws CLI. */
  const download = () => {
    const to = path.join(dir, 'download');
    mkdirSync(to, { recursive: true });
    return {
      data: awsDownload(s3.endpointUrl, 'breakglass', DATA, path.join(to, 'breakglass.xlsx.age')),
      manifest: awsDownload(s3.endpointUrl, 'breakglass', MANIFEST, path.join(to, 'breakglass.manifest.json')),
    };
  };
  const expectPreviousIntact = () => {
    const now = download();
    expect(now.data.equals(previous.data), 'the workbook changed').toBe(true);
    expect(now.manifest.equals(previous.manifest), 'the manifest changed').toBe(true);
  };

  /**
   * `run --wait` fails: the run is a failure at `stage` after both attempts, `runs` says
   * so, the webhook got breakglass.run_failed about it, and the log has it at error level.
   */
  const expectFailedRun = async (stage: string, error: RegExp): Promise<RunView> => {
    const started = performance.now();
    const result = await gh(['breakglass', 'run', '--wait']);
    const ms = performance.now() - started;
    expect(result.code).toBe(1);
    const run = JSON.parse(result.stdout) as RunView;
    expect(run).toMatchObject({ result: 'failure', attempts: 2, errorStage: stage });
    expect(run.error).toMatch(error);
    expect(run.finishedAt).not.toBeNull();

    const listed = (await runs())[0];
    expect(listed).toMatchObject({ id: run.id, result: 'failure', errorStage: stage, error: run.error });

    const alerts = hook.forRun(run.id);
    expect(alerts.map((a) => a.event)).toEqual(['breakglass.run_failed']);
    expect(alerts[0]?.message).toContain('The previous export was left as it was.');
    expect(alerts[0]?.run).toMatchObject({ id: run.id, stage, error: run.error });

    // The server's log may trail its answers by a moment.
    const logged = await waitFor('the error-level log line of the alert', () =>
      server.logs.find((l) => l.level === 50 && l.alert === 'breakglass.run_failed' && l.run === run.id),
    );
    expect(logged.msg).toContain(`Break-glass run ${run.id} failed after 2 attempt(s)`);
    expect(server.logs.filter((l) => l.level === 50 && l.alert === 'breakglass.run_failed' && l.run === run.id)).toHaveLength(1);
    // The retry in between is a warning, not yet an alert.
    expect(server.logs.some((l) => l.level === 40 && l.run === run.id && l.msg === 'break-glass run failed; retrying')).toBe(true);
    figures.push(`${stage} failure (${run.error?.slice(0, 48)}…): run --wait ${ms.toFixed(0)} ms`);
    return run;
  };

  beforeAll(async () => {
    dir = tempDir('gatehouse-bg-faults-');
    dataDir = path.join(dir, 'data');
    credentials = path.join(dir, 'credentials.json');
    [s3, hook, denied, silent] = await Promise.all([
      RestartableS3rver.start(path.join(dir, 's3rver'), ['breakglass']),
      AlertHook.start(),
      startAccessDeniedS3(),
      startSilentTcp(),
    ]);
    identity = ageKeygen(dir);
    server = await start();
    await setupAdmin(server, 'break glass fault admin', { env: { GATEHOUSE_CREDENTIALS: credentials } });
    const csv = path.join(dir, 'small.csv');
    writeFileSync(csv, `${inventoryHeader}\nOps,web-1,aws,ssh,,10.0.0.1,,gateway,,root,pw-web-1-faults,,,,\n`);
    expect((await gh(['import', csv])).code).toBe(0);
    const saved = await configure();
    expect(saved.code, saved.stdout + saved.stderr).toBe(0);
    const first = await gh(['breakglass', 'run', '--wait']);
    expect(first.code, first.stderr).toBe(0);
    previous = download();
  });
  afterAll(async () => {
    killServers();
    await Promise.all([s3?.stop(), hook?.close(), denied?.close(), silent?.close()]);
    removeTempDirs();
    if (figures.length > 0) console.log(`[figures] break-glass faults:\n  ${figures.join('\n  ')}`);
  });

  it('storage down: fails at the connection stage and alerts; the export is intact once the storage is back', async () => {
    await s3.stop();
    await expectFailedRun('connection', new RegExp(`Nothing answers at http://${s3.endpoint} \\(connection refused\\)`));
    await s3.restart();
    expectPreviousIntact();
  });

  it('bucket missing: the Test says so, the run fails at the container stage and alerts', async () => {
    const saved = await configure({ bucket: 'gone-bucket' }, '--force');
    expect(saved.code).toBe(1);
    expect(saved.stdout).toMatch(/^FAIL container +Bucket gone-bucket does not exist/m);
    await expectFailedRun('container', /Bucket gone-bucket does not exist at http:\/\/127\.0\.0\.1:\d+\. Create it/);
    expectPreviousIntact();
  });

  it('access denied (403): the run fails at the connection stage, names AccessDenied, and alerts', async () => {
    const saved = await configure({ url: denied.endpoint }, '--force');
    expect(saved.code).toBe(1);
    expect(saved.stdout).toMatch(/^FAIL connection +The key is not allowed to write faults\/\.gatehouse-probe/m);
    await expectFailedRun(
      'connection',
      /The key is not allowed to write faults\/breakglass\.xlsx\.age in bucket breakglass \(AccessDenied\)/,
    );
    expect(denied.requests.some((r) => r.startsWith('PUT /breakglass/faults/breakglass.xlsx.age'))).toBe(true);
    expectPreviousIntact();
  });

  it('storage that accepts and never answers: the request times out, the run fails at the connection stage and alerts', async () => {
    const started = performance.now();
    const saved = await configure({ url: silent.endpoint }, '--force');
    figures.push(`Test against a silent endpoint (timeout ${TIMEOUT_SECONDS} s): configure ${(performance.now() - started).toFixed(0)} ms`);
    expect(saved.code).toBe(1);
    expect(saved.stdout).toMatch(/^FAIL container +http:\/\/127\.0\.0\.1:\d+ did not answer in time/m);
    const run = await expectFailedRun('connection', /did not answer in time/);
    // Two attempts, each given up after the timeout, not after the default 30 s.
    const took = Date.parse(run.finishedAt ?? '') - Date.parse(run.startedAt);
    expect(took).toBeGreaterThanOrEqual(2 * TIMEOUT_SECONDS * 1000 - 200);
    expect(took).toBeLessThan(30_000);
    expectPreviousIntact();
  });

  it('kill -9 mid-upload leaves the previous export; after a restart the run shows as failed and a new run succeeds', async () => {
    expect((await configure()).code).toBe(0);
    const csv = path.join(dir, 'bulk.csv');
    writeBulkInventory(csv, 30_000, 'bulk', 8, 40);
    let t = performance.now();
    const imported = await gh(['import', csv]);
    figures.push(`import of 30,000 devices with random passwords: ${(performance.now() - t).toFixed(0)} ms`);
    expect(imported.code, imported.stderr).toBe(0);

    const token = (JSON.parse(readFileSync(credentials, 'utf8')) as { token: string }).token;
    const started = await gh(['breakglass', 'run']);
    expect(started.code, started.stderr).toBe(0);
    const run = JSON.parse(started.stdout) as RunView;
    expect(run.result).toBe('running');
    t = performance.now();
    // Kill well into the export: a megabyte of sealed bytes out (about 40 %), or a multipart
    // upload open. (Not in the middle of the final PUT itself: s3rver writes a PUT into the
    // object's file as it arrives, where S3 and Azure replace an object only when complete.)
    const seen = await waitFor(
      'the run to be well under way',
      async () => {
        const res = await server.request(`/api/v1/breakglass/runs/${run.id}`, { headers: { authorization: `Bearer ${token}` } });
        const now = JSON.parse(res.body) as RunView;
        if (now.result !== 'running') throw new Error(`the run ended before it could be killed: ${res.body}`);
        if ((now.uploadedBytes ?? 0) >= 1024 * 1024 || s3.multipartUploads().length > 0) return now;
        return undefined;
      },
      60_000,
      20,
    );
    server.kill();
    await server.exited;
    figures.push(
      `kill -9 ${(performance.now() - t).toFixed(0)} ms into the 30,000-device run, ${seen.uploadedBytes ?? 0} sealed bytes out, ${s3.multipartUploads().length} multipart upload(s) open`,
    );
    expectPreviousIntact();

    server = await start();
    // The dead process's lease does not hold the restarted server up for its 5 minutes.
    const closed = await waitFor('the log line about the abandoned run', () =>
      server.logs.find((l) => l.msg === 'closed break-glass runs left unfinished by a stopped server'),
    );
    expect(closed).toMatchObject({ level: 40, runs: 1 });
    const after = (await runs()).find((r) => r.id === run.id);
    expect(after).toMatchObject({ result: 'failure' });
    expect(after?.error).toMatch(/server stopped during this run/);
    expect(after?.finishedAt).not.toBeNull();

    t = performance.now();
    const again = await gh(['breakglass', 'run', '--wait']);
    figures.push(`run --wait of the 30,000-device export after the restart: ${(performance.now() - t).toFixed(0)} ms`);
    expect(again.code, again.stderr).toBe(0);
    const done = JSON.parse(again.stdout) as RunView;
    expect(done).toMatchObject({ result: 'success', counts: { devices: 30_001 } });
    const now = download();
    expect(now.data.equals(previous.data)).toBe(false);
    figures.push(`30,000-device export: ${(now.data.length / 1024 / 1024).toFixed(1)} MiB sealed`);

    // The new export opens, offline.
    const key = await gh(['breakglass', 'signing-key']);
    writeFileSync(path.join(dir, 'pub.pem'), key.stdout);
    t = performance.now();
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
        'bulk-host-029999',
      ],
      { cwd: path.join(dir, 'download'), isolateNetwork: false },
    );
    figures.push(`offline reader on the 30,000-device export: ${opened.ms.toFixed(0)} ms`);
    expect(opened.code, opened.stderr).toBe(0);
    expect(opened.stdout).toMatch(/^Manifest: verified/m);
    expect(opened.stdout).toMatch(/^Device name {9}bulk-host-029999$/m);
  });
});
