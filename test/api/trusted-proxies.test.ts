import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { freeLowPort } from '../support/agent.js';
import { API, auditEvents, createInventory, errorOf, loginOrThrow, type AuditEventView } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

interface AuditEventWithIp extends AuditEventView {
  ip: string | null;
}

/** The route's own limit (POST /auth/login: 30 a minute from one address). */
const LOGIN_LIMIT = 30;
const RATE_LIMITED = 'Too many requests. Wait a minute and try again.';
const ADDRESS_THROTTLED = /^Too many failed sign-ins from your address/;

/** A sign-in sent by `remoteAddress` (the load balancer, or a client straight), with X-Forwarded-For when given. */
const signIn = (
  t: TestApp,
  remoteAddress: string,
  forwardedFor: string | undefined,
  { username, password }: { username: string; password: string },
) =>
  t.app.inject({
    method: 'POST',
    url: `${API}/auth/login`,
    remoteAddress,
    headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
    payload: { username, password },
  });

const guess = (i: number) => ({ username: `nobody-${i}`, password: 'guessing-password' });
const isRateLimited = (r: LightMyRequestResponse) => r.statusCode === 429 && errorOf(r).message === RATE_LIMITED;

describe.each(dialects)('client addresses behind a load balancer on %s', (dialect) => {
  // A low threshold: an address is throttled after 6 failed sign-ins, so a flood costs few password checks.
  const throttles = { lockoutThreshold: 1 };

  describe('with no trusted proxy (the default)', () => {
    let t: TestApp;
    let admin: string;
    let user: { username: string; password: string };

    beforeAll(async () => {
      t = await createTestApp(dialect, throttles);
      admin = (await t.userWithToken('admin')).token;
      user = await t.userWithToken('operator');
    });
    afterAll(() => t?.close());

    it('ignores a forged X-Forwarded-For: limits, throttles and audit keep the connection address', async () => {
      const sent = await Promise.all(
        Array.from({ length: LOGIN_LIMIT + 1 }, (_, i) => signIn(t, '192.0.2.10', `203.0.113.${i + 1}`, guess(i))),
      );
      // Each forged address would have had its own limit: the real address had one.
      expect(sent.filter(isRateLimited)).toHaveLength(1);
      const limited = (await auditEvents(t, admin, { action: 'access.rate_limited' })) as AuditEventWithIp[];
      // Over the limit and throttled alike (both 429): every refusal is the real address's.
      expect(limited.length).toBeGreaterThan(0);
      expect(new Set(limited.map((e) => e.ip))).toEqual(new Set(['192.0.2.10']));
      const failures = (await auditEvents(t, admin, { action: 'auth.login' })) as AuditEventWithIp[];
      expect(failures.length).toBeGreaterThan(0);
      expect(new Set(failures.map((e) => e.ip))).toEqual(new Set(['192.0.2.10']));

      // The address is refused as a whole, whatever the header claims: one guesser locks out
      // everyone behind it (what trustedProxies is for).
      expect((await signIn(t, '192.0.2.10', '198.51.100.20', user)).statusCode).toBe(429);
      // Another connection address is not.
      expect((await signIn(t, '192.0.2.11', undefined, user)).statusCode).toBe(200);
    });
  });

  describe('with 127.0.0.1 and 10.0.0.0/8 trusted', () => {
    let t: TestApp;
    let admin: string;
    let user: { username: string; password: string };
    const eventsFrom = async (action: string, ip: string) =>
      ((await auditEvents(t, admin, { action })) as AuditEventWithIp[]).filter((e) => e.ip === ip);

    beforeAll(async () => {
      t = await createTestApp(dialect, { ...throttles, trustedProxies: '127.0.0.1, 10.0.0.0/8' });
      admin = (await t.userWithToken('admin')).token;
      user = await t.userWithToken('operator');
    });
    afterAll(() => t?.close());

    it('limits and throttles two forwarded addresses apart, fired at once, and audits each address', async () => {
      const attacker = '203.0.113.1';
      const colleague = '198.51.100.2';
      const flood = Array.from({ length: LOGIN_LIMIT + 5 }, (_, i) => signIn(t, '127.0.0.1', attacker, guess(i)));
      const signIns = Array.from({ length: 3 }, () => signIn(t, '127.0.0.1', colleague, user));
      const [flooded, signedIn] = await Promise.all([Promise.all(flood), Promise.all(signIns)]);

      // The colleague behind the same load balancer is neither limited nor throttled by the attacker.
      expect(signedIn.map((r) => r.statusCode)).toEqual([200, 200, 200]);
      expect(flooded.filter((r) => r.statusCode === 200)).toEqual([]);
      expect(flooded.filter(isRateLimited)).toHaveLength(5);
      expect(flooded.filter((r) => r.statusCode === 429 && ADDRESS_THROTTLED.test(errorOf(r).message)).length).toBeGreaterThan(0);

      const refused = (await auditEvents(t, admin, { action: 'access.rate_limited' })) as AuditEventWithIp[];
      expect(refused.length).toBeGreaterThanOrEqual(5);
      expect(new Set(refused.map((e) => e.ip))).toEqual(new Set([attacker]));
      const logins = (await auditEvents(t, admin, { action: 'auth.login' })) as AuditEventWithIp[];
      expect(logins.filter((e) => e.outcome === 'success').map((e) => e.ip)).toEqual([colleague, colleague, colleague]);
      expect(new Set(logins.filter((e) => e.outcome !== 'success').map((e) => e.ip))).toEqual(new Set([attacker]));
      const throttled = (await auditEvents(t, admin, { action: 'auth.throttle' })) as AuditEventWithIp[];
      expect(throttled.map((e) => [e.ip, e.details.scope, e.details.address])).toContainEqual([attacker, 'address', attacker]);
    });

    it('takes the right-most address that is not a trusted proxy, and ignores an untrusted sender’s header', async () => {
      // The client claims 192.0.2.99; its proxy 10.1.2.3 (trusted) saw 203.0.113.9 (not trusted).
      expect((await signIn(t, '127.0.0.1', '192.0.2.99, 203.0.113.9, 10.1.2.3', user)).statusCode).toBe(200);
      expect(await eventsFrom('auth.login', '203.0.113.9')).toHaveLength(1);
      expect(await eventsFrom('auth.login', '192.0.2.99')).toEqual([]);
      // A client that reaches the server straight is not a proxy: its header is ignored.
      expect((await signIn(t, '192.0.2.50', '10.9.9.9', user)).statusCode).toBe(200);
      expect(await eventsFrom('auth.login', '192.0.2.50')).toHaveLength(1);
      expect(await eventsFrom('auth.login', '10.9.9.9')).toEqual([]);
    });

    it('takes the forwarded address on a WebSocket upgrade through the proxy', async () => {
      const { deviceId } = await createInventory(t, admin, { project: 'Behind the balancer', device: 'lb-1' });
      const session = await loginOrThrow(t, user.username, user.password);
      const port = await freeLowPort();
      await t.app.listen({ host: '127.0.0.1', port });
      const ws = new WebSocket(`ws://127.0.0.1:${port}${API}/terminal`, {
        headers: { cookie: session.cookie, 'x-forwarded-for': '198.51.100.77' },
      });
      const closed = new Promise((resolve) => ws.once('close', resolve));
      ws.once('open', () => ws.send(JSON.stringify({ type: 'start', csrfToken: 'wrong', deviceId, cols: 80, rows: 24 })));
      await closed;
      await expect
        .poll(async () => (await eventsFrom('access.csrf_failed', '198.51.100.77')).length, { timeout: 5000, interval: 100 })
        .toBe(1);
    });
  });
});
