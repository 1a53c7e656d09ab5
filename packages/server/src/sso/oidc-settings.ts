import type { OidcSettings, OidcSettingsPut } from '@gatehouse/api';
import { ValidationError } from '@gatehouse/core';
import type { Settings, Vault } from '@gatehouse/db';

/** The Settings key of the OIDC sign-in settings (`GET/PUT /sso/oidc/settings`). */
export const OIDC_SETTINGS_KEY = 'oidc';

/** Where the client secret is sealed: the vault's associated data, so the ciphertext opens nowhere else. */
const SECRET_SCOPE = { table: 'settings', id: OIDC_SETTINGS_KEY, field: 'clientSecret' } as const;

/** The settings as stored: the client secret sealed by the vault, never in clear. */
export type StoredOidcSettings = Omit<OidcSettings, 'clientSecretSet'> & { clientSecretEnc: string | null };

/** Fields recorded in the audit log only as "changed". */
export const OIDC_SECRET_FIELDS = ['clientSecretEnc'] as const;

export const DEFAULT_OIDC_SETTINGS: Readonly<StoredOidcSettings> = Object.freeze({
  enabled: false,
  displayName: 'SSO',
  issuerUrl: null,
  clientId: null,
  clientSecretEnc: null,
  redirectUrl: null,
  scopes: ['openid', 'profile', 'email'],
  groupClaim: 'groups',
  groupRoles: [],
  requireLocalMfa: false,
  caPem: null,
});

export async function readOidcSettings(settings: Settings): Promise<StoredOidcSettings> {
  const raw = await settings.get(OIDC_SETTINGS_KEY);
  const stored = raw === undefined ? {} : (JSON.parse(raw) as Partial<StoredOidcSettings>);
  return { ...DEFAULT_OIDC_SETTINGS, ...stored };
}

/** The client secret in clear, for the token request only. */
export function oidcClientSecret(vault: Vault, s: StoredOidcSettings): string | null {
  return s.clientSecretEnc === null ? null : vault.decrypt(SECRET_SCOPE, s.clientSecretEnc);
}

/**
 * The settings after a PUT: the fields sent replace; a client secret sent is sealed, null
 * removes it, absent keeps it. Enabled settings must name the issuer, the client, its
 * secret and at least one group → role rule, and ask for the openid scope.
 */
export function mergeOidcSettings(vault: Vault, current: StoredOidcSettings, put: OidcSettingsPut): StoredOidcSettings {
  const next: StoredOidcSettings = { ...current };
  const { clientSecret, ...plain } = put;
  for (const [key, value] of Object.entries(plain)) if (value !== undefined) Object.assign(next, { [key]: value });
  if (clientSecret !== undefined) next.clientSecretEnc = clientSecret === null ? null : vault.encrypt(SECRET_SCOPE, clientSecret);
  if (next.enabled) {
    const missing = [
      next.issuerUrl === null && 'issuerUrl',
      next.clientId === null && 'clientId',
      next.clientSecretEnc === null && 'clientSecret',
      next.groupRoles.length === 0 && 'groupRoles',
    ].filter((f): f is string => f !== false);
    if (missing.length > 0) {
      throw new ValidationError(
        `OIDC sign-in cannot be enabled without ${missing.join(', ')}: set ${missing.length > 1 ? 'them' : 'it'} first.`,
        missing.map((path) => ({ path, message: path === 'groupRoles' ? 'needs at least one group → role rule' : 'is required' })),
      );
    }
  }
  if (!next.scopes.includes('openid')) {
    throw new ValidationError('scopes must include openid.', [{ path: 'scopes', message: 'must include openid' }]);
  }
  return next;
}

export async function saveOidcSettings(settings: Settings, value: StoredOidcSettings): Promise<void> {
  await settings.set(OIDC_SETTINGS_KEY, JSON.stringify(value));
}

/** The settings as the API shows them: whether a secret is stored, never the secret. */
export function presentOidcSettings(s: StoredOidcSettings): OidcSettings {
  const { clientSecretEnc, ...rest } = s;
  return { ...rest, clientSecretSet: clientSecretEnc !== null };
}
