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

  it('locks a user after lockoutThreshold failures, even with the right password, until an admin unlocks it', async () => {
    expect(t.services.config.lockoutThreshold).toBe(5);
    const user = await t.userWithToken('operator');
    for (let i = 0; i < 5; i++) {
      const res = await t.request('POST', `${API}/auth/login`, { body: { username: user.username, password: `wrong-password-${i}` } });
      expect(res.statusCode).toBe(401);
    }
    const locked = await t.request('POST', `${API}/auth/login`, { body: { username: user.username, password: user.password } });
    expect(locked.statusCode).toBe(423);
    expect(errorOf(locked).code).toBe('LOCKED');
    expect(errorOf(locked).message).toMatch(/locked until .*administrator/);
    expect(locked.headers['set-cookie']).toBeUndefined();
    expect((await auditEvents(t, admin.token, { action: 'auth.lockout', targetId: user.id })).length).toBe(1);
    const shown = await t.request('GET', `${API}/users/${user.id}`, { token: admin.token });
    expect(shown.json<{ lockedUntil: string | null }>().lockedUntil).not.toBeNull();

    const unlock = await t.request('POST', `${API}/users/${user.id}/unlock`, { token: admin.token });
    expect(unlock.statusCode).toBe(200);
    expect(unlock.json()).toMatchObject({ id: user.id, lockedUntil: null });
    expect((await login(t, user.username, user.password)).res.statusCode).toBe(200);
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
    const without = await t.request('POST', `${API}/tokens`, { headers: sessionHeaders(session, { csrf: false }), body: { name: 'x' } });
    expect(without.statusCode).toBe(403);
    expect(errorOf(without).code).toBe('CSRF_FAILED');
    const wrong = await t.request('POST', `${API}/tokens`, {
      headers: { ...sessionHeaders(session), 'x-csrf-token': 'not-the-token' },
      body: { name: 'x' },
    });
    expect(wrong.statusCode).toBe(403);
    expect(errorOf(wrong).code).toBe('CSRF_FAILED');
    expect((await t.request('GET', `${API}/tokens`, { token: user.token })).json<{ items: unknown[] }>().items).toHaveLength(1);

    const other = await t.userWithToken('auditor');
    const otherSession = await loginOrThrow(t, other.username, other.password);
    const crossed = await t.request('POST', `${API}/tokens`, {
      headers: { ...sessionHeaders(session), 'x-csrf-token': otherSession.csrfToken },
      body: { name: 'x' },
    });
    expect(crossed.statusCode).toBe(403);

    const ok = await t.request('POST', `${API}/tokens`, { headers: sessionHeaders(session), body: { name: 'from the console' } });
    expect(ok.statusCode).toBe(201);
    // Bearer tokens are not sent by browsers on their own, so they need no CSRF token.
    expect((await t.request('POST', `${API}/tokens`, { token: user.token, body: { name: 'cli' } })).statusCode).toBe(201);
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
    const created = await t.request('POST', `${API}/tokens`, { token: user.token, body: { name: 'ci pipeline', expiresInDays: 30 } });
    expect(created.statusCode).toBe(201);
    const { id, token } = created.json<{ id: string; token: string }>();
    expect(token).toMatch(/^ghp_/);

    const listed = await t.request('GET', `${API}/tokens`, { token: user.token });
    expect(listed.json<{ items: { id: string }[] }>().items.map((x) => x.id)).toContain(id);
    expect(listed.body).not.toContain(token);
    expect((await t.request('GET', `${API}/tokens`, { token: admin.token })).body).not.toContain(token);

    const me = await t.request('GET', `${API}/auth/me`, { token });
    expect(me.statusCode).toBe(200);
    expect(me.json()).toMatchObject({ user: { id: user.id }, via: 'token', csrfToken: null });

    // Another non-admin may not revoke it; its owner may.
    const stranger = await t.userWithToken('operator');
    expect((await t.request('DELETE', `${API}/tokens/${id}`, { token: stranger.token })).statusCode).toBe(403);
    expect((await t.request('DELETE', `${API}/tokens/${id}`, { token: user.token })).statusCode).toBe(204);
    const revoked = await t.request('GET', `${API}/auth/me`, { token });
    expect(revoked.statusCode).toBe(401);
    expect(errorOf(revoked).code).toBe('UNAUTHENTICATED');

    expect((await t.request('GET', `${API}/auth/me`, { token: 'ghp_unknown' })).statusCode).toBe(401);
    expect((await t.request('GET', `${API}/auth/me`, { headers: { authorization: 'Basic abc' } })).statusCode).toBe(401);
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

    const ok = await change({ currentPassword: user.password, newPassword: 'a-brand-new-password' });
    expect(ok.statusCode).toBe(200);
    // The other session (someone who knew the old password?) ends; this one goes on.
    expect((await t.request('GET', `${API}/auth/me`, { headers: sessionHeaders(elsewhere) })).statusCode).toBe(401);
    expect((await t.request('GET', `${API}/auth/me`, { headers: sessionHeaders(session) })).statusCode).toBe(200);
    expect((await login(t, user.username, user.password)).res.statusCode).toBe(401);
    expect((await login(t, user.username, 'a-brand-new-password')).res.statusCode).toBe(200);
    const events = await auditEvents(t, admin.token, { action: 'auth.password_change', actor: user.username });
    expect(events.map((e) => e.outcome)).toEqual(['success', 'failure']);
  });

  it('lets an administrator set a password, which ends the sessions of that user', async () => {
    const user = await t.userWithToken('operator');
    const session = await loginOrThrow(t, user.username, user.password);
    const weak = await t.request('PATCH', `${API}/users/${user.id}`, { token: admin.token, body: { password: 'short' } });
    expect(weak.statusCode).toBe(400);
    expect(errorOf(weak).issues?.map((i) => i.path)).toEqual(['password']);
    const set = await t.request('PATCH', `${API}/users/${user.id}`, { token: admin.token, body: { password: 'set-by-the-admin-1' } });
    expect(set.statusCode).toBe(200);
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
