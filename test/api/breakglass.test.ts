import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { SECRET_MASK } from '@gatehouse/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';
import { startHoldingProxy } from '../support/breakglass-e2e.js';
import { startS3rver } from '../support/storage.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bg-api-'));
let s3: Awaited<ReturnType<typeof startS3rver>>;
let recipient: string;
let identityFile: string;
/** A webhook receiver standing in for the on-call system. */
let hook: Server;
const alerts: { event: string; message: string }[] = [];
let hookUrl: string;

beforeAll(async () => {
  s3 = await startS3rver({ buckets: ['breakglass'] });
  const identity = await generateX25519Identity();
  recipient = await identityToRecipient(identity);
  identityFile = path.join(work, 'id.txt');
  writeFileSync(identityFile, `${identity}\n`, { mode: 0o600 });
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      alerts.push(JSON.parse(body) as { event: string; message: string });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(hook.address() as { port: number }).port}/alerts`;
});
afterAll(async () => {
  await s3.stop();
  await new Promise((resolve) => hook.close(resolve));
  rmSync(work, { recursive: true, force: true });
});

const s3Settings = (extra: Record<string, unknown> = {}) => ({
  provider: 's3',
  executeTime: '03:00',
  timeZone: 'Asia/Tokyo',
  accessKeyId: 'S3RVER',
  secretAccessKey: 'S3RVER-secret-value',
  bucket: 'breakglass',
  protocol: 'http',
  url: s3.endpoint,
  pathStyle: true,
  ageRecipients: [recipient],
  alertWebhookUrl: hookUrl,
  ...extra,
});

async function download(key: string): Promise<Buffer> {
  const client = new S3Client({
    region: 'us-east-1',
    endpoint: `http://${s3.endpoint}`,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  const out = await client.send(new GetObjectCommand({ Bucket: 'breakglass', Key: key }));
  return Buffer.from(await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

async function waitForRun(t: TestApp, token: string, id: string) {
  for (;;) {
    const run = (await t.request('GET', `/api/v1/breakglass/runs/${id}`, { token })).json<{
      result: string;
      error: string | null;
      errorStage: string | null;
    }>();
    if (run.result !== 'running') return run;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.each(dialects)('break glass API on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  const prefix = `api-${dialect}/`;
  beforeAll(async () => {
    t = await createTestApp(dialect, { breakglassRetryDelays: '0' });
    admin = (await t.userWithToken('admin')).token;
    const project = (await t.request('POST', '/api/v1/projects', { token: admin, body: { name: 'Ops' } })).json<{ id: string }>();
    const device = (
      await t.request('POST', '/api/v1/devices', {
        token: admin,
        body: { projectId: project.id, name: 'web-2', provider: 'aws', protocols: ['ssh'] },
      })
    ).json<{ id: string }>();
    await t.request('POST', '/api/v1/accounts', { token: admin, body: { deviceId: device.id, username: 'root', password: 'pw-of-web-2' } });
    // Imported as a customer's inventory spells it: the workbook shows that spelling.
    const imported = await t.request('POST', '/api/v1/inventory/import', {
      token: admin,
      payload: 'project,device,provider,protocols,account,password\nOps,web-1,AWS,SSH;MySQL,root,pw-of-web-1\n',
      headers: { 'content-type': 'text/csv' },
    });
    expect(imported.statusCode, imported.body).toBe(200);
  });
  afterAll(() => t.close());

  it('saves settings, runs the Test at once, and never shows the secret key again', async () => {
    const saved = await t.request('PUT', '/api/v1/breakglass/settings', { token: admin, body: s3Settings({ prefix }) });
    expect(saved.statusCode).toBe(200);
    const body = saved.json<{
      settings: Record<string, unknown>;
      test: { ok: boolean; stages: { stage: string; ok: boolean }[] };
      origin: string;
    }>();
    expect(body.origin).toBe('database');
    expect(body.settings.secretAccessKey).toBe(SECRET_MASK);
    expect(body.test.stages.map((s) => [s.stage, s.ok])).toEqual([
      ['container', true],
      ['authentication', true],
      ['connection', true],
    ]);
    expect(saved.body).not.toContain('S3RVER-secret-value');
    const shown = await t.request('GET', '/api/v1/breakglass/settings', { token: admin });
    expect(shown.body).not.toContain('S3RVER-secret-value');
    // Saving again with the mask keeps the stored secret.
    const again = await t.request('PUT', '/api/v1/breakglass/settings', {
      token: admin,
      body: s3Settings({ prefix, secretAccessKey: SECRET_MASK }),
    });
    expect(again.json<{ test: { ok: boolean } }>().test.ok).toBe(true);
    const events = (await t.request('GET', '/api/v1/audit/events?action=breakglass.test', { token: admin })).json<{ items: unknown[] }>();
    expect(events.items.length).toBeGreaterThanOrEqual(2);
  });

  it('streams the Test as JSON lines, one per stage as it completes, then the report; bad settings stay a JSON error', async () => {
    const res = await t.request('POST', '/api/v1/breakglass/test', {
      token: admin,
      body: s3Settings({ prefix }),
      headers: { accept: 'application/x-ndjson' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
    const lines = res.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; stage?: string; ok?: boolean; stages?: unknown[] });
    expect(lines.map((l) => [l.type, l.stage ?? null])).toEqual([
      ['stage', 'container'],
      ['stage', 'authentication'],
      ['stage', 'connection'],
      ['report', null],
    ]);
    expect(lines[3]).toMatchObject({ type: 'report', ok: true });
    expect(res.body).not.toContain('S3RVER-secret-value');

    const bad = await t.request('POST', '/api/v1/breakglass/test', {
      token: admin,
      body: s3Settings({ bucket: 'No_Such' }),
      headers: { accept: 'application/x-ndjson' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ error: { issues: { path: string }[] } }>().error.issues.map((i) => i.path)).toEqual(['bucket']);
  });

  it('names every bad field of the settings', async () => {
    const bad = await t.request('PUT', '/api/v1/breakglass/settings', {
      token: admin,
      body: s3Settings({ executeTime: '25:00', timeZone: 'Mars/Olympus', bucket: 'No_Such', protocol: 'ftp', surprise: 1 }),
    });
    expect(bad.statusCode).toBe(400);
    const paths = bad.json<{ error: { issues: { path: string }[] } }>().error.issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['executeTime', 'timeZone', 'bucket', 'protocol', 'surprise']));
  });

  it('runs now, keeps a history row, and writes a sealed workbook the age CLI opens', async () => {
    const started = await t.request('POST', '/api/v1/breakglass/runs', { token: admin });
    expect(started.statusCode).toBe(202);
    const run = await waitForRun(t, admin, started.json<{ id: string }>().id);
    expect(run).toMatchObject({ result: 'success', error: null });
    const history = (await t.request('GET', '/api/v1/breakglass/runs', { token: admin })).json<{
      items: { counts: { devices: number } }[];
    }>();
    expect(history.items[0]?.counts.devices).toBe(2);

    const sealed = path.join(work, `${dialect}.age`);
    writeFileSync(sealed, await download(`${prefix}breakglass.xlsx.age`));
    const xlsx = `${sealed}.xlsx`;
    execFileSync('age', ['-d', '-i', identityFile, '-o', xlsx, sealed]);
    const csv = execFileSync('xlsx2csv', ['-n', 'Ops', xlsx], { encoding: 'utf8' }).trim().split('\n');
    expect(csv.slice(1).map((l) => l.split(',')[1])).toEqual(['web-1', 'web-2']);
    expect(csv[0]).toMatch(/^Provider,Device name,Protocol,/);
    expect(csv[1]).toMatch(/^AWS,web-1,"SSH, MySQL",.*,root,pw-of-web-1,/);
    expect(csv[2]).toMatch(/^aws,web-2,ssh,/);
    const manifest = JSON.parse((await download(`${prefix}breakglass.manifest.json`)).toString()) as {
      sha256: string;
      auditCheckpoint: { seq: number; keyId: string };
    };
    expect(manifest.sha256).toMatch(/^[0-9a-f]{64}$/);
    // The manifest anchors the audit chain outside the database: the head when the export ran, signed.
    expect(manifest.auditCheckpoint).toMatchObject({ keyId: t.auditCheckpoints.keyId, seq: expect.any(Number) as number });
    const verified = await t.request('POST', '/api/v1/audit/verify', { token: admin, body: { checkpoint: manifest } });
    expect(verified.json()).toMatchObject({ ok: true, checkpoint: { seq: manifest.auditCheckpoint.seq } });
  });

  it('refuses a second run while one is going on', async () => {
    const first = await t.request('POST', '/api/v1/breakglass/runs', { token: admin });
    const second = await t.request('POST', '/api/v1/breakglass/runs', { token: admin });
    expect(second.statusCode).toBe(409);
    expect(second.json<{ error: { message: string } }>().error.message).toMatch(/already in progress/);
    await waitForRun(t, admin, first.json<{ id: string }>().id);
  });

  it('a failing run retries, alerts by webhook and error log, and leaves the previous export intact', async () => {
    const before = await download(`${prefix}breakglass.xlsx.age`);
    alerts.length = 0;
    // Point at a bucket that does not exist; the Test on save says so, the run fails.
    const saved = await t.request('PUT', '/api/v1/breakglass/settings', {
      token: admin,
      body: s3Settings({ prefix, bucket: 'gone-bucket' }),
    });
    expect(saved.json<{ test: { stages: { ok: boolean | null }[] } }>().test.stages[0]?.ok).toBe(false);
    const started = await t.request('POST', '/api/v1/breakglass/runs', { token: admin });
    const run = await waitForRun(t, admin, started.json<{ id: string }>().id);
    expect(run).toMatchObject({ result: 'failure', errorStage: 'container', attempts: 2 });
    expect(run.error).toMatch(/gone-bucket does not exist/);
    expect(alerts.map((a) => a.event)).toContain('breakglass.run_failed');
    expect(t.logs.lines.some((l) => l.includes('"level":50') && l.includes('breakglass.run_failed'))).toBe(true);
    expect((await download(`${prefix}breakglass.xlsx.age`)).equals(before)).toBe(true);
    await t.request('PUT', '/api/v1/breakglass/settings', { token: admin, body: s3Settings({ prefix }) });
  });

  it('a run that wrote the workbook and failed at the manifest records the object and SHA-256 it wrote', async () => {
    // s3rver behind a proxy that denies the manifest's PUT, as a bucket policy could.
    const proxy = await startHoldingProxy(
      { host: '127.0.0.1', port: Number(s3.endpoint.split(':')[1]) },
      () => false,
      (method, url) => method === 'PUT' && url.includes('breakglass.manifest.json'),
    );
    try {
      const manifestBefore = await download(`${prefix}breakglass.manifest.json`);
      alerts.length = 0;
      await t.request('PUT', '/api/v1/breakglass/settings', { token: admin, body: s3Settings({ prefix, url: proxy.endpoint }) });
      const started = await t.request('POST', '/api/v1/breakglass/runs', { token: admin });
      const { id } = started.json<{ id: string }>();
      expect((await waitForRun(t, admin, id)).result).toBe('failure');
      const run = (await t.request('GET', `/api/v1/breakglass/runs/${id}`, { token: admin })).json<{
        errorStage: string;
        objects: { data?: string; manifest?: string };
        bytes: number;
        sha256: string;
        counts: { devices?: number };
      }>();
      const written = await download(`${prefix}breakglass.xlsx.age`);
      expect(run).toMatchObject({
        errorStage: 'connection',
        objects: { data: `${prefix}breakglass.xlsx.age` },
        bytes: written.length,
        sha256: createHash('sha256').update(written).digest('hex'),
        counts: { devices: 2 },
      });
      expect(run.objects.manifest).toBeUndefined();
      expect((await download(`${prefix}breakglass.manifest.json`)).equals(manifestBefore)).toBe(true);
      const alert = alerts.find((a) => a.event === 'breakglass.run_failed');
      expect(alert?.message).toContain(
        `The new workbook ${prefix}breakglass.xlsx.age was written (${written.length} bytes, SHA-256 ${run.sha256}) but not its manifest`,
      );
      expect(alert?.message).not.toContain('previous export was left as it was');
      const events = (await t.request('GET', '/api/v1/audit/events?action=breakglass.run', { token: admin })).json<{
        items: { outcome: string; details: Record<string, unknown> }[];
      }>();
      expect(events.items.find((e) => e.outcome === 'failure' && e.details.sha256 === run.sha256)?.details.objects).toEqual(run.objects);
    } finally {
      await t.request('PUT', '/api/v1/breakglass/settings', { token: admin, body: s3Settings({ prefix }) });
      await proxy.close();
    }
  });

  it('alerts when the newest successful export is older than 26 hours', async () => {
    alerts.length = 0;
    expect(await t.breakglass.checkStaleness(new Date(Date.now() + 27 * 3_600_000))).toBe(true);
    expect(alerts.map((a) => a.event)).toEqual(['breakglass.stale']);
    expect(await t.breakglass.checkStaleness(new Date(Date.now() + 3_600_000))).toBe(false);
  });

  it('catches up a run missed while the server was down', async () => {
    // The last run was just now; pretend the server wakes up two days later, past 03:00 Tokyo.
    const run = await t.breakglass.catchUp(new Date(Date.now() + 48 * 3_600_000));
    expect(run?.trigger).toBe('catch-up');
    await waitForRun(t, admin, run?.id ?? '');
    expect(await t.breakglass.catchUp(new Date())).toBeUndefined();
  });

  it('prints least-privilege policies for the bucket and prefix', async () => {
    const policy = (await t.request('GET', '/api/v1/breakglass/policy', { token: admin })).json<{
      writer: { documents: { content: string }[] };
    }>();
    const iam = JSON.parse(policy.writer.documents[0]?.content ?? '{}') as { Statement: { Action: string[]; Resource: string }[] };
    expect(iam.Statement).toEqual([expect.objectContaining({ Action: ['s3:PutObject'], Resource: `arn:aws:s3:::breakglass/${prefix}*` })]);
  });
});

describe('break-glass settings from a mounted secret', () => {
  let t: TestApp;
  let admin: string;
  const mount = path.join(work, 'mount');
  const write = (values: Record<string, string>) => {
    rmSync(mount, { recursive: true, force: true });
    execFileSync('mkdir', ['-p', mount]);
    for (const [k, v] of Object.entries(values)) writeFileSync(path.join(mount, k), `${v}\n`);
  };
  beforeAll(async () => {
    write({
      provider: 's3',
      executeTime: '04:30',
      accessKeyId: 'S3RVER',
      secretAccessKey: 'mounted-secret-value',
      bucket: 'breakglass',
      protocol: 'http',
      url: s3.endpoint,
      pathStyle: 'true',
      ageRecipients: recipient,
      prefix: 'mounted/',
    });
    t = await createTestApp(dialects[0] ?? 'sqlite', { breakglassConfig: mount });
    admin = (await t.userWithToken('admin')).token;
  });
  afterAll(() => t?.close());

  it('wins over the database, is read-only, and masks its secrets', async () => {
    const shown = (await t.request('GET', '/api/v1/breakglass/settings', { token: admin })).json<{
      origin: string;
      readOnly: boolean;
      settings: Record<string, unknown>;
    }>();
    expect(shown).toMatchObject({ origin: 'mounted', readOnly: true });
    expect(shown.settings).toMatchObject({ executeTime: '04:30', secretAccessKey: SECRET_MASK, prefix: 'mounted/' });
    const put = await t.request('PUT', '/api/v1/breakglass/settings', { token: admin, body: s3Settings() });
    expect(put.statusCode).toBe(409);
    expect((await t.request('POST', '/api/v1/breakglass/test', { token: admin, body: {} })).json<{ ok: boolean }>().ok).toBe(true);
  });

  it('picks up a change without restart, and names bad keys without echoing secrets', async () => {
    write({
      provider: 's3',
      executeTime: '05:15',
      accessKeyId: 'S3RVER',
      secretAccessKey: 'mounted-secret-value',
      bucket: 'breakglass',
      protocol: 'http',
      url: s3.endpoint,
      pathStyle: 'true',
      ageRecipients: recipient,
    });
    expect(t.breakglass.reloadMounted()).toBe(true);
    const shown = (await t.request('GET', '/api/v1/breakglass/settings', { token: admin })).json<{ settings: { executeTime: string } }>();
    expect(shown.settings.executeTime).toBe('05:15');

    write({ provider: 'gcs', executeTime: '5pm', secretAccessKey: 'leaky-secret-value', colour: 'blue' });
    t.breakglass.reloadMounted();
    const broken = await t.request('GET', '/api/v1/breakglass/settings', { token: admin });
    const error = broken.json<{ error: string }>().error;
    expect(error).toMatch(/provider: must be s3 or blob/);
    expect(error).toMatch(/colour: is not a break-glass setting/);
    expect(broken.body).not.toContain('leaky-secret-value');
    expect(t.logs.text).not.toContain('leaky-secret-value');
    const run = await t.request('POST', '/api/v1/breakglass/runs', { token: admin });
    expect(run.statusCode).toBe(409);
  });

  it('reports a missing required key and a bad time by name', async () => {
    write({ provider: 's3', executeTime: '24:61', protocol: 'http', ageRecipients: recipient });
    t.breakglass.reloadMounted();
    const error = (await t.request('GET', '/api/v1/breakglass/settings', { token: admin })).json<{ error: string }>().error;
    expect(error).toMatch(/executeTime: must be a time of day as HH:mm/);
    expect(error).toMatch(/bucket: /);
    expect(readFileSync(path.join(mount, 'provider'), 'utf8')).toBe('s3\n');
  });
});
