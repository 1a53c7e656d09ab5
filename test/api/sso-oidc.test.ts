import type { CliLoginClaimed, CliLoginStarted, OidcSettings } from '@gatehouse/api';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { main } from '@gatehouse/cli';
import { currentTotp, verifyTotp } from '@gatehouse/server';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { API, auditEvents, errorOf, login } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';
import { idTokenClaims, TestOidcProvider } from '../support/oidc-provider.js';

/** The console's address as the identity provider knows it (inject sends no real Host). */
const REDIRECT = 'https://gatehouse.test/api/v1/auth/oidc/callback';

/** What a browser holds through one sign-in: the binding cookie from /start, then the session cookie. */
interface BrowserResult {
  /** Where the callback sent the browser. */
  location: string;
  sessionCookie: string | undefined;
  /** The identity provider's redirect back to us, for a replay. */
  callback: URL;
  bindingCookie: string;
}

describe.each(dialects)('OIDC sign-in with a real provider on %s', (dialect) => {
  let t: TestApp;
  let idp: TestOidcProvider;
  let admin: { token: string };

  const settingsPut = (body: Record<string, unknown>) => t.request('PUT', `${API}/sso/oidc/settings`, { token: admin.token, body });

  /** /start, the provider's pages as `login`, and the callback, with the cookies a browser would send. */
  async function signIn(login: string, opts: { start?: string } = {}): Promise<BrowserResult> {
    const start = await t.request('GET', opts.start ?? `${API}/auth/oidc/start`);
    expect(start.statusCode, start.body).toBe(302);
    const binding = start.cookies.find((c) => c.name === 'gh_oidc');
    expect(binding).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Lax' });
    const callback = await idp.signIn(start.headers.location as string, login);
    expect(callback.href.startsWith(REDIRECT)).toBe(true);
    const bindingCookie = `gh_oidc=${binding!.value}`;
    const back = await t.request('GET', `${callback.pathname}${callback.search}`, { headers: { cookie: bindingCookie } });
    expect(back.statusCode, back.body).toBe(302);
    const session = back.cookies.find((c) => c.name === 'gh_session');
    return { location: back.headers.location as string, sessionCookie: session && `gh_session=${session.value}`, callback, bindingCookie };
  }

  const me = (cookie: string) => t.request('GET', `${API}/auth/me`, { headers: { cookie } });
  const ssoError = (location: string) => new URL(location, 'https://x').searchParams.get('ssoError');

  beforeAll(async () => {
    t = await createTestApp(dialect, {}, { tls: true });
    idp = await TestOidcProvider.start([REDIRECT]);
    admin = await t.userWithToken('admin', 'root');
  });
  afterAll(async () => {
    await idp.close();
    await t.close();
  });
  beforeEach(() => {
    idp.changeIdToken = null;
  });

  it('keeps the client secret sealed and never shows it; enabling needs the issuer, client, secret and a group rule', async () => {
    const incomplete = await settingsPut({ enabled: true, issuerUrl: idp.issuer });
    expect(incomplete.statusCode).toBe(400);
    expect(errorOf(incomplete).issues?.map((i) => i.path)).toEqual(['clientId', 'clientSecret', 'groupRoles']);
    const http = await settingsPut({ issuerUrl: 'http://127.0.0.1/' });
    expect(errorOf(http).issues).toEqual([{ path: 'issuerUrl', message: 'must be an https:// URL' }]);

    const put = await settingsPut({
      enabled: true,
      displayName: 'Test IdP',
      issuerUrl: idp.issuer,
      clientId: idp.clientId,
      clientSecret: idp.clientSecret,
      redirectUrl: REDIRECT,
      scopes: ['openid', 'profile', 'groups'],
      groupClaim: 'groups',
      groupRoles: [
        { group: 'gh-admins', role: 'admin' },
        { group: 'gh-ops', role: 'operator' },
        { group: 'gh-audit', role: 'auditor' },
      ],
      caPem: idp.caPem,
    });
    expect(put.statusCode, put.body).toBe(200);
    expect(put.json<OidcSettings>()).toMatchObject({ enabled: true, clientSecretSet: true, clientId: 'gatehouse' });
    expect(put.body).not.toContain(idp.clientSecret);
    expect((await t.request('GET', `${API}/sso/oidc/settings`, { token: admin.token })).body).not.toContain(idp.clientSecret);
    const stored = await t.services.settings.get('oidc');
    expect(stored).not.toContain(idp.clientSecret);
    const [changed] = await auditEvents(t, admin.token, { action: 'sso.settings_changed' });
    expect(changed?.details).toMatchObject({ changes: { clientSecretEnc: 'changed' } });
    expect(JSON.stringify(changed)).not.toContain(idp.clientSecret);
    expect(t.logs.text).not.toContain(idp.clientSecret);
    // The sign-in page learns only whether to show the button, and its name.
    expect((await t.request('GET', `${API}/auth/oidc`)).json()).toEqual({ enabled: true, displayName: 'Test IdP' });
    const operator = await t.userWithToken('operator');
    expect((await t.request('GET', `${API}/sso/oidc/settings`, { token: operator.token })).statusCode).toBe(403);
  });

  it('signs a new user in just in time with the role of their group, as an SSO user without a password', async () => {
    idp.groups.set('alice', ['staff', 'gh-ops']);
    const browser = await signIn('alice');
    expect(browser.location).toBe('/');
    const who = await me(browser.sessionCookie!);
    expect(who.json()).toMatchObject({ user: { username: 'alice', role: 'operator', sso: true }, via: 'session' });
    // The session is the password sign-in's: writes need its CSRF token.
    const { csrfToken } = who.json<{ csrfToken: string }>();
    const noCsrf = await t.request('POST', `${API}/auth/logout`, { headers: { cookie: browser.sessionCookie! } });
    expect(noCsrf.statusCode).toBe(403);
    // No local password works for an SSO user, whatever is sent.
    expect((await login(t, 'alice', '')).res.statusCode).toBe(400);
    expect((await login(t, 'alice', 'anything-at-all')).res.statusCode).toBe(401);
    const setPassword = await t.request('PATCH', `${API}/users/${who.json<{ user: { id: string } }>().user.id}`, {
      token: admin.token,
      body: { password: 'a-long-enough-password' },
    });
    expect(errorOf(setPassword).issues?.[0]?.path).toBe('password');
    const [success] = await auditEvents(t, admin.token, { action: 'auth.login', outcome: 'success', actor: 'alice' });
    expect(success?.details).toMatchObject({ method: 'oidc', role: 'operator' });
    const [created] = await auditEvents(t, admin.token, { action: 'user.create', actor: 'alice' });
    expect(created?.details).toMatchObject({ role: 'operator', method: 'oidc' });
    const out = await t.request('POST', `${API}/auth/logout`, { headers: { cookie: browser.sessionCookie!, 'x-csrf-token': csrfToken } });
    expect(out.statusCode).toBe(200);
  });

  it('sets the role from the groups at each sign-in, and a user removed from every mapped group loses access', async () => {
    idp.groups.set('bob', ['gh-audit']);
    const first = await signIn('bob');
    expect((await me(first.sessionCookie!)).json()).toMatchObject({ user: { role: 'auditor' } });
    idp.groups.set('bob', ['gh-admins']);
    const second = await signIn('bob');
    expect((await me(second.sessionCookie!)).json()).toMatchObject({ user: { role: 'admin' } });

    idp.groups.set('bob', ['someone-elses-group']);
    const refused = await signIn('bob');
    expect(refused.sessionCookie).toBeUndefined();
    expect(ssoError(refused.location)).toContain('none of the groups Gatehouse gives a role to');
    // Disabled: the session from before ends with it (and so would its API tokens and SSH keys).
    expect((await me(second.sessionCookie!)).statusCode).toBe(401);
    const [failure] = await auditEvents(t, admin.token, { action: 'auth.login', outcome: 'failure', actor: 'bob' });
    expect(failure?.details).toMatchObject({ method: 'oidc', reason: 'in no mapped group' });

    // Back in a group: the sign-in that maps a role enables the user again.
    idp.groups.set('bob', ['gh-ops']);
    const back = await signIn('bob');
    expect((await me(back.sessionCookie!)).json()).toMatchObject({ user: { role: 'operator', disabled: false } });

    // Never in a mapped group: no user is made.
    idp.groups.set('carol', []);
    const carol = await signIn('carol');
    expect(ssoError(carol.location)).toContain('none of the groups');
    expect(await t.services.users.rowByName('carol')).toBeUndefined();
  });

  it('does not take over a local user of the same name', async () => {
    const local = await t.userWithToken('operator', 'dave');
    idp.groups.set('dave', ['gh-admins']);
    const refused = await signIn('dave');
    expect(refused.sessionCookie).toBeUndefined();
    expect(ssoError(refused.location)).toContain('A user named dave exists in Gatehouse already');
    expect((await t.services.users.get(local.id)).role).toBe('operator');
  });

  it('refuses a replayed state, a callback in another browser, and an unknown state', async () => {
    idp.groups.set('erin', ['gh-ops']);
    const browser = await signIn('erin');
    expect(browser.sessionCookie).toBeDefined();
    const replay = await t.request('GET', `${browser.callback.pathname}${browser.callback.search}`, {
      headers: { cookie: browser.bindingCookie },
    });
    expect(replay.cookies.find((c) => c.name === 'gh_session')).toBeUndefined();
    expect(ssoError(replay.headers.location as string)).toContain('expired or was used already');

    // An attacker's own sign-in, sent to a victim's browser (login CSRF): no binding cookie there.
    const start = await t.request('GET', `${API}/auth/oidc/start`);
    const callback = await idp.signIn(start.headers.location as string, 'erin');
    const elsewhere = await t.request('GET', `${callback.pathname}${callback.search}`, { headers: { cookie: 'gh_oidc=another-browser' } });
    expect(elsewhere.cookies.find((c) => c.name === 'gh_session')).toBeUndefined();
    expect(ssoError(elsewhere.headers.location as string)).toContain('started in another browser');

    const reasons = (await auditEvents(t, admin.token, { action: 'auth.login', outcome: 'failure' })).map((e) => e.details.reason);
    expect(reasons).toEqual(expect.arrayContaining(['unknown, used or expired state', 'state from another browser']));
  });

  it('refuses a tampered ID token, a wrong issuer, a wrong audience and a wrong nonce', async () => {
    idp.groups.set('frank', ['gh-admins']);
    const cases: { name: string; change: NonNullable<TestOidcProvider['changeIdToken']> }[] = [
      {
        name: 'tampered',
        // The payload changed (another subject), the provider's signature kept.
        change: (token) => {
          const [header, , signature] = token.split('.');
          const payload = { ...idTokenClaims(token), sub: 'root' };
          return `${header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${signature}`;
        },
      },
      { name: 'wrong issuer', change: (token, sign) => sign({ ...idTokenClaims(token), iss: 'https://evil.example' }) },
      { name: 'wrong audience', change: (token, sign) => sign({ ...idTokenClaims(token), aud: 'another-client' }) },
      { name: 'wrong nonce', change: (token, sign) => sign({ ...idTokenClaims(token), nonce: 'replayed-nonce' }) },
    ];
    for (const { name, change } of cases) {
      idp.changeIdToken = change;
      const browser = await signIn('frank');
      expect(browser.sessionCookie, name).toBeUndefined();
      expect(ssoError(browser.location), name).toContain('could not be verified');
    }
    expect(await t.services.users.rowByName('frank')).toBeUndefined();
    const reasons = (await auditEvents(t, admin.token, { action: 'auth.login', outcome: 'failure', actor: 'oidc' })).map((e) =>
      String(e.details.reason),
    );
    expect(reasons.filter((r) => r.startsWith('identity provider answer refused')).length).toBeGreaterThanOrEqual(4);
    // The control case: unchanged, frank signs in.
    idp.changeIdToken = null;
    expect((await signIn('frank')).sessionCookie).toBeDefined();
  });

  it('with local MFA required, completes the session only with the local authenticator code (enrolled at first)', async () => {
    expect((await settingsPut({ requireLocalMfa: true })).statusCode).toBe(200);
    try {
      idp.groups.set('hana', ['gh-ops']);
      const first = await signIn('hana');
      expect(new URL(first.location, 'https://x').searchParams.get('sso')).toBe('mfa');
      // Not a session yet: the API refuses it until the code is shown.
      expect((await me(first.sessionCookie!)).statusCode).toBe(401);
      const cookie = { cookie: first.sessionCookie! };
      const enrolment = await t.request('POST', `${API}/auth/oidc/totp/enroll`, { headers: cookie, body: {} });
      expect(enrolment.statusCode, enrolment.body).toBe(200);
      const { secret } = enrolment.json<{ secret: string }>();
      const done = await t.request('POST', `${API}/auth/oidc/totp`, { headers: cookie, body: { code: currentTotp(secret) } });
      expect(done.statusCode, done.body).toBe(200);
      expect((await me(first.sessionCookie!)).json()).toMatchObject({ user: { username: 'hana', totpEnabled: true } });

      // The next sign-in asks for the code; a wrong one ends the pending session.
      const second = await signIn('hana');
      const wrong = await t.request('POST', `${API}/auth/oidc/totp`, {
        headers: { cookie: second.sessionCookie! },
        body: { code: ['000000', '111111', '222222'].find((c) => !verifyTotp(secret, c)) },
      });
      expect(errorOf(wrong).message).toContain('Sign in with SSO again');
      const after = await t.request('POST', `${API}/auth/oidc/totp`, {
        headers: { cookie: second.sessionCookie! },
        body: { code: currentTotp(secret) },
      });
      expect(errorOf(after).message).toContain('No SSO sign-in is waiting');
      expect((await me(second.sessionCookie!)).statusCode).toBe(401);
      // And the CLI, which cannot ask for the code, is refused with what to do instead.
      const cli = (await t.request('POST', `${API}/auth/oidc/cli`, { body: {} })).json<CliLoginStarted>();
      const url = new URL(cli.url);
      const viaCli = await signIn('hana', { start: `${url.pathname}${url.search}` });
      expect(ssoError(viaCli.location)).toContain('create an API token under Your account');
    } finally {
      await settingsPut({ requireLocalMfa: false });
    }
  });

  it('gives the CLI one API token for a browser sign-in, claimed once however many claims race', async () => {
    idp.groups.set('gina', ['gh-ops']);
    const started = await t.request('POST', `${API}/auth/oidc/cli`, { body: {} });
    expect(started.statusCode, started.body).toBe(201);
    const cli = started.json<CliLoginStarted>();
    const claim = (secret = cli.secret) => t.request('POST', `${API}/auth/oidc/cli/claim`, { body: { id: cli.id, secret } });
    expect((await claim()).json<CliLoginClaimed>()).toMatchObject({ status: 'pending', token: null });

    const url = new URL(cli.url);
    const browser = await signIn('gina', { start: `${url.pathname}${url.search}` });
    expect(browser.sessionCookie).toBeUndefined();
    expect(new URL(browser.location, 'https://x').searchParams.get('sso')).toBe('cli');

    // A claim without the CLI's secret gets nothing, and does not spend the login.
    expect((await claim('not-the-secret')).statusCode).toBe(401);
    const answers = await Promise.all(Array.from({ length: 8 }, () => claim()));
    const done = answers.filter((a) => a.statusCode === 200);
    expect(done).toHaveLength(1);
    expect(answers.filter((a) => a.statusCode === 401).map((a) => errorOf(a).message)).toEqual(
      Array(7).fill('This CLI login was claimed already. Run gatehouse login --sso again.'),
    );
    const { token, username } = done[0]!.json<CliLoginClaimed>();
    expect(username).toBe('gina');
    const whoami = await t.request('GET', `${API}/auth/me`, { token: token! });
    expect(whoami.json()).toMatchObject({ user: { username: 'gina', sso: true }, via: 'token' });
    // The approved login cannot be approved again by another browser sign-in.
    const again = await t.request('GET', `${url.pathname}${url.search}`);
    expect(ssoError(again.headers.location as string)).toContain('expired or was used');
  });

  it('gatehouse login --sso prints the address, waits for the browser sign-in and saves a working token it never prints', async () => {
    idp.groups.set('ivan', ['gh-ops']);
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const server = `https://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
    const ca = path.join(t.database.dataDir, 'tls', 'server.crt');
    const credentials = path.join(t.database.dataDir, 'credentials-sso.json');
    vi.stubEnv('GATEHOUSE_CREDENTIALS', credentials);
    const out: string[] = [];
    const err: string[] = [];
    let printed: (url: string) => void = () => undefined;
    const address = new Promise<string>((resolve) => (printed = resolve));
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => out.push(String(chunk)) > 0);
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      err.push(String(chunk));
      const url = /https:\/\/\S+\/auth\/oidc\/start\?cli=\S+/.exec(err.join(''));
      if (url) printed(url[0]);
      return true;
    });
    try {
      const run = main(['node', 'gatehouse', 'login', '--sso', '--profile', 'sso', '--url', server, '--ca', ca]);
      const ended = run.then((code) =>
        Promise.reject(new Error(`gatehouse login --sso ended (${code}) before printing an address: ${err.join('')}`)),
      );
      const url = new URL(await Promise.race([address, ended]));
      const browser = await signIn('ivan', { start: `${url.pathname}${url.search}` });
      expect(new URL(browser.location, 'https://x').searchParams.get('sso')).toBe('cli');
      expect(await run).toBe(0);
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
      vi.unstubAllEnvs();
    }
    expect(err.join('')).toContain(`Signed in as ivan by SSO. API token saved in ${credentials} (profile sso).`);
    const saved = (
      JSON.parse(readFileSync(credentials, 'utf8')) as { profiles: Record<string, { url: string; token: string; username: string }> }
    ).profiles.sso!;
    expect(saved).toMatchObject({ url: server, username: 'ivan' });
    expect(`${out.join('')}${err.join('')}`).not.toContain(saved.token);
    const whoami = await t.request('GET', `${API}/auth/me`, { token: saved.token });
    expect(whoami.json()).toMatchObject({ user: { username: 'ivan', sso: true }, via: 'token' });
  });

  it('gatehouse login without --sso needs --username, and --open goes with --sso only', async () => {
    vi.stubEnv('GATEHOUSE_CREDENTIALS', path.join(t.database.dataDir, 'none.json'));
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['node', 'gatehouse', 'login', '--url', 'https://127.0.0.1:1'])).not.toBe(0);
      const said = stderr.mock.calls.map((c) => String(c[0])).join('');
      expect(said).toContain('--username is required');
      expect(await main(['node', 'gatehouse', 'login', '--open', '--username', 'a', '--url', 'https://127.0.0.1:1'])).not.toBe(0);
      expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toContain('--open goes with --sso');
    } finally {
      stderr.mockRestore();
      vi.unstubAllEnvs();
    }
  });
});
