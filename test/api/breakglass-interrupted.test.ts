import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { BreakGlassRuns, Leases, openDatabase, openVault, type Db } from '@gatehouse/db';
import { buildApp, createLogger, loadServerConfig, type GatehouseApp } from '@gatehouse/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, LogCapture, type TestApp } from '../support/app.js';
import { AlertHook, startAccessDeniedS3, waitFor } from '../support/breakglass-e2e.js';
import { dialects } from '../support/db.js';
import { startS3rver } from '../support/storage.js';

/**
 * A break-glass run that a stopped server (kill -9, OOM, power loss) left "running":
 * closed once as interrupted with what the bucket really holds, audited, alerted, and
 * run again — by one server only, however many find it at once.
 */

let s3: Awaited<ReturnType<typeof startS3rver>>;
let hook: AlertHook;
let recipient: string;
let client: S3Client;

beforeAll(async () => {
  [s3, hook] = await Promise.all([startS3rver({ buckets: ['breakglass'] }), AlertHook.start()]);
  recipient = await identityToRecipient(await generateX25519Identity());
  client = new S3Client({
    region: 'us-east-1',
    endpoint: `http://${s3.endpoint}`,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
});
afterAll(async () => {
  await Promise.all([s3?.stop(), hook?.close()]);
});

/** The PID of a process that has just exited: the holder of a lease left by a server killed mid-run. */
function deadPid(): number {
  const child = spawnSync('sh', ['-c', 'echo $$']);
  return Number(child.stdout.toString().trim());
}

interface RunView {
  id: string;
  trigger: string;
  result: string;
  error: string | null;
  errorStage: string | null;
  target: string | null;
  sha256: string | null;
}

describe.each(dialects)('break-glass runs cut off by a stopped server, on %s', (dialect) => {
  let a: TestApp;
  /** A second server on the same database, as a replica would be. */
  let b: GatehouseApp;
  let bDb: Db;
  let admin: string;
  const prefix = `interrupted-${dialect}/`;
  const data = `${prefix}breakglass.xlsx.age`;
  const manifestKey = `${prefix}breakglass.manifest.json`;

  const get = async (key: string) => {
    const out = await client.send(new GetObjectCommand({ Bucket: 'breakglass', Key: key }));
    return Buffer.from(await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
  };
  const waitForRun = async (id: string): Promise<RunView> => {
    for (;;) {
      const run = (await a.request('GET', `/api/v1/breakglass/runs/${id}`, { token: admin })).json<RunView>();
      if (run.result !== 'running') return run;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const events = async (action: string, targetId?: string) =>
    (await a.request('GET', `/api/v1/audit/events?action=${action}${targetId ? `&targetId=${targetId}` : ''}`, { token: admin })).json<{
      items: { targetId: string | null; outcome: string; details: Record<string, unknown> }[];
    }>().items;
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
    ageRecipients: [recipient],
    alertWebhookUrl: hook.url,
    ...extra,
  });
  /** A run row left "running", and the lease of the server that died holding it. */
  const leaveUnfinished = async (target?: string): Promise<RunView> => {
    const last = (await a.request('GET', '/api/v1/breakglass/runs', { token: admin })).json<{ items: RunView[] }>().items[0];
    const run = await a.breakglass.runs.start('schedule', target ?? last?.target ?? null);
    // The run before lets go of the lease a moment after its row says it ended.
    const holder = `${hostname()}/${deadPid()}/${randomUUID()}`;
    await waitFor('the lease to be free', async () =>
      (await new Leases(a.database.db).acquire('breakglass', holder, 300_000)) ? true : undefined,
    );
    return run;
  };

  beforeAll(async () => {
    a = await createTestApp(dialect, { breakglassRetryDelays: '0' });
    admin = (await a.userWithToken('admin')).token;
    const project = (await a.request('POST', '/api/v1/projects', { token: admin, body: { name: 'Ops' } })).json<{ id: string }>();
    const device = (
      await a.request('POST', '/api/v1/devices', {
        token: admin,
        body: { projectId: project.id, name: 'db-1', provider: 'aws', protocols: ['ssh'] },
      })
    ).json<{ id: string }>();
    await a.request('POST', '/api/v1/accounts', { token: admin, body: { deviceId: device.id, username: 'root', password: 'pw-db-1' } });
    const saved = await a.request('PUT', '/api/v1/breakglass/settings', { token: admin, body: settings() });
    expect(saved.statusCode, saved.body).toBe(200);
    const first = await a.request('POST', '/api/v1/breakglass/runs', { token: admin });
    expect(await waitForRun(first.json<{ id: string }>().id)).toMatchObject({ result: 'success' });

    bDb = await openDatabase({ dataDir: a.database.dataDir, databaseUrl: a.database.databaseUrl });
    const config = loadServerConfig({ env: {}, flags: { dataDir: a.database.dataDir, port: 0, breakglassRetryDelays: '0' } });
    b = await buildApp({
      config,
      db: bDb,
      vault: await openVault(bDb, a.masterKey),
      logger: createLogger('debug', new LogCapture()),
      https: null,
    });
  });
  afterAll(async () => {
    await b?.app.close();
    await bDb?.close();
    await a?.close();
  });

  it('an unfinished run is claimed once, however many servers claim it at the same moment', async () => {
    const run = await a.breakglass.runs.start('manual', null);
    const [onA, onB] = [new BreakGlassRuns(a.database.db), new BreakGlassRuns(bDb)];
    const claims = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? onB : onA).claimInterrupted(run.id, `claimed by ${i}`)));
    expect(claims.filter((c) => c === true)).toHaveLength(1);
    const closed = await a.breakglass.runs.get(run.id);
    expect(closed).toMatchObject({ result: 'failure', errorStage: 'interrupted' });
    expect(closed.error).toBe(`claimed by ${claims.indexOf(true)}`);
  });

  it('two servers find a run cut off mid-upload: one audits, alerts and redoes it; its error says the previous export is intact', async () => {
    const manifest = JSON.parse((await get(manifestKey)).toString()) as { generatedAt: string; sha256: string; bytes: number };
    const cut = await leaveUnfinished();
    const redos = await Promise.all([a.breakglass.recoverInterrupted(), b.breakglass.recoverInterrupted()]);
    const redo = redos.find((r) => r !== undefined);
    expect(redos.filter((r) => r !== undefined)).toHaveLength(1);
    expect(redo?.trigger).toBe('catch-up');

    const closed = await waitForRun(cut.id);
    expect(closed).toMatchObject({ result: 'failure', errorStage: 'interrupted' });
    expect(closed.error).toContain('The server stopped during this run');
    expect(closed.error).toContain(
      `The previous export is intact: ${data} matches the manifest of ${manifest.generatedAt} (SHA-256 ${manifest.sha256}, ${manifest.bytes} bytes).`,
    );
    const done = await waitForRun(redo?.id ?? '');
    expect(done).toMatchObject({ result: 'success', error: null });
    expect(JSON.parse((await get(manifestKey)).toString())).toMatchObject({ sha256: done.sha256 });

    const audited = await events('breakglass.run', cut.id);
    expect(audited).toHaveLength(1);
    expect(audited[0]).toMatchObject({ outcome: 'failure', details: { interrupted: true, bucket: 'whole', redoneBy: redo?.id } });
    expect((await events('breakglass.run_start', redo?.id)).map((e) => e.details.redoes)).toEqual([cut.id]);
    const alerted = (await events('breakglass.alert')).filter((e) => e.details.run === cut.id);
    expect(alerted.map((e) => e.details.event)).toEqual(['breakglass.run_interrupted']);
    const sent = hook.forRun(cut.id);
    expect(sent.map((x) => x.event)).toEqual(['breakglass.run_interrupted']);
    expect(sent[0]?.message).toContain(`It is being run again now (run ${redo?.id}).`);
    expect(sent[0]?.run).toMatchObject({ stage: 'interrupted', error: closed.error });
  });

  it('says the workbook was replaced but the manifest was not, when that is what the bucket holds', async () => {
    const manifest = JSON.parse((await get(manifestKey)).toString()) as { generatedAt: string; sha256: string };
    const planted = Buffer.from('a workbook whose manifest was never written');
    await client.send(new PutObjectCommand({ Bucket: 'breakglass', Key: data, Body: planted }));
    const cut = await leaveUnfinished();
    const redo = await a.breakglass.recoverInterrupted();
    const closed = await waitForRun(cut.id);
    expect(closed.error).toMatch(/The workbook was replaced but the manifest was not/);
    expect(closed.error).toContain(`does not match the manifest of ${manifest.generatedAt} (SHA-256 ${manifest.sha256})`);
    expect(closed.error).not.toContain('intact');
    expect((await events('breakglass.run', cut.id))[0]?.details).toMatchObject({ bucket: 'mismatch' });
    expect(await waitForRun(redo?.id ?? '')).toMatchObject({ result: 'success' });
  });

  it('after three runs in a row were cut off, reports the third but does not run it again by itself', async () => {
    for (let i = 0; i < 2; i++) {
      const run = await a.breakglass.runs.start('catch-up', null);
      expect(await a.breakglass.runs.claimInterrupted(run.id, 'The server stopped during this run.')).toBe(true);
    }
    const cut = await leaveUnfinished();
    expect(await a.breakglass.recoverInterrupted()).toBeUndefined();
    expect(await waitForRun(cut.id)).toMatchObject({ result: 'failure', errorStage: 'interrupted' });
    expect((await a.request('GET', '/api/v1/breakglass/runs', { token: admin })).json<{ items: RunView[] }>().items[0]?.id).toBe(cut.id);
    expect(hook.forRun(cut.id)[0]?.message).toMatch(/It is not run again automatically: the last 3 runs were all cut off/);
    // The lease was let go: a run by hand starts.
    const manual = await a.request('POST', '/api/v1/breakglass/runs', { token: admin });
    expect(manual.statusCode).toBe(202);
    expect(await waitForRun(manual.json<{ id: string }>().id)).toMatchObject({ result: 'success' });
  });

  it('a key that may not read the bucket (put-only): the error says the bucket was not checked, and why', async () => {
    const denied = await startAccessDeniedS3();
    try {
      const saved = await a.request('PUT', '/api/v1/breakglass/settings', { token: admin, body: settings({ url: denied.endpoint }) });
      expect(saved.statusCode, saved.body).toBe(200);
      const cut = await leaveUnfinished(`s3://breakglass at http://${denied.endpoint}`);
      const redo = await a.breakglass.recoverInterrupted();
      const closed = await waitForRun(cut.id);
      expect(closed.error).toContain(
        'What the bucket holds was not checked: the key may not read the bucket (a put-only key, as recommended, cannot).',
      );
      expect(closed.error).not.toMatch(/intact|replaced/);
      expect((await events('breakglass.run', cut.id))[0]?.details).toMatchObject({ bucket: 'unchecked' });
      expect(denied.requests.some((r) => r.startsWith(`GET /breakglass/${manifestKey}`))).toBe(true);
      // The redo runs, and fails against the same refusal as any run would.
      expect(await waitForRun(redo?.id ?? '')).toMatchObject({ result: 'failure', errorStage: 'connection' });
    } finally {
      await a.request('PUT', '/api/v1/breakglass/settings', { token: admin, body: settings() });
      await denied.close();
    }
  });
});
