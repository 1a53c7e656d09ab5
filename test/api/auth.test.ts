import { randomBytes } from 'node:crypto';
import { apiToken, user as userSchema } from '@gatehouse/api';
import { hashToken, listAuditEvents } from '@gatehouse/db';
import { currentTotp, verifyTotp } from '@gatehouse/server';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { API, auditEvents, errorOf, login, loginOrThrow, randomId, sessionHeaders, type WebSession } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

/** A 6-digit code that the authenticator would not show now (nor one step before or after). */
function wrongTotp(secret: string): string {
  const code = ['000000', '111111', '222222', '333333'].find((c) => !verifyTotp(secret, c));
  if (code === undefined) throw new Error('no wrong code found');
  return code;
}

describe.each(dialects)('first-run set-up on %s', (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(dialect);
  });
  afterAll(() => t.close());

  it('creates the first administrator once, only with the set-up token', async () => {
    expect((await t.request('GET', `${API}/setup`)).json()).toEqual({ needed: true });
    const setupToken = `ghsetup_${randomId()}`;
    await t.services.settings.set('setup_token_hash', hashToken(setupToken));
    const body = { setupToken, username: 'first-admin', password: 'a-long-admin-password' };

    const wrong = await t.request('POST', `${API}/setup`, { body: { ...body, setupToken: 'ghsetup_not-the-token' } });
    expect(wrong.statusCode).toBe(401);
    expect(errorOf(wrong)).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('set-up token is wrong') as string });
    // Where to look, without the server's path: the caller has no account yet.
    expect(errorOf(wrong).message).toContain("the setup-token file in the server's data directory");
    expect(wrong.body).not.toContain(t.database.dataDir);
    // Nobody can sign in yet to read the log through the API, so read it from the database.
    const failures = await listAuditEvents(t.database.db, { action: 'setup.admin_create' });
    expect(failures).toMatchObject([{ outcome: 'failure', actorName: 'first-admin', details: { reason: 'wrong set-up token' } }]);
    expect((await t.request('GET', `${API}/setup`)).json()).toEqual({ needed: true });

    const weak = await t.request('POST', `${API}/setup`, { body: { ...body, password: 'short' } });
    expect(weak.statusCode).toBe(400);
    expect(errorOf(weak).issues).toEqual([{ path: 'password', message: expect.stringContaining('at least 12') as string }]);

    const created = await t.request('POST', `${API}/setup`, { body });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ user: { username: 'first-admin', role: 'admin', disabled: false } });
    expect(created.body).not.toContain(body.password);
    expect((await t.request('GET', `${API}/setup`)).json()).toEqual({ needed: false });

    const again = await t.request('POST', `${API}/setup`, { body: { ...body, username: 'second-admin' } });
    expect(again.statusCode).toBe(409);
    expect(errorOf(again).code).toBe('CONFLICT');

    const session = await loginOrThrow(t, 'first-admin', body.password);
    const users = await t.request('GET', `${API}/users`, { headers: sessionHeaders(session) });
    expect(users.json<{ items: { username: string }[] }>().items.map((u) => u.username)).toEqual(['first-admin']);
    const events = await t.request('GET', `${API}/audit/events?action=setup.admin_create&order=asc`, { headers: sessionHeaders(session) });
    expect(events.json<{ items: { outcome: string }[] }>().items.map((e) => e.outcome)).toEqual(['failure', 'success']);
  });
});

describe.each(dialects)('sign-in, sessions and tokens on %s', (dialect) => {
  let t: TestApp;
  let admin: { id: string; username: string; token: string };
  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = await t.userWithToken('admin');
  });
  afterAll(() => t.close());
  afterEach(() => {
    vi.useRealTimers();
  });

  it('signs in with a session cookie that is HttpOnly, Secure and SameSite=Strict', async () => {
    const user = await t.userWithToken('operator');
    const { res, session } = await login(t, user.username, user.password);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ user: { username: user.username, role: 'operator' }, csrfToken: expect.any(String) as string });
    expect(res.body).not.toContain(user.password);
    const setCookie = String(res.headers['set-cookie']);
    expect(setCookie).toMatch(/^gh_session=/);
    expect(setCookie).toMatch(/;\s*HttpOnly/i);
    expect(setCookie).toMatch(/;\s*Secure/i);
    expect(setCookie).toMatch(/;\s*SameSite=Strict/i);
    expect(session).toBeDefined();

    const me = await t.request('GET', `${API}/auth/me`, { headers: sessionHeaders(session as WebSession, { csrf: false }) });
    expect(me.statusCode).toBe(200);
    expect(me.json()).toMatchObject({ user: { id: user.id }, via: 'session', csrfToken: session?.csrfToken });
  });

  it('refuses a wrong password or an unknown user with the same message, and audits both', async () => {
    const user = await t.userWithToken('auditor');
    const wrong = await t.request('POST', `${API}/auth/login`, { body: { username: user.username, password: 'not-the-password' } });
    expect(wrong.statusCode).toBe(401);
    expect(errorOf(wrong)).toMatchObject({ code: 'UNAUTHENTICATED', message: 'Wrong username or password.' });
    expect(wrong.headers['set-cookie']).toBeUndefined();

    const unknown = await t.request('POST', `${API}/auth/login`, { body: { username: 'nobody-here', password: 'whatever-password' } });
    expect(unknown.statusCode).toBe(401);
    expect(errorOf(unknown).message).toBe('Wrong username or password.');

    const events = await auditEvents(t, admin.token, { action: 'auth.login', outcome: 'failure' });
    expect(events.find((e) => e.actorName === user.username)).toMatchObject({ outcome: 'failure', details: { reason: 'wrong password' } });
    expect(events.find((e) => e.actorName === 'nobody-here')).toMatchObject({ outcome: 'failure' });
  });

  it('throttles a user name from one address after lockoutThreshold failures, answered like a wrong password, while other addresses sign in', async () => {
    expect(t.services.config.lockoutThreshold).toBe(5);
    const user = await t.userWithToken('operator');
    const from = (remoteAddress: string, password: string) =>
      t.request('POST', `${API}/auth/login`, { remoteAddress, body: { username: user.username, password } });
    for (let i = 0; i < 5; i++) expect((await from('192.0.2.10', `wrong-password-${i}`)).statusCode).toBe(401);
    // Throttled: even the right password is refused, exactly as a wrong one is.
    const throttled = await from('192.0.2.10', user.password);
    expect(throttled.statusCode).toBe(401);
    expect(errorOf(throttled)).toMatchObject({ code: 'UNAUTHENTICATED', message: 'Wrong username or password.' });
    expect(throttled.headers['set-cookie']).toBeUndefined();
    // The guesser's address does not keep the user out from theirs.
    expect((await from('198.51.100.20', user.password)).statusCode).toBe(200);
    const events = await auditEvents(t, admin.token, { action: 'auth.login', actor: user.username, outcome: 'failure' });
    expect(events.map((e) => e.details.reason)).toEqual(['throttled', ...Array<string>(5).fill('wrong password')]);
    expect(await auditEvents(t, admin.token, { action: 'auth.throttle', actor: user.username })).toMatchObject([
      { outcome: 'failure', details: { scope: 'user from address', address: '192.0.2.10', failures: 5 } },
    ]);

    // The delay grows with each failure after it ends, and an administrator can lift it.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 61_000);
    expect((await from('192.0.2.10', 'wrong-password-again')).statusCode).toBe(401);
    vi.setSystemTime(Date.now() + 61_000);
    expect((await from('192.0.2.10', user.password)).statusCode).toBe(401);
    expect((await t.request('POST', `${API}/users/${user.id}/unlock`, { token: admin.token })).statusCode).toBe(200);
    expect((await from('192.0.2.10', user.password)).statusCode).toBe(200);
  });

  it('answers an unknown, a disabled and a throttled user exactly like a wrong password, in about the time of a password check', async () => {
    const user = await t.userWithToken('operator');
    const disabled = await t.userWithToken('operator');
    await t.services.users.update(disabled.id, { disabled: 1 });
    const timed = async (username: string, password: string, remoteAddress: string) => {
      const started = performance.now();
      const res = await t.request('POST', `${API}/auth/login`, { remoteAddress, body: { username, password } });
      return { res, ms: performance.now() - started };
    };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
    const wrong: number[] = [];
    const others: Record<string, number[]> = { unknown: [], disabled: [] };
    for (let i = 0; i < 5; i++) {
      const w = await timed(user.username, 'not-the-password', `192.0.2.${30 + i}`);
      const u = await timed(`nobody-${i}`, 'not-the-password', `192.0.2.${40 + i}`);
      const d = await timed(disabled.username, disabled.password, `192.0.2.${50 + i}`);
      for (const { res } of [w, u, d]) {
        expect(res.statusCode).toBe(401);
        expect(errorOf(res)).toMatchObject({ code: 'UNAUTHENTICATED', message: 'Wrong username or password.' });
      }
      wrong.push(w.ms);
      others.unknown?.push(u.ms);
      others.disabled?.push(d.ms);
    }
    // A disabled user used to be refused before any password check, in a few milliseconds.
    for (const times of Object.values(others)) expect(median(times)).toBeGreaterThan(median(wrong) * 0.4);
    const reasons = (await auditEvents(t, admin.token, { action: 'auth.login', outcome: 'failure' })).map((e) => e.details.reason);
    expect(reasons).toEqual(expect.arrayContaining(['unknown user', 'disabled', 'wrong password']));
  });

  it('asks for a TOTP code once TOTP is confirmed, and accepts only the current one', async () => {
    const user = await t.userWithToken('operator');
    const enroll = await t.request('POST', `${API}/auth/totp/enroll`, { token: user.token });
    expect(enroll.statusCode).toBe(200);
    const { secret, uri } = enroll.json<{ secret: string; uri: string }>();
    expect(uri).toMatch(/^otpauth:\/\/totp\//);
    // Enrolled but not confirmed: a password is still enough.
    expect((await login(t, user.username, user.password)).res.statusCode).toBe(200);

    const badConfirm = await t.request('POST', `${API}/auth/totp/confirm`, { token: user.token, body: { code: wrongTotp(secret) } });
    expect(badConfirm.statusCode).toBe(400);
    expect(errorOf(badConfirm).issues?.[0]?.path).toBe('code');
    const confirm = await t.request('POST', `${API}/auth/totp/confirm`, { token: user.token, body: { code: currentTotp(secret) } });
    expect(confirm.statusCode).toBe(200);
    expect((await t.request('GET', `${API}/auth/me`, { token: user.token })).json()).toMatchObject({ user: { totpEnabled: true } });

    const noCode = await login(t, user.username, user.password);
    expect(noCode.res.statusCode).toBe(401);
    expect(errorOf(noCode.res).code).toBe('MFA_REQUIRED');
    expect(noCode.session).toBeUndefined();

    const wrongCode = await login(t, user.username, user.password, wrongTotp(secret));
    expect(wrongCode.res.statusCode).toBe(401);
    expect(errorOf(wrongCode.res).code).toBe('UNAUTHENTICATED');
    expect(wrongCode.session).toBeUndefined();

    // The confirm used this period's code; a code is good once, so sign in with the next one.
    const rightCode = await login(t, user.username, user.password, currentTotp(secret, 1));
    expect(rightCode.res.statusCode).toBe(200);
    expect(rightCode.session).toBeDefined();

    const replayed = await login(t, user.username, user.password, currentTotp(secret, 1));
    expect(replayed.res.statusCode).toBe(401);
    expect(errorOf(replayed.res).message).toMatch(/used already/);
    expect(replayed.session).toBeUndefined();

    const again = await t.request('POST', `${API}/auth/totp/enroll`, { token: user.token });
    expect(again.statusCode).toBe(409);
  });

  it('requires the CSRF token for writes made with the session cookie', async () => {
    const user = await t.userWithToken('auditor');
    const session = await loginOrThrow(t, user.username, user.password);
    const without = await t.request('POST', `${API}/tokens`, {
      headers: sessionHeaders(session, { csrf: false }),
      body: { name: 'x', scope: 'read' },
    });
    expect(without.statusCode).toBe(403);
    expect(errorOf(without).code).toBe('CSRF_FAILED');
    const wrong = await t.request('POST', `${API}/tokens`, {
      headers: { ...sessionHeaders(session), 'x-csrf-token': 'not-the-token' },
      body: { name: 'x', scope: 'read' },
    });
    expect(wrong.statusCode).toBe(403);
    expect(errorOf(wrong).code).toBe('CSRF_FAILED');
    expect((await t.request('GET', `${API}/tokens`, { token: user.token })).json<{ items: unknown[] }>().items).toHaveLength(1);

    const other = await t.userWithToken('auditor');
    const otherSession = await loginOrThrow(t, other.username, other.password);
    const crossed = await t.request('POST', `${API}/tokens`, {
      headers: { ...sessionHeaders(session), 'x-csrf-token': otherSession.csrfToken },
      body: { name: 'x', scope: 'read' },
    });
    expect(crossed.statusCode).toBe(403);

    const ok = await t.request('POST', `${API}/tokens`, {
      headers: sessionHeaders(session),
      body: { name: 'from the console', scope: 'read' },
    });
    expect(ok.statusCode).toBe(201);
    // Bearer tokens are not sent by browsers on their own, so they need no CSRF token.
    expect((await t.request('POST', `${API}/users/${user.id}/unlock`, { token: user.token })).statusCode).toBe(403);
  });

  it('ends the session on logout', async () => {
    const user = await t.userWithToken('operator');
    const session = await loginOrThrow(t, user.username, user.password);
    const out = await t.request('POST', `${API}/auth/logout`, { headers: sessionHeaders(session) });
    expect(out.statusCode).toBe(200);
    expect(String(out.headers['set-cookie'])).toMatch(/^gh_session=;/);
    const after = await t.request('GET', `${API}/auth/me`, { headers: sessionHeaders(session) });
    expect(after.statusCode).toBe(401);
    expect(errorOf(after).code).toBe('UNAUTHENTICATED');
    expect((await auditEvents(t, admin.token, { action: 'auth.logout', actor: user.username })).length).toBe(1);
  });

  it('shows an API token once, accepts it, and refuses it after revocation', async () => {
    const user = await t.userWithToken('auditor');
    const session = await loginOrThrow(t, user.username, user.password);
    const created = await t.request('POST', `${API}/tokens`, {
      headers: sessionHeaders(session),
      body: { name: 'ci pipeline', scope: 'full', expiresInDays: 30 },
    });
    expect(created.statusCode).toBe(201);
    const { id, token } = created.json<{ id: string; token: string }>();
    expect(token).toMatch(/^gatehouse_pat_[A-Za-z0-9_-]{43}$/);
    expect(created.json()).toMatchObject({ scope: 'full' });

    const listed = await t.request('GET', `${API}/tokens`, { token: user.token });
    expect(listed.json<{ items: { id: string }[] }>().items.map((x) => x.id)).toContain(id);
    expect(listed.body).not.toContain(token);
    expect((await t.request('GET', `${API}/tokens`, { token: admin.token })).body).not.toContain(token);

    const me = await t.request('GET', `${API}/auth/me`, { token });
    expect(me.statusCode).toBe(200);
    expect(me.json()).toMatchObject({ user: { id: user.id }, via: 'token', csrfToken: null });

    // To another non-admin it does not exist (as an id that names nothing); its owner may revoke it.
    const stranger = await t.userWithToken('operator');
    const foreign = await t.request('DELETE', `${API}/tokens/${id}`, { token: stranger.token });
    const unknownId = await t.request('DELETE', `${API}/tokens/${randomId()}`, { token: stranger.token });
    expect(foreign.statusCode).toBe(404);
    expect(errorOf(foreign).code).toBe(errorOf(unknownId).code);
    expect(errorOf(foreign).message.replace(id, 'ID')).toBe(errorOf(unknownId).message.replace(/"[^"]+"/, '"ID"'));
    expect((await t.request('DELETE', `${API}/tokens/${id}`, { token: user.token })).statusCode).toBe(204);
    const revoked = await t.request('GET', `${API}/auth/me`, { token });
    expect(revoked.statusCode).toBe(401);
    expect(errorOf(revoked).code).toBe('UNAUTHENTICATED');

    expect((await t.request('GET', `${API}/auth/me`, { token: 'ghp_unknown' })).statusCode).toBe(401);
    expect((await t.request('GET', `${API}/auth/me`, { headers: { authorization: 'Basic abc' } })).statusCode).toBe(401);
  });

  it('keeps accepting tokens and sessions issued with the old ghp_ / ghs_ prefixes; lists new tokens by their own prefix', async () => {
    const user = await t.userWithToken('auditor');
    const legacy = `ghp_${randomBytes(32).toString('base64url')}`;
    await t.services.users.createToken({ userId: user.id, name: 'from last year', token: legacy, expiresAt: null });
    expect((await t.request('GET', `${API}/auth/me`, { token: legacy })).json()).toMatchObject({ user: { id: user.id }, via: 'token' });
    const legacySession = `ghs_${randomBytes(32).toString('base64url')}`;
    await t.services.users.createSession(user.id, legacySession, true, 60_000);
    const bySession = await t.request('GET', `${API}/auth/me`, { headers: { cookie: `gh_session=${legacySession}` } });
    expect(bySession.json()).toMatchObject({ user: { id: user.id }, via: 'session' });

    const session = await loginOrThrow(t, user.username, user.password);
    const created = await t.request('POST', `${API}/tokens`, { headers: sessionHeaders(session), body: { name: 'new', scope: 'read' } });
    const { token } = created.json<{ token: string }>();
    const listed = (await t.request('GET', `${API}/tokens`, { token })).json<{ items: { name: string; prefix: string }[] }>().items;
    expect(listed.find((x) => x.name === 'new')?.prefix).toBe(token.slice(0, 'gatehouse_pat_'.length + 8));
    expect(listed.find((x) => x.name === 'from last year')?.prefix).toBe(legacy.slice(0, 12));
  });

  it('shows users and tokens with only the fields their schemas name: no password hash, TOTP secret or token hash', async () => {
    const user = await t.userWithToken('operator');
    const session = await loginOrThrow(t, user.username, user.password);
    await t.request('POST', `${API}/auth/totp/enroll`, { headers: sessionHeaders(session), body: {} });
    const userFields = Object.keys(userSchema.shape).sort();
    const signedIn = await login(t, user.username, user.password);
    const me = await t.request('GET', `${API}/auth/me`, { token: user.token });
    const shown = await t.request('GET', `${API}/users/${user.id}`, { token: admin.token });
    const listed = await t.request('GET', `${API}/users`, { token: admin.token });
    for (const answer of [signedIn.res.json<{ user: object }>().user, me.json<{ user: object }>().user, shown.json<object>()])
      expect(Object.keys(answer).sort()).toEqual(userFields);
    for (const u of listed.json<{ items: object[] }>().items) expect(Object.keys(u).sort()).toEqual(userFields);

    const tokens = await t.request('GET', `${API}/tokens`, { token: admin.token });
    for (const item of tokens.json<{ items: object[] }>().items)
      expect(Object.keys(item).sort()).toEqual(Object.keys(apiToken.shape).sort());
    const row = await t.services.users.row(user.id);
    for (const res of [signedIn.res, me, shown, listed, tokens]) {
      expect(res.body).not.toContain(row.password_hash);
      expect(res.body).not.toContain(String(row.totp_secret_enc));
      expect(res.body).not.toContain(hashToken(user.token));
    }
  });

  it('makes tokens only from a web session, read-only or full, with an expiry within apiTokenMaxDays', async () => {
    expect(t.services.config.apiTokenMaxDays).toBe(365);
    const user = await t.userWithToken('admin');
    const session = await loginOrThrow(t, user.username, user.password);
    const make = (body: object) => t.request('POST', `${API}/tokens`, { headers: sessionHeaders(session), body });

    const byToken = await t.request('POST', `${API}/tokens`, {
      token: user.token,
      body: { name: 'minted', scope: 'full', expiresInDays: 3650 },
    });
    expect(byToken.statusCode).toBe(403);
    expect(errorOf(byToken).message).toMatch(/API token cannot create API tokens/);

    const tooLong = await make({ name: 'forever', scope: 'full', expiresInDays: 3650 });
    expect(tooLong.statusCode).toBe(400);
    expect(errorOf(tooLong).issues).toEqual([{ path: 'expiresInDays', message: 'must be at most 365' }]);
    const noScope = await make({ name: 'which' });
    expect(noScope.statusCode).toBe(400);
    expect(errorOf(noScope).issues?.map((i) => i.path)).toEqual(['scope']);

    const read = await make({ name: 'dashboard', scope: 'read' });
    expect(read.statusCode).toBe(201);
    const days = (Date.parse(read.json<{ expiresAt: string }>().expiresAt) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(89.9);
    expect(days).toBeLessThanOrEqual(90);
    const readToken = read.json<{ token: string }>().token;
    expect((await t.request('GET', `${API}/users`, { token: readToken })).statusCode).toBe(200);
    const write = await t.request('POST', `${API}/projects`, { token: readToken, body: { name: 'read-only-cannot' } });
    expect(write.statusCode).toBe(403);
    expect(errorOf(write).message).toMatch(/read-only/);
    expect((await t.request('DELETE', `${API}/tokens/${read.json<{ id: string }>().id}`, { token: readToken })).statusCode).toBe(403);

    const full = await make({ name: 'automation', scope: 'full', expiresInDays: 365 });
    expect(full.statusCode).toBe(201);
    const fullToken = full.json<{ token: string }>().token;
    expect((await t.request('POST', `${API}/projects`, { token: fullToken, body: { name: 'full-can' } })).statusCode).toBe(201);
  });

  it('refuses an expired API token', async () => {
    const user = await t.userWithToken('operator');
    const token = `ghp_expired_${randomId()}`;
    await t.services.users.createToken({ userId: user.id, name: 'old', token, expiresAt: new Date(Date.now() - 1000).toISOString() });
    expect((await t.request('GET', `${API}/auth/me`, { token })).statusCode).toBe(401);
  });

  it('refuses an expired session cookie', async () => {
    const user = await t.userWithToken('operator');
    const session = await loginOrThrow(t, user.username, user.password);
    await t.database.db.kysely
      .updateTable('web_sessions')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where('user_id', '=', user.id)
      .execute();
    const res = await t.request('GET', `${API}/auth/me`, { headers: sessionHeaders(session) });
    expect(res.statusCode).toBe(401);
    expect(errorOf(res)).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('expired') as string });
  });

  it('ends a session left idle for longer than sessionIdleMinutes, even one never used after sign-in', async () => {
    const idle = t.services.config.sessionIdleMinutes;
    const user = await t.userWithToken('operator');
    const used = await loginOrThrow(t, user.username, user.password);
    const unused = await loginOrThrow(t, user.username, user.password);
    expect((await t.request('GET', `${API}/auth/me`, { headers: sessionHeaders(used) })).statusCode).toBe(200);

    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + (idle - 1) * 60_000);
    // Activity keeps a session alive.
    expect((await t.request('GET', `${API}/auth/me`, { headers: sessionHeaders(used) })).statusCode).toBe(200);
    vi.setSystemTime(Date.now() + 2 * 60_000);
    expect((await t.request('GET', `${API}/auth/me`, { headers: sessionHeaders(used) })).statusCode).toBe(200);
    expect((await t.request('GET', `${API}/auth/me`, { headers: sessionHeaders(unused) })).statusCode).toBe(401);
    vi.setSystemTime(Date.now() + (idle + 1) * 60_000);
    expect((await t.request('GET', `${API}/auth/me`, { headers: sessionHeaders(used) })).statusCode).toBe(401);
  });

  it("refuses a disabled user's token, session and sign-in", async () => {
    const user = await t.userWithToken('operator');
    const session = await loginOrThrow(t, user.username, user.password);
    const disable = await t.request('PATCH', `${API}/users/${user.id}`, { token: admin.token, body: { disabled: true } });
    expect(disable.statusCode).toBe(200);
    expect(disable.json()).toMatchObject({ disabled: true });

    const byToken = await t.request('GET', `${API}/auth/me`, { token: user.token });
    expect(byToken.statusCode).toBe(401);
    expect(errorOf(byToken).message).toMatch(/disabled/);
    expect((await t.request('GET', `${API}/auth/me`, { headers: sessionHeaders(session) })).statusCode).toBe(401);
    expect((await login(t, user.username, user.password)).res.statusCode).toBe(401);

    await t.request('PATCH', `${API}/users/${user.id}`, { token: admin.token, body: { disabled: false } });
    expect((await t.request('GET', `${API}/auth/me`, { token: user.token })).statusCode).toBe(200);
  });

  it('changes the own password only with the current one, and signs in with the new one', async () => {
    const user = await t.userWithToken('auditor');
    const session = await loginOrThrow(t, user.username, user.password);
    const elsewhere = await loginOrThrow(t, user.username, user.password);
    const change = (body: object) => t.request('POST', `${API}/auth/password`, { headers: sessionHeaders(session), body });

    const wrongCurrent = await change({ currentPassword: 'not-my-password', newPassword: 'a-brand-new-password' });
    expect(wrongCurrent.statusCode).toBe(400);
    expect(errorOf(wrongCurrent).issues).toEqual([{ path: 'currentPassword', message: 'is wrong' }]);

    const tooShort = await change({ currentPassword: user.password, newPassword: 'short' });
    expect(tooShort.statusCode).toBe(400);
    expect(errorOf(tooShort).issues?.map((i) => i.path)).toEqual(['newPassword']);

    const spare = await t.request('POST', `${API}/tokens`, { headers: sessionHeaders(session), body: { name: 'spare', scope: 'read' } });
    const spareToken = spare.json<{ token: string }>().token;
    const ok = await change({ currentPassword: user.password, newPassword: 'a-brand-new-password' });
    expect(ok.statusCode).toBe(200);
    // Tokens made while the old password was good are revoked with it, and the answer says how many.
    expect(ok.json()).toEqual({ ok: true, revokedTokens: 2 });
    expect((await t.request('GET', `${API}/auth/me`, { token: user.token })).statusCode).toBe(401);
    expect((await t.request('GET', `${API}/auth/me`, { token: spareToken })).statusCode).toBe(401);
    // The other session (someone who knew the old password?) ends; this one goes on.
    expect((await t.request('GET', `${API}/auth/me`, { headers: sessionHeaders(elsewhere) })).statusCode).toBe(401);
    expect((await t.request('GET', `${API}/auth/me`, { headers: sessionHeaders(session) })).statusCode).toBe(200);
    expect((await login(t, user.username, user.password)).res.statusCode).toBe(401);
    expect((await login(t, user.username, 'a-brand-new-password')).res.statusCode).toBe(200);
    const events = await auditEvents(t, admin.token, { action: 'auth.password_change', actor: user.username });
    expect(events.map((e) => e.outcome)).toEqual(['success', 'failure']);
  });

  it('lets an administrator set a password, which ends the sessions and revokes the API tokens of that user', async () => {
    const user = await t.userWithToken('operator');
    const session = await loginOrThrow(t, user.username, user.password);
    const weak = await t.request('PATCH', `${API}/users/${user.id}`, { token: admin.token, body: { password: 'short' } });
    expect(weak.statusCode).toBe(400);
    expect(errorOf(weak).issues?.map((i) => i.path)).toEqual(['password']);
    const set = await t.request('PATCH', `${API}/users/${user.id}`, { token: admin.token, body: { password: 'set-by-the-admin-1' } });
    expect(set.statusCode).toBe(200);
    expect(set.json()).toMatchObject({ id: user.id, revokedTokens: 1 });
    expect((await t.request('GET', `${API}/auth/me`, { token: user.token })).statusCode).toBe(401);
    expect((await t.request('GET', `${API}/auth/me`, { headers: sessionHeaders(session) })).statusCode).toBe(401);
    expect((await login(t, user.username, 'set-by-the-admin-1')).res.statusCode).toBe(200);
  });
});

describe.each(dialects)('the last administrator on %s', (dialect) => {
  let t: TestApp;
  let admin: { id: string; username: string; token: string };
  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = await t.userWithToken('admin');
  });
  afterAll(() => t.close());

  it('cannot be demoted, disabled or deleted', async () => {
    for (const body of [{ role: 'operator' }, { role: 'auditor' }, { disabled: true }]) {
      const res = await t.request('PATCH', `${API}/users/${admin.id}`, { token: admin.token, body });
      expect(res.statusCode).toBe(409);
      expect(errorOf(res)).toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('last active administrator') as string });
    }
    const del = await t.request('DELETE', `${API}/users/${admin.id}`, { token: admin.token });
    expect(del.statusCode).toBe(409);
    const still = await t.request('GET', `${API}/users/${admin.id}`, { token: admin.token });
    expect(still.json()).toMatchObject({ role: 'admin', disabled: false });
  });

  it('counts only active administrators', async () => {
    const second = await t.request('POST', `${API}/users`, {
      token: admin.token,
      body: { username: 'second-admin', role: 'admin', password: 'second-admin-password' },
    });
    expect(second.statusCode).toBe(201);
    const secondId = second.json<{ id: string }>().id;
    // With two active administrators, either may be disabled.
    expect((await t.request('PATCH', `${API}/users/${secondId}`, { token: admin.token, body: { disabled: true } })).statusCode).toBe(200);
    // Now the first is the last active one again.
    expect((await t.request('PATCH', `${API}/users/${admin.id}`, { token: admin.token, body: { role: 'operator' } })).statusCode).toBe(409);
    // A disabled administrator is not the last active one: it can be demoted and deleted.
    const demote = await t.request('PATCH', `${API}/users/${secondId}`, { token: admin.token, body: { role: 'auditor' } });
    expect(demote.statusCode).toBe(200);
    const promote = await t.request('PATCH', `${API}/users/${secondId}`, { token: admin.token, body: { role: 'admin' } });
    expect(promote.statusCode).toBe(200);
    expect((await t.request('DELETE', `${API}/users/${secondId}`, { token: admin.token })).statusCode).toBe(204);
    expect((await t.request('GET', `${API}/users/${secondId}`, { token: admin.token })).statusCode).toBe(404);
  });
});

describe.each(dialects)('sign-in rate limit on %s', (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(dialect);
  });
  afterAll(() => t.close());

  it('answers 429 RATE_LIMITED after 30 sign-in attempts a minute from one address', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      statuses.push(
        (await t.request('POST', `${API}/auth/login`, { body: { username: 'nobody', password: 'guessing-password' } })).statusCode,
      );
    }
    expect(statuses.every((s) => s === 401)).toBe(true);
    const limited = await t.request('POST', `${API}/auth/login`, { body: { username: 'nobody', password: 'guessing-password' } });
    expect(limited.statusCode).toBe(429);
    expect(errorOf(limited).code).toBe('RATE_LIMITED');
    // Other routes are not limited by it.
    expect((await t.request('GET', `${API}/setup`)).statusCode).toBe(200);
  });
});

describe.each(dialects)('sign-in attempts fired at once on %s', (dialect) => {
  let t: TestApp;
  let admin: { id: string; username: string; token: string };
  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = await t.userWithToken('admin');
  });
  afterAll(() => t.close());

  const reasons = async (action: string, actor: string) =>
    (await auditEvents(t, admin.token, { action, actor, outcome: 'failure' })).map((e) => e.details.reason);
  const counter = (username: string, source: string) =>
    t.database.db.kysely
      .selectFrom('sign_in_throttle')
      .selectAll()
      .where('username', '=', username)
      .where('source', '=', source)
      .executeTakeFirstOrThrow();

  it('checks only lockoutThreshold of 50 wrong passwords sent at once from one address, and leaves the exact counts', async () => {
    const user = await t.userWithToken('operator');
    // 50 addresses of one IPv6 /64: one source to the throttle (one host usually has the whole /64),
    // 50 to the route's request rate limit, so every request reaches the password check at once.
    const sent = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        t.request('POST', `${API}/auth/login`, {
          remoteAddress: `2001:db8:7:7::${(i + 1).toString(16)}`,
          body: { username: user.username, password: `guess-${i}` },
        }),
      ),
    );
    const statuses = sent.map((r) => r.statusCode).sort();
    // 6 × lockoutThreshold attempts from the address, then it is throttled as a whole.
    expect(statuses).toEqual([...Array<number>(30).fill(401), ...Array<number>(20).fill(429)]);
    expect(sent.filter((r) => r.statusCode === 401).every((r) => errorOf(r).message === 'Wrong username or password.')).toBe(true);
    const checked = await reasons('auth.login', user.username);
    expect(checked.filter((r) => r === 'wrong password')).toHaveLength(5);
    // The 25 refused by the throttle are audited once, with their count to come in the next event.
    expect(checked.filter((r) => r === 'throttled')).toHaveLength(1);
    expect(await counter(user.username, '2001:db8:7:7::/64')).toMatchObject({ failures: 5, throttled_until: expect.any(String) as string });
    expect(await counter('', '2001:db8:7:7::/64')).toMatchObject({ failures: 30, throttled_until: expect.any(String) as string });
    expect(await t.services.users.row(user.id)).toMatchObject({ failed_logins: 5, locked_until: null });
    // The right password from elsewhere still works.
    expect((await login(t, user.username, user.password)).res.statusCode).toBe(200);
  });

  it('checks only 4 × lockoutThreshold of 50 wrong passwords sent at once from 50 addresses, and spares a familiar address', async () => {
    const user = await t.userWithToken('operator');
    const home = '198.51.100.77';
    expect(
      (await t.request('POST', `${API}/auth/login`, { remoteAddress: home, body: { username: user.username, password: user.password } }))
        .statusCode,
    ).toBe(200);
    const sent = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        t.request('POST', `${API}/auth/login`, {
          remoteAddress: `203.0.113.${100 + i}`,
          body: { username: user.username, password: `guess-${i}` },
        }),
      ),
    );
    expect(sent.map((r) => r.statusCode)).toEqual(Array<number>(50).fill(401));
    expect((await reasons('auth.login', user.username)).filter((r) => r === 'wrong password')).toHaveLength(20);
    expect(await t.services.users.row(user.id)).toMatchObject({ failed_logins: 20, locked_until: expect.any(String) as string });
    expect(await auditEvents(t, admin.token, { action: 'auth.throttle', targetId: user.id })).toHaveLength(1);
    // A new address is throttled with the account; the address the user signs in from is not.
    const fresh = await t.request('POST', `${API}/auth/login`, {
      remoteAddress: '192.0.2.200',
      body: { username: user.username, password: user.password },
    });
    expect(fresh.statusCode).toBe(401);
    expect(errorOf(fresh).message).toBe('Wrong username or password.');
    expect(
      (await t.request('POST', `${API}/auth/login`, { remoteAddress: home, body: { username: user.username, password: user.password } }))
        .statusCode,
    ).toBe(200);
    expect((await t.request('GET', `${API}/users/${user.id}`, { token: admin.token })).json()).toMatchObject({
      lockedUntil: expect.any(String) as string,
    });
  });

  it('signs in all of 12 right passwords sent at once from one address (parallel scripts, Ansible forks)', async () => {
    const user = await t.userWithToken('operator');
    // One IPv6 /64: one source to the throttles, 12 to the route's request rate limit.
    const sent = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        t.request('POST', `${API}/auth/login`, {
          remoteAddress: `2001:db8:8:8::${(i + 1).toString(16)}`,
          body: { username: user.username, password: user.password },
        }),
      ),
    );
    expect(sent.map((r) => r.statusCode)).toEqual(Array<number>(12).fill(200));
    expect(await counter(user.username, '2001:db8:8:8::/64')).toMatchObject({ failures: 0, throttled_until: null });
    expect(await counter('', '2001:db8:8:8::/64')).toMatchObject({ failures: 0, throttled_until: null });
  });

  it('accepts one TOTP code once when 10 sign-ins send it at once', async () => {
    const user = await t.userWithToken('operator');
    const { secret } = (await t.request('POST', `${API}/auth/totp/enroll`, { token: user.token })).json<{ secret: string }>();
    expect(
      (await t.request('POST', `${API}/auth/totp/confirm`, { token: user.token, body: { code: currentTotp(secret, -1) } })).statusCode,
    ).toBe(200);
    const code = currentTotp(secret);
    const sent = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        t.request('POST', `${API}/auth/login`, {
          remoteAddress: `198.51.100.${10 + i}`,
          body: { username: user.username, password: user.password, totp: code },
        }),
      ),
    );
    expect(sent.filter((r) => r.statusCode === 200)).toHaveLength(1);
    expect(sent.filter((r) => r.statusCode === 401).map((r) => errorOf(r).message)).toEqual(
      Array<string>(9).fill('That authenticator code was used already. Wait for the next code and enter it.'),
    );
  });

  it('counts wrong current passwords at POST /auth/password as failed sign-ins, also 50 at once', async () => {
    const user = await t.userWithToken('operator');
    const session = await loginOrThrow(t, user.username, user.password);
    const change = (currentPassword: string) =>
      t.request('POST', `${API}/auth/password`, {
        headers: sessionHeaders(session),
        body: { currentPassword, newPassword: 'a-brand-new-password' },
      });
    const sent = await Promise.all(Array.from({ length: 50 }, (_, i) => change(`guess-${i}`)));
    expect(sent.map((r) => r.statusCode)).toEqual(expect.arrayContaining([400]));
    expect(sent.every((r) => r.statusCode === 400 || r.statusCode === 429)).toBe(true);
    expect((await reasons('auth.password_change', user.username)).filter((r) => r === 'wrong current password')).toHaveLength(5);
    // Throttled: the right one is refused too, with the same answer.
    const right = await change(user.password);
    expect(right.statusCode === 400 || right.statusCode === 429).toBe(true);
    const unchanged = await t.request('POST', `${API}/auth/login`, {
      remoteAddress: '192.0.2.99',
      body: { username: user.username, password: user.password },
    });
    expect(unchanged.statusCode).toBe(200);
  });
});
