import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';
import { startS3rver } from '../support/storage.js';

/**
 * Plain HTTP to a storage server on another machine is warned about in the Test's report,
 * in the settings the console shows, and in the audit events; to this machine it is not.
 */

let s3: Awaited<ReturnType<typeof startS3rver>>;
let recipient: string;

beforeAll(async () => {
  s3 = await startS3rver({ buckets: ['breakglass'] });
  recipient = await identityToRecipient(await generateX25519Identity());
});
afterAll(() => s3.stop());

/** `.invalid` never resolves (RFC 6761): the Test fails at once, and nothing leaves this machine. */
const REMOTE = 'storage.example.invalid:9000';

const s3Settings = (url: string, extra: Record<string, unknown> = {}) => ({
  provider: 's3',
  executeTime: '03:00',
  accessKeyId: 'S3RVER',
  secretAccessKey: 'S3RVER-plain-http-secret',
  bucket: 'breakglass',
  protocol: 'http',
  url,
  pathStyle: true,
  ageRecipients: [recipient],
  ...extra,
});

interface Report {
  ok: boolean;
  warnings: string[];
}
interface AuditEvent {
  action: string;
  outcome: string;
  details: { warnings?: string[]; target?: string };
}

describe.each(dialects)('break glass over plain HTTP on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  const events = async (action: string) =>
    (await t.request('GET', `/api/v1/audit/events?action=${action}&limit=50`, { token: admin })).json<{ items: AuditEvent[] }>().items;

  beforeAll(async () => {
    t = await createTestApp(dialect, { breakglassRetryDelays: '0' });
    admin = (await t.userWithToken('admin')).token;
  });
  afterAll(() => t.close());

  it('warns in the Test, the settings and the audit events when the endpoint is another machine', async () => {
    const tested = await t.request('POST', '/api/v1/breakglass/test', { token: admin, body: s3Settings(REMOTE) });
    expect(tested.statusCode).toBe(200);
    const report = tested.json<Report>();
    expect(report.ok).toBe(false);
    expect(report.warnings).toEqual([
      expect.stringMatching(/^The storage endpoint http:\/\/storage\.example\.invalid:9000 is plain HTTP: /),
    ]);
    expect(report.warnings[0]).toContain('Use HTTPS');
    const [audited] = await events('breakglass.test');
    expect(audited?.details.warnings).toEqual(report.warnings);

    // Saved anyway (the CLI's --force): the page shows the warning above the settings, the save is audited with it.
    const saved = await t.request('PUT', '/api/v1/breakglass/settings?save=always', { token: admin, body: s3Settings(REMOTE) });
    expect(saved.statusCode).toBe(200);
    const view = saved.json<{ warnings: string[]; test: Report }>();
    expect(view.warnings).toEqual(report.warnings);
    expect(view.test.warnings).toEqual(report.warnings);
    const [update] = await events('breakglass.settings_update');
    expect(update?.details.warnings).toEqual(report.warnings);
    expect(JSON.stringify(await events('breakglass.test'))).not.toContain('S3RVER-plain-http-secret');

    // A Blob endpoint over HTTP: the SAS token travels in each request's URL, and the warning says so.
    const blob = await t.request('POST', '/api/v1/breakglass/test', {
      token: admin,
      body: {
        provider: 'blob',
        executeTime: '03:00',
        accountName: 'gatehouse',
        sasToken: 'sv=2024-01-01&sp=cw&sig=plain-http-sig',
        container: 'breakglass',
        protocol: 'http',
        blobEndpoint: 'storage.example.invalid:10000/gatehouse',
        ageRecipients: [recipient],
      },
    });
    expect(blob.json<Report>().warnings).toEqual([expect.stringContaining('every request (and the SAS token in it)')]);
    expect(blob.body).not.toContain('plain-http-sig');
  });

  it('does not warn for a storage server on this machine, nor over HTTPS', async () => {
    for (const url of [s3.endpoint, `localhost:${s3.port}`]) {
      const saved = await t.request('PUT', '/api/v1/breakglass/settings?save=always', { token: admin, body: s3Settings(url) });
      const view = saved.json<{ warnings: string[]; test: Report }>();
      expect(view.test, url).toMatchObject({ ok: true, warnings: [] });
      expect(view.warnings).toEqual([]);
      const [audited] = await events('breakglass.test');
      expect(audited?.details.warnings).toEqual([]);
    }
    const https = await t.request('POST', '/api/v1/breakglass/test', { token: admin, body: s3Settings(REMOTE, { protocol: 'https' }) });
    expect(https.json<Report>().warnings).toEqual([]);
  });
});
