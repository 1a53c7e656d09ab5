import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, screenshot, signedInPage } from '../support/browser.js';
import { seedDevice, setupAdminToken } from '../support/seed.js';
import { killServers, removeTempDirs, startServer, tempDir, type GatehouseServer } from '../support/server.js';
import { ensureSystemUser, freePort, TEST_USER_PASSWORD, TestSshd } from '../support/sshd.js';

const DEVICE_USER = 'gh-test-pw';
const ADMIN_PASSWORD = 'console requests admin';
const OPERATOR = { username: 'olivia', password: 'olivia-password-1' };
const APPROVER = { username: 'bert', password: 'bert-password-12' };

/**
 * Maintenance windows in Chromium against the real server, its built-in gateway and an
 * OpenSSH sshd as the device: an administrator makes the device require windows and names
 * an approver; the operator sees the refusal beside Connect, requests a window, another user
 * approves it, the operator connects in the browser terminal, is warned before the window
 * ends, and the session is ended at its end with the reason in the terminal.
 */
describe('web console: maintenance window requests', () => {
  let server: GatehouseServer;
  let sshd: TestSshd;
  let browser: Browser;
  let token: string;
  let deviceId: string;
  const problems: string[][] = [];

  const api = <T>(method: string, route: string, body?: unknown) => server.api<T>(token, method, route, body);
  /** A signed-in page of its own (cookies and all) for each user. */
  const pageOf = (username: string, password: string) => signedInPage(browser, server.url, username, password, problems);
  /** What a terminal shows, its rows joined (xterm.js renders each row as a div; a long line wraps onto the next). */
  const screen = async (page: Page) => (await page.getByTestId('terminal').locator('.xterm-rows').innerText()).replace(/\n/g, '');

  beforeAll(async () => {
    const dir = tempDir('gatehouse-console-requests-');
    ensureSystemUser(DEVICE_USER, { password: TEST_USER_PASSWORD });
    sshd = await TestSshd.start(path.join(dir, 'sshd'));
    server = await startServer({
      dataDir: path.join(dir, 'data'),
      // The lifecycle looks at windows every 200 ms: the window opens right after its approval.
      env: { GATEHOUSE_GATEWAY_PORT: String(await freePort()), GATEHOUSE_MAINTENANCE_TICK_MS: '200' },
    });
    ({ token } = await setupAdminToken(server, ADMIN_PASSWORD, dir));
    const project = await api<{ id: string }>('POST', '/projects', { name: 'Lab' });
    ({ deviceId } = await seedDevice(server, token, {
      projectId: project.id,
      name: 'db-box',
      protocols: ['ssh'],
      urlPort: sshd.port,
      account: { username: DEVICE_USER, password: TEST_USER_PASSWORD },
    }));
    const operator = await api<{ id: string }>('POST', '/users', { ...OPERATOR, role: 'operator' });
    await api('POST', '/users', { ...APPROVER, role: 'operator' });
    await api('POST', '/grants', { userId: operator.id, projectId: project.id });
    // A two-minute window warned from its start: the warning comes as soon as the terminal is open.
    await api('PUT', '/maintenance/settings', { warnMinutes: 2, requiredApprovals: 1 });
    browser = await launchChromium(server.certFile);
  });

  afterAll(async () => {
    await browser?.close();
    killServers();
    await sshd?.stop();
    removeTempDirs();
  });

  it('request → approve as another user → connect in the browser terminal → expiry warning → session ended', async () => {
    // The administrator: the device requires windows, bert approves for the project.
    const admin = await pageOf('admin', ADMIN_PASSWORD);
    await admin.goto(`${server.url}/devices/${deviceId}`);
    await admin.locator('.page-header').getByRole('button', { name: 'Edit' }).click();
    await admin.getByLabel('Require maintenance windows').check();
    await admin.getByRole('button', { name: 'Save' }).click();
    await admin.getByText('Required (set on this device)').waitFor();
    await admin.getByRole('link', { name: 'Projects' }).click();
    await admin.getByRole('button', { name: 'Approvers of Lab' }).click();
    await admin.getByRole('form', { name: 'Approvers of Lab' }).getByLabel(APPROVER.username).check();
    await admin.getByRole('button', { name: 'Save approvers' }).click();
    await admin.getByRole('cell', { name: APPROVER.username, exact: true }).waitFor();

    // The operator: refused beside Connect, with a way to ask.
    const olivia = await pageOf(OPERATOR.username, OPERATOR.password);
    await olivia.goto(`${server.url}/devices/${deviceId}`);
    const refusal = olivia.locator('#connect-refusal');
    await refusal.waitFor();
    expect(await refusal.textContent()).toContain('db-box needs an approved maintenance window, and none is open for you now.');
    await screenshot(olivia, '40-device-window-required');
    await refusal.getByRole('link', { name: 'Request a window' }).click();
    const form = olivia.getByRole('form', { name: 'New request' });
    await expect.poll(() => form.getByRole('checkbox', { name: 'db-box', exact: true }).isChecked()).toBe(true);
    // A field error from the API appears beside its field.
    await form.getByLabel('Duration (minutes)').fill('0');
    await form.getByLabel('Reason').fill('rotate the TLS certificate');
    await form.getByRole('button', { name: 'Request window' }).click();
    await form.locator('.field.invalid').filter({ hasText: 'Duration (minutes)' }).waitFor();
    await screenshot(olivia, '41-request-field-error');
    await form.getByLabel('Duration (minutes)').fill('2');
    await form.getByLabel('Ticket').fill('CHG-42');
    await form.getByRole('button', { name: 'Request window' }).click();
    const pendingCard = olivia.locator('li.window').filter({ hasText: 'rotate the TLS certificate' });
    await pendingCard.waitFor();
    const windowId = (await pendingCard.getAttribute('data-window')) ?? '';
    expect(await pendingCard.textContent()).toContain('pending');
    // The requester cannot decide their own request: no Approve there, only Withdraw.
    expect(await pendingCard.getByRole('button', { name: 'Approve' }).count()).toBe(0);

    // The approver: the navigation counts it; a denial needs a comment; the approval opens the window.
    const bert = await pageOf(APPROVER.username, APPROVER.password);
    await expect.poll(() => bert.getByTestId('requests-count').textContent()).toBe('1');
    await bert.getByRole('link', { name: /^Requests/ }).click();
    const card = bert.locator(`li.window[data-window="${windowId}"]`);
    await card.getByRole('button', { name: 'Approve' }).waitFor();
    await screenshot(bert, '42-requests-pending');
    await card.getByRole('button', { name: 'Deny' }).click();
    await card.locator('.field.invalid').filter({ hasText: 'Comment' }).waitFor();
    await card.getByLabel('Comment').fill('go ahead, watch the error rate');
    await card.getByRole('button', { name: 'Approve' }).click();
    await expect.poll(() => bert.getByTestId('requests-count').count()).toBe(0);
    await bert.getByRole('tab', { name: 'Active' }).click();
    const active = bert.locator(`li.window[data-window="${windowId}"]`);
    await active.waitFor({ timeout: 20_000 });
    expect(await active.textContent()).toContain('go ahead, watch the error rate');
    await screenshot(bert, '43-requests-active');

    // The operator connects inside the window.
    await olivia.goto(`${server.url}/devices/${deviceId}`);
    await olivia.getByText(`Who may connect now: ${OPERATOR.username}`).waitFor({ timeout: 20_000 });
    expect(await olivia.locator('#connect-refusal').count()).toBe(0);
    await olivia.getByRole('link', { name: 'Open terminal' }).click();
    await olivia.getByText('Connected · recorded').waitFor({ timeout: 30_000 });
    // Warned in the terminal first (the window is inside its warning time from the start), the shell still usable.
    await expect.poll(() => screen(olivia), { timeout: 30_000 }).toContain(`maintenance window ${windowId} ends at`);
    await olivia.getByTestId('terminal').click();
    await olivia.keyboard.type('echo inside-the-window-$((6*7))\n');
    await expect.poll(() => screen(olivia), { timeout: 15_000 }).toContain('inside-the-window-42');
    await screenshot(olivia, '44-terminal-window-warning');
    // Then ended at the window's end, saying why.
    await expect.poll(() => screen(olivia), { timeout: 150_000 }).toContain(`The maintenance window ${windowId} ended.`);
    await olivia.getByText('Closed', { exact: true }).waitFor({ timeout: 15_000 });
    await screenshot(olivia, '45-terminal-window-ended');

    await bert.getByRole('tab', { name: 'Past' }).click();
    const past = bert.locator(`li.window[data-window="${windowId}"]`);
    await expect.poll(() => past.locator('.badge').first().textContent(), { timeout: 20_000 }).toBe('expired');
    await screenshot(bert, '46-requests-past');
    expect(problems.flat()).toEqual([]);
  }, 300_000);
});
