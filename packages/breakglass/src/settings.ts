import { z } from 'zod';
import { isAwsEndpoint } from './destination.js';
import { isAgeRecipient } from './seal.js';

/**
 * Break-glass settings: the fields of spec/001 (System Management > Break Glass Backup)
 * plus what we decided in DESIGN.md. One schema for the API, the console and the mounted
 * Kubernetes secret. Secret fields are marked so they can be masked and sealed.
 */
export const secretSettingKeys = ['secretAccessKey', 'accountKey', 'sasToken', 'passphrase', 'alertWebhookUrl'] as const;
export type SecretSettingKey = (typeof secretSettingKeys)[number];

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be a time of day as HH:mm (00:00 to 23:59)');

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const timeZone = z.string().refine(isTimeZone, 'must be an IANA time zone such as UTC, Asia/Tokyo or Europe/Berlin');
const text = (max: number) => z.string().trim().max(max, `must be at most ${max} characters`);
const optionalText = (max: number) =>
  text(max)
    .optional()
    .transform((s) => (s === '' ? undefined : s));
/**
 * An endpoint: a host with an optional port and path. A query string is refused: a SAS URL
 * pasted as the endpoint would carry its token into Test messages and audit details.
 */
const host = (noQuery: string) =>
  z
    .string()
    .trim()
    .max(500)
    .refine((s) => !s.includes('?'), noQuery)
    .refine(
      (s) => s === '' || /^[A-Za-z0-9.[\]:-]+(:\d+)?(\/.*)?$/.test(s.replace(/^[a-z]+:\/\//i, '')),
      'must be a host name or address, optionally with :port',
    )
    .optional()
    .transform((s) => (s === '' ? undefined : s));

const common = {
  executeTime: hhmm,
  timeZone: timeZone.default('UTC'),
  /** Object names start with this (a "folder"): the writer policy is scoped to it. */
  prefix: text(200)
    .regex(/^[A-Za-z0-9!_.*'()/-]*$/, "may hold letters, digits and ! _ . * ' ( ) / - only")
    .default('gatehouse/'),
  encryption: z.enum(['age', 'passphrase', 'none']).default('age'),
  ageRecipients: z
    .array(z.string().trim().refine(isAgeRecipient, 'must be an age X25519 recipient (age1…, 62 characters)'))
    .max(20)
    .default([]),
  passphrase: z.string().max(1024).optional(),
  caBundle: z
    .string()
    .max(200_000)
    .refine((s) => s.trim() === '' || s.includes('-----BEGIN CERTIFICATE-----'), 'must be PEM certificates (-----BEGIN CERTIFICATE-----)')
    .optional()
    .transform((s) => (s?.trim() === '' ? undefined : s)),
  alertWebhookUrl: z
    .string()
    .trim()
    .max(2000)
    .refine((s) => s === '' || /^https?:\/\//.test(s), 'must be an http(s) URL')
    .optional()
    .transform((s) => (s === '' ? undefined : s)),
};

export const s3Settings = z.strictObject({
  provider: z.literal('s3'),
  ...common,
  /**
   * `keys` (default): the access key below. `default`: the server's own AWS identity (the
   * SDK's default chain: environment, profile, instance role), for AWS's endpoints only.
   */
  credentials: z.enum(['keys', 'default']).default('keys'),
  accessKeyId: optionalText(256),
  secretAccessKey: z.string().max(1024).optional(),
  bucket: z
    .string()
    .trim()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid bucket name: 3-63 lower-case letters, digits, dots and hyphens'),
  protocol: z.enum(['http', 'https']).default('https'),
  url: host(
    'must not hold a query string (?…): give the host, optionally with :port, and the access key in accessKeyId and secretAccessKey',
  ),
  region: optionalText(64),
  pathStyle: z.boolean().default(false),
  acl: z.enum(['bucket-owner-full-control', 'none']).default('bucket-owner-full-control'),
});

export const blobSettings = z.strictObject({
  provider: z.literal('blob'),
  ...common,
  /** Optional with a blobEndpoint: taken from it (the portal's SAS connection string has no AccountName). */
  accountName: z
    .string()
    .trim()
    .regex(/^([a-z0-9]{3,24})?$/, 'must be 3-24 lower-case letters and digits')
    .optional()
    .transform((s) => (s === '' ? undefined : s)),
  accountKey: z.string().max(1024).optional(),
  sasToken: z.string().max(4096).optional(),
  container: z
    .string()
    .trim()
    .regex(
      /^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/,
      'must be a valid container name: 3-63 lower-case letters, digits and single hyphens',
    ),
  protocol: z.enum(['http', 'https']).default('https'),
  endpointSuffix: text(200).default('core.windows.net'),
  blobEndpoint: host(
    'must not hold a query string (?…): give the endpoint URL only, and the SAS token in sasToken (a SAS URL pasted here would be shown in Test messages and audit details)',
  ),
});

export const breakGlassSettings = z
  .discriminatedUnion('provider', [s3Settings, blobSettings], { error: 'must be s3 or blob' })
  .superRefine((s, ctx) => {
    if (s.encryption === 'age' && s.ageRecipients.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['ageRecipients'], message: 'needs at least one age recipient when encryption is age' });
    }
    if (s.encryption === 'passphrase' && !s.passphrase) {
      ctx.addIssue({ code: 'custom', path: ['passphrase'], message: 'is required when encryption is passphrase' });
    }
    if (s.provider === 's3') checkS3Credentials(s, ctx);
    if (s.provider === 'blob') checkBlobCredentials(s, ctx);
  })
  .transform((s) => (s.provider === 'blob' && !s.accountName ? { ...s, accountName: accountFromEndpoint(s.blobEndpoint) } : s));

export type BreakGlassSettings = z.infer<typeof breakGlassSettings>;

/**
 * The storage account a Blob endpoint names: `https://acct.blob.core.windows.net` → `acct`,
 * Azurite's `http://127.0.0.1:10000/devstoreaccount1` → `devstoreaccount1`.
 */
export function accountFromEndpoint(endpoint: string | undefined): string | undefined {
  if (!endpoint) return undefined;
  let url: URL;
  try {
    url = new URL(/^[a-z]+:\/\//i.test(endpoint) ? endpoint : `https://${endpoint}`);
  } catch {
    return undefined;
  }
  const account = /^([a-z0-9]{3,24})\.blob\./i.exec(url.hostname)?.[1] ?? url.pathname.split('/')[1];
  return account && /^[a-z0-9]{3,24}$/.test(account) ? account : undefined;
}

/**
 * A Blob setting has a credential and an account: the account name may be left out when
 * the blob endpoint names it, or when a SAS token goes to a blob endpoint (the SAS alone
 * authorizes; only the account key needs the account's name to sign with).
 */
function checkBlobCredentials(s: z.infer<typeof blobSettings>, ctx: z.RefinementCtx) {
  if (!s.accountKey && !s.sasToken) {
    ctx.addIssue({ code: 'custom', path: ['accountKey'], message: 'give the account key or a SAS token' });
  }
  if (s.accountName || accountFromEndpoint(s.blobEndpoint)) return;
  if (!s.blobEndpoint) {
    ctx.addIssue({
      code: 'custom',
      path: ['accountName'],
      message: 'is required: give the storage account name, or a blobEndpoint (a SAS connection string has one)',
    });
  } else if (s.accountKey) {
    ctx.addIssue({
      code: 'custom',
      path: ['accountName'],
      message: 'is required with an account key when the blobEndpoint does not name the account: give the storage account name',
    });
  }
}

/**
 * An S3 setting says which credentials it uses: the server's own AWS identity is never a
 * silent fallback for a missing key, and it is only lent to AWS itself, over HTTPS.
 */
function checkS3Credentials(s: z.infer<typeof s3Settings>, ctx: z.RefinementCtx) {
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  if (s.credentials === 'keys') {
    if (!s.accessKeyId) {
      issue(
        'accessKeyId',
        'is required: give the access key ID and secret key (or set credentials to "default" to use the server\'s own AWS identity, for AWS endpoints only)',
      );
    } else if (!s.secretAccessKey) issue('secretAccessKey', 'is required with an access key ID');
    return;
  }
  const why = 'must be empty when credentials is "default" (the server\'s own AWS identity)';
  if (s.accessKeyId) issue('accessKeyId', why);
  if (s.secretAccessKey) issue('secretAccessKey', why);
  if (s.url && !isAwsEndpoint(s.url)) {
    issue(
      'credentials',
      'may be "default" only for AWS endpoints (url empty or *.amazonaws.com): the server\'s own AWS identity is not lent to other servers. Give an access key instead',
    );
  }
  if (s.protocol !== 'https')
    issue('protocol', 'must be https when credentials is "default": the session token would travel in plain text');
}
