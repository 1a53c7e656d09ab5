import { createHash, generateKeyPairSync } from 'node:crypto';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, screenshot, signedInPage } from '../support/browser.js';
import { killServers, removeTempDirs, setupAdmin, startServer, tempDir, type GatehouseServer, savedToken } from '../support/server.js';

const ADMIN_PASSWORD = 'console agent admin';
const OPERATOR = { username: 'otto', password: 'otto-password-12' };

/**
 * The device page's host agent panel in Chromium against the real server: an administrator
 * creates a join token and sees the install command once, an agent enrolls with it (through
 * the API, as `gatehouse agent enroll` does), the panel shows the agent, an operator sees it
 * without any button, and the administrator revokes it after a confirmation that says what
 * happens. Then the host keys panel: keys per protocol, pin and forget, each confirmed.
 */
describe('web console: host agent and host keys panels', () => {
  let server: GatehouseServer;
  let browser: Browser;
  let token: string;
  let deviceId: string;
  const problems: string[][] = [];

  const api = <T>(method: string, route: string, body?: unknown) => server.api<T>(token, method, route, body);
  /** A signed-in page of its own (cookies and all) for each user. */
  const pageOf = (username: string, password: string) => signedInPage(browser, server.url, username, password, problems);
  const panelOf = (page: Page) => page.getByRole('region', { name: 'Host agent' });

  beforeAll(async () => {
    const dir = tempDir('gatehouse-console-agent-');
    server = await startServer({ dataDir: path.join(dir, 'data') });
    const credentials = path.join(dir, 'credentials.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    token = savedToken(credentials);
    const project = await api<{ id: string }>('POST', '/projects', { name: 'Edge' });
    deviceId = (
      await api<{ id: string }>('POST', '/devices', { projectId: project.id, name: 'edge-box', provider: 'on-prem', protocols: ['ssh'] })
    ).id;
    const operator = await api<{ id: string }>('POST', '/users', { ...OPERATOR, role: 'operator' });
    await api('POST', '/grants', { userId: operator.id, projectId: project.id });
    browser = await launchChromium(server.certFile);
  });

  afterAll(async () => {
    await browser?.close();
    killServers();
    removeTempDirs();
  });

  it('join token with its install command → enrolled agent → operator sees state only → revoked', async () => {
    const admin = await pageOf('admin', ADMIN_PASSWORD);
    await admin.goto(`${server.url}/devices/${deviceId}`);
    const panel = panelOf(admin);
    await panel.getByText('Not reached through an agent').waitFor();
    expect(await panel.textContent()).toContain('needs no inbound SSH port');
    await screenshot(admin, '50-agent-none');

    // A join token: the install command, once, with the server pinned and the token on standard input.
    await panel.getByLabel('Join token expires in').selectOption({ label: '15 minutes' });
    await panel.getByRole('button', { name: 'New join token' }).click();
    const command = (await panel.getByTestId('install-command').textContent()) ?? '';
    expect(command).toMatch(
      /^printf '%s\\n' ghj_\S+ \| gatehouse agent enroll --server https:\/\/\S+ --server-fingerprint sha256:[0-9a-f]{64} --token-stdin$/,
    );
    expect(await panel.textContent()).toContain('It is shown only now: the join token in it is single use and expires.');
    await panel.getByRole('button', { name: 'Copy' }).waitFor();
    await panel.getByText('1 unused join token waiting.').waitFor();
    await screenshot(admin, '51-agent-install-command');

    // The agent enrolls with it, as `gatehouse agent enroll` would.
    const joinToken = /ghj_\S+/.exec(command)?.[0] ?? '';
    const publicKey = generateKeyPairSync('ed25519').publicKey;
    const enrolled = await server.request('/api/v1/agents/enroll', {
      method: 'POST',
      body: { token: joinToken, publicKey: publicKey.export({ type: 'spki', format: 'pem' }), hostname: 'edge-box.lab', version: '0.1.0' },
    });
    expect(enrolled.status).toBe(201);
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const fingerprint = `SHA256:${createHash('sha256').update(spki).digest('base64').replace(/=+$/, '')}`;

    await admin.reload();
    const facts = panelOf(admin).getByRole('definition');
    await panelOf(admin).getByText('its host agent', { exact: false }).waitFor();
    const text = (await facts.allTextContents()).join(' | ');
    for (const fact of ['never', '0.1.0', 'edge-box.lab', fingerprint]) expect(text).toContain(fact);
    expect(await admin.getByTestId('install-command').count()).toBe(0);
    await screenshot(admin, '52-agent-enrolled');

    // An operator sees the same state and no button.
    const otto = await pageOf(OPERATOR.username, OPERATOR.password);
    await otto.goto(`${server.url}/devices/${deviceId}`);
    await panelOf(otto).getByText('edge-box.lab').waitFor();
    expect(await panelOf(otto).getByRole('button').count()).toBe(0);
    await screenshot(otto, '53-agent-operator');

    // Revoking says what happens before it happens.
    const asked = new Promise<string>((resolve) =>
      admin.once('dialog', (dialog) => {
        resolve(dialog.message());
        void dialog.accept();
      }),
    );
    await panelOf(admin).getByRole('button', { name: 'Revoke agent' }).click();
    const question = await asked;
    for (const said of ['link is dropped', 'live session', 'next connection is refused', 'new join token'])
      expect(question).toContain(said);
    await panelOf(admin).getByText('Agent revoked: not reached through an agent').waitFor();
    await panelOf(admin).getByRole('button', { name: 'New join token' }).waitFor();
    const after = await api<{ agent: { revokedAt: string | null } }>('GET', `/devices/${deviceId}/agent`);
    expect(after.agent?.revokedAt).not.toBeNull();
    await screenshot(admin, '54-agent-revoked');

    await otto.reload();
    await panelOf(otto).getByText('Agent revoked').waitFor();
    expect(await panelOf(otto).getByRole('button').count()).toBe(0);
    expect(await panelOf(otto).textContent()).toContain('An administrator adds one with a join token.');

    expect(problems.flat()).toEqual([]);
  });

  it("host keys: each protocol's key and since when; an administrator pins and forgets after confirming; an operator sees none", async () => {
    const fingerprintOf = (seed: string) => `SHA256:${createHash('sha256').update(seed).digest('base64').replace(/=+$/, '')}`;
    const hex = [...createHash('sha256').update('rdp certificate').digest()].map((b) => b.toString(16).padStart(2, '0')).join(':');
    await api('PUT', `/devices/${deviceId}/host-key`, { protocol: 'rdp', fingerprint: hex });
    const admin = await pageOf('admin', ADMIN_PASSWORD);
    await admin.goto(`${server.url}/devices/${deviceId}`);
    const panel = admin.getByRole('region', { name: 'Host keys' });
    const rdpRow = panel.getByRole('row', { name: /RDP certificate/ });
    await rdpRow.waitFor();
    expect(await rdpRow.textContent()).toContain(fingerprintOf('rdp certificate'));
    expect(await rdpRow.textContent()).toContain('(pinned)');

    /** Accepts the next confirm dialog and resolves to what it asked. */
    const confirmed = () =>
      new Promise<string>((resolve) =>
        admin.once('dialog', (dialog) => {
          resolve(dialog.message());
          void dialog.accept();
        }),
      );
    // A fingerprint in no form Gatehouse knows: the API's message under the field, nothing stored.
    await panel.getByLabel('Pin a key for').selectOption({ label: 'SSH host key' });
    await panel.getByLabel('Fingerprint').fill('SHA256:not-a-fingerprint');
    let asked = confirmed();
    await panel.getByRole('button', { name: 'Pin key' }).click();
    await asked;
    await panel.getByRole('alert').getByText('must be SHA256:<base64>', { exact: false }).waitFor();
    expect((await api<{ hostKeys: unknown[] }>('GET', `/devices/${deviceId}/host-key`)).hostKeys).toHaveLength(1);

    await panel.getByLabel('Fingerprint').fill(fingerprintOf('ssh'));
    asked = confirmed();
    await panel.getByRole('button', { name: 'Pin key' }).click();
    expect(await asked).toContain('Connections over ssh then accept only that key');
    await panel
      .getByRole('row', { name: /SSH host key/ })
      .getByText(fingerprintOf('ssh'))
      .waitFor();
    await screenshot(admin, '55-host-keys');

    asked = confirmed();
    await rdpRow.getByRole('button', { name: 'Forget' }).click();
    expect(await asked).toContain('the next rdp connection trusts whatever key it presents');
    await rdpRow.waitFor({ state: 'detached' });
    const left = await api<{ hostKeys: { protocol: string }[] }>('GET', `/devices/${deviceId}/host-key`);
    expect(left.hostKeys.map((k) => k.protocol)).toEqual(['ssh']);

    const otto = await pageOf(OPERATOR.username, OPERATOR.password);
    await otto.goto(`${server.url}/devices/${deviceId}`);
    await otto.getByRole('heading', { name: 'Accounts' }).waitFor();
    expect(await otto.getByRole('region', { name: 'Host keys' }).count()).toBe(0);
    expect(problems.flat()).toEqual([]);
  });
});
