import { z } from 'zod';
import { role } from './users.js';

/** OIDC single sign-on: its settings (`/sso/oidc/settings`, administrators) and the sign-in (`/auth/oidc/*`). */

/** One group → role rule: a user in `group` (the group claim's value) gets `role`; the first rule that matches wins. */
export const ssoGroupRole = z.strictObject({ group: z.string().trim().min(1, 'is required').max(256), role });
export type SsoGroupRole = z.infer<typeof ssoGroupRole>;

/** The settings as the API shows them: the client secret never, only whether one is stored. */
export const oidcSettings = z.object({
  enabled: z.boolean(),
  /** The button's text: "Sign in with <displayName>". */
  displayName: z.string(),
  issuerUrl: z.string().nullable(),
  clientId: z.string().nullable(),
  clientSecretSet: z.boolean(),
  /** Where the identity provider sends the browser back; null = `<the console's URL>/api/v1/auth/oidc/callback`. */
  redirectUrl: z.string().nullable(),
  scopes: z.array(z.string()),
  groupClaim: z.string(),
  groupRoles: z.array(ssoGroupRole),
  /** Ask SSO users for the local authenticator code too (default: MFA is the identity provider's). */
  requireLocalMfa: z.boolean(),
  /** PEM of the CA that signed the identity provider's TLS certificate, when it is not a public one. */
  caPem: z.string().nullable(),
});
export type OidcSettings = z.infer<typeof oidcSettings>;

const httpsUrl = z
  .string()
  .trim()
  .max(2048)
  .regex(/^https:\/\/[^\s/?#]+[^\s#]*$/, 'must be an https:// URL');

/** `PUT /sso/oidc/settings`: the fields sent change; `clientSecret` is write-only (omit it to keep the stored one). */
export const oidcSettingsPut = z.strictObject({
  enabled: z.boolean().optional(),
  displayName: z.string().trim().min(1, 'is required').max(64).optional(),
  issuerUrl: httpsUrl.nullable().optional(),
  clientId: z.string().trim().min(1, 'is required').max(512).nullable().optional(),
  clientSecret: z.string().min(1, 'is required').max(4096).nullable().optional(),
  redirectUrl: httpsUrl.nullable().optional(),
  scopes: z
    .array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/, 'must be a scope name without spaces or quotes'))
    .max(20)
    .optional(),
  groupClaim: z.string().trim().min(1, 'is required').max(128).optional(),
  groupRoles: z.array(ssoGroupRole).max(100).optional(),
  requireLocalMfa: z.boolean().optional(),
  caPem: z
    .string()
    .max(65_536)
    .refine((v) => v.includes('-----BEGIN CERTIFICATE-----'), 'must be PEM certificates (-----BEGIN CERTIFICATE-----)')
    .nullable()
    .optional(),
});
export type OidcSettingsPut = z.input<typeof oidcSettingsPut>;

/** `GET /auth/oidc`: whether the sign-in page shows "Sign in with <displayName>" (no secret, for everyone). */
export const oidcStatus = z.object({ enabled: z.boolean(), displayName: z.string() });
export type OidcStatus = z.infer<typeof oidcStatus>;

/** `GET /auth/oidc/start?cli=<id>`: a browser sign-in that approves a CLI login. */
export const oidcStartQuery = z.strictObject({ cli: z.string().max(100).optional() });

/** What the identity provider sends back (or its error). */
export const oidcCallbackQuery = z.looseObject({
  state: z.string().max(1024).optional(),
  code: z.string().max(4096).optional(),
  error: z.string().max(256).optional(),
});

/** `POST /auth/oidc/totp`: the local authenticator code, when the settings require local MFA after SSO. */
export const oidcTotp = z.strictObject({ code: z.string().max(16) });

/** `POST /auth/oidc/cli`: a CLI login request; the CLI keeps `secret` and prints `url` for a browser. */
export const cliLoginStarted = z.object({ id: z.string(), secret: z.string(), url: z.string(), expiresAt: z.string() });
export type CliLoginStarted = z.infer<typeof cliLoginStarted>;

export const cliLoginClaim = z.strictObject({ id: z.string().max(100), secret: z.string().max(200) });
export type CliLoginClaim = z.infer<typeof cliLoginClaim>;

/** The claim's answer: `pending` until the browser's sign-in is done, then the API token once. */
export const cliLoginClaimed = z.object({
  status: z.enum(['pending', 'done']),
  token: z.string().nullable(),
  username: z.string().nullable(),
  expiresAt: z.string().nullable(),
});
export type CliLoginClaimed = z.infer<typeof cliLoginClaimed>;
