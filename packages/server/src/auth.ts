import { createHash, timingSafeEqual } from 'node:crypto';
import { ForbiddenError, GatehouseError, InternalError, isRole, visibilityOf, type Role } from '@gatehouse/core';
import type { User } from '@gatehouse/db';
import { userFromRow } from '@gatehouse/db';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Access, AuthContext, Services } from './services.js';

export const SESSION_COOKIE = 'gh_session';
export const CSRF_HEADER = 'x-csrf-token';

/** The CSRF token of a web session: derived from the session token, so nothing extra is stored. */
export function csrfTokenOf(sessionToken: string): string {
  return createHash('sha256').update('gatehouse csrf\0').update(sessionToken).digest('base64url');
}

/** Compares two tokens in constant time. */
export function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const unauthenticated = () =>
  new GatehouseError(
    'UNAUTHENTICATED',
    'Sign in first: send a session cookie from POST /api/v1/auth/login, or an API token as "Authorization: Bearer <token>".',
  );

async function contextFor(services: Services, user: User, via: AuthContext['via']): Promise<Omit<AuthContext, 'sessionToken' | 'tokenId'>> {
  if (user.disabled) throw new GatehouseError('UNAUTHENTICATED', 'This user is disabled. Ask an administrator.');
  const visibility = user.role === 'operator' ? visibilityOf(await services.users.listGrants(user.id)) : ({ all: true } as const);
  return { user, via, visibility };
}

/** Identifies the caller from a bearer token or the session cookie; null when neither is sent. */
export async function authenticate(services: Services, req: FastifyRequest): Promise<AuthContext | null> {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) throw unauthenticated();
    const token = await services.users.findToken(match[1]);
    if (!token) throw new GatehouseError('UNAUTHENTICATED', 'The API token is unknown, revoked or expired. Create a new one.');
    const user = userFromRow(await services.users.row(token.userId));
    await services.users.touchToken(token.id);
    return { ...(await contextFor(services, user, 'token')), tokenId: token.id, tokenScope: token.scope };
  }
  const cookie = req.cookies[SESSION_COOKIE];
  if (cookie === undefined) return null;
  const session = await services.users.findSession(cookie);
  if (!session || !session.mfaPassed) throw new GatehouseError('UNAUTHENTICATED', 'Your session has expired. Sign in again.');
  const user = userFromRow(await services.users.row(session.userId));
  const { sessionIdleMinutes, sessionMaxHours } = services.config;
  const absoluteEnd = new Date(Date.parse(session.createdAt) + sessionMaxHours * 3_600_000).toISOString();
  await services.users.touchSession(cookie, sessionIdleMinutes * 60_000, absoluteEnd);
  return { ...(await contextFor(services, user, 'session')), sessionToken: cookie };
}

/** The onRequest hook: every route declares its access; this enforces it before the body is read. */
export function accessHook(services: Services) {
  return async (req: FastifyRequest, _reply: FastifyReply) => {
    req.auth = null;
    const access: Access | undefined = req.routeOptions.config.access;
    if (access === undefined) {
      // Unknown routes (404) and framework routes carry no access: nothing to enforce.
      if (req.routeOptions.url === undefined) return;
      throw new InternalError('This route declares no access rule.');
    }
    if (access === 'public') return;
    const auth = await authenticate(services, req);
    if (!auth) throw unauthenticated();
    req.auth = auth;
    if (auth.via === 'session' && !['GET', 'HEAD', 'OPTIONS'].includes(req.method)) {
      const sent = req.headers[CSRF_HEADER];
      if (typeof sent !== 'string' || !auth.sessionToken || !sameToken(sent, csrfTokenOf(auth.sessionToken))) {
        throw new GatehouseError('CSRF_FAILED', `Missing or wrong ${CSRF_HEADER} header. Send the csrfToken returned at sign-in.`);
      }
    }
    if (auth.tokenScope === 'read' && req.method !== 'GET' && req.method !== 'HEAD') {
      await services.audit(req, {
        action: 'access.denied',
        outcome: 'denied',
        details: { method: req.method, route: req.routeOptions.url, reason: 'read-only API token' },
      });
      throw new ForbiddenError(
        `This API token is read-only (GET and HEAD). Use a token with scope "full" to ${req.method} ${req.routeOptions.url}.`,
      );
    }
    if (access !== 'authenticated' && !access.includes(auth.user.role)) {
      await services.audit(req, {
        action: 'access.denied',
        outcome: 'denied',
        details: { method: req.method, route: req.routeOptions.url, role: auth.user.role },
      });
      throw new ForbiddenError(`The ${auth.user.role} role may not ${req.method} ${req.routeOptions.url}. Ask an administrator.`);
    }
  };
}

/** The caller, for routes that require authentication (the hook guarantees it). */
export function caller(req: FastifyRequest): AuthContext {
  if (!req.auth) throw unauthenticated();
  return req.auth;
}

export function requireRole(role: unknown): Role {
  if (!isRole(role))
    throw new GatehouseError('VALIDATION_FAILED', 'role must be admin, operator or auditor', [
      { path: 'role', message: 'must be admin, operator or auditor' },
    ]);
  return role;
}
