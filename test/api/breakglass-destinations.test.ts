import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { SECRET_MASK } from '@gatehouse/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';
import { startS3rver } from '../support/storage.js';

/**
 * Where break-glass secrets may go (issue 15, items 8-11): a stored secret does not follow
 * a changed destination, the server's own AWS identity is not lent to other servers,
 * link-local and metadata addresses are refused, remote errors are told in our words, the
 * alert webhook URL is a secret, and plain exports are the server's decision alone.
 */

/** A local HTTP listener standing in for whatever a setting points at: keeps every request, answers `answer`. */
interface Listener {
  endpoint: string;
  url: string;
  requests: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[];
  /** Everything it was sent, as one text, to look for a secret in. */
  seen(): string;
  close(): Promise<void>;
}

async function startListener(
  answer: { status: number; headers?: Record<string, string>; body?: string } = { status: 200 },
): Promise<Listener> {
  const requests: Listener['requests'] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(req.method === 'HEAD' ? undefined : (answer.body ?? ''));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    endpoint,
    url: `http://${endpoint}`,
    requests,
    seen: () => requests.map((r) => `${r.method} ${r.url}\n${JSON.stringify(r.headers)}\n${r.body}`).join('\n'),
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

type Issues = { error: { code: string; message: string; issues: { path: string; message: string }[] } };

const work = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bg-dest-'));
let recipient: string;
let s3: Awaited<ReturnType<typeof startS3rver>>;
beforeAll(async () => {
  recipient = await identityToRecipient(await generateX25519Identity());
  s3 = await startS3rver({ buckets: ['breakglass', 'other'] });
});
afterAll(async () => {
  await s3.stop();
  rmSync(work, { recursive: true, force: true });
});

const S3_SECRET = 'S3RVER-secret-of-the-real-bucket';
const SAS = 'sv=2024-05-04&ss=b&srt=co&sp=cw&se=2099-01-01T00:00:00Z&sig=stored-sas-signature-value';
const s3Body = (extra: Record<string, unknown> = {}) => ({
  provider: 's3',
  executeTime: '03:00',
  accessKeyId: 'S3RVER',
  secretAccessKey: S3_SECRET,
  bucket: 'breakglass',
  protocol: 'http',
  url: s3.endpoint,
  pathStyle: true,
  prefix: 'dest/',
  ageRecipients: [recipient],
  ...extra,
});

const blobBody = (blobEndpoint: string, extra: Record<string, unknown> = {}) => ({
  provider: 'blob',
  executeTime: '03:00',
  accountName: 'acme',
  sasToken: SAS,
  container: 'breakglass',
  protocol: 'http',
  blobEndpoint,
  ageRecipients: [recipient],
  ...extra,
});

describe.each(dialects)('break-glass destinations on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  let auditor: string;
  /** Stands in for a server someone would like the stored secret sent to. */
  let elsewhere: Listener;
  beforeAll(async () => {
    t = await createTestApp(dialect, { breakglassRetryDelays: '' });
    admin = (await t.userWithToken('admin')).token;
    auditor = (await t.userWithToken('auditor')).token;
    elsewhere = await startListener();
  });
  afterAll(async () => {
    await elsewhere.close();
    await t.close();
  });
  const put = (body: unknown) => t.request('PUT', '/api/v1/breakglass/settings', { token: admin, body });
  const test = (body: unknown) => t.request('POST', '/api/v1/breakglass/test', { token: admin, body });

  it('S3: a save or Test that changes the URL, protocol, bucket, path style or AWS region needs the secret key typed again', async () => {
    expect((await put(s3Body())).statusCode).toBe(200);
    const changes: [Record<string, unknown>, string][] = [
      [{ url: elsewhere.endpoint }, 'url'],
      [{ protocol: 'https' }, 'protocol'],
      [{ bucket: 'other' }, 'bucket'],
      [{ pathStyle: false }, 'pathStyle'],
    ];
    for (const [change, field] of changes) {
      for (const secret of [SECRET_MASK, undefined]) {
        const body = s3Body({ ...change, secretAccessKey: secret });
        for (const res of [await put(body), await test(body)]) {
          expect(res.statusCode, `${field} changed, secret ${String(secret)}`).toBe(400);
          const error = res.json<Issues>().error;
          expect(error.code).toBe('VALIDATION_FAILED');
          expect(error.issues.map((i) => i.path)).toEqual(['secretAccessKey']);
          expect(error.issues[0]?.message).toMatch(new RegExp(`^must be entered again: the destination changed \\(${field}\\)`));
        }
      }
    }
    expect(elsewhere.requests).toEqual([]);
    // The stored settings are unchanged, and the same destination keeps the stored secret.
    const kept = await put(s3Body({ secretAccessKey: SECRET_MASK }));
    expect(kept.json<{ test: { ok: boolean } }>().test.ok).toBe(true);
    // Typed again, the new destination is used (and gets the new secret, not the stored one).
    const retyped = await test(s3Body({ url: elsewhere.endpoint, secretAccessKey: 'typed-for-elsewhere' }));
    expect(retyped.statusCode).toBe(200);
    expect(elsewhere.requests.length).toBeGreaterThan(0);
    expect(elsewhere.seen()).not.toContain(S3_SECRET);
    elsewhere.requests.length = 0;

    // With no URL the region names the AWS host: changing it moves the secret too.
    await t.breakglass.store.save(await t.breakglass.merge(s3Body({ url: '', protocol: 'https', region: 'eu-west-1' })));
    const region = await test(s3Body({ url: '', protocol: 'https', region: 'us-west-2', secretAccessKey: SECRET_MASK }));
    expect(region.statusCode).toBe(400);
    expect(region.json<Issues>().error.issues[0]?.message).toMatch(/destination changed \(region\)/);
    expect((await put(s3Body())).statusCode).toBe(200);
  });

  it('Blob: a change of endpoint, account, suffix, container or protocol needs the SAS token or account key typed again', async () => {
    const blob = (extra: Record<string, unknown> = {}) => blobBody(`${elsewhere.url}/stored`, extra);
    // Saved against the listener (its Test fails, the settings are saved all the same).
    expect((await put(blob())).statusCode).toBe(200);
    const attacker = await startListener();
    try {
      const changes: [Record<string, unknown>, string][] = [
        [{ blobEndpoint: `${attacker.url}/acme` }, 'blobEndpoint'],
        [{ accountName: 'other' }, 'accountName'],
        [{ container: 'other' }, 'container'],
        [{ protocol: 'https', blobEndpoint: `https://${elsewhere.endpoint}/stored` }, 'blobEndpoint, protocol'],
      ];
      for (const [change, fields] of changes) {
        for (const res of [await put(blob({ ...change, sasToken: SECRET_MASK })), await test(blob({ ...change, sasToken: undefined }))]) {
          expect(res.statusCode, fields).toBe(400);
          const issues = res.json<Issues>().error.issues;
          expect(issues.map((i) => i.path)).toEqual(['sasToken']);
          expect(issues[0]?.message).toContain(`the destination changed (${fields})`);
        }
      }
      expect(attacker.requests).toEqual([]);
      // With the endpoint suffix (no blobEndpoint) the suffix is the destination.
      await t.breakglass.store.save(await t.breakglass.merge(blob({ blobEndpoint: '', protocol: 'https' })));
      const suffix = await test(blob({ blobEndpoint: '', protocol: 'https', endpointSuffix: 'core.example.net', sasToken: SECRET_MASK }));
      expect(suffix.json<Issues>().error.issues[0]?.message).toMatch(/destination changed \(endpointSuffix\)/);
      // The same destination keeps the stored token (merged only: a Test would go to the internet).
      const same = await t.breakglass.merge(blob({ blobEndpoint: '', protocol: 'https', sasToken: SECRET_MASK }));
      expect(same).toMatchObject({ provider: 'blob', sasToken: SAS });

      // The account key follows the destination the same way.
      await t.breakglass.store.save(await t.breakglass.merge(blob({ accountKey: 'c3RvcmVkLWFjY291bnQta2V5', sasToken: null })));
      const key = await test(blob({ container: 'other', accountKey: SECRET_MASK, sasToken: null }));
      const issues = key.json<Issues>().error.issues;
      expect(issues.map((i) => i.path)).toEqual(['accountKey']);
      expect(issues[0]?.message).toContain('destination changed (container)');
    } finally {
      await attacker.close();
    }
    expect((await put(s3Body())).statusCode).toBe(200);
  });

  it("S3 without an access key is refused, and the server's AWS identity from the environment never reaches another server", async () => {
    const env = {
      AWS_ACCESS_KEY_ID: 'AKIAENVIRONMENTLEAK1',
      AWS_SECRET_ACCESS_KEY: 'environment-secret-access-key',
      AWS_SESSION_TOKEN: 'environment-session-token',
    };
    const before = { ...process.env };
    Object.assign(process.env, env);
    elsewhere.requests.length = 0;
    try {
      const cases: [Record<string, unknown>, string][] = [
        [{ accessKeyId: undefined, secretAccessKey: undefined }, 'accessKeyId'],
        [{ accessKeyId: '', secretAccessKey: '' }, 'accessKeyId'],
        [{ credentials: 'default', accessKeyId: undefined, secretAccessKey: undefined }, 'credentials'],
        [
          { credentials: 'default', accessKeyId: undefined, secretAccessKey: undefined, url: 's3.amazonaws.com.example.net' },
          'credentials',
        ],
      ];
      for (const [change, field] of cases) {
        for (const res of [
          await put(s3Body({ ...change, url: change.url ?? elsewhere.endpoint })),
          await test(s3Body({ ...change, url: change.url ?? elsewhere.endpoint })),
        ]) {
          expect(res.statusCode).toBe(400);
          expect(res.json<Issues>().error.issues.map((i) => i.path)).toContain(field);
        }
      }
      // Chosen explicitly and for AWS, the default chain is accepted by the schema (it needs HTTPS).
      const aws = await t.breakglass.store.merge(
        s3Body({
          credentials: 'default',
          accessKeyId: undefined,
          secretAccessKey: undefined,
          url: '',
          protocol: 'https',
          region: 'eu-west-1',
        }),
      );
      expect(aws).toMatchObject({ provider: 's3', credentials: 'default', accessKeyId: undefined });
      const plainHttp = await test(s3Body({ credentials: 'default', accessKeyId: undefined, secretAccessKey: undefined, url: '' }));
      expect(plainHttp.json<Issues>().error.issues.map((i) => i.path)).toEqual(['protocol']);
    } finally {
      for (const key of Object.keys(env)) delete process.env[key];
      Object.assign(process.env, before);
    }
    expect(elsewhere.requests).toEqual([]);
    expect(elsewhere.seen()).not.toContain('AKIAENVIRONMENTLEAK1');

    // Settings an earlier version saved without a key (it used the default chain then) are not run.
    await t.services.settings.set('breakglass.settings', JSON.stringify(s3Body({ secretAccessKey: undefined, accessKeyId: undefined })));
    const shown = (await t.request('GET', '/api/v1/breakglass/settings', { token: admin })).json<{ error: string }>();
    expect(shown.error).toMatch(/^The stored break-glass settings are no longer valid; save them again: accessKeyId is required/);
    expect((await t.request('POST', '/api/v1/breakglass/runs', { token: admin })).statusCode).toBe(409);
    expect((await put(s3Body())).statusCode).toBe(200);
  });

  it('refuses link-local and cloud-metadata addresses for the storage and the webhook, and says which server setting allows them', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ url: '169.254.169.254' }, 'url', /is a cloud metadata address/],
      [{ url: '169.254.10.1:9000' }, 'url', /is a link-local address/],
      [{ url: 'metadata.google.internal' }, 'url', /is a cloud metadata address/],
      [{ url: '[fe80::1]:9000' }, 'url', /is a link-local address/],
      [{ url: '[fd00:ec2::254]' }, 'url', /is a cloud metadata address/],
      [
        { alertWebhookUrl: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' },
        'alertWebhookUrl',
        /is a cloud metadata address/,
      ],
    ];
    for (const [change, field, message] of cases) {
      const res = await test(s3Body(change));
      expect(res.statusCode, JSON.stringify(change)).toBe(400);
      const issue = res.json<Issues>().error.issues.find((i) => i.path === field);
      expect(issue?.message).toMatch(message);
      expect(issue?.message).toContain('breakglassAllowLinkLocal (GATEHOUSE_BREAKGLASS_ALLOW_LINK_LOCAL=true)');
      expect(res.body).not.toContain('security-credentials');
    }
    const blob = await test(blobBody('http://169.254.169.254/metadata'));
    expect(blob.json<Issues>().error.issues.map((i) => i.path)).toEqual(['blobEndpoint']);
    // Private addresses stay allowed: 127.0.0.1 is where s3rver is.
    expect((await test(s3Body())).json<{ ok: boolean }>().ok).toBe(true);
  });

  it("tells a remote error in its own words: not the remote's code, text or status", async () => {
    const internal = await startListener({
      status: 418,
      headers: { 'content-type': 'application/xml', 'x-ms-error-code': 'RedisInternalShard7' },
      body: '<?xml version="1.0"?><Error><Code>RedisInternalShard7</Code><Message>redis 10.9.8.7:6379 said NOAUTH</Message></Error>',
    });
    try {
      const viaS3 = await test(s3Body({ url: internal.endpoint, secretAccessKey: 'typed' }));
      const viaBlob = await test(blobBody(`${internal.url}/acme`));
      for (const res of [viaS3, viaBlob]) {
        const report = res.json<{ ok: boolean; stages: { stage: string; ok: boolean | null; message: string }[] }>();
        expect(report.ok).toBe(false);
        const failed = report.stages.find((s) => s.ok === false);
        expect(failed?.stage).toBe('connection');
        expect(failed?.message).toMatch(/gave an answer Gatehouse does not know/);
        for (const remote of ['RedisInternalShard7', '10.9.8.7', 'NOAUTH']) expect(res.body).not.toContain(remote);
        expect(res.body).not.toMatch(/\b418\b/);
      }
      expect(internal.requests.length).toBeGreaterThan(0);
    } finally {
      await internal.close();
    }
  });

  it('keeps the alert webhook URL a secret: sealed, masked to admins and auditors, kept by the mask, never logged', async () => {
    const hook = await startListener();
    const webhook = `${hook.url}/services/T000/B000/webhook-bearer-secret`;
    try {
      expect((await put(s3Body({ alertWebhookUrl: webhook }))).statusCode).toBe(200);
      for (const token of [admin, auditor]) {
        const shown = await t.request('GET', '/api/v1/breakglass/settings', { token });
        expect(shown.json<{ settings: { alertWebhookUrl: string } }>().settings.alertWebhookUrl).toBe(SECRET_MASK);
        expect(shown.body).not.toContain('webhook-bearer-secret');
      }
      expect(await t.services.settings.get('breakglass.settings')).not.toContain('webhook-bearer-secret');
      // Saved again with the mask (as the console does), the stored URL is kept and used.
      expect((await put(s3Body({ alertWebhookUrl: SECRET_MASK }))).statusCode).toBe(200);
      await t.breakglass.alert('breakglass.stale', 'a test alert', undefined, (await t.breakglass.current()).settings);
      expect(hook.requests.map((r) => r.url)).toEqual(['/services/T000/B000/webhook-bearer-secret']);
      // The audit trail and the log never hold it.
      const events = await t.request('GET', '/api/v1/audit/events?limit=500', { token: admin });
      expect(events.body).not.toContain('webhook-bearer-secret');
      expect(t.logs.text).not.toContain('webhook-bearer-secret');
      expect((await put(s3Body({ alertWebhookUrl: '' }))).statusCode).toBe(200);
      expect((await t.breakglass.current()).settings?.alertWebhookUrl).toBeUndefined();
    } finally {
      await hook.close();
    }
  });

  it('refuses the webhook at send time when its host resolves to a metadata address, in our own words', async () => {
    // Saved before the rule existed: stored directly. 2852039166 is 169.254.169.254 written as one number.
    await t.breakglass.store.save({ ...(await t.breakglass.store.merge(s3Body())), alertWebhookUrl: 'http://2852039166/hook-secret-path' });
    const { settings, error } = await t.breakglass.current();
    expect(error).toMatch(/alertWebhookUrl is a cloud metadata address/);
    const logged = t.logs.lines.length;
    await t.breakglass.alert('breakglass.stale', 'a test alert', undefined, settings);
    const lines = t.logs.lines.slice(logged).join('\n');
    expect(lines).toContain('the alert webhook did not take the alert');
    expect(lines).toMatch(/is a cloud metadata address/);
    expect(lines).not.toContain('hook-secret-path');
    // Runs are refused until the settings are fixed.
    const run = await t.request('POST', '/api/v1/breakglass/runs', { token: admin });
    expect(run.statusCode).toBe(409);
    expect((await put(s3Body({ alertWebhookUrl: '' }))).statusCode).toBe(200);
  });

  it('refuses encryption "none" unless the server allows it: in the API, in settings stored earlier, in runs', async () => {
    for (const res of [await put(s3Body({ encryption: 'none' })), await test(s3Body({ encryption: 'none' }))]) {
      expect(res.statusCode).toBe(400);
      const issue = res.json<Issues>().error.issues;
      expect(issue.map((i) => i.path)).toEqual(['encryption']);
      expect(issue[0]?.message).toContain('breakglassAllowPlaintext (GATEHOUSE_BREAKGLASS_ALLOW_PLAINTEXT=true)');
    }
    // Plain settings saved while the server allowed it: shown with the reason, never run.
    await t.breakglass.store.save({ ...(await t.breakglass.store.merge(s3Body())), encryption: 'none' });
    const shown = (await t.request('GET', '/api/v1/breakglass/settings', { token: admin })).json<{
      error: string;
      serverAllows: unknown;
    }>();
    expect(shown.error).toMatch(/^encryption may not be "none" on this server/);
    expect(shown.serverAllows).toEqual({ plaintext: false, linkLocal: false });
    const run = await t.request('POST', '/api/v1/breakglass/runs', { token: admin });
    expect(run.statusCode).toBe(409);
    expect(run.json<Issues>().error.message).toMatch(/breakglassAllowPlaintext/);
    expect((await t.request('POST', '/api/v1/breakglass/test', { token: admin, body: {} })).statusCode).toBe(409);
    expect((await put(s3Body())).statusCode).toBe(200);
  });
});

describe('a server that allows plain exports', () => {
  let t: TestApp;
  let admin: string;
  beforeAll(async () => {
    t = await createTestApp(dialects[0] ?? 'sqlite', { breakglassRetryDelays: '', breakglassAllowPlaintext: true });
    admin = (await t.userWithToken('admin')).token;
    const project = (await t.request('POST', '/api/v1/projects', { token: admin, body: { name: 'Plain' } })).json<{ id: string }>();
    const device = (
      await t.request('POST', '/api/v1/devices', { token: admin, body: { projectId: project.id, name: 'db-1', provider: 'aws' } })
    ).json<{ id: string }>();
    for (const username of ['root', 'postgres', 'backup']) {
      await t.request('POST', '/api/v1/accounts', { token: admin, body: { deviceId: device.id, username, password: `pw-${username}` } });
    }
  });
  afterAll(() => t.close());

  it('warns, and audits every plain run as a bulk reveal of its credentials', async () => {
    const saved = await t.request('PUT', '/api/v1/breakglass/settings', {
      token: admin,
      body: s3Body({ encryption: 'none', prefix: 'plain/', ageRecipients: [] }),
    });
    expect(saved.statusCode).toBe(200);
    expect(saved.json<{ warnings: string[] }>().warnings[0]).toMatch(/^Encryption is OFF/);
    const started = await t.request('POST', '/api/v1/breakglass/runs', { token: admin });
    const id = started.json<{ id: string }>().id;
    // The run takes a few seconds on a busy machine (poll's default gives up after one).
    await expect
      .poll(async () => (await t.request('GET', `/api/v1/breakglass/runs/${id}`, { token: admin })).json<{ result: string }>().result, {
        timeout: 30_000,
      })
      .toBe('success');
    const reveals = async () =>
      (await t.request('GET', '/api/v1/audit/events?action=account.bulk_reveal', { token: admin })).json<{
        items: { outcome: string; targetId: string; details: Record<string, unknown> }[];
      }>();
    // The run's row says success in the same transaction as its bulk-reveal event: no wait for it.
    const events = await reveals();
    expect(events.items).toHaveLength(1);
    expect(events.items[0]).toMatchObject({
      outcome: 'success',
      targetId: id,
      details: { credentials: 3, accounts: 3, privateKeys: 0, devices: 1 },
    });
  });
});

describe('a mounted secret with encryption "none" on a server that does not allow it', () => {
  let t: TestApp;
  let admin: string;
  beforeAll(async () => {
    const mount = path.join(work, 'mount-plain');
    mkdirSync(mount);
    const values = { ...s3Body({ encryption: 'none', pathStyle: 'true', ageRecipients: '' }) } as Record<string, unknown>;
    for (const [k, v] of Object.entries(values)) writeFileSync(path.join(mount, k), String(v));
    t = await createTestApp(dialects[0] ?? 'sqlite', { breakglassConfig: mount });
    admin = (await t.userWithToken('admin')).token;
  });
  afterAll(() => t.close());

  it('is reported by key and refused, like the API', async () => {
    const shown = (await t.request('GET', '/api/v1/breakglass/settings', { token: admin })).json<{ error: string; settings: unknown }>();
    expect(shown.settings).toBeNull();
    expect(shown.error).toMatch(/- encryption: may not be "none" on this server/);
    expect((await t.request('POST', '/api/v1/breakglass/runs', { token: admin })).statusCode).toBe(409);
    expect(t.logs.text).not.toContain(S3_SECRET);
  });
});
