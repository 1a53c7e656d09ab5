import { rm } from 'node:fs/promises';
import path from 'node:path';
import {
  me,
  okAnswer,
  passwordChange,
  passwordChanged,
  responses,
  setupCreate,
  setupDone,
  setupStatus,
  signedInAnswer,
  signInBody,
  totpConfirm,
  totpEnrolment,
} from '@gatehouse/api';
import { ConflictError, GatehouseError, SESSION_TOKEN_PREFIX, ValidationError } from '@gatehouse/core';
import { hashToken } from '@gatehouse/db';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { everyone, signedIn } from '../../access.js';
import { caller, csrfTokenOf, SESSION_COOKIE } from '../../auth.js';
import { hashPassword, newToken, newTotpSecret, passwordProblem, totpUri, totpStep } from '../../passwords.js';
import type { Services } from '../../services.js';
import { checkCurrentPassword, checkSignIn, recordSignIn } from '../../sign-in.js';
import { presentUser } from '../users/presenter.js';

export const SETUP_TOKEN_SETTING = 'setup_token_hash';
/** How long a sign-in refused for too many attempts from the address waits before it is answered. */
const REFUSAL_DELAY_MS = 1000;
export const setupTokenFile = (dataDir: string) => path.join(dataDir, 'setup-token');

/**
 * The largest body of a sign-in, set-up or password request: two 1,024-character passwords
 * even written as \u escapes fit, and an unauthenticated caller cannot make the server
 * buffer the general limit (bodyLimit, sized for imports).
 */
export const AUTH_BODY_LIMIT = 16 * 1024;

function checkPassword(value: string, field = 'password') {
  const problem = passwordProblem(value);
  if (problem) throw new ValidationError(`${field} ${problem}.`, [{ path: field, message: problem }]);
}

/**
 * Sign-in, sign-out, first-run set-up, TOTP enrolment and password change. The password
 * checks and their throttles (sign-in.ts) claim their counts outside any route
 * transaction, so concurrent attempts are counted once; what a success changes (a session,
 * a password, a TOTP secret) commits with its audit event. Failures change nothing of
 * ours and are audited with services.audit.
 */
export function authRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { users, config } = services;
  const tags = ['auth'];

  /** How long a new web session lives: one never used after sign-in still ends after the idle timeout. */
  const sessionTtlMs = () => Math.min(config.sessionIdleMinutes * 60_000, config.sessionMaxHours * 3_600_000);
  const setSessionCookie = (reply: FastifyReply, token: string) =>
    void reply.setCookie(SESSION_COOKIE, token, {
      path: '/',
      httpOnly: true,
      secure: true,
      sameSite: 'strict',
      maxAge: config.sessionMaxHours * 3600,
    });

  r.get(
    '/setup',
    {
      config: everyone,
      schema: { tags, summary: 'Whether the first administrator still has to be created', response: responses({ 200: setupStatus }) },
    },
    async () => ({
      needed: (await users.count()) === 0,
    }),
  );

  const setupIsDone = () => new ConflictError('Set-up is done already: sign in, or ask an administrator for an account.');
  /** Once true, stays true: the set-up token is deleted when the first administrator is made. */
  let isSetUp = false;

  r.post(
    '/setup',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      config: { ...everyone, rateLimit: { max: 10, timeWindow: '1 minute' } },
      // After set-up, refuse before the body is read: nobody needs to send one any more.
      onRequest: async () => {
        isSetUp ||= (await users.count()) > 0;
        if (isSetUp) throw setupIsDone();
      },
      schema: {
        tags,
        summary: 'Create the first administrator with the one-time set-up token from <data-dir>/setup-token',
        body: setupCreate,
        response: responses({ 201: setupDone }),
      },
    },
    async (req, reply) => {
      const expected = await services.settings.get(SETUP_TOKEN_SETTING);
      if ((await users.count()) > 0 || expected === undefined) throw setupIsDone();
      if (hashToken(req.body.setupToken) !== expected) {
        await services.audit(req, {
          action: 'setup.admin_create',
          outcome: 'failure',
          actorName: req.body.username,
          details: { reason: 'wrong set-up token' },
        });
        // The data directory's path is not for a caller who has no account yet.
        throw new GatehouseError(
          'UNAUTHENTICATED',
          "The set-up token is wrong. Copy it from the setup-token file in the server's data directory.",
        );
      }
      checkPassword(req.body.password);
      const passwordHash = await hashPassword(req.body.password);
      const user = await services.withAudit(req, async (tx, audit) => {
        const admin = await tx.users.create({ username: req.body.username, role: 'admin', passwordHash });
        await tx.settings.delete(SETUP_TOKEN_SETTING);
        audit({
          action: 'setup.admin_create',
          outcome: 'success',
          actorId: admin.id,
          actorName: admin.username,
          targetType: 'user',
          targetId: admin.id,
        });
        return admin;
      });
      await rm(setupTokenFile(config.dataDir), { force: true });
      return reply.status(201).send({ user: presentUser(user) });
    },
  );

  r.post(
    '/auth/login',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      config: { ...everyone, rateLimit: { max: 30, timeWindow: '1 minute' } },
      // A guesser over the limit waits a second for each refusal: 50 connections get 50
      // answers a second, not thousands, so the users it shares the server with hardly notice.
      onSend: async (_req, reply, payload) => {
        if (reply.statusCode === 429) await new Promise((resolve) => setTimeout(resolve, REFUSAL_DELAY_MS));
        return payload;
      },
      schema: {
        tags,
        summary: 'Sign in; sets the session cookie and returns the CSRF token for later writes',
        body: signInBody,
        response: responses({ 200: signedInAnswer }),
      },
    },
    async (req, reply) => {
      const signedIn = await checkSignIn(services, { ...req.body, address: req.ip }, (event) => services.audit(req, event), 'auth.login');
      if (!signedIn.ok) throw new GatehouseError(signedIn.code, signedIn.message);
      const token = newToken(SESSION_TOKEN_PREFIX);
      const user = await services.withAudit(req, async (tx, audit) => {
        const user = await recordSignIn(tx.users, signedIn.user.id);
        await tx.users.createSession(user.id, token, true, sessionTtlMs());
        audit({ action: 'auth.login', outcome: 'success', actorId: user.id, actorName: user.username });
        return user;
      });
      setSessionCookie(reply, token);
      return { user: presentUser(user), csrfToken: csrfTokenOf(token) };
    },
  );

  r.post(
    '/auth/logout',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      config: signedIn,
      schema: { tags, summary: 'End this web session', response: responses({ 200: okAnswer }) },
    },
    async (req, reply) => {
      const auth = caller(req);
      await services.withAudit(req, async (tx, audit) => {
        if (auth.sessionToken) await tx.users.deleteSession(auth.sessionToken);
        audit({ action: 'auth.logout', outcome: 'success' });
      });
      void reply.clearCookie(SESSION_COOKIE, { path: '/' });
      return { ok: true as const };
    },
  );

  r.get('/auth/me', { config: signedIn, schema: { tags, summary: 'Who is signed in', response: responses({ 200: me }) } }, (req) => {
    const auth = caller(req);
    return { user: presentUser(auth.user), via: auth.via, csrfToken: auth.sessionToken ? csrfTokenOf(auth.sessionToken) : null };
  });

  r.post(
    '/auth/password',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      config: signedIn,
      schema: {
        tags,
        summary: 'Change your own password; ends your other sessions and revokes your API tokens',
        body: passwordChange,
        response: responses({ 200: passwordChanged }),
      },
    },
    async (req) => {
      const auth = caller(req);
      const current = await checkCurrentPassword(
        services,
        { userId: auth.user.id, password: req.body.currentPassword, address: req.ip },
        (event) => services.audit(req, event),
        'auth.password_change',
      );
      if (!current.ok) {
        if (current.code === 'RATE_LIMITED') throw new GatehouseError('RATE_LIMITED', current.message);
        throw new ValidationError(current.message, [{ path: 'currentPassword', message: 'is wrong' }]);
      }
      checkPassword(req.body.newPassword, 'newPassword');
      const passwordHash = await hashPassword(req.body.newPassword);
      const revokedTokens = await services.withAudit(req, async (tx, audit) => {
        await tx.users.update(auth.user.id, { password_hash: passwordHash });
        // Whoever knew the old password may hold another session or a token made with it: end
        // all sessions but this one, and revoke every token (this one too, if a token asked).
        await tx.users.deleteSessionsOf(auth.user.id, auth.sessionToken);
        const revoked = await tx.users.deleteTokensOf(auth.user.id);
        audit({
          action: 'auth.password_change',
          outcome: 'success',
          targetType: 'user',
          targetId: auth.user.id,
          details: { revokedTokens: revoked },
        });
        return revoked;
      });
      return { ok: true as const, revokedTokens };
    },
  );

  r.post(
    '/auth/totp/enroll',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      config: signedIn,
      schema: { tags, summary: 'Start TOTP enrolment: returns the secret once', response: responses({ 200: totpEnrolment }) },
    },
    async (req) => {
      const auth = caller(req);
      const secret = newTotpSecret();
      const username = await services.withAudit(req, async (tx, audit) => {
        const row = await tx.users.row(auth.user.id);
        if (row.totp_enabled === 1) throw new ConflictError('TOTP is already enabled for this user. Ask an administrator to reset it.');
        await tx.users.update(row.id, { totp_secret_enc: services.vault.encrypt({ table: 'users', id: row.id, field: 'totp' }, secret) });
        audit({ action: 'auth.totp_enroll', outcome: 'success', targetType: 'user', targetId: row.id });
        return row.username;
      });
      return { secret, uri: totpUri(secret, username) };
    },
  );

  r.post(
    '/auth/totp/confirm',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      config: signedIn,
      schema: { tags, summary: 'Finish TOTP enrolment with a current code', body: totpConfirm, response: responses({ 200: okAnswer }) },
    },
    async (req) => {
      const auth = caller(req);
      const row = await users.row(auth.user.id);
      if (row.totp_secret_enc === null) throw new ConflictError('Start with POST /api/v1/auth/totp/enroll.');
      const secret = services.vault.decrypt({ table: 'users', id: row.id, field: 'totp' }, row.totp_secret_enc);
      const step = totpStep(secret, req.body.code);
      if (step === null) {
        await services.audit(req, { action: 'auth.totp_confirm', outcome: 'failure', targetType: 'user', targetId: row.id });
        throw new ValidationError('code is not the current authenticator code.', [{ path: 'code', message: 'is not the current code' }]);
      }
      await services.withAudit(req, async (tx, audit) => {
        await tx.users.update(row.id, { totp_enabled: 1, totp_last_step: step });
        audit({ action: 'auth.totp_confirm', outcome: 'success', targetType: 'user', targetId: row.id });
      });
      return { ok: true as const };
    },
  );
}
