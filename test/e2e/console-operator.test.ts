import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { launchChromium, newPage, screenshot, signIn } from '../support/browser.js';
import { seedDevice, setupAdminToken } from '../support/seed.js';
import { killServers, removeTempDirs, startServer, tempDir, type GatehouseServer } from '../support/server.js';
import { sshCommand } from '../support/ssh-client.js';
import { ensureSystemUser, freePort, TEST_USER_PASSWORD, TestSshd } from '../support/sshd.js';

const DEVICE_USER = 'gh-test-pw';
const ADMIN_PASSWORD = 'console operator admin';
const OPERATOR = 'olga';
const OPERATOR_PASSWORD = 'console operator olga';

/**
 * The console as an operator, in Chromium against the real server, its built-in gateway and
 * an OpenSSH sshd: only the pages the role may use are in the navigation, the others
 * redirect to the device list without rendering the API's refusal, and the Sessions page
 * shows the operator's own sessions (with the recording) and nobody else's.
 */
describe('web console as an operator', () => {
  let dir: string;
  let server: GatehouseServer;
  let sshd: TestSshd;
  let browser: Browser;
  let page: Page;
  let problems: string[];
  let token: string;
  let gatewayPort: number;
  const sessionIds: Record<string, string> = {};

  const api = <T>(method: string, route: string, body?: unknown): Promise<T> => server.api<T>(token, method, route, body);

  beforeAll(async () => {
    dir = tempDir('gatehouse-console-operator-');
    ensureSystemUser(DEVICE_USER, { password: TEST_USER_PASSWORD });
    sshd = await TestSshd.start(path.join(dir, 'sshd'));
    gatewayPort = await freePort();
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(gatewayPort) } });
    ({ token } = await setupAdminToken(server, ADMIN_PASSWORD, dir));
    const project = await api<{ id: string }>('POST', '/projects', { name: 'Lab' });
    await seedDevice(server, token, {
      projectId: project.id,
      name: 'web-box',
      protocols: ['ssh', 'sftp'],
      urlPort: sshd.port,
      account: { username: DEVICE_USER, password: TEST_USER_PASSWORD },
    });
    const olga = await api<{ id: string }>('POST', '/users', { username: OPERATOR, role: 'operator', password: OPERATOR_PASSWORD });
    await api('POST', '/grants', { userId: olga.id, projectId: project.id });

    // One session each through the gateway, as native ssh makes them.
    for (const [user, password] of [
      [OPERATOR, OPERATOR_PASSWORD],
      ['admin', ADMIN_PASSWORD],
    ] as const) {
      const run = await sshCommand(gatewayPort, `${user}:web-box`, `echo ran-by-${user}`, password);
      expect(run.stdout, run.stderr).toBe(`ran-by-${user}\n`);
    }
    // Ended and recorded once the gateway has closed them.
    const items = await vi.waitFor(async () => {
      const page = await api<{ items: { id: string; username: string; result: string }[] }>('GET', '/sessions');
      if (page.items.some((s) => s.result === 'active')) throw new Error('a session is still live');
      return page.items;
    });
    for (const s of items) sessionIds[s.username] = s.id;
    expect(Object.keys(sessionIds).sort()).toEqual(['admin', OPERATOR]);

    browser = await launchChromium(server.certFile);
    ({ page, problems } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } })));
    await signIn(page, server.url, OPERATOR, OPERATOR_PASSWORD);
  });

  afterAll(async () => {
    await browser?.close();
    killServers();
    await sshd?.stop();
    removeTempDirs();
  });

  it('lists only the pages an operator may use in the navigation', async () => {
    const nav = page.getByRole('navigation', { name: 'Main' });
    expect(await nav.getByRole('link').allTextContents()).toEqual(['Devices', 'Projects', 'Requests', 'Sessions']);
    await screenshot(page, '60-operator-devices');
  });

  it.each(['/audit', '/gateways', '/breakglass', '/users', '/runbooks', '/import'])(
    'redirects %s to the device list without rendering what the role may not read',
    async (route) => {
      await page.goto(`${server.url}${route}`);
      await page.getByRole('heading', { name: 'Devices' }).waitFor();
      expect(new URL(page.url()).pathname).toBe('/devices');
      const text = await page.locator('main').innerText();
      expect(text).not.toContain('may not');
      expect(text).not.toMatch(/Verifying the hash chain|Tunnel mode|Port forwarding/);
      expect(problems.filter((p) => p.includes('403'))).toEqual([]);
    },
  );

  it("shows the operator's own sessions with the recording, and nobody else's", async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sessions' }).click();
    await page.getByRole('heading', { name: 'Your sessions' }).waitFor();
    const rows = page.getByRole('table', { name: 'Sessions' }).locator('tbody tr[data-session]');
    await expect.poll(() => rows.count()).toBe(1);
    expect(await rows.first().getAttribute('data-session')).toBe(sessionIds[OPERATOR]);
    expect(await page.getByLabel('Search by user').count()).toBe(0);
    expect(await page.locator('main').innerText()).not.toContain('may not');
    await screenshot(page, '61-operator-sessions');

    await rows.first().getByRole('link').click();
    await page.getByRole('heading', { name: `${OPERATOR} → web-box:${DEVICE_USER}` }).waitFor();
    const player = page.getByTestId('player');
    await player.locator('.ap-player').waitFor();
    await player.click();
    await expect.poll(() => player.innerText(), { timeout: 20_000 }).toContain(`ran-by-${OPERATOR}`);
    await screenshot(page, '62-operator-session-playback');

    // Another user's session answers as one that does not exist: nothing of it is shown.
    await page.goto(`${server.url}/sessions/${sessionIds.admin}`);
    await page.getByText(/does not exist|not found/i).waitFor();
    const text = await page.locator('main').innerText();
    expect(text).not.toContain('ran-by-admin');
    expect(text).not.toContain('admin →');
  });

  it('says the operator is not connected on Live now, and "No session matches" once a filter is set', async () => {
    await page.goto(`${server.url}/sessions`);
    await page.getByRole('tab', { name: 'Live now' }).click();
    await page.getByText('You are not connected now').waitFor();
    await page.getByRole('tab', { name: 'All sessions' }).click();
    await page.getByLabel('Search by device').fill('no-such-device');
    await page.getByText('No session matches').waitFor();
    await screenshot(page, '63-operator-sessions-filtered');
  });
});
