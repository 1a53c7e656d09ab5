import { ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, newPage, openSystemPage, screenshot, signIn } from '../support/browser.js';
import { ageKeygen } from '../support/breakglass-e2e.js';
import { killServers, removeTempDirs, setupAdmin, startServer, tempDir, type GatehouseServer, savedToken } from '../support/server.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, azuriteContainerSas, startAzurite, startS3rver, type RunningPeer } from '../support/storage.js';

const API = '/api/v1';
const ADMIN_PASSWORD = 'console break glass admin';
const S3_SECRET = 'S3RVER';

/**
 * System management → Break glass backup in Chromium against the real server, s3rver and
 * Azurite: the documented fields, the Test's three stages (all succeed, then a wrong key
 * fails the authentication stage with its reason), Save, Run now and the history row, a
 * pasted Azure connection string, and settings from a mounted secret shown read-only.
 */
describe('web console: break glass', () => {
  let dir: string;
  let server: GatehouseServer;
  let s3: RunningPeer & { endpoint: string };
  let azurite: RunningPeer & { blobEndpoint: string };
  let browser: Browser;
  let page: Page;
  let problems: string[];
  let token: string;
  let recipient: string;
  let deviceId: string;

  const api = async <T>(method: string, route: string, body?: unknown): Promise<T> => {
    const res = await server.request(`${API}${route}`, { method, body, headers: { authorization: `Bearer ${token}` } });
    if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${res.body}`);
    return (res.body === '' ? undefined : JSON.parse(res.body)) as T;
  };
  const stage = (name: string) => page.locator(`li[data-stage="${name}"]`);
  const stagesDone = async () => {
    await page.getByRole('button', { name: 'Test', exact: true }).click();
    await page.locator('[aria-label="Test result"][data-complete="true"]').waitFor();
    return Promise.all(['container', 'authentication', 'connection'].map((s) => stage(s).getAttribute('data-state')));
  };

  beforeAll(async () => {
    dir = tempDir('gatehouse-console-bg-');
    recipient = ageKeygen(dir).recipient;
    [s3, azurite] = await Promise.all([startS3rver({ buckets: ['breakglass'] }), startAzurite()]);
    await new ContainerClient(`${azurite.blobEndpoint}/breakglass`, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).create();
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: '0' } });
    const credentials = path.join(dir, 'credentials.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    token = savedToken(credentials);
    const project = await api<{ id: string }>('POST', '/projects', { name: 'Payments' });
    const device = await api<{ id: string }>('POST', '/devices', {
      projectId: project.id,
      name: 'db-1',
      provider: 'aws',
      privateIp: '10.0.0.5',
    });
    deviceId = device.id;
    await api('POST', '/accounts', { deviceId: device.id, username: 'root', password: 'a vaulted password' });

    browser = await launchChromium(server.certFile);
    ({ page, problems } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } })));
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
  });

  afterAll(async () => {
    await browser?.close();
    await Promise.all([s3?.stop(), azurite?.stop()]);
    killServers();
    removeTempDirs();
  });

  it('tests S3 settings stage by stage, then a wrong key fails the authentication stage with its reason', async () => {
    await openSystemPage(page, 'Break glass backup');
    await page.getByRole('heading', { name: 'Break glass backup' }).waitFor();
    await page.getByText('No runs yet').waitFor();
    // Nothing saved yet: Run now says why it cannot start.
    const runNow = page.getByRole('button', { name: 'Run now' });
    expect(await runNow.isDisabled()).toBe(true);
    expect(await page.locator('#run-now-why').textContent()).toBe('Save the settings first: a run uses the saved settings.');
    await screenshot(page, '20-breakglass-empty');

    // The documented S3 fields, in order.
    const labels = await page.locator('[data-provider="s3"] label').allTextContents();
    expect(labels).toEqual(['Access key ID', 'Secret key', 'Bucket name', 'Protocol', 'URL', 'Region']);
    await page.getByLabel('Execute time', { exact: true }).fill('03:00');
    await page.getByLabel('Time zone', { exact: true }).fill('Asia/Tokyo');
    await page.getByLabel('Access key ID', { exact: true }).fill('S3RVER');
    await page.getByLabel('Secret key', { exact: true }).fill(S3_SECRET);
    await page.getByLabel('Bucket name', { exact: true }).fill('breakglass');
    await page.getByLabel('Protocol', { exact: true }).selectOption('http');
    await page.locator('[data-warning="http"]').getByText('HTTP is not encrypted').waitFor();
    await page.getByLabel('URL', { exact: true }).fill(s3.endpoint);
    await page.getByLabel('Age recipients', { exact: true }).fill(recipient);
    expect(await page.getByTestId('sealed-by').textContent()).toMatch(/^Sealed with age to 1 recipient:/);
    await page.getByText('Advanced').click();
    await page.getByLabel(/Path-style/).check();

    expect(await stagesDone()).toEqual(['ok', 'ok', 'ok']);
    // s3rver lets any valid key do anything: the privilege warning says so.
    await page.getByText('The key has more rights than it needs').waitFor();
    await screenshot(page, '21-breakglass-s3-test-ok');

    // s3rver checks the access key ID, not the secret: a key it does not know.
    await page.getByLabel('Access key ID', { exact: true }).fill('NOT-A-KEY');
    await page.getByLabel('Secret key', { exact: true }).fill('not-the-secret');
    const states = await stagesDone();
    expect(states[1]).toBe('failed');
    expect(states[2]).toBe('skipped');
    const reason = await stage('authentication').locator('.stage-message').textContent();
    expect(reason).toBe('The access key ID is not known to the storage server. Check the access key ID.');
    expect(reason).not.toContain('not-the-secret');
    await screenshot(page, '22-breakglass-s3-wrong-key');

    // Plain HTTP to another machine: the Test result warns; to this machine it does not.
    await page.getByLabel('Access key ID', { exact: true }).fill('S3RVER');
    await page.getByLabel('Secret key', { exact: true }).fill(S3_SECRET);
    await page.getByLabel('URL', { exact: true }).fill('storage.example.invalid:9000');
    await stagesDone();
    const transport = page.locator('[aria-label="Test result"] [data-warning="transport"]');
    expect(await transport.textContent()).toMatch(
      /^The storage endpoint http:\/\/storage\.example\.invalid:9000 is plain HTTP: .*Use HTTPS/,
    );
    await screenshot(page, '23-breakglass-s3-plain-http');
    await page.getByLabel('URL', { exact: true }).fill(s3.endpoint);
    expect(await stagesDone()).toEqual(['ok', 'ok', 'ok']);
    expect(await transport.count()).toBe(0);
  });

  it('saves, shows the secret as a fixed mask, runs now and shows the run in the history', async () => {
    await page.getByLabel('Access key ID', { exact: true }).fill('S3RVER');
    await page.getByLabel('Secret key', { exact: true }).fill(S3_SECRET);
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved. The Test ran with the saved settings').waitFor();
    expect(await page.getByLabel('Secret key', { exact: true }).inputValue()).toBe('********');
    const saved = await api<{ settings: Record<string, unknown> }>('GET', '/breakglass/settings');
    expect(saved.settings).toMatchObject({
      provider: 's3',
      executeTime: '03:00',
      timeZone: 'Asia/Tokyo',
      bucket: 'breakglass',
      pathStyle: true,
    });

    await page.getByRole('button', { name: 'Run now' }).click();
    await page.getByText('The run succeeded.').waitFor({ timeout: 30_000 });
    const row = page.getByRole('table', { name: 'Run history' }).locator('tbody tr').first();
    await row.getByText('succeeded').waitFor();
    expect(await row.textContent()).toContain('manual');
    await screenshot(page, '23-breakglass-s3-run');
    // The save's Test stays shown, with its time, after a reload.
    await page.reload();
    await page.locator('[aria-label="Test result"] .test-time time').waitFor();
    await page.getByText('The key has more rights than it needs').waitFor();
    expect(await page.locator('#run-now-why').count()).toBe(0);
  });

  it("shows the last Test to every administrator, with its time and who ran it, from the server (not the tab's memory)", async () => {
    const password = 'second administrator password';
    await api('POST', '/users', { username: 'bea', role: 'admin', password });
    const p = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } }));
    await signIn(p.page, server.url, 'bea', password);
    await openSystemPage(p.page, 'Break glass backup');
    const result = p.page.locator('[aria-label="Test result"]');
    await result.locator('.test-time time').waitFor();
    expect(await result.getByTestId('test-by').textContent()).toBe(' by admin');
    expect(await result.locator('li[data-stage="connection"]').getAttribute('data-state')).toBe('ok');
    await result.getByText('The key has more rights than it needs').waitFor();
    await screenshot(p.page, '24-breakglass-last-test-other-admin');
    expect(p.problems).toEqual([]);
    await p.page.context().close();
  });

  it('names an account target on the audit page, also once the account is deleted (the id stays in the raw JSON)', async () => {
    const [account] = (await api<{ items: { id: string; username: string }[] }>('GET', `/devices/${deviceId}/accounts`)).items.filter(
      (a) => a.username === 'root',
    );
    expect(account).toBeDefined();
    await api('DELETE', `/accounts/${account?.id}`);
    await page.goto(`${server.url}/audit`);
    const row = page.locator('tbody tr', { hasText: 'account.delete' }).first();
    await row.waitFor();
    const target = row.locator('td', { hasText: 'account' }).filter({ hasText: 'Payments/db-1:root' });
    expect(await target.count()).toBe(1);
    expect(await row.textContent()).not.toContain(account?.id ?? 'no id');
    const created = page.locator('tbody tr', { hasText: 'account.create' }).first();
    expect(await created.textContent()).toContain('Payments/db-1:root');
    await screenshot(page, '25-audit-account-names');
    await openSystemPage(page, 'Break glass backup');
  });

  it('asks for the secret again, next to its field, when the destination changes', async () => {
    const url = page.getByLabel('URL', { exact: true });
    await url.fill('127.0.0.1:9');
    const secretField = page.locator('.field', { has: page.getByLabel('Secret key', { exact: true }) });
    await secretField.getByText('Enter the secret again: the destination changed.').waitFor();
    await page.getByRole('button', { name: 'Test', exact: true }).click();
    // The API refuses the stored secret for the new URL; the page shows why next to the field.
    const refusal = secretField.locator('.field-error');
    await refusal.waitFor();
    expect(await refusal.textContent()).toMatch(/^Secret key must be entered again: the destination changed \(url\)/);
    await screenshot(page, '23b-breakglass-destination-changed');
    await url.fill(s3.endpoint);
    await page.getByRole('button', { name: 'Test', exact: true }).click();
    await page.locator('[aria-label="Test result"][data-complete="true"]').waitFor();
    expect(await secretField.getByText('Enter the secret again').count()).toBe(0);
  });

  it('fills the Blob fields from a pasted connection string; Azurite passes, a wrong key fails authentication', async () => {
    await page.getByLabel('Azure Blob', { exact: true }).check();
    const labels = await page.locator('[data-provider="blob"] label').allTextContents();
    expect(labels).toEqual([
      'Paste an Azure connection string',
      'Storage account name',
      'Key',
      'SAS token',
      'Container name',
      'Protocol',
      'Endpoint suffix',
    ]);
    await page
      .getByLabel('Paste an Azure connection string', { exact: true })
      .fill(`DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${azurite.blobEndpoint};`);
    expect(await page.getByLabel('Storage account name', { exact: true }).inputValue()).toBe(AZURITE_ACCOUNT);
    expect(await page.getByLabel('Protocol', { exact: true }).inputValue()).toBe('http');
    await page.getByLabel('Container name', { exact: true }).fill('breakglass');
    expect(await stagesDone()).toEqual(['ok', 'ok', 'ok']);
    await screenshot(page, '24-breakglass-blob-test-ok');

    // A wrong key: Azure answers nothing about the container to it, so that stage is not tested either.
    await page.getByLabel('Key', { exact: true }).fill(Buffer.alloc(64, 7).toString('base64'));
    expect(await stagesDone()).toEqual(['skipped', 'failed', 'skipped']);
    expect(await stage('authentication').locator('.stage-message').textContent()).toMatch(/did not accept the credentials/);
    await screenshot(page, '25-breakglass-blob-wrong-key');

    await page.getByLabel('Key', { exact: true }).fill(AZURITE_KEY);
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved. The Test ran with the saved settings').waitFor();
    await page.getByRole('button', { name: 'Run now' }).click();
    await page.getByText('The run succeeded.').waitFor({ timeout: 30_000 });
    await expect.poll(() => page.getByRole('table', { name: 'Run history' }).locator('tbody tr').count()).toBe(2);
    // The page never held the stored key once saved.
    expect(await page.content()).not.toContain(AZURITE_KEY);
    expect(problems).toEqual([]);
  });

  it("sets up a SAS-only Blob target from the portal's SAS connection string: no saved key or endpoint stays behind", async () => {
    const paste = page.getByLabel('Paste an Azure connection string', { exact: true });
    // It holds a key or a SAS: masked.
    expect(await paste.getAttribute('type')).toBe('password');
    const value = (label: string) => page.getByLabel(label, { exact: true }).inputValue();

    // A key for Azure's public cloud: the saved Azurite endpoint (under Advanced) goes with it.
    await paste.fill(
      `DefaultEndpointsProtocol=https;AccountName=someaccount;AccountKey=${Buffer.alloc(64, 3).toString('base64')};EndpointSuffix=core.windows.net`,
    );
    expect([await value('Blob endpoint'), await value('Protocol'), await value('Storage account name')]).toEqual([
      '',
      'https',
      'someaccount',
    ]);

    // The portal's SAS connection string: no AccountName, no key.
    const sas = await azuriteContainerSas('breakglass');
    await paste.fill(`BlobEndpoint=${azurite.blobEndpoint};SharedAccessSignature=${sas}`);
    expect([await value('Blob endpoint'), await value('Protocol'), await value('Storage account name'), await value('Key')]).toEqual([
      azurite.blobEndpoint,
      'http',
      '',
      '',
    ]);
    expect(await value('SAS token')).toBe(sas);
    expect(await stagesDone()).toEqual(['ok', 'ok', 'ok']);
    // The create/write SAS was used, not the saved account key.
    await page.getByText('The key can write and nothing more.').waitFor();
    await screenshot(page, '25b-breakglass-blob-sas-ok');

    // A SAS Azurite refuses fails authentication, and says where the Test went.
    await page
      .getByLabel('SAS token', { exact: true })
      .fill(sas.replace(/sig=[^&]+/, `sig=${encodeURIComponent(Buffer.alloc(32, 1).toString('base64'))}`));
    expect(await stagesDone()).toEqual(['skipped', 'failed', 'skipped']);
    expect(await stage('authentication').locator('.stage-message').textContent()).toContain(`at ${azurite.blobEndpoint} did not accept`);

    await page.getByLabel('SAS token', { exact: true }).fill(sas);
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved. The Test ran with the saved settings').waitFor();
    const saved = await api<{ settings: Record<string, unknown> }>('GET', '/breakglass/settings');
    expect(saved.settings).toMatchObject({
      provider: 'blob',
      accountName: AZURITE_ACCOUNT,
      blobEndpoint: azurite.blobEndpoint,
      accountKey: null,
      sasToken: '********',
    });
    await page.getByRole('button', { name: 'Run now' }).click();
    await page.getByText('The run succeeded.').waitFor({ timeout: 30_000 });
    expect(await page.content()).not.toContain(sas);
    expect(problems).toEqual([]);
  });

  it('shows settings from a mounted secret read-only', async () => {
    const mount = path.join(dir, 'mounted');
    mkdirSync(mount);
    const values: Record<string, string> = {
      provider: 's3',
      executeTime: '04:30',
      timeZone: 'Europe/Berlin',
      accessKeyId: 'S3RVER',
      secretAccessKey: S3_SECRET,
      bucket: 'breakglass',
      protocol: 'http',
      url: s3.endpoint,
      pathStyle: 'true',
      ageRecipients: recipient,
    };
    for (const [k, v] of Object.entries(values)) writeFileSync(path.join(mount, k), v);
    const mounted = await startServer({
      dataDir: path.join(dir, 'data-mounted'),
      env: { GATEHOUSE_BREAKGLASS_CONFIG: mount, GATEHOUSE_GATEWAY_PORT: '0' },
    });
    await setupAdmin(mounted, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: path.join(dir, 'mounted-credentials.json') } });
    // Another server, another certificate: a browser that trusts that one.
    const second = await launchChromium(mounted.certFile);
    const { page: view } = await newPage(await second.newContext({ viewport: { width: 1280, height: 900 } }));
    await signIn(view, mounted.url, 'admin', ADMIN_PASSWORD);
    await openSystemPage(view, 'Break glass backup');
    await view.getByText('come from a mounted secret').waitFor();
    expect(await view.getByLabel('Execute time', { exact: true }).inputValue()).toBe('04:30');
    expect(await view.getByLabel('Execute time', { exact: true }).isDisabled()).toBe(true);
    expect(await view.getByRole('button', { name: 'Save' }).isDisabled()).toBe(true);
    expect(await view.getByLabel('Secret key', { exact: true }).inputValue()).toBe('********');
    await screenshot(view, '26-breakglass-mounted-read-only');
    await second.close();
  });
});
