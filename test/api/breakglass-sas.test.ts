import { ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { SECRET_MASK } from '@gatehouse/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, azuriteContainerSas, startAzurite, type RunningPeer } from '../support/storage.js';

/**
 * Azure Blob with least privilege (issue 16, item 5): the portal's "SAS connection string"
 * (BlobEndpoint and SharedAccessSignature, no AccountName), a SAS token that replaces a
 * stored account key, and the Test of the saved settings with no body.
 */

type Report = { ok: boolean; stages: { stage: string; ok: boolean | null; message: string }[]; privilegeWarnings: string[] };
type Issues = { error: { issues: { path: string; message: string }[] } };

let azurite: RunningPeer & { blobEndpoint: string };
let recipient: string;
beforeAll(async () => {
  azurite = await startAzurite();
  recipient = await identityToRecipient(await generateX25519Identity());
  const key = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
  for (const dialect of dialects) await new ContainerClient(`${azurite.blobEndpoint}/sas-${dialect}`, key).create();
}, 60_000);
afterAll(() => azurite?.stop());

const stageStates = (r: Report) => r.stages.map((s) => [s.stage, s.ok]);
const allOk = [
  ['container', true],
  ['authentication', true],
  ['connection', true],
];

describe.each(dialects)('break glass: Azure Blob with a SAS on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  const container = `sas-${dialect}`;
  /** A container SAS with create and write only: what the writer policy asks for. */
  let mine: string;
  beforeAll(async () => {
    t = await createTestApp(dialect, { breakglassRetryDelays: '' });
    admin = (await t.userWithToken('admin')).token;
    mine = await azuriteContainerSas(container);
  });
  afterAll(() => t.close());
  const common = () => ({
    provider: 'blob',
    executeTime: '03:00',
    container,
    protocol: 'http',
    prefix: `${dialect}/`,
    ageRecipients: [recipient],
  });
  const put = (body: unknown) => t.request('PUT', '/api/v1/breakglass/settings', { token: admin, body });

  it("takes the portal's SAS connection string (no AccountName): the account comes from the endpoint, the SAS is used", async () => {
    const res = await put({ ...common(), connectionString: `BlobEndpoint=${azurite.blobEndpoint};SharedAccessSignature=${mine}` });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json<{ settings: Record<string, unknown>; test: Report }>();
    expect(body.settings).toMatchObject({
      accountName: AZURITE_ACCOUNT,
      blobEndpoint: azurite.blobEndpoint,
      sasToken: SECRET_MASK,
      accountKey: null,
    });
    expect(stageStates(body.test)).toEqual(allOk);
    // The create/write-only SAS: no read, list or delete.
    expect(body.test.privilegeWarnings).toEqual([]);
    expect(res.body).not.toContain(mine);

    // Neither an account nor an endpoint: the error names the field and says what to give.
    const none = await t.request('POST', '/api/v1/breakglass/test', {
      token: admin,
      body: { ...common(), connectionString: `SharedAccessSignature=${mine}` },
    });
    expect(none.statusCode).toBe(400);
    const issues = none.json<Issues>().error.issues;
    expect(issues.map((i) => i.path)).toEqual(['accountName']);
    expect(issues[0]?.message).toMatch(/^is required: give the storage account name, or a blobEndpoint/);
    expect(none.body).not.toContain(mine);
  });

  it('tests the saved settings when POST /breakglass/test has no body', async () => {
    const res = await t.request('POST', '/api/v1/breakglass/test', { token: admin });
    expect(res.statusCode, res.body).toBe(200);
    expect(stageStates(res.json<Report>())).toEqual(allOk);
    // The same with an empty JSON body, as curl -X POST -H 'Content-Type: application/json' sends.
    const empty = await t.request('POST', '/api/v1/breakglass/test', {
      token: admin,
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    expect(empty.statusCode, empty.body).toBe(200);
    expect(stageStates(empty.json<Report>())).toEqual(allOk);
    // A route that needs a body still says it is empty.
    const save = await t.request('PUT', '/api/v1/breakglass/settings', {
      token: admin,
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    expect(save.statusCode).toBe(400);
    expect(save.json<{ error: { message: string } }>().error.message).toBe('The request body is empty. Send a JSON object.');
  });

  it('a SAS token sent while an account key is stored replaces the key (and the other way round); both at once are refused', async () => {
    const withKey = await put({ ...common(), accountName: AZURITE_ACCOUNT, blobEndpoint: azurite.blobEndpoint, accountKey: AZURITE_KEY });
    expect(withKey.statusCode, withKey.body).toBe(200);
    // The account key can do everything: the Test says so.
    expect(withKey.json<{ test: Report }>().test.privilegeWarnings.length).toBeGreaterThan(0);

    // What the console sends: the key's mask, and a SAS typed into its field.
    const withSas = await put({
      ...common(),
      accountName: AZURITE_ACCOUNT,
      blobEndpoint: azurite.blobEndpoint,
      accountKey: SECRET_MASK,
      sasToken: mine,
    });
    expect(withSas.statusCode, withSas.body).toBe(200);
    const saved = withSas.json<{ settings: Record<string, unknown>; test: Report }>();
    expect(saved.settings).toMatchObject({ accountKey: null, sasToken: SECRET_MASK });
    expect(stageStates(saved.test)).toEqual(allOk);
    expect(saved.test.privilegeWarnings).toEqual([]);
    expect(await t.breakglass.store.load()).not.toHaveProperty('accountKey');

    // A SAS that Azurite refuses is refused: the key is not quietly used instead. The failure names where it went.
    const forged = mine.replace(/sig=[^&]+/, `sig=${encodeURIComponent(Buffer.alloc(32, 1).toString('base64'))}`);
    const refused = await t.request('POST', '/api/v1/breakglass/test', {
      token: admin,
      body: { ...common(), connectionString: `BlobEndpoint=${azurite.blobEndpoint};SharedAccessSignature=${forged}` },
    });
    const report = refused.json<Report>();
    expect(report.stages.find((s) => s.stage === 'authentication')).toMatchObject({ ok: false });
    expect(report.stages.find((s) => s.stage === 'authentication')?.message).toContain(`at ${azurite.blobEndpoint} did not accept`);

    // The key sent again replaces the stored SAS.
    const back = await put({
      ...common(),
      accountName: AZURITE_ACCOUNT,
      blobEndpoint: azurite.blobEndpoint,
      accountKey: AZURITE_KEY,
      sasToken: SECRET_MASK,
    });
    expect(back.json<{ settings: Record<string, unknown> }>().settings).toMatchObject({ accountKey: SECRET_MASK, sasToken: null });

    const both = await put({
      ...common(),
      accountName: AZURITE_ACCOUNT,
      blobEndpoint: azurite.blobEndpoint,
      accountKey: AZURITE_KEY,
      sasToken: mine,
    });
    expect(both.statusCode).toBe(400);
    const issues = both.json<Issues>().error.issues;
    expect(issues.map((i) => i.path)).toEqual(['sasToken']);
    expect(issues[0]?.message).toMatch(/^give either the account key or a SAS token, not both/);
    expect(both.body).not.toContain(AZURITE_KEY);
    expect(both.body).not.toContain(mine);
  });
});
