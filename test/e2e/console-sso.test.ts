import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, newPage, openSystemPage, screenshot, signIn } from '../support/browser.js';
import { TestOidcProvider } from '../support/oidc-provider.js';
import { killServers, removeTempDirs, setupAdmin, startServer, tempDir, type GatehouseServer } from '../support/server.js';

const ADMIN_PASSWORD = 'console single sign-on admin';

/**
 * Single sign-on in Chromium against the real `gatehouse server` and a real OpenID provider
 * (`oidc-provider`, test/support) on 127.0.0.1 over TLS: an administrator sets SSO in System
 * management → Single sign-on (the API's refusals under their fields, the secret then only
 * "stored"); the sign-in page offers "Sign in with <name>"; a user signs in through the
 * provider's own login and consent pages and lands in the console with the role of their
 * group; removed from the group, they are refused at their next sign-in, and the session
 * they had ends.
 */
describe('web console: single sign-on', () => {
  let server: GatehouseServer;
  let idp: TestOidcProvider;
  let browser: Browser;
  let admin: Page;
  const problems: string[][] = [];

  /** A context of its own (cookies), whose pages reach nothing off this machine: the provider's pages import a web font. */
  async function freshPage(): Promise<Page> {
    const context: BrowserContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.route('https://fonts.googleapis.com/**', (route) => route.fulfill({ status: 200, contentType: 'text/css', body: '' }));
    const p = await newPage(context);
    problems.push(p.problems);
    return p.page;
  }

  /** From the console's sign-in page through the provider's login and consent pages, as `login`. */
  async function signInAtProvider(page: Page, login: string): Promise<void> {
    await page.goto(server.url);
    await page.getByRole('link', { name: 'Sign in with Test IdP' }).click();
    await page.waitForURL((u) => u.origin === idp.issuer);
    await page.getByPlaceholder('Enter any login').fill(login);
    await page.getByPlaceholder('and password').fill('any password');
    await page.getByRole('button', { name: 'Sign-in' }).click();
    await page.getByRole('heading', { name: 'Authorize' }).waitFor();
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL((u) => u.origin === server.url);
  }

  beforeAll(async () => {
    const dir = tempDir('gatehouse-console-sso-');
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: '0' } });
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: path.join(dir, 'credentials.json') } });
    idp = await TestOidcProvider.start([`${server.url}/api/v1/auth/oidc/callback`]);
    browser = await launchChromium(server.certFile, [idp.caPem]);
    admin = await freshPage();
    await signIn(admin, server.url, 'admin', ADMIN_PASSWORD);
  });

  afterAll(async () => {
    await browser?.close();
    await idp?.close();
    killServers();
    removeTempDirs();
  });

  it('an administrator sets SSO in the form: refusals under their fields, then the secret only as stored', async () => {
    await openSystemPage(admin, 'Single sign-on');
    await admin.getByRole('heading', { name: 'Single sign-on' }).waitFor();
    const form = admin.getByRole('form', { name: 'Single sign-on settings' });
    await form.getByLabel('Offer “Sign in with SSO” on the sign-in page').check();
    await form.getByLabel('Issuer URL').fill('http://127.0.0.1/');
    await form.getByRole('button', { name: 'Save' }).click();
    await form.getByText('Issuer URL must be an https:// URL').waitFor();

    await form.getByLabel('Issuer URL').fill(idp.issuer);
    await form.getByRole('button', { name: 'Save' }).click();
    await form.getByText('Client ID is required').waitFor();
    await expect
      .poll(() => form.locator('.field-error').allTextContents())
      .toEqual(['Client ID is required', 'Client secret is required', 'Groups and their roles: needs at least one group → role rule']);

    await form.getByLabel('Display name').fill('Test IdP');
    await form.getByLabel('Client ID').fill(idp.clientId);
    await form.getByLabel('Client secret').fill(idp.clientSecret);
    await form.getByLabel('Scopes').fill('openid profile groups');
    await form.getByRole('button', { name: 'Add a group' }).click();
    await form.getByLabel('Group 1', { exact: true }).fill('gh-admins');
    await form.getByLabel('Role of group 1').selectOption('admin');
    await form.getByRole('button', { name: 'Add a group' }).click();
    await form.getByLabel('Group 2', { exact: true }).fill('gh-ops');
    await form.getByLabel('Role of group 2').selectOption('operator');
    await form.getByLabel('Provider CA certificate').fill(idp.caPem);
    await form.getByRole('button', { name: 'Save' }).click();
    await form.getByRole('status').getByText('Saved.').waitFor();
    expect(await form.getByTestId('client-secret-state').textContent()).toBe('stored Replace');
    expect(await admin.content()).not.toContain(idp.clientSecret);
    await screenshot(admin, 'sso-settings');

    // Read back from the server: what was saved is what the form shows after a reload.
    await admin.reload();
    await expect.poll(() => form.getByLabel('Group 2', { exact: true }).inputValue()).toBe('gh-ops');
    expect(await form.getByLabel('Issuer URL').inputValue()).toBe(idp.issuer);
    expect(await form.getByLabel('Offer “Sign in with Test IdP” on the sign-in page').isChecked()).toBe(true);
    await form.getByRole('button', { name: 'Replace' }).click();
    expect(await form.getByLabel('Client secret').inputValue()).toBe('');
  });

  it('a user signs in through the provider’s pages with the role of their group; removed from it, refused next time', async () => {
    idp.groups.set('carol', ['staff', 'gh-ops']);
    const carol = await freshPage();
    await signInAtProvider(carol, 'carol');
    await carol.getByRole('heading', { name: 'Devices' }).waitFor();
    expect(await carol.locator('.who .account-link').textContent()).toBe('carol (operator)');
    // An operator has no system management pages.
    expect(await carol.getByText('System management').count()).toBe(0);

    idp.groups.set('carol', ['staff']);
    const again = await freshPage();
    await signInAtProvider(again, 'carol');
    await again.getByText('none of the groups Gatehouse gives a role to').waitFor();
    // The sign-in page lists the provider once its settings have loaded, which may come after the refusal.
    await again.getByRole('link', { name: 'Sign in with Test IdP' }).waitFor();
    expect(await again.getByRole('link', { name: 'Sign in with Test IdP' }).count()).toBe(1);
    await screenshot(again, 'sso-refused');
    // Refused means disabled: the session carol had before ends.
    await carol.reload();
    await carol.getByRole('link', { name: 'Sign in with Test IdP' }).waitFor();
    expect(problems.flat()).toEqual([]);
  });
});
