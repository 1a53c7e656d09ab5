import { z } from 'zod';
import { maskedSecret as masked } from './accounts.js';
import { listOf, timestamp } from './common.js';

/**
 * Break glass (`/breakglass/…`): the settings, the Test, runs and their history, the
 * least-privilege policies. The settings body itself is checked by the break-glass
 * package's schema, which names every bad field; here it is an object of settings keys.
 */

/** A settings body (`PUT /breakglass/settings`, `POST /breakglass/test`): docs/BREAKGLASS.md lists the keys. */
export const breakGlassSettingsBody = z.record(z.string(), z.unknown());
export type BreakGlassSettingsBody = z.infer<typeof breakGlassSettingsBody>;

export const breakGlassSaveQuery = z.strictObject({ save: z.enum(['always', 'if-test-passes']).default('always') });

export const breakGlassRunsQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(500).default(50) });

export const breakGlassRunParams = z.strictObject({ id: z.string().min(1) });

export const breakGlassPolicyQuery = z.strictObject({
  writerArn: z.string().max(300).optional(),
  readerArn: z.string().max(300).optional(),
});

const common = {
  executeTime: z.string(),
  timeZone: z.string(),
  prefix: z.string(),
  encryption: z.enum(['age', 'passphrase', 'none']),
  ageRecipients: z.array(z.string()),
  passphrase: masked,
  caBundle: z.string().optional(),
  alertWebhookUrl: masked,
  protocol: z.enum(['http', 'https']),
};

/** The settings as shown: every field but the secrets, which are masked. */
export const breakGlassSettingsShown = z.discriminatedUnion('provider', [
  z.object({
    provider: z.literal('s3'),
    ...common,
    credentials: z.enum(['keys', 'default']),
    accessKeyId: z.string().optional(),
    secretAccessKey: masked,
    bucket: z.string(),
    url: z.string().optional(),
    region: z.string().optional(),
    pathStyle: z.boolean(),
    acl: z.enum(['bucket-owner-full-control', 'none']),
  }),
  z.object({
    provider: z.literal('blob'),
    ...common,
    accountName: z.string().optional(),
    accountKey: masked,
    sasToken: masked,
    container: z.string(),
    endpointSuffix: z.string(),
    blobEndpoint: z.string().optional(),
  }),
]);
export type BreakGlassSettingsShown = z.infer<typeof breakGlassSettingsShown>;

/** One stage of the Test, in Gatehouse's own words. */
export const breakGlassTestStage = z.object({
  stage: z.enum(['container', 'authentication', 'connection']),
  /** null when the stage could not be checked because an earlier one failed. */
  ok: z.boolean().nullable(),
  message: z.string(),
});
export type BreakGlassTestStage = z.infer<typeof breakGlassTestStage>;

export const breakGlassTestReport = z.object({
  ok: z.boolean(),
  stages: z.array(breakGlassTestStage),
  /** Rights the key has beyond create/write. */
  privilegeWarnings: z.array(z.string()),
  /** Plain HTTP to another machine, and the like. */
  warnings: z.array(z.string()).optional(),
});
export type BreakGlassTestReport = z.infer<typeof breakGlassTestReport>;

/** The last Test, kept on the server for every administrator: when, who, where, each stage's outcome. No secret. */
export const breakGlassLastTest = breakGlassTestReport.extend({
  at: timestamp,
  /** Who ran it (user name); null for the server itself. */
  by: z.string().nullable(),
  /** Where it tested: the bucket or container and its endpoint. */
  target: z.string(),
  warnings: z.array(z.string()),
});
export type BreakGlassLastTest = z.infer<typeof breakGlassLastTest>;

/** `GET /breakglass/settings`: the settings, where they come from, and the manifest signing key. */
export const breakGlassSettingsView = z.object({
  origin: z.enum(['database', 'mounted', 'none']),
  /** Mounted from a secret: not changed through the API. */
  readOnly: z.boolean(),
  settings: breakGlassSettingsShown.nullable(),
  /** Why the settings cannot run (invalid, or refused by the server's configuration). */
  error: z.string().nullable(),
  /** Encryption off, plain HTTP to another machine: shown above the settings. */
  warnings: z.array(z.string()),
  /** What only the server's configuration allows, so the console can say so before a save is refused. */
  serverAllows: z.object({ plaintext: z.boolean(), linkLocal: z.boolean() }),
  nextRun: timestamp.nullable(),
  signingKey: z.object({ publicKeyPem: z.string(), fingerprint: z.string() }),
  /** The last Test anyone ran (saved settings or a form's), null before the first. */
  lastTest: breakGlassLastTest.nullable(),
});
export type BreakGlassSettingsView = z.infer<typeof breakGlassSettingsView>;

/**
 * One line of the streamed Test (`Accept: application/x-ndjson`): each stage as it
 * completes, then the report, or an error when the Test could not run.
 */
export const breakGlassTestLine = z.discriminatedUnion('type', [
  breakGlassTestStage.extend({ type: z.literal('stage') }),
  breakGlassTestReport.extend({ type: z.literal('report') }),
  z.object({ type: z.literal('error'), message: z.string() }),
]);
export type BreakGlassTestLine = z.infer<typeof breakGlassTestLine>;

/** `POST /breakglass/test`: the report, or with `Accept: application/x-ndjson` its lines as they come. */
export const breakGlassTestAnswer = breakGlassTestReport.describe(
  'The report. With "Accept: application/x-ndjson" the answer is application/x-ndjson instead: one JSON object a line, ' +
    '{"type":"stage","stage","ok","message"} as each stage completes, then {"type":"report", …the report} ' +
    'or {"type":"error","message"} when the Test could not run',
);

/** `PUT /breakglass/settings`: the settings as now stored, whether they were saved, and the Test. */
export const breakGlassSaveResult = breakGlassSettingsView.extend({ saved: z.boolean(), test: breakGlassTestReport });
export type BreakGlassSaveResult = z.infer<typeof breakGlassSaveResult>;

export const breakGlassRun = z.object({
  id: z.string(),
  trigger: z.enum(['schedule', 'manual', 'catch-up']),
  startedAt: timestamp,
  finishedAt: timestamp.nullable(),
  result: z.enum(['running', 'success', 'failure']),
  attempts: z.number().int(),
  /** Where it writes: no secret in it. */
  target: z.string().nullable(),
  objects: z.object({ data: z.string().optional(), manifest: z.string().optional() }),
  counts: z.object({
    projects: z.number().int().optional(),
    devices: z.number().int().optional(),
    accounts: z.number().int().optional(),
    privateKeys: z.number().int().optional(),
  }),
  bytes: z.number().nullable(),
  sha256: z.string().nullable(),
  error: z.string().nullable(),
  errorStage: z.string().nullable(),
});
export type BreakGlassRun = z.infer<typeof breakGlassRun>;

export const breakGlassRunList = listOf(breakGlassRun);
export type BreakGlassRunList = z.infer<typeof breakGlassRunList>;

/** `GET /breakglass/runs/:id`: while it runs, the sealed bytes staged and the bytes sent so far. */
export const breakGlassRunProgress = breakGlassRun.extend({
  stagedBytes: z.number().nullable(),
  uploadedBytes: z.number().nullable(),
});
export type BreakGlassRunProgress = z.infer<typeof breakGlassRunProgress>;

const policyPart = z.object({
  description: z.string(),
  documents: z.array(z.object({ name: z.string(), content: z.string() })),
});

/** `GET /breakglass/policy`: ready-to-apply policies for the writer (Gatehouse) and the reader. */
export const breakGlassPolicies = z.object({ provider: z.enum(['s3', 'blob']), writer: policyPart, reader: policyPart });
export type BreakGlassPolicies = z.infer<typeof breakGlassPolicies>;
