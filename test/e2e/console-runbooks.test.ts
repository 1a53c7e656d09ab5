import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, screenshot, signedInPage } from '../support/browser.js';
import { killServers, removeTempDirs, setupAdmin, startServer, tempDir, type GatehouseServer } from '../support/server.js';
import { freePort, generateKeyPair, TestSshd } from '../support/sshd.js';

const ADMIN_PASSWORD = 'console runbooks admin';
const OPERATOR = { username: 'rita', password: 'rita-password-12' };

/**
 * Runbooks and rotation in Chromium against the real server, its built-in gateway and an
 * OpenSSH sshd as the device (root logs in with a vaulted key): a rotation policy set on
 * the project shows on its device, which gets its own; an operator sees none of it.
 */
describe('web console: runbooks', () => {
  let server: GatehouseServer;
  let sshd: TestSshd;
  let browser: Browser;
  let token: string;
  let deviceId: string;
  const problems: string[][] = [];

  const api = <T>(method: string, route: string, body?: unknown) => server.api<T>(token, method, route, body);
  const panelOf = (page: Page) => page.getByRole('region', { name: 'Runbooks' });

  beforeAll(async () => {
    const dir = tempDir('gatehouse-console-runbooks-');
    // Root may log in with a key on this sshd only (its other users keep the default "no").
    sshd = await TestSshd.start(path.join(dir, 'sshd'), { config: ['Match User root', '  PermitRootLogin prohibit-password'] });
    const rootKey = generateKeyPair(dir, 'root_key');
    sshd.authorize('root', rootKey.publicKey);
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(await freePort()) } });
    const credentials = path.join(dir, 'credentials.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    token = (JSON.parse(readFileSync(credentials, 'utf8')) as { token: string }).token;
    const project = await api<{ id: string }>('POST', '/projects', { name: 'Lab' });
    deviceId = (
      await api<{ id: string }>('POST', '/devices', {
        projectId: project.id,
        name: 'ssh-box',
        provider: 'on-prem',
        protocols: ['ssh'],
        privateIp: '127.0.0.1',
        urlPort: String(sshd.port),
      })
    ).id;
    await api('POST', '/accounts', { deviceId, username: 'root', privateKey: rootKey.privateKey });
    const operator = await api<{ id: string }>('POST', '/users', { ...OPERATOR, role: 'operator' });
    await api('POST', '/grants', { userId: operator.id, projectId: project.id });
    browser = await launchChromium(server.certFile);
  });

  afterAll(async () => {
    await browser?.close();
    killServers();
    await sshd?.stop();
    removeTempDirs();
  });

  it('rotation policy: set on the project, shown on its device, then one of the device', async () => {
    const admin = await signedInPage(browser, server.url, 'admin', ADMIN_PASSWORD, problems);
    await admin.getByRole('link', { name: 'Projects' }).click();
    await admin.getByRole('button', { name: 'Credential rotation of Lab' }).click();
    const form = admin.getByRole('form', { name: 'Credential rotation of Lab' });
    await form.getByLabel('Rotate every (days)').fill('30');
    await form.getByLabel('Password length').fill('32');
    await form.getByRole('checkbox', { name: 'symbol' }).uncheck();
    await form.getByRole('button', { name: 'Save rotation policy' }).click();
    await form.getByText('Saved.').waitFor();
    const policy = await api<{ everyDays: number; passwordLength: number; passwordClasses: string[] }>(
      'GET',
      `/devices/${deviceId}/rotation-policy`,
    );
    expect(policy).toMatchObject({ everyDays: 30, passwordLength: 32, passwordClasses: ['lower', 'upper', 'digit'] });

    await admin.goto(`${server.url}/devices/${deviceId}`);
    const section = admin.getByRole('region', { name: 'Credential rotation' });
    await section.getByText('From its project: Rotated every 30 days').waitFor();
    await section.getByRole('button', { name: 'Set one for this device' }).click();
    const own = admin.getByRole('form', { name: 'Credential rotation of ssh-box' });
    await own.getByLabel('After each session that used the account').check();
    await own.getByRole('button', { name: 'Save rotation policy' }).click();
    await section.getByText('Rotated every 30 days and after each session').waitFor();
    expect(await section.textContent()).not.toContain('From its project');
    await screenshot(admin, 'rotation-policy');
  });

  it('an operator sees no runbooks', async () => {
    const rita = await signedInPage(browser, server.url, OPERATOR.username, OPERATOR.password, problems);
    await rita.goto(`${server.url}/devices/${deviceId}`);
    await rita.getByRole('heading', { name: 'ssh-box' }).waitFor();
    expect(await panelOf(rita).count()).toBe(0);
    expect(await rita.getByRole('button', { name: /Rotate/ }).count()).toBe(0);
    expect(await rita.getByRole('link', { name: 'Runbooks' }).count()).toBe(0);
    expect(problems.flat()).toEqual([]);
  });
});
