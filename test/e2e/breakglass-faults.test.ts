import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
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
  startThrottlingProxy,
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
  savedToken,
} from '../support/server.js';

/** A run as `gatehouse breakglass run --wait` and `runs` print it. */
interface RunView {
  id: string;
  trigger: string;
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
    const r = await gh(['breakglass', 'runs', '--json']);
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
    const result = await gh(['breakglass', 'run', '--wait', '--json']);
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

  it('kill -9 inside the upload of a scheduled run: after the restart the run is audited, alerted, described truthfully and redone', async () => {
    const csv = path.join(dir, 'bulk.csv');
    writeBulkInventory(csv, 30_000, 'bulk', 8, 40);
    let t = performance.now();
    const imported = await gh(['import', csv]);
    figures.push(`import of 30,000 devices with random passwords: ${(performance.now() - t).toFixed(0)} ms`);
    expect(imported.code, imported.stderr).toBe(0);

    // The storage takes the workbook in at 256 KiB/s: the upload lasts seconds, and the
    // kill lands inside it however fast or slow this machine is.
    const throttled = await startThrottlingProxy(
      { host: '127.0.0.1', port: s3.port },
      (method, url) => method === 'PUT' && url.includes('breakglass.xlsx.age'),
      256 * 1024,
    );
    try {
      // The daily run, due in 30 to 90 seconds (UTC).
      const due = new Date(Math.floor((Date.now() + 90_000) / 60_000) * 60_000);
      const executeTime = due.toISOString().slice(11, 16);
      const saved = await configure({ url: throttled.endpoint, executeTime, timeZone: 'UTC' });
      expect(saved.code, saved.stdout + saved.stderr).toBe(0);
      const manifest = JSON.parse(previous.manifest.toString()) as { generatedAt: string; sha256: string; bytes: number };

      const upload = await waitFor(
        'the scheduled run to be inside its upload',
        () => throttled.uploads.find((u) => u.received >= 128 * 1024 && !u.complete),
        150_000,
        20,
      );
      const received = upload.received;
      server.kill();
      await server.exited;
      await waitFor('the cut-off upload to settle', () => (upload.cutOff || upload.answered ? true : undefined));
      // What the bucket holds now, found out independently of the server.
      const left = download();
      expect(left.manifest.equals(previous.manifest), 'the manifest changed').toBe(true);
      const intact = left.data.equals(previous.data);
      const leftSha = createHash('sha256').update(left.data).digest('hex');
      figures.push(
        `kill -9 with ${received} bytes of the ${upload.url.split('?')[0]} PUT taken in (scheduled at ${executeTime} UTC): ${intact ? 'upload cut off, previous export intact' : 'the bytes already sent arrived after the kill: new workbook, old manifest'}`,
      );
      throttled.throttling = false;

      server = await start();
      t = performance.now();
      const cut = await waitFor(
        'the interrupted run to be closed',
        async () => (await runs()).find((r) => r.trigger === 'schedule' && r.result === 'failure'),
        30_000,
      );
      expect(cut).toMatchObject({ errorStage: 'interrupted', attempts: 1 });
      // What the bucket holds, read back and checked, not assumed.
      expect(cut.error).toContain('The server stopped during this run');
      expect(cut.error).toContain(
        intact
          ? `The previous export is intact: ${DATA} matches the manifest of ${manifest.generatedAt} (SHA-256 ${manifest.sha256}, ${manifest.bytes} bytes).`
          : `The workbook was replaced but the manifest was not: ${DATA} (SHA-256 ${leftSha}, ${left.data.length} bytes) does not match the manifest of ${manifest.generatedAt} (SHA-256 ${manifest.sha256})`,
      );

      const redo = await waitFor('the redo', async () => (await runs()).find((r) => r.trigger === 'catch-up'), 30_000);
      figures.push(
        `restart → redo started: ${(Date.parse(redo.startedAt) - Date.parse(cut.finishedAt ?? '')).toFixed(0)} ms after the run was closed`,
      );
      const done = await waitFor(
        'the redo to finish',
        async () => {
          const now = (await runs()).find((r) => r.id === redo.id);
          return now?.result === 'running' ? undefined : now;
        },
        120_000,
        200,
      );
      figures.push(`redo of the 30,000-device export after the restart: ${(performance.now() - t).toFixed(0)} ms from the restart`);
      expect(done).toMatchObject({ result: 'success', counts: { devices: 30_001 } });

      // Audited: the interrupted run has its own event, naming the redo.
      const token = savedToken(credentials);
      const audit = await server.request(`/api/v1/audit/events?action=breakglass.run&targetId=${cut.id}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const events = (JSON.parse(audit.body) as { items: { outcome: string; details: Record<string, unknown> }[] }).items;
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        outcome: 'failure',
        details: { interrupted: true, bucket: intact ? 'whole' : 'mismatch', redoneBy: redo.id },
      });
      // Alerted: the webhook, and the log at error level.
      const alerts = hook.forRun(cut.id);
      expect(alerts.map((a) => a.event)).toEqual(['breakglass.run_interrupted']);
      expect(alerts[0]?.message).toContain(`It is being run again now (run ${redo.id}).`);
      expect(alerts[0]?.run).toMatchObject({ stage: 'interrupted', error: cut.error });
      expect(server.logs.some((l) => l.level === 50 && l.alert === 'breakglass.run_interrupted' && l.run === cut.id)).toBe(true);
    } finally {
      await throttled.close();
    }

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
  }, 300_000);
});
