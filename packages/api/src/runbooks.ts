import { INPUT_TYPES, PASSWORD_CLASSES, STEP_STATUSES, STEP_TYPES, VERDICTS } from '@gatehouse/core/runbook-terms';
import { z } from 'zod';
import { timestamp } from './common.js';

/**
 * Runbooks (`/runbooks`), their runs (`/runbook-runs`), rotation after a break-glass export
 * (`/breakglass/rotations`) and scheduled rotation (`/projects/:id/rotation-policy`,
 * `/devices/:id/rotation-policy`). Admins only.
 */

export const RUNBOOK_DEFAULT_CONCURRENCY = 4;
export const RUNBOOK_MAX_CONCURRENCY = 32;

export const verdict = z.enum(VERDICTS);
export const itemVerdict = z.enum([...VERDICTS, 'SKIPPED']);
export const stepStatus = z.enum(STEP_STATUSES);

export const runbookInput = z.object({
  name: z.string(),
  type: z.enum(INPUT_TYPES),
  description: z.string().nullable(),
  default: z.union([z.string(), z.number(), z.boolean()]).nullable(),
  required: z.boolean(),
  values: z.array(z.string()).nullable(),
});

export const runbookSummary = z.object({
  name: z.string(),
  version: z.number().int(),
  description: z.string().nullable(),
  builtIn: z.boolean(),
  sha256: z.string(),
  inputs: z.array(runbookInput),
  steps: z.array(z.object({ id: z.string(), type: z.enum(STEP_TYPES), title: z.string() })),
  createdAt: timestamp.nullable(),
  createdBy: z.string().nullable(),
});
export type RunbookSummary = z.infer<typeof runbookSummary>;

/** `GET /runbooks/:name`: the summary and the document as written. */
export const runbookDetail = runbookSummary.extend({ yaml: z.string() });
export type RunbookDetail = z.infer<typeof runbookDetail>;

export const runbookCreate = z.strictObject({
  yaml: z
    .string({ error: 'is required: the runbook document (YAML)' })
    .min(1, 'is required: the runbook document (YAML)')
    .max(256 * 1024),
});
export type RunbookCreate = z.infer<typeof runbookCreate>;

const id = z.string().min(1, 'is required').max(100);

export const runbookRunCreate = z.strictObject({
  runbook: z.string({ error: 'is required: the runbook name' }).min(1, 'is required: the runbook name').max(64),
  /** Omitted: the newest version. */
  version: z.number().int().min(1).optional(),
  deviceIds: z.array(id).max(5000, 'at most 5000 devices').optional(),
  /** Every device of the project (with deviceIds: those too). */
  projectId: id.optional(),
  inputs: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  /** false (default): a dry run that changes nothing and says what it would change. */
  apply: z.boolean().optional(),
  /** The account the commands run as (root, or one allowed passwordless sudo). Default root. */
  privilegedAccount: z.string().min(1).max(64).optional(),
  concurrency: z
    .number()
    .int()
    .min(1, 'must be at least 1')
    .max(RUNBOOK_MAX_CONCURRENCY, `must be at most ${RUNBOOK_MAX_CONCURRENCY}`)
    .optional(),
});
export type RunbookRunCreate = z.infer<typeof runbookRunCreate>;

export const runbookStepResult = z.object({
  id: z.string(),
  type: z.enum([...STEP_TYPES, 'privileged']),
  title: z.string(),
  status: stepStatus,
  exitCode: z.number().int().nullable(),
  output: z.string(),
  evidence: z.string(),
  startedAt: timestamp,
  durationMs: z.number().int(),
});
export type RunbookStepResultView = z.infer<typeof runbookStepResult>;

export const rotationResult = z.enum(['rotated', 'failed', 'skipped', 'would-rotate']);

export const rotatedAccount = z.object({
  accountId: z.string(),
  username: z.string(),
  result: rotationResult,
  reason: z.string().nullable(),
  /** After the attempt: does the credential as it was in the export still log in? null: not checked. */
  fileCredentialWorks: z.boolean().nullable(),
});
export type RotatedAccountView = z.infer<typeof rotatedAccount>;

export const runbookRunItem = z.object({
  deviceId: z.string(),
  deviceName: z.string(),
  projectName: z.string(),
  state: z.enum(['queued', 'running', 'done']),
  verdict: itemVerdict.nullable(),
  /** Why the item failed or was skipped before or outside its steps. */
  error: z.string().nullable(),
  steps: z.array(runbookStepResult),
  /** Rotation runs: one entry per account. */
  accounts: z.array(rotatedAccount),
  startedAt: timestamp.nullable(),
  finishedAt: timestamp.nullable(),
});
export type RunbookRunItemView = z.infer<typeof runbookRunItem>;

export const runbookRunCounts = z.object({
  total: z.number().int(),
  done: z.number().int(),
  success: z.number().int(),
  failed: z.number().int(),
  unverified: z.number().int(),
  skipped: z.number().int(),
});

export const runbookRun = z.object({
  id: z.string(),
  kind: z.enum(['runbook', 'breakglass-rotation']),
  runbook: z.object({ name: z.string(), version: z.number().int(), sha256: z.string() }),
  apply: z.boolean(),
  inputs: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  privilegedAccount: z.string(),
  concurrency: z.number().int(),
  user: z.object({ id: z.string(), username: z.string() }),
  /** breakglass-rotation: the export it rotates. */
  breakglassRunId: z.string().nullable(),
  state: z.enum(['running', 'finished']),
  startedAt: timestamp,
  finishedAt: timestamp.nullable(),
  counts: runbookRunCounts,
  /** Only in `GET /runbook-runs/:id` and the create answer; lists leave it out. */
  items: z.array(runbookRunItem).optional(),
});
export type RunbookRunView = z.infer<typeof runbookRun>;

export const runbookRunListQuery = z.strictObject({
  deviceId: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  offset: z.coerce.number().int().min(0).default(0),
});

export const breakglassRotationCreate = z.strictObject({
  /** A break-glass run id, its manifest object name, or a sha256 prefix (8+ hex). Omitted: the latest successful export. */
  export: z.string().min(1).max(300).optional(),
  apply: z.boolean().optional(),
  privilegedAccount: z.string().min(1).max(64).optional(),
  concurrency: z.number().int().min(1).max(RUNBOOK_MAX_CONCURRENCY).optional(),
});
export type BreakglassRotationCreate = z.infer<typeof breakglassRotationCreate>;

export const passwordClass = z.enum(PASSWORD_CLASSES);

export const rotationPolicy = z.object({
  /** Rotate when the credential is older than this many days; null: no schedule. */
  everyDays: z.number().int().min(1).max(3650).nullable(),
  /** Rotate after every session that used the account. */
  afterSession: z.boolean(),
  credential: z.enum(['password', 'key', 'same']),
  passwordLength: z.number().int().min(12).max(128),
  passwordClasses: z.array(passwordClass).min(1),
  privilegedAccount: z.string().min(1).max(64),
});
export type RotationPolicyView = z.infer<typeof rotationPolicy>;

export const rotationPolicyAnswer = rotationPolicy.extend({
  scope: z.enum(['project', 'device']),
  scopeId: z.string(),
  setBy: z.object({ id: z.string(), username: z.string() }),
  updatedAt: timestamp,
});
export type RotationPolicyAnswer = z.infer<typeof rotationPolicyAnswer>;

export const rotationPolicyPut = z.strictObject({
  everyDays: z.number().int().min(1).max(3650).nullable().optional(),
  afterSession: z.boolean().optional(),
  credential: z.enum(['password', 'key', 'same']).optional(),
  passwordLength: z.number().int().min(12).max(128).optional(),
  passwordClasses: z.array(passwordClass).min(1).optional(),
  privilegedAccount: z.string().min(1).max(64).optional(),
});
export type RotationPolicyPut = z.infer<typeof rotationPolicyPut>;
