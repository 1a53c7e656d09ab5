import { rootCertificates } from 'node:tls';
import type { Role } from '@gatehouse/core';
import { GatehouseError } from '@gatehouse/core';
import * as client from 'openid-client';
import { Agent, fetch as undiciFetch } from 'undici';
import type { StoredOidcSettings } from './oidc-settings.js';

/** Why an OIDC sign-in was refused: a short reason for the audit log and a message for the user. */
export class OidcSignInError extends GatehouseError {
  readonly actorId: string | null;
  readonly actorName: string;
  constructor(
    readonly reason: string,
    message: string,
    actor: { actorId: string | null; actorName: string } = { actorId: null, actorName: 'oidc' },
  ) {
    super('UNAUTHENTICATED', message);
    this.actorId = actor.actorId;
    this.actorName = actor.actorName;
  }
}

/** What the identity provider said about the user, after openid-client checked it. */
export interface OidcIdentity {
  /** `<issuer> <sub>`: the user's stable identity. */
  subject: string;
  /** The name to show and to make the user under (preferred_username, else email, else sub). */
  name: string;
  groups: string[];
}

const DISCOVERY_TTL_MS = 10 * 60_000;
const cache = new Map<string, { at: number; config: Promise<client.Configuration> }>();

/**
 * A fetch that trusts the system's CAs plus the settings' CA (for an identity provider whose
 * certificate a private CA signed). Certificates are always verified.
 */
function fetchTrusting(caPem: string | null): client.CustomFetch | undefined {
  if (caPem === null) return undefined;
  const dispatcher = new Agent({ connect: { ca: [...rootCertificates, caPem] } });
  return (url: string, options: client.CustomFetchOptions) => undiciFetch(url, { ...options, dispatcher });
}

/**
 * The identity provider's configuration from its discovery document (cached ten minutes per
 * issuer, client and secret), with ID-token signatures checked on every response
 * (openid-client checks issuer, audience, nonce and expiry itself).
 */
export function oidcConfiguration(s: StoredOidcSettings, clientSecret: string): Promise<client.Configuration> {
  if (s.issuerUrl === null || s.clientId === null) throw new OidcSignInError('not configured', 'OIDC sign-in is not configured.');
  const key = JSON.stringify([s.issuerUrl, s.clientId, clientSecret, s.caPem]);
  const cached = cache.get(key);
  if (cached && Date.now() - cached.at < DISCOVERY_TTL_MS) return cached.config;
  const customFetch = fetchTrusting(s.caPem);
  const config = client
    .discovery(new URL(s.issuerUrl), s.clientId, undefined, client.ClientSecretBasic(clientSecret), {
      ...(customFetch ? { [client.customFetch]: customFetch } : {}),
      timeout: 15,
    })
    .then((c) => {
      if (customFetch) c[client.customFetch] = customFetch;
      client.enableNonRepudiationChecks(c);
      return c;
    });
  if (cache.size > 20) cache.clear();
  cache.set(key, { at: Date.now(), config });
  config.catch(() => cache.delete(key));
  return config.catch((error: unknown) => {
    throw new GatehouseError(
      'BAD_GATEWAY',
      `Could not read the identity provider's discovery document at ${s.issuerUrl}/.well-known/openid-configuration (${describe(error)}). Check issuerUrl, and caPem if its certificate is not from a public CA.`,
    );
  });
}

/** An error's message and cause, for an administrator (openid-client's errors never carry the secret). */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`.slice(0, 300);
}

/** The authorization request's URL with PKCE (S256), state and nonce. */
export async function authorizationUrl(
  config: client.Configuration,
  s: StoredOidcSettings,
  input: { redirectUri: string; state: string; nonce: string; codeVerifier: string },
): Promise<URL> {
  return client.buildAuthorizationUrl(config, {
    redirect_uri: input.redirectUri,
    scope: s.scopes.join(' '),
    code_challenge: await client.calculatePKCECodeChallenge(input.codeVerifier),
    code_challenge_method: 'S256',
    state: input.state,
    nonce: input.nonce,
  });
}

/**
 * Redeems the callback's code (openid-client checks state, the ID token's issuer, audience,
 * nonce, expiry and signature) and reads the user's identity and groups: from the ID token,
 * else from the UserInfo endpoint (providers that keep scope claims out of the ID token).
 */
export async function redeemCallback(
  config: client.Configuration,
  s: StoredOidcSettings,
  input: { callbackUrl: URL; state: string; nonce: string; codeVerifier: string },
): Promise<OidcIdentity> {
  let tokens;
  try {
    tokens = await client.authorizationCodeGrant(config, input.callbackUrl, {
      pkceCodeVerifier: input.codeVerifier,
      expectedState: input.state,
      expectedNonce: input.nonce,
      idTokenExpected: true,
    });
  } catch (error) {
    throw new OidcSignInError(
      `identity provider answer refused: ${describe(error)}`,
      'The identity provider’s answer could not be verified. Try again; if it keeps failing, tell an administrator.',
    );
  }
  const claims = tokens.claims();
  if (!claims) throw new OidcSignInError('no ID token', 'The identity provider sent no ID token. Tell an administrator.');
  let all: Record<string, unknown> = claims;
  if (claims[s.groupClaim] === undefined && tokens.access_token) {
    try {
      all = { ...(await client.fetchUserInfo(config, tokens.access_token, claims.sub)), ...claims };
    } catch (error) {
      throw new OidcSignInError(`userinfo failed: ${describe(error)}`, 'Could not read your groups from the identity provider. Try again.');
    }
  }
  const raw = all[s.groupClaim];
  const groups = Array.isArray(raw) ? raw.filter((g): g is string => typeof g === 'string') : typeof raw === 'string' ? [raw] : [];
  const name = [all.preferred_username, all.email, claims.sub].find((v): v is string => typeof v === 'string' && v !== '') ?? claims.sub;
  return { subject: `${claims.iss} ${claims.sub}`, name, groups };
}

/** The role of the first group → role rule whose group the user is in; null when none is. */
export function roleOfGroups(s: StoredOidcSettings, groups: readonly string[]): Role | null {
  return s.groupRoles.find((rule) => groups.includes(rule.group))?.role ?? null;
}

/** A user name the API accepts, from the identity provider's name for the user. */
export function usernameOf(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._@-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return (cleaned || 'sso-user').slice(0, 64);
}
