import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as OTPAuth from 'otpauth';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, newPage, openSystemPage, screenshot } from '../support/browser.js';
import { RemoteGatewayProcess, stopGateways } from '../support/gateway.js';
import { killServers, removeTempDirs, startServer, tempDir, type GatehouseServer } from '../support/server.js';
import { freePort } from '../support/sshd.js';

const API = '/api/v1';
const ADMIN = 'admin';
const ADMIN_PASSWORD = `console admin ${randomBytes(6).toString('hex')}`;
/** The account's vaulted password: it must appear in the page only after an audited reveal. */
const ACCOUNT_PASSWORD = `CANARY-console-${randomBytes(8).toString('hex')}`;

/**
 * The web console in headless Debian Chromium against the real `gatehouse server`: first-run
 * set-up, sign-in with TOTP, projects, devices with field errors, an account revealed,
 * gateways (one registered and seen online, tunnel mode), the security headers and where
 * secrets may not be. Every page is photographed into artifacts/screenshots/.
 */
describe('web console', () => {
  let dir: string;
  let server: GatehouseServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];
  let totp: OTPAuth.TOTP;
  let cookie = '';
  let csrf = '';

  const api = async <T>(method: string, route: string, body?: unknown): Promise<T> => {
    const res = await server.request(`${API}${route}`, { method, body, headers: { cookie, 'x-csrf-token': csrf } });
    if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${res.body}`);
    return (res.body === '' ? undefined : JSON.parse(res.body)) as T;
  };

  beforeAll(async () => {
    dir = tempDir('gatehouse-console-');
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(await freePort()) } });
    browser = await launchChromium(server.certFile);
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    ({ page, problems } = await newPage(context));
  });

  afterAll(async () => {
    await browser?.close();
    await stopGateways();
    killServers();
    removeTempDirs();
  });

  it('serves the console with a CSP that forbids inline scripts, and nothing for the API', async () => {
    const res = await server.request('/', { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    const csp = String(res.headers['content-security-policy']);
    const scriptSrc = csp.split(';').find((d) => d.trim().startsWith('script-src'));
    expect(scriptSrc?.trim()).toBe("script-src 'self' 'wasm-unsafe-eval'");
    expect(csp).not.toContain("'unsafe-eval'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['cache-control']).toBe('no-store');
    // No inline script in the page: every <script> has a src.
    expect(res.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    // A console path is the same page; an unknown API path stays a JSON 404.
    expect((await server.request('/devices/anything', { headers: { accept: 'text/html' } })).body).toBe(res.body);
    const unknown = await server.request(`${API}/no-such-route`, { headers: { accept: 'text/html' } });
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body)).toMatchObject({ error: { code: 'NOT_FOUND' } });
    // Assets are hashed and cached; a path outside them is refused.
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(res.body)?.[1] as string;
    const asset = await server.request(script);
    expect(asset.status).toBe(200);
    expect(asset.headers['cache-control']).toContain('immutable');
    expect((await server.request('/assets/../../package.json')).status).toBe(404);
  });

  it('creates the first administrator on the set-up page', async () => {
    await page.goto(server.url);
    await page.getByRole('heading', { name: 'Set up Gatehouse' }).waitFor();
    await screenshot(page, '01-setup');
    await page.getByLabel('Set-up token').fill(readFileSync(path.join(server.dataDir, 'setup-token'), 'utf8').trim());
    await page.getByLabel('Administrator user name').fill(ADMIN);
    // A short password: the API's reason appears under the field.
    await page.getByLabel('Password', { exact: true }).fill('short');
    await page.getByLabel('Password again').fill('short');
    await page.getByRole('button', { name: 'Create administrator' }).click();
    await expect.poll(() => page.locator('.field-error').first().textContent()).toMatch(/^Password .*12/);
    await screenshot(page, '02-setup-field-error');
    await page.getByLabel('Password', { exact: true }).fill(ADMIN_PASSWORD);
    await page.getByLabel('Password again').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Create administrator' }).click();
    await page.getByRole('heading', { name: 'Sign in to Gatehouse' }).waitFor();
    expect(await page.locator('.notice').textContent()).toContain('administrator is created');
  });

  it('turns on TOTP on the account page, then signs in with password and code; a wrong code is refused with its reason', async () => {
    // A session for the test's own API calls (the browser has its own).
    const login = await server.request(`${API}/auth/login`, { method: 'POST', body: { username: ADMIN, password: ADMIN_PASSWORD } });
    cookie = String([login.headers['set-cookie']].flat()[0]).split(';')[0] ?? '';
    csrf = (JSON.parse(login.body) as { csrfToken: string }).csrfToken;

    await page.getByLabel('User name').fill(ADMIN);
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await screenshot(page, '03-sign-in');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Devices' }).waitFor();

    // An administrator without an authenticator is nudged to set one up, on every page but Account.
    await page.getByTestId('totp-nudge').getByRole('link', { name: 'Set one up on your account page' }).click();
    expect(await page.getByTestId('totp-nudge').count()).toBe(0);
    await page.getByRole('button', { name: 'Set up authenticator' }).click();
    await page.getByAltText('QR code of the authenticator key').waitFor();
    const secret = (await page.getByRole('form', { name: 'Confirm authenticator' }).locator('pre').textContent())?.trim() ?? '';
    totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret) });
    await page.getByLabel('Code').fill('123');
    await screenshot(page, '03a-account-totp');
    await page.getByLabel('Code').fill(totp.generate());
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.getByText('On.', { exact: true }).waitFor();
    expect(await page.content()).not.toContain(secret);
    await page.getByRole('button', { name: 'Sign out' }).click();

    await page.getByLabel('User name').fill(ADMIN);
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const code = page.getByLabel('Authenticator code');
    await code.waitFor();
    await code.fill('000000');
    await page.getByRole('button', { name: 'Verify code' }).click();
    await expect.poll(() => page.getByRole('alert').first().textContent()).toMatch(/code/i);
    await screenshot(page, '04-sign-in-wrong-code');
    // The next step's code: the one that confirmed enrolment may not be used again.
    await code.fill(totp.generate({ timestamp: Date.now() + 30_000 }));
    await page.getByRole('button', { name: 'Verify code' }).click();
    await page.getByRole('heading', { name: 'Devices' }).waitFor();
    await page.getByText('No projects yet').waitFor();
    expect(await page.getByTestId('totp-nudge').count()).toBe(0);
    await screenshot(page, '05-devices-empty');

    const session = (await context.cookies()).find((c) => c.name === 'gh_session');
    expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict' });
  });

  it('makes an API token that is shown once, works, and is revoked', async () => {
    await page.getByRole('link', { name: `${ADMIN} (admin)` }).click();
    await page.getByLabel('Token name').fill('backup script');
    await page.getByLabel('Access').selectOption('read');
    await page.getByRole('button', { name: 'Create token' }).click();
    const shown = (await page.locator('.notice pre').textContent())?.trim() ?? '';
    expect(shown).toMatch(/^gatehouse_pat_/);
    const me = await server.request(`${API}/auth/me`, { headers: { authorization: `Bearer ${shown}` } });
    expect(me.status).toBe(200);
    await page.getByRole('table', { name: 'API tokens' }).getByText('read-only').waitFor();
    const write = await server.request(`${API}/projects`, {
      method: 'POST',
      body: { name: 'by a read-only token' },
      headers: { authorization: `Bearer ${shown}` },
    });
    expect(write.status).toBe(403);
    await screenshot(page, '05a-account-token');
    await page.getByRole('button', { name: 'Done' }).click();
    expect(await page.content()).not.toContain(shown);
    await page.getByRole('table', { name: 'API tokens' }).getByRole('button', { name: 'Revoke' }).click();
    await page.getByText('No API tokens').waitFor();
    expect((await server.request(`${API}/auth/me`, { headers: { authorization: `Bearer ${shown}` } })).status).toBe(401);
  });

  it('creates a project, then a device with field-level errors, then an account whose secret stays masked until revealed', async () => {
    await page.getByRole('link', { name: 'Projects' }).click();
    await page.getByRole('button', { name: 'New project' }).click();
    await page.getByLabel('Name').fill('Payments');
    await page.getByLabel('Description').fill('Card processing');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByRole('link', { name: 'Payments' }).waitFor();
    await screenshot(page, '06-projects');

    await page.getByRole('link', { name: 'Devices', exact: true }).click();
    await page.getByRole('button', { name: 'New device' }).click();
    await page.getByLabel('Name').fill('db-1');
    await page.getByLabel('Private IP').fill('300.1.1.1');
    await page.getByLabel('Tags').fill('gateway-office1 pci');
    await page.getByRole('button', { name: 'Create device' }).click();
    const ipError = page.locator('.field.invalid .field-error');
    await ipError.waitFor();
    expect(await ipError.textContent()).toBe('Private IP must be an IPv4 or IPv6 address');
    await screenshot(page, '07-device-field-error');
    await page.getByLabel('Private IP').fill('10.0.0.5');
    await page.getByRole('button', { name: 'Create device' }).click();
    await page.getByRole('link', { name: 'db-1' }).waitFor();
    expect(await page.locator('.count').textContent()).toBe('1 device');
    await screenshot(page, '08-devices');

    await page.getByRole('link', { name: 'db-1' }).click();
    await page.getByRole('heading', { name: 'db-1' }).waitFor();
    await page.getByRole('button', { name: 'Add account' }).click();
    await page.getByLabel('User name').fill('root');
    await page.getByLabel('Password').fill(ACCOUNT_PASSWORD);
    await page.getByRole('button', { name: 'Add account' }).click();
    await page.getByText('password ••••••••').waitFor();
    // Masked: the secret is nowhere in the page, its storage or its URL.
    expect(await page.content()).not.toContain(ACCOUNT_PASSWORD);
    await screenshot(page, '09-device-masked');

    await page.getByRole('button', { name: 'Reveal…' }).click();
    await page.getByLabel('Reason (recorded in the audit log)').fill('rotating the root password');
    await page.getByRole('button', { name: 'Reveal', exact: true }).click();
    await page.getByText(ACCOUNT_PASSWORD).waitFor();
    await screenshot(page, '10-device-revealed');
    const storage = await page.evaluate<string>(
      'JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, url: location.href })',
    );
    expect(storage).not.toContain(ACCOUNT_PASSWORD);
    expect(storage).not.toContain(csrf);
    await page.getByRole('button', { name: 'Hide' }).click();
    expect(await page.content()).not.toContain(ACCOUNT_PASSWORD);

    const events = await api<{ items: { action: string; outcome: string; details: Record<string, unknown> }[] }>(
      'GET',
      '/audit/events?action=account.reveal',
    );
    expect(events.items[0]).toMatchObject({
      action: 'account.reveal',
      outcome: 'success',
      details: { reason: 'rotating the root password' },
    });

    // Edit: a new password replaces the vaulted one; the field starts empty (it never shows the old one).
    await page.getByRole('button', { name: 'Edit', exact: true }).last().click();
    const editForm = page.getByRole('form', { name: 'Edit account root' });
    expect(await editForm.getByLabel('Password').inputValue()).toBe('');
    await editForm.getByLabel('Password').fill(`${ACCOUNT_PASSWORD}-2`);
    await editForm.getByRole('button', { name: 'Save' }).click();
    await editForm.waitFor({ state: 'detached' });
    const deviceId = /devices\/([^/?#]+)/.exec(page.url())?.[1] ?? '';
    const accounts = await api<{ items: { id: string }[] }>('GET', `/devices/${deviceId}/accounts`);
    const shown = await api<{ password: string }>('POST', `/accounts/${accounts.items[0]?.id ?? ''}/reveal`, {
      reason: 'the test checks the edit',
    });
    expect(shown.password).toBe(`${ACCOUNT_PASSWORD}-2`);
  });

  it('imports a CSV after a preview that lists every bad row first, writing nothing until then', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Devices' }).click();
    await page.getByRole('link', { name: 'Import…' }).click();
    // The sample CSV has every column the importer reads, and its two rows pass the check.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download a sample CSV' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('gatehouse-import-sample.csv');
    const sample = { name: download.suggestedFilename(), mimeType: 'text/csv', buffer: readFileSync(await download.path()) };
    await page.getByLabel('Inventory file').setInputFiles(sample);
    await page.getByRole('region', { name: 'Preview' }).getByText('gatehouse-import-sample.csv is valid: 2 rows').waitFor();
    const header =
      'project,device,provider,protocols,public_ip,private_ip,url_port,access_type,tags,account,password,private_key,pem_file_name,passphrase,extra_credential';
    const bad = [
      header,
      'Payments,web-1,aws,ssh,,10.0.0.7,,gateway,,root,pw-one,,,,',
      'Payments,web-2,aws,gopher,,999.1.1.1,,gateway,,root,pw-two,,,,',
    ].join('\n');
    await page.getByLabel('Inventory file').setInputFiles({ name: 'devices.csv', mimeType: 'text/csv', buffer: Buffer.from(bad) });
    const problems = page.getByRole('table', { name: 'Problems' });
    await problems.waitFor();
    const where = await problems.locator('tbody td.mono').allTextContents();
    // An unknown provider imports as 'other'; an unknown protocol is refused.
    expect(where).toEqual(expect.arrayContaining([expect.stringMatching(/^row 3\.protocols/), 'row 3.private_ip']));
    await screenshot(page, '08a-import-problems');
    expect((await api<{ total: number }>('GET', '/devices?search=web-')).total).toBe(0);

    const good = [
      header,
      'Payments,web-1,aws,ssh,,10.0.0.7,,gateway,,root,pw-one,,,,',
      'Ops,web-2,gcp,ssh,,10.0.0.8,,gateway,,admin,pw-two,,,,',
    ].join('\n');
    await page.getByLabel('Inventory file').setInputFiles({ name: 'devices.csv', mimeType: 'text/csv', buffer: Buffer.from(good) });
    const preview = page.getByRole('region', { name: 'Preview' });
    await preview.getByText('creates 1 project, 2 devices and 2 accounts').waitFor();
    expect(await page.content()).not.toContain('pw-one');
    await screenshot(page, '08b-import-preview');
    expect((await api<{ total: number }>('GET', '/devices?search=web-')).total).toBe(0);
    await page.getByRole('button', { name: 'Import 2 rows' }).click();
    await page.getByText('Imported 2 rows').waitFor();
    expect((await api<{ total: number }>('GET', '/devices?search=web-')).total).toBe(2);
  });

  it('creates an operator, grants a project, and disables and enables the user', async () => {
    await openSystemPage(page, 'Users and roles');
    await page.getByRole('button', { name: 'New user' }).click();
    await page.getByLabel('User name').fill('olga');
    await page.getByLabel('Initial password').fill('short');
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.locator('.field.invalid').filter({ hasText: 'Initial password' }).waitFor();
    await page.getByLabel('Initial password').fill('olga has a long password');
    await page.getByRole('button', { name: 'Create user' }).click();
    const row = page.locator('tr[data-user="olga"]');
    await row.waitFor();
    expect(await row.getByLabel('Role of olga').inputValue()).toBe('operator');
    await row.getByRole('button', { name: 'Grants' }).click();
    const grants = page.getByRole('region', { name: 'Grants of olga' });
    await grants.getByLabel('Project').selectOption({ label: 'Payments' });
    await grants.getByRole('button', { name: 'Grant' }).click();
    await grants.getByText('all of Payments').waitFor();
    await screenshot(page, '08c-users');
    await row.getByRole('button', { name: 'Disable' }).click();
    await row.getByText('disabled').waitFor();
    const refused = await server.request(`${API}/auth/login`, {
      method: 'POST',
      body: { username: 'olga', password: 'olga has a long password' },
    });
    expect(refused.status).toBe(401);
    await row.getByRole('button', { name: 'Enable' }).click();
    await row.getByText('active').waitFor();
  });

  it('registers a gateway with the key it printed and shows it online; tunnel mode is a switch', async () => {
    await openSystemPage(page, 'Gateways');
    await page.locator('tr[data-gateway="default"]').getByText('online').waitFor();
    await screenshot(page, '11-gateways');
    await page.getByRole('button', { name: 'Register gateway' }).click();
    // The admin copies the start command with the server's key from the page.
    const command = (await page.locator('pre.copyable').textContent()) ?? '';
    const serverKey = /--server-key (\S+)/.exec(command)?.[1] as string;
    expect(serverKey).toBe((await api<{ publicKey: string }>('GET', '/gateways/server-key')).publicKey);
    const gateway = await RemoteGatewayProcess.start({ dataDir: path.join(dir, 'gw-office1'), serverKey });

    const form = page.getByRole('form', { name: 'Register gateway' });
    await form.getByLabel('Name').fill('office1-a');
    await form.getByLabel('Segment').fill('gateway-office1');
    await form.getByLabel('Management address').fill(gateway.address);
    await form.getByLabel('Gateway public key').fill('not a key');
    await form.getByRole('button', { name: 'Register' }).click();
    await form.locator('.field.invalid').filter({ hasText: 'Gateway public key' }).waitFor();
    await screenshot(page, '12-gateway-register-error');
    await form.getByLabel('Gateway public key').fill(gateway.publicKey);
    await form.getByRole('button', { name: 'Register' }).click();
    const row = page.locator('tr[data-gateway="office1-a"]');
    await row.getByText('online').waitFor({ timeout: 20_000 });
    expect(await row.textContent()).toContain('gateway-office1');
    await screenshot(page, '13-gateways-registered');

    const tunnel = page.getByRole('switch', { name: /Tunnel mode/ });
    await tunnel.check();
    await expect.poll(async () => (await api<{ tunnelMode: boolean }>('GET', '/gateway-settings')).tunnelMode).toBe(true);
    await page.getByText('Tunnel mode on').waitFor();
    await tunnel.uncheck();
    await expect.poll(async () => (await api<{ tunnelMode: boolean }>('GET', '/gateway-settings')).tunnelMode).toBe(false);
  });

  it('works in a narrow window and by keyboard', async () => {
    await page.setViewportSize({ width: 390, height: 800 });
    await page.getByRole('link', { name: 'Devices', exact: true }).click();
    await page.getByRole('link', { name: 'db-1' }).waitFor();
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    /** Whether a table's own box scrolls sideways (its rows wider than the screen). */
    const tableScrollsSideways = () =>
      page.evaluate<boolean>("[...document.querySelectorAll('.table-wrap')].some((el) => el.scrollWidth > el.clientWidth)");
    // The devices table stacks each device's fields instead: no sideways scrolling at all.
    expect(await tableScrollsSideways()).toBe(false);
    await screenshot(page, '14-devices-narrow');
    // Every page fits a phone's width (wide tables scroll in their own box).
    for (const route of ['projects', 'gateways', 'sessions', 'audit', 'breakglass', 'users', 'account', 'import']) {
      await page.goto(`${server.url}/${route}`);
      await page.locator('h1').first().waitFor();
      await page.waitForLoadState('networkidle');
      const wider = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
      await screenshot(page, `15-narrow-${route}`);
      expect(wider, route).toBeLessThanOrEqual(0);
      if (route === 'gateways') expect(await tableScrollsSideways(), route).toBe(false);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(`${server.url}/devices`);

    // Keyboard, from a fresh load: the skip link comes first, then the main navigation.
    await page.reload();
    await page.getByRole('link', { name: 'db-1' }).waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate<string | undefined>('document.activeElement?.textContent')).toBe('Skip to content');
    await page.keyboard.press('Tab');
    expect(await page.evaluate<string | undefined>('document.activeElement?.textContent')).toBe('Devices');
  });

  it('deletes an account, a device and a project after asking', async () => {
    const project = await api<{ id: string }>('POST', '/projects', { name: 'Scratch' });
    const device = await api<{ id: string }>('POST', '/devices', { projectId: project.id, name: 'old-box', provider: 'other' });
    await api('POST', '/accounts', { deviceId: device.id, username: 'ops', password: 'a password to lose' });
    page.on('dialog', (d) => void d.accept());
    await page.goto(`${server.url}/devices/${device.id}`);
    await page.getByText('ops', { exact: true }).waitFor();
    await page.locator('li.account').getByRole('button', { name: 'Delete' }).click();
    await page.getByText('No accounts on this device').waitFor();
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByRole('heading', { name: 'Devices' }).waitFor();
    expect((await server.request(`${API}/devices/${device.id}`, { headers: { cookie } })).status).toBe(404);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Projects' }).click();
    await page.getByRole('button', { name: 'Delete Scratch' }).click();
    await page.getByRole('link', { name: 'Scratch' }).waitFor({ state: 'detached' });
    expect((await server.request(`${API}/projects/${project.id}`, { headers: { cookie } })).status).toBe(404);
    page.removeAllListeners('dialog');
  });

  it('renders the API docs under their own CSP, with no script or CSP error', async () => {
    const docs = await newPage(context);
    await docs.page.goto(`${server.url}${API}/docs`);
    await docs.page.getByRole('heading', { name: /Gatehouse API/ }).waitFor();
    await docs.page.locator('.opblock').first().waitFor();
    await screenshot(docs.page, '16-api-docs');
    await docs.page.close();
    expect(docs.problems).toEqual([]);
  });

  it('goes back to the sign-in page when signed out, and had no script, CSP or network error on the way', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to Gatehouse' }).waitFor();
    expect((await context.cookies()).find((c) => c.name === 'gh_session')).toBeUndefined();
    expect(problems).toEqual([]);
  });
});
