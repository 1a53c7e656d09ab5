import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ageKeygen, RestartableS3rver, runBreakGlassExport, s3rverBreakGlassSettings } from '../support/breakglass-e2e.js';
import { launchChromium, openSystemPage, screenshot, signedInPage } from '../support/browser.js';
import { seedDevice, setupAdminToken } from '../support/seed.js';
import { killServers, removeTempDirs, startServer, tempDir, type GatehouseServer } from '../support/server.js';
import { freePort, generateKeyPair, TestSshd } from '../support/sshd.js';

const ADMIN_PASSWORD = 'console runbooks admin';
const OPERATOR = { username: 'rita', password: 'rita-password-12' };

/** A document the server refuses: a fix that names a check that does not exist. */
const BAD_RUNBOOK = `name: BrokenFix
version: 1
steps:
  - id: present
    type: check
    title: the file is there
    run: test -f /etc/hostname
  - id: repair
    type: fix
    for: nosuch
    title: put it back
    run: hostname > /etc/hostname
`;

const GOOD_RUNBOOK = `name: CheckHostname
version: 1
description: The host has a name.
steps:
  - id: named
    type: check
    title: /etc/hostname is not empty
    run: test -s /etc/hostname
`;

/**
 * Runbooks in Chromium against the real server, its built-in gateway and an OpenSSH sshd
 * as the device (root logs in with a vaulted key): an administrator dry runs
 * TroubleshootSSH from the device page and sees the steps arrive and a verdict; Apply is
 * offered only after that dry run; a bad document on the Runbooks page is refused with its
 * problem named by path; a rotation policy set on the project shows on its device, which
 * gets its own; an operator sees none of it.
 */
describe('web console: runbooks', () => {
  let dir: string;
  let server: GatehouseServer;
  let sshd: TestSshd;
  let browser: Browser;
  let token: string;
  let deviceId: string;
  const problems: string[][] = [];

  const api = <T>(method: string, route: string, body?: unknown) => server.api<T>(token, method, route, body);
  const panelOf = (page: Page) => page.getByRole('region', { name: 'Runbooks' });

  beforeAll(async () => {
    dir = tempDir('gatehouse-console-runbooks-');
    // Root may log in with a key on this sshd only (its other users keep the default "no").
    sshd = await TestSshd.start(path.join(dir, 'sshd'), { config: ['Match User root', '  PermitRootLogin prohibit-password'] });
    const rootKey = generateKeyPair(dir, 'root_key');
    sshd.authorize('root', rootKey.publicKey);
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(await freePort()) } });
    ({ token } = await setupAdminToken(server, ADMIN_PASSWORD, dir));
    const project = await api<{ id: string }>('POST', '/projects', { name: 'Lab' });
    ({ deviceId } = await seedDevice(server, token, {
      projectId: project.id,
      name: 'ssh-box',
      protocols: ['ssh'],
      urlPort: sshd.port,
      account: { username: 'root', privateKey: rootKey.privateKey },
    }));
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

  it('TroubleshootSSH dry run on a device: steps as they finish, a verdict, then Apply is offered', async () => {
    const admin = await signedInPage(browser, server.url, 'admin', ADMIN_PASSWORD, problems);
    await admin.goto(`${server.url}/devices/${deviceId}`);
    const panel = panelOf(admin);
    const runbook = panel.getByLabel('Runbook', { exact: true });
    await runbook.locator('option', { hasText: 'TroubleshootSSH' }).waitFor({ state: 'attached' });
    // Built-ins first.
    const options = await runbook.locator('option').allTextContents();
    expect(options.slice(0, 2).every((o) => o.includes('(built-in)'))).toBe(true);
    await runbook.selectOption({ label: options.find((o) => o.startsWith('TroubleshootSSH')) ?? '' });

    // Typed inputs with their defaults: a number for the port, a choice for the service manager.
    expect(await panel.getByLabel('port', { exact: true }).getAttribute('type')).toBe('number');
    expect(await panel.getByLabel('serviceManager').locator('option').allTextContents()).toEqual(
      expect.arrayContaining(['systemd', 'direct']),
    );
    await panel.getByLabel('sshdConfig').fill(path.join(sshd.dir, 'sshd_config'));
    expect(await panel.getByLabel('Privileged account').inputValue()).toBe('root');
    const applyButton = panel.getByRole('button', { name: 'Apply' });
    expect(await applyButton.isDisabled()).toBe(true);

    await panel.getByRole('button', { name: 'Dry run' }).click();
    const steps = panel.getByRole('list', { name: 'Steps' });
    await steps.locator('[data-step="installed"]').waitFor({ timeout: 30_000 });
    const verdict = panel.locator('[data-verdict]');
    await verdict.waitFor({ timeout: 60_000 });
    const said = (await verdict.textContent()) ?? '';
    expect(said).toMatch(
      /^(SUCCESS ?Every post-condition was checked and held\.|FAILED ?A post-condition failed: see the steps\.|CHANGED-BUT-UNVERIFIED ?Something was changed but could not be verified\.)/,
    );
    // Every check of the document ran and says what it found.
    for (const id of ['installed', 'config-present', 'config-valid', 'running', 'login']) {
      const step = steps.locator(`[data-step="${id}"]`);
      await step.waitFor();
      expect((await step.locator('.step-evidence').textContent())?.trim()).not.toBe('');
    }
    // The sshd under test runs and listens: those checks held, and a new login through the gateway worked.
    for (const id of ['installed', 'running', 'login'])
      expect(await steps.locator(`[data-step="${id}"]`).getAttribute('data-status')).toBe('passed');
    await applyButton.waitFor();
    expect(await applyButton.isDisabled()).toBe(false);
    await screenshot(admin, 'runbook-dry-run');

    // Another choice than the dry run's takes Apply away; the dry run's choices bring it back.
    await panel.getByLabel('minFreeMiB').fill('1');
    expect(await applyButton.isDisabled()).toBe(true);
    await panel.getByLabel('minFreeMiB').fill('');
    expect(await applyButton.isDisabled()).toBe(false);

    // The run is in the device's recent runs and on its own page.
    await panel.getByRole('table', { name: 'Recent runs on this device' }).getByText('TroubleshootSSH v1').waitFor();
    await panel.getByRole('link', { name: 'details' }).click();
    await admin.getByRole('heading', { name: 'Dry run: TroubleshootSSH v1' }).waitFor();
    await admin.getByText('1/1 devices').waitFor();
    await admin.locator('[data-step="login"]').waitFor();
  });

  it('Rotate credential on an account row: ResetAccess for it, a dry run that says it would rotate, Apply asks first', async () => {
    const admin = await signedInPage(browser, server.url, 'admin', ADMIN_PASSWORD, problems);
    await admin.goto(`${server.url}/devices/${deviceId}`);
    await admin.getByRole('button', { name: 'Rotate credential of root' }).click();
    const panel = panelOf(admin);
    await expect.poll(() => panel.getByLabel('Runbook', { exact: true }).inputValue()).toBe('ResetAccess');
    expect(await panel.getByLabel('account', { exact: true }).inputValue()).toBe('root');
    expect(await panel.getByLabel('credential', { exact: true }).locator('option').allTextContents()).toEqual([
      'Default',
      'password',
      'key',
    ]);

    await panel.getByRole('button', { name: 'Dry run' }).click();
    const rotate = panel.locator('[data-step="rotate"]');
    await rotate.waitFor({ timeout: 30_000 });
    expect(await rotate.getAttribute('data-status')).toBe('would-rotate');
    await panel.locator('[data-verdict]').waitFor({ timeout: 30_000 });
    const apply = panel.getByRole('button', { name: 'Apply' });
    expect(await apply.isDisabled()).toBe(false);

    // Apply names what the dry run said it would change; dismissed, nothing runs.
    const asked = new Promise<string>((resolve) =>
      admin.once('dialog', (dialog) => {
        resolve(dialog.message());
        void dialog.dismiss();
      }),
    );
    await apply.click();
    const question = await asked;
    expect(question).toContain('Apply ResetAccess v1 on ssh-box as root?');
    expect(question).toContain('ssh-box: set a new credential and verify it by a new login');
    const runs = await api<{ items: { runbook: { name: string }; apply: boolean }[] }>('GET', `/runbook-runs?deviceId=${deviceId}`);
    expect(runs.items.filter((r) => r.apply)).toEqual([]);
  });

  it('Runbooks page: lists the built-ins and names the problem of a bad document', async () => {
    const admin = await signedInPage(browser, server.url, 'admin', ADMIN_PASSWORD, problems);
    await admin.getByRole('link', { name: 'Runbooks' }).click();
    const table = admin.getByRole('table', { name: 'Runbooks' });
    for (const name of ['TroubleshootSSH', 'ResetAccess']) {
      const row = table.locator(`[data-runbook="${name}"]`);
      await row.getByText('built-in').waitFor();
      expect(await row.getByRole('button', { name: `Remove ${name}` }).count()).toBe(0);
    }

    await admin.getByRole('button', { name: 'Add runbook' }).click();
    await admin.getByLabel('Runbook (YAML)').fill(BAD_RUNBOOK);
    await admin.getByRole('form', { name: 'Add runbook' }).getByRole('button', { name: 'Add runbook' }).click();
    const listed = admin.getByRole('list', { name: 'Problems' });
    await listed.waitFor();
    const lines = await listed.getByRole('listitem').allTextContents();
    expect(lines.some((l) => l.includes('steps[1] (repair).for'))).toBe(true);
    await screenshot(admin, 'runbooks-page');
    expect((await api<{ items: { name: string }[] }>('GET', '/runbooks')).items.map((r) => r.name)).not.toContain('BrokenFix');

    // A good one is added, listed without the built-in badge, and removed after asking.
    await admin.getByLabel('Runbook (YAML)').fill(GOOD_RUNBOOK);
    await admin.getByRole('form', { name: 'Add runbook' }).getByRole('button', { name: 'Add runbook' }).click();
    const added = table.locator('[data-runbook="CheckHostname"]');
    await added.getByText('The host has a name.').waitFor();
    expect(await added.getByText('built-in').count()).toBe(0);
    admin.once('dialog', (dialog) => void dialog.accept());
    await added.getByRole('button', { name: 'Remove CheckHostname' }).click();
    await added.waitFor({ state: 'detached' });
    expect((await api<{ items: { name: string }[] }>('GET', '/runbooks')).items.map((r) => r.name)).not.toContain('CheckHostname');
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

    // Removing the device's own policy brings the project's back; then the project's goes too.
    await section.getByRole('button', { name: 'Change' }).click();
    admin.once('dialog', (dialog) => void dialog.accept());
    await own.getByRole('button', { name: 'Remove policy' }).click();
    await section.getByText('From its project: Rotated every 30 days ·').waitFor();
    const projectId = (await api<{ projectId: string }>('GET', `/devices/${deviceId}`)).projectId;
    await api('DELETE', `/projects/${projectId}/rotation-policy`);
  });

  it('break glass: a dry run of rotating the latest export lists its accounts', async () => {
    const s3 = await RestartableS3rver.start(path.join(dir, 's3rver'), ['breakglass']);
    try {
      const settings = s3rverBreakGlassSettings({ endpoint: s3.endpoint, recipient: ageKeygen(dir).recipient, prefix: 'console/' });
      expect((await api<{ saved: boolean }>('PUT', '/breakglass/settings', settings)).saved).toBe(true);
      const exported = await runBreakGlassExport(api);
      expect(exported.result, exported.error ?? '').toBe('success');
    } finally {
      await s3.stop();
    }

    const admin = await signedInPage(browser, server.url, 'admin', ADMIN_PASSWORD, problems);
    await openSystemPage(admin, 'Break glass backup');
    const section = admin.getByRole('region', { name: 'Rotate credentials from an export' });
    await section.getByRole('button', { name: 'Rotate credentials from this export' }).click();
    await section.getByText('Dry run finished.').waitFor({ timeout: 60_000 });
    const row = section.getByRole('table', { name: 'Accounts the rotation would change' }).locator('[data-account="root"]');
    expect(await row.locator('td').allTextContents()).toEqual(expect.arrayContaining(['ssh-box', 'root', 'would-rotate']));
    expect(await section.getByTestId('rotation-counts').textContent()).toBe('1 would be rotated · 0 skipped of 1 account');
    expect(await section.getByRole('button', { name: 'Apply rotation' }).isDisabled()).toBe(false);
    await screenshot(admin, 'breakglass-rotation-dry-run');

    // Its own page: one report table over every device, not one per device.
    await section.getByRole('link', { name: 'details' }).click();
    await admin.getByRole('heading', { name: 'Dry run: Rotation after break glass' }).waitFor();
    expect(await admin.getByRole('table', { name: 'Accounts the rotation would change' }).count()).toBe(1);
    await admin.locator('[data-account="root"]').waitFor();
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
