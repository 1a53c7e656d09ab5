import { createHash, randomBytes } from 'node:crypto';
import {
  cliLoginClaim,
  cliLoginClaimed,
  cliLoginStarted,
  noContent,
  oidcCallbackQuery,
  oidcSettings,
  oidcSettingsPut,
  oidcStartQuery,
  oidcStatus,
  responses,
} from '@gatehouse/api';
import { API_TOKEN_PREFIX, GatehouseError, SESSION_TOKEN_PREFIX } from '@gatehouse/core';
import { SsoLogins } from '@gatehouse/db';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as client from 'openid-client';
import { admins, everyone } from '../../access.js';
import { fieldChanges } from '../../audit-details.js';
import { SESSION_COOKIE } from '../../auth.js';
import { newToken } from '../../passwords.js';
import type { Services } from '../../services.js';
import { authorizationUrl, oidcConfiguration, OidcSignInError, redeemCallback } from '../../sso/oidc-client.js';
import {
  mergeOidcSettings,
  OIDC_SECRET_FIELDS,
  oidcClientSecret,
  presentOidcSettings,
  readOidcSettings,
  saveOidcSettings,
  type StoredOidcSettings,
} from '../../sso/oidc-settings.js';
import { AUTH_BODY_LIMIT } from '../auth/routes.js';
import { localMfaRoutes } from './local-mfa.js';
import { signInSsoUser } from './sso-user.js';

/** The cookie that binds a sign-in to the browser that started it (SameSite=Lax: the identity provider's redirect is cross-site). */
export const OIDC_BINDING_COOKIE = 'gh_oidc';
const OIDC_PATH = '/api/v1/auth/oidc';
/** How long a browser has between /start and the callback. */
const SIGN_IN_TTL_MS = 10 * 60_000;
/** How long a `gatehouse login --sso` request waits for its browser sign-in. */
const CLI_LOGIN_TTL_MS = 10 * 60_000;
/** How long the API token a CLI gets by SSO lives (at most the server's apiTokenMaxDays). */
const CLI_TOKEN_DAYS = 30;

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

/** Where the identity provider sends the browser back: the setting, else this server's own callback URL as the browser reached it. */
function redirectUriOf(req: FastifyRequest, s: StoredOidcSettings): string {
  return s.redirectUrl ?? `https://${req.host}${OIDC_PATH}/callback`;
}

/** The console page a finished (or failed) sign-in lands on; the console shows the message. */
const consoleUrl = (params: Record<string, string>) => `/?${new URLSearchParams(params).toString()}`;

/** What the identity provider sent back, as the callback reads it. */
type CallbackQuery = { state?: string | undefined; error?: string | undefined };

/**
 * OIDC single sign-on: the settings (administrators), the browser sign-in (start → the
 * identity provider → callback → a web session, as a password sign-in makes), and the
 * CLI's login through a browser (`gatehouse login --sso`).
 */
export function ssoRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['sso'];
  const logins = new SsoLogins(services.db);
  localMfaRoutes(app, services);

  r.get(
    '/sso/oidc/settings',
    {
      config: admins,
      schema: { tags, summary: 'OIDC sign-in settings (the client secret is never shown)', response: responses({ 200: oidcSettings }) },
    },
    async () => presentOidcSettings(await readOidcSettings(services.settings)),
  );

  r.put(
    '/sso/oidc/settings',
    {
      config: admins,
      schema: {
        tags,
        summary: 'Change the OIDC sign-in settings; clientSecret is write-only (omit it to keep the stored one)',
        body: oidcSettingsPut,
        response: responses({ 200: oidcSettings }),
      },
    },
    async (req) =>
      services.withAudit(req, async (tx, audit) => {
        const before = await readOidcSettings(tx.settings);
        const next = mergeOidcSettings(services.vault, before, req.body);
        await saveOidcSettings(tx.settings, next);
        audit({ action: 'sso.settings_changed', outcome: 'success', details: fieldChanges(before, next, OIDC_SECRET_FIELDS) });
        return presentOidcSettings(next);
      }),
  );

  r.get(
    '/auth/oidc',
    {
      config: everyone,
      schema: { tags, summary: 'Whether OIDC sign-in is offered, and the name on its button', response: responses({ 200: oidcStatus }) },
    },
    async () => {
      const s = await readOidcSettings(services.settings);
      return { enabled: s.enabled, displayName: s.displayName };
    },
  );

  /** The settings and the identity provider's configuration, when sign-in is enabled. */
  const enabledConfiguration = async () => {
    const s = await readOidcSettings(services.settings);
    const secret = oidcClientSecret(services.vault, s);
    if (!s.enabled || secret === null) {
      throw new GatehouseError('NOT_FOUND', 'OIDC sign-in is not enabled. Sign in with your password, or ask an administrator.');
    }
    return { s, config: await oidcConfiguration(s, secret) };
  };

  r.get(
    '/auth/oidc/start',
    {
      config: { ...everyone, rateLimit: { max: 30, timeWindow: '1 minute' } },
      schema: {
        tags,
        summary: 'Start an OIDC sign-in: redirects to the identity provider (with ?cli=<id>, it approves a CLI login)',
        querystring: oidcStartQuery,
        response: responses({ 302: noContent }),
      },
    },
    async (req, reply) => {
      const { s, config } = await enabledConfiguration();
      const cliLoginId = req.query.cli ?? null;
      if (cliLoginId !== null && !(await logins.cliLoginOpen(cliLoginId))) {
        return reply.redirect(consoleUrl({ ssoError: 'This CLI login has expired or was used. Run gatehouse login --sso again.' }));
      }
      const state = client.randomState();
      const nonce = client.randomNonce();
      const codeVerifier = client.randomPKCECodeVerifier();
      const binding = randomBytes(32).toString('base64url');
      await logins.start({
        state,
        nonce,
        bindingHash: sha256(binding),
        codeVerifierEnc: services.vault.encrypt({ table: 'sso_logins', id: sha256(state), field: 'codeVerifier' }, codeVerifier),
        cliLoginId,
        ttlMs: SIGN_IN_TTL_MS,
      });
      void reply.setCookie(OIDC_BINDING_COOKIE, binding, {
        path: OIDC_PATH,
        httpOnly: true,
        secure: true,
        sameSite: 'lax',
        maxAge: SIGN_IN_TTL_MS / 1000,
      });
      const url = await authorizationUrl(config, s, { redirectUri: redirectUriOf(req, s), state, nonce, codeVerifier });
      return reply.redirect(url.href);
    },
  );

  r.get(
    '/auth/oidc/callback',
    {
      config: { ...everyone, rateLimit: { max: 30, timeWindow: '1 minute' } },
      schema: {
        tags,
        summary: 'Where the identity provider sends the browser back; signs in and redirects to the console',
        querystring: oidcCallbackQuery,
        response: responses({ 302: noContent }),
      },
    },
    async (req, reply) => {
      void reply.clearCookie(OIDC_BINDING_COOKIE, { path: OIDC_PATH });
      try {
        return await callback(req, req.query, reply);
      } catch (error) {
        if (!(error instanceof OidcSignInError)) throw error;
        services.metrics?.signInFailed('oidc');
        await services.audit(req, {
          action: 'auth.login',
          outcome: 'failure',
          actorId: error.actorId,
          actorName: error.actorName,
          details: { method: 'oidc', reason: error.reason },
        });
        return reply.redirect(consoleUrl({ ssoError: error.message }));
      }
    },
  );

  async function callback(req: FastifyRequest, query: CallbackQuery, reply: FastifyReply) {
    const { state } = query;
    // Take the sign-in first: whatever happens next, this state is spent.
    const pending = state === undefined ? undefined : await logins.take(state);
    if (state === undefined || pending === undefined) {
      throw new OidcSignInError('unknown, used or expired state', 'This sign-in has expired or was used already. Sign in again.');
    }
    const binding = req.cookies[OIDC_BINDING_COOKIE];
    if (binding === undefined || sha256(binding) !== pending.bindingHash) {
      throw new OidcSignInError('state from another browser', 'This sign-in was started in another browser. Sign in again from here.');
    }
    if (query.error !== undefined) {
      throw new OidcSignInError(
        `identity provider error: ${query.error.slice(0, 64)}`,
        'The identity provider refused the sign-in. Try again, or ask an administrator.',
      );
    }
    const { s, config } = await enabledConfiguration();
    const sent = req.raw.url?.split('?')[1] ?? '';
    const callbackUrl = new URL(`${redirectUriOf(req, s)}?${sent}`);
    const codeVerifier = services.vault.decrypt({ table: 'sso_logins', id: sha256(state), field: 'codeVerifier' }, pending.codeVerifierEnc);
    const identity = await redeemCallback(config, s, { callbackUrl, state, nonce: pending.nonce, codeVerifier });
    const token = newToken(SESSION_TOKEN_PREFIX);
    const ttlMs = Math.min(services.config.sessionIdleMinutes * 60_000, services.config.sessionMaxHours * 3_600_000);
    const signedIn = await signInSsoUser(services, req, s, identity, {
      cliLoginId: pending.cliLoginId,
      session: pending.cliLoginId === null ? { token, ttlMs } : null,
    });
    if (pending.cliLoginId !== null) return reply.redirect(consoleUrl({ sso: 'cli', user: signedIn.user.username }));
    void reply.setCookie(SESSION_COOKIE, token, {
      path: '/',
      httpOnly: true,
      secure: true,
      sameSite: 'strict',
      maxAge: services.config.sessionMaxHours * 3600,
    });
    return reply.redirect(signedIn.mfaPending ? consoleUrl({ sso: 'mfa' }) : '/');
  }

  r.post(
    '/auth/oidc/cli',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      config: { ...everyone, rateLimit: { max: 10, timeWindow: '1 minute' } },
      schema: {
        tags,
        summary: 'Start a CLI login by SSO: open url in a browser, then claim with id and secret',
        response: responses({ 201: cliLoginStarted }),
      },
    },
    async (req, reply) => {
      await enabledConfiguration();
      const secret = randomBytes(32).toString('base64url');
      const { id, expiresAt } = await logins.createCliLogin(secret, CLI_LOGIN_TTL_MS);
      const url = `https://${req.host}${OIDC_PATH}/start?cli=${encodeURIComponent(id)}`;
      return reply.status(201).send({ id, secret, url, expiresAt });
    },
  );

  r.post(
    '/auth/oidc/cli/claim',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      config: { ...everyone, rateLimit: { max: 120, timeWindow: '1 minute' } },
      schema: {
        tags,
        summary: 'Claim a CLI login: pending until the browser sign-in is done, then an API token, once',
        body: cliLoginClaim,
        response: responses({ 200: cliLoginClaimed }),
      },
    },
    async (req) => {
      const claimed = await logins.claimCliLogin(req.body.id, req.body.secret);
      if (!claimed.ok) {
        if (claimed.reason === 'pending') return { status: 'pending' as const, token: null, username: null, expiresAt: null };
        await services.audit(req, {
          action: 'auth.cli_login',
          outcome: 'failure',
          actorName: 'oidc',
          details: { method: 'oidc', reason: claimed.reason },
        });
        throw new GatehouseError(
          'UNAUTHENTICATED',
          claimed.reason === 'claimed'
            ? 'This CLI login was claimed already. Run gatehouse login --sso again.'
            : 'This CLI login is unknown or has expired. Run gatehouse login --sso again.',
        );
      }
      const token = newToken(API_TOKEN_PREFIX);
      const days = Math.min(CLI_TOKEN_DAYS, services.config.apiTokenMaxDays);
      const expiresAt = new Date(Date.now() + days * 86_400_000).toISOString();
      const user = await services.withAudit(req, async (tx, audit) => {
        const user = await tx.users.get(claimed.userId);
        if (user.disabled) throw new GatehouseError('UNAUTHENTICATED', 'This user is disabled. Ask an administrator.');
        const t = await tx.users.createToken({ userId: user.id, name: 'gatehouse login --sso', token, expiresAt, scope: 'full' });
        audit({
          action: 'token.create',
          outcome: 'success',
          actorId: user.id,
          actorName: user.username,
          targetType: 'token',
          targetId: t.id,
          details: { name: t.name, scope: t.scope, expiresAt, method: 'oidc' },
        });
        return user;
      });
      return { status: 'done' as const, token, username: user.username, expiresAt };
    },
  );
}
