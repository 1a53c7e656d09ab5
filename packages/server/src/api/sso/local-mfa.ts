import { oidcTotp, responses, signedInAnswer, totpEnrolment } from '@gatehouse/api';
import { ConflictError, GatehouseError } from '@gatehouse/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { everyone } from '../../access.js';
import { csrfTokenOf, SESSION_COOKIE } from '../../auth.js';
import { newTotpSecret, totpStep, totpUri } from '../../passwords.js';
import type { Services } from '../../services.js';
import { AUTH_BODY_LIMIT } from '../auth/routes.js';
import { presentUser } from '../users/presenter.js';

// A conflict with the sign-in's state, not a refusal: these routes are public (the SSO callback's
// pending web session is what they complete), and no public route answers 401 or 403.
const noPendingSession = () => new ConflictError('No SSO sign-in is waiting for an authenticator code. Sign in with SSO again.');

/**
 * The local authenticator code after SSO (`requireLocalMfa`): the callback made a web
 * session that is not valid until its user's TOTP code is shown here. A user with no
 * authenticator enrols one first, in that session. A wrong code ends the pending session,
 * so guessing costs a whole SSO sign-in per try. The session cookie is SameSite=Strict and
 * the bodies are JSON, so another site cannot post here for the browser.
 */
export function localMfaRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['sso'];

  const pendingSession = async (req: FastifyRequest) => {
    const token = req.cookies[SESSION_COOKIE];
    const session = token === undefined ? undefined : await services.users.findSession(token);
    if (token === undefined || !session || session.mfaPassed) throw noPendingSession();
    return { token, row: await services.users.row(session.userId) };
  };

  r.post(
    '/auth/oidc/totp/enroll',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      config: { ...everyone, rateLimit: { max: 10, timeWindow: '1 minute' } },
      schema: {
        tags,
        summary: 'After SSO, for a user with no authenticator yet: start TOTP enrolment (returns the secret once)',
        response: responses({ 200: totpEnrolment }),
      },
    },
    async (req) => {
      const { row } = await pendingSession(req);
      if (row.totp_enabled === 1) throw new ConflictError('You have an authenticator already: enter its code.');
      const secret = newTotpSecret();
      await services.withAudit(req, async (tx, audit) => {
        await tx.users.update(row.id, { totp_secret_enc: services.vault.encrypt({ table: 'users', id: row.id, field: 'totp' }, secret) });
        audit({
          action: 'auth.totp_enroll',
          outcome: 'success',
          actorId: row.id,
          actorName: row.username,
          targetType: 'user',
          targetId: row.id,
        });
      });
      return { secret, uri: totpUri(secret, row.username) };
    },
  );

  r.post(
    '/auth/oidc/totp',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      config: { ...everyone, rateLimit: { max: 10, timeWindow: '1 minute' } },
      schema: {
        tags,
        summary: 'After SSO: the local authenticator code (also confirms a new enrolment); completes the web session',
        body: oidcTotp,
        response: responses({ 200: signedInAnswer }),
      },
    },
    async (req) => {
      const { token, row } = await pendingSession(req);
      if (row.totp_secret_enc === null) throw new ConflictError('Start with POST /api/v1/auth/oidc/totp/enroll.');
      const secret = services.vault.decrypt({ table: 'users', id: row.id, field: 'totp' }, row.totp_secret_enc);
      const step = totpStep(secret, req.body.code);
      const actor = { actorId: row.id, actorName: row.username };
      if (step === null || !(await services.users.claimTotpStep(row.id, step))) {
        await services.withAudit(req, async (tx, audit) => {
          await tx.users.deleteSession(token);
          audit({
            action: 'auth.login',
            outcome: 'failure',
            ...actor,
            details: { method: 'oidc', reason: step === null ? 'wrong totp code' : 'totp code replayed' },
          });
        });
        throw new GatehouseError('UNAUTHENTICATED', 'The authenticator code is wrong or was used already. Sign in with SSO again.');
      }
      const user = await services.withAudit(req, async (tx, audit) => {
        if (row.totp_enabled === 0) {
          await tx.users.update(row.id, { totp_enabled: 1 });
          audit({ action: 'auth.totp_confirm', outcome: 'success', ...actor, targetType: 'user', targetId: row.id });
        }
        await tx.users.markSessionMfa(token);
        audit({ action: 'auth.login', outcome: 'success', ...actor, details: { method: 'oidc', localMfa: true } });
        return tx.users.get(row.id);
      });
      return { user: presentUser(user), csrfToken: csrfTokenOf(token) };
    },
  );
}
