import { randomInt } from 'node:crypto';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { GatehouseError } from './errors.js';
import {
  INPUT_TYPES,
  PASSWORD_CLASSES,
  STEP_TYPES,
  type PasswordClass,
  type StepStatus,
  type StepType,
  type Verdict,
} from './runbook-terms.js';

/**
 * Runbooks: named, versioned documents of steps run on devices through the gateway with a
 * privileged account. This module is the contract every part shares: the document schema
 * (YAML, validated with errors naming the step and field), step results and the verdict,
 * which is SUCCESS only when every post-condition was checked and held.
 */

export * from './runbook-terms.js';

/**
 * Variables the engine provides to every document, beside its inputs: `account` is the
 * privileged account; `verifyAccount` the account a new login proves sshd with (the first
 * other account with a password or key in the vault, else the privileged one).
 */
export const ENGINE_VARIABLES = ['device.name', 'device.sshPort', 'account', 'verifyAccount'] as const;

const NAME = /^[A-Za-z][A-Za-z0-9-]{0,63}$/;
const STEP_ID = /^[a-z][a-z0-9-]{0,63}$/;
const INPUT_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const PLACEHOLDER = /\{\{\s*([A-Za-z][A-Za-z0-9_.]*)\s*\}\}/g;

const scalar = z.union([z.string(), z.number(), z.boolean()]);

const inputSchema = z.strictObject({
  type: z.enum(INPUT_TYPES, { error: `must be one of ${INPUT_TYPES.join(', ')}` }),
  description: z.string().max(500, 'must be at most 500 characters').optional(),
  default: scalar.optional(),
  required: z.boolean({ error: 'must be true or false' }).optional(),
  values: z.array(z.string().min(1)).min(1, 'must list at least one value').max(50).optional(),
  min: z.number().int().optional(),
  max: z.number().int().optional(),
});

const condition = z.union(
  [
    z.strictObject({ passed: z.string({ error: 'must name a step' }) }),
    z.strictObject({ failed: z.string({ error: 'must name a step' }) }),
  ],
  { error: 'must be { passed: <step id> } or { failed: <step id> }' },
);

const expectSchema = z.strictObject({
  exitCode: z.number({ error: 'must be a number' }).int('must be a whole number').min(0).max(255).optional(),
  stdout: z.string().optional(),
  stdoutNot: z.string().optional(),
});

const common = {
  id: z.string({ error: 'is required' }).regex(STEP_ID, 'must be lower-case letters, digits and dashes, starting with a letter'),
  title: z.string({ error: 'is required' }).min(1, 'is required').max(200, 'must be at most 200 characters'),
  when: condition.optional(),
};
const run = z.string({ error: 'is required: the shell command to run' }).min(1, 'is required: the shell command to run').max(65_536);

const checkStep = z.strictObject({
  ...common,
  type: z.literal('check'),
  run,
  expect: expectSchema.optional(),
  timeoutSeconds: z.number().int().min(1).max(3600).optional(),
});
const fixStep = z.strictObject({
  ...common,
  type: z.literal('fix'),
  for: z.string({ error: 'is required: the id of the check this fix repairs' }),
  run,
  timeoutSeconds: z.number().int().min(1).max(3600).optional(),
});
const verifyLoginStep = z.strictObject({ ...common, type: z.literal('verify-login'), account: z.string().min(1).optional() });
const rotateStep = z.strictObject({
  ...common,
  type: z.literal('rotate-credential'),
  account: z.string({ error: 'is required: the account whose credential is rotated' }).min(1),
  credential: z.string().min(1).optional(),
});

const stepSchema = z.discriminatedUnion('type', [checkStep, fixStep, verifyLoginStep, rotateStep], {
  error: `must have a type: one of ${STEP_TYPES.join(', ')}`,
});

const documentSchema = z.strictObject({
  name: z.string({ error: 'is required' }).regex(NAME, 'must be letters, digits and dashes, starting with a letter (at most 64)'),
  version: z.number({ error: 'is required: a whole number from 1' }).int('must be a whole number').min(1, 'must be 1 or more'),
  description: z.string().max(2000, 'must be at most 2000 characters').optional(),
  inputs: z.record(z.string(), inputSchema).optional(),
  steps: z.array(stepSchema, { error: 'is required: a list of steps' }).min(1, 'must have at least one step').max(200, 'at most 200 steps'),
});

export type RunbookInput = z.infer<typeof inputSchema>;
export type RunbookStep = z.infer<typeof stepSchema>;
export type CheckStep = z.infer<typeof checkStep>;
export type FixStep = z.infer<typeof fixStep>;
export type VerifyLoginStep = z.infer<typeof verifyLoginStep>;
export type RotateCredentialStep = z.infer<typeof rotateStep>;
export type RunbookDocument = z.infer<typeof documentSchema>;

/** A FieldIssue of the document. */
export interface SchemaProblem {
  /** Where: `steps[2] (restore-config).for`, `inputs.port.type`, `version`. */
  path: string;
  message: string;
}

/** A runbook document that is not valid YAML or breaks the schema; the message lists every problem. */
export class RunbookSchemaError extends GatehouseError {
  constructor(readonly problems: SchemaProblem[]) {
    super(
      'VALIDATION_FAILED',
      `The runbook is not valid: ${problems
        .slice(0, 20)
        .map((p) => (p.path ? `${p.path}: ${p.message}` : p.message))
        .join('; ')}${problems.length > 20 ? `; and ${problems.length - 20} more` : ''}`,
      problems,
    );
    this.name = 'RunbookSchemaError';
  }
}

/** `steps[2] (restore-config).for` from a zod path, naming the step by its id when it has one. */
function pathOf(raw: unknown, path: readonly PropertyKey[]): string {
  let out = '';
  let node: unknown = raw;
  path.forEach((key, i) => {
    if (typeof key === 'number') {
      out += `[${key}]`;
      node = Array.isArray(node) ? node[key] : undefined;
      const id = node && typeof node === 'object' ? (node as { id?: unknown }).id : undefined;
      if (i > 0 && path[i - 1] === 'steps' && typeof id === 'string') out += ` (${id})`;
    } else {
      out += out ? `.${String(key)}` : String(key);
      node = node && typeof node === 'object' ? (node as Record<string, unknown>)[key as string] : undefined;
    }
  });
  return out;
}

/** Parses and validates a runbook document; throws RunbookSchemaError naming every problem. */
export function parseRunbook(text: string): RunbookDocument {
  if (text.length > 256 * 1024) throw new RunbookSchemaError([{ path: '', message: 'the document is larger than 256 KiB' }]);
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new RunbookSchemaError(doc.errors.map((e) => ({ path: '', message: `YAML: ${e.message.split('\n')[0] ?? e.message}` })));
  }
  const raw: unknown = doc.toJS();
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new RunbookSchemaError([{ path: '', message: 'the document must be a mapping with name, version and steps' }]);
  }
  // A step with a type the schema does not know: say so plainly, before zod's union message.
  const steps = (raw as { steps?: unknown }).steps;
  const unknownTypes: SchemaProblem[] = [];
  if (Array.isArray(steps)) {
    steps.forEach((s: unknown, i) => {
      const type = s && typeof s === 'object' ? (s as { type?: unknown }).type : undefined;
      if (typeof type === 'string' && !(STEP_TYPES as readonly string[]).includes(type)) {
        unknownTypes.push({
          path: pathOf(raw, ['steps', i, 'type']),
          message: `unknown step type "${type.slice(0, 40)}": use one of ${STEP_TYPES.join(', ')}`,
        });
      }
    });
  }
  if (unknownTypes.length > 0) throw new RunbookSchemaError(unknownTypes);
  const parsed = documentSchema.safeParse(raw);
  if (!parsed.success) {
    throw new RunbookSchemaError(parsed.error.issues.map((issue) => ({ path: pathOf(raw, issue.path), message: issue.message })));
  }
  const problems = crossCheck(parsed.data);
  if (problems.length > 0) throw new RunbookSchemaError(problems);
  return parsed.data;
}

/** What the schema alone cannot say: unique ids, references to earlier steps, known placeholders, input defaults. */
function crossCheck(document: RunbookDocument): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  const inputs = document.inputs ?? {};
  for (const [name, input] of Object.entries(inputs)) {
    if (!INPUT_NAME.test(name))
      problems.push({ path: `inputs.${name}`, message: 'must be letters, digits and _ (starting with a letter)' });
    if (input.type === 'enum' && !input.values) problems.push({ path: `inputs.${name}.values`, message: 'is required for an enum input' });
    if (input.type !== 'enum' && input.values) problems.push({ path: `inputs.${name}.values`, message: 'is only for an enum input' });
    if (input.default !== undefined && !isPlaceholder(input.default)) {
      const checked = coerceInput(name, input, input.default);
      if (!checked.ok) problems.push({ path: `inputs.${name}.default`, message: checked.message });
    }
  }
  const known = new Set<string>([...Object.keys(inputs), ...ENGINE_VARIABLES]);
  const seen = new Map<string, RunbookStep>();
  document.steps.forEach((step, i) => {
    const at = `steps[${i}] (${step.id})`;
    if (seen.has(step.id)) problems.push({ path: `${at}.id`, message: `"${step.id}" is used by an earlier step: ids must be unique` });
    if (step.when) {
      const ref = 'passed' in step.when ? step.when.passed : step.when.failed;
      if (!seen.has(ref)) problems.push({ path: `${at}.when`, message: `names "${ref}", which is not an earlier step` });
    }
    if (step.type === 'fix') {
      const target = seen.get(step.for);
      if (!target || target.type !== 'check')
        problems.push({ path: `${at}.for`, message: `names "${step.for}", which is not an earlier check` });
    }
    for (const [field, value] of Object.entries(step)) {
      if (typeof value !== 'string') continue;
      for (const match of value.matchAll(PLACEHOLDER)) {
        if (!known.has(match[1] as string)) {
          problems.push({
            path: `${at}.${field}`,
            message: `uses {{${match[1]}}}, which is neither an input nor one of ${ENGINE_VARIABLES.join(', ')}`,
          });
        }
      }
    }
    seen.set(step.id, step);
  });
  return problems;
}

const isPlaceholder = (value: unknown): boolean => typeof value === 'string' && /^\{\{.*\}\}$/.test(value.trim());

export type InputValue = string | number | boolean;

/** One input's value checked against its declaration; the message names what is wrong. */
export function coerceInput(
  name: string,
  input: RunbookInput,
  value: unknown,
): { ok: true; value: InputValue } | { ok: false; message: string } {
  const bad = (message: string) => ({ ok: false as const, message: `input ${name} ${message}` });
  switch (input.type) {
    case 'integer': {
      const n = typeof value === 'number' ? value : typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : NaN;
      if (!Number.isSafeInteger(n)) return bad('must be a whole number');
      if (input.min !== undefined && n < input.min) return bad(`must be at least ${input.min}`);
      if (input.max !== undefined && n > input.max) return bad(`must be at most ${input.max}`);
      return { ok: true, value: n };
    }
    case 'boolean':
      if (typeof value === 'boolean') return { ok: true, value };
      if (value === 'true' || value === 'false') return { ok: true, value: value === 'true' };
      return bad('must be true or false');
    case 'path':
      if (typeof value !== 'string' || !value.startsWith('/') || /[\0\n\r]/.test(value) || value.length > 4096) {
        return bad('must be an absolute path (starting with /)');
      }
      return { ok: true, value };
    case 'enum':
      if (typeof value !== 'string' || !(input.values ?? []).includes(value))
        return bad(`must be one of ${(input.values ?? []).join(', ')}`);
      return { ok: true, value };
    case 'string':
      if (typeof value !== 'string' && typeof value !== 'number') return bad('must be text');
      if (/[\0]/.test(String(value)) || String(value).length > 4096) return bad('must be text without NUL, at most 4096 characters');
      return { ok: true, value: String(value) };
  }
}

/**
 * The inputs of a run: each given value checked, defaults filled in (a default may be an
 * engine variable, `{{device.sshPort}}`), unknown and missing required ones refused.
 * Throws BAD_REQUEST naming the input.
 */
export function resolveInputs(
  document: RunbookDocument,
  given: Record<string, unknown>,
  variables: Record<string, InputValue>,
): Record<string, InputValue> {
  const declared = document.inputs ?? {};
  for (const name of Object.keys(given)) {
    if (!(name in declared)) {
      const names = Object.keys(declared);
      throw new GatehouseError(
        'BAD_REQUEST',
        `${document.name} has no input "${name.slice(0, 64)}"${names.length ? `: its inputs are ${names.join(', ')}` : ': it takes no inputs'}.`,
      );
    }
  }
  const out: Record<string, InputValue> = {};
  for (const [name, input] of Object.entries(declared)) {
    let value: unknown = given[name];
    if (value === undefined || value === '') {
      if (input.default === undefined) {
        if (input.required)
          throw new GatehouseError(
            'BAD_REQUEST',
            `${document.name} needs input ${name}${input.description ? ` (${input.description})` : ''}.`,
          );
        continue;
      }
      value = isPlaceholder(input.default) ? substitute(String(input.default), variables, (v) => String(v)) : input.default;
    }
    const checked = coerceInput(name, input, value);
    if (!checked.ok) throw new GatehouseError('BAD_REQUEST', `${checked.message}.`);
    out[name] = checked.value;
  }
  return out;
}

/** Quotes a value for a POSIX shell: one argument, whatever it holds. */
export function shellQuote(value: InputValue): string {
  return `'${String(value).replace(/'/g, `'\\''`)}'`;
}

/**
 * `{{name}}` replaced by each value (through `quote`: shellQuote for commands). An unknown
 * name is left as is (the schema refuses them before a run).
 */
export function substitute(text: string, values: Record<string, InputValue>, quote: (value: InputValue) => string = shellQuote): string {
  return text.replace(PLACEHOLDER, (whole, name: string) => (name in values ? quote(values[name] as InputValue) : whole));
}

export interface StepResult {
  id: string;
  type: StepType | 'privileged';
  title: string;
  status: StepStatus;
  exitCode: number | null;
  /** The end of the command's output (≤ 4 KiB), secrets never included. */
  output: string;
  /** One line for people: why it passed, failed, or what it would change. */
  evidence: string;
  startedAt: string;
  durationMs: number;
}

/** Which steps are post-conditions: every check and every login verification. */
export const isPostCondition = (type: StepResult['type']): boolean => type === 'check' || type === 'verify-login';

/**
 * The verdict of one device's item: SUCCESS only when every post-condition was checked
 * and held. A post-condition that failed makes it FAILED; one left unchecked makes it
 * CHANGED-BUT-UNVERIFIED when something was changed, FAILED otherwise.
 * `steps` holds the final result of each step (a re-checked check appears once, as its last result).
 */
export function verdictOf(steps: readonly StepResult[], changed: boolean): Verdict {
  const post = steps.filter((s) => isPostCondition(s.type));
  const failed = steps.some((s) => s.status === 'failed' || (s.type === 'rotate-credential' && s.status === 'error'));
  if (failed) return 'FAILED';
  const unchecked = post.length === 0 || post.some((s) => s.status !== 'passed' && s.status !== 'fixed');
  if (unchecked) return changed ? 'CHANGED-BUT-UNVERIFIED' : 'FAILED';
  if (steps.some((s) => s.status === 'would-fix' || s.status === 'would-rotate')) return 'FAILED';
  return 'SUCCESS';
}

// Passwords

export interface PasswordPolicy {
  length: number;
  classes: PasswordClass[];
}

export const DEFAULT_PASSWORD_POLICY: PasswordPolicy = { length: 24, classes: ['lower', 'upper', 'digit', 'symbol'] };

const ALPHABETS: Record<PasswordClass, string> = {
  lower: 'abcdefghijkmnopqrstuvwxyz',
  upper: 'ABCDEFGHJKLMNPQRSTUVWXYZ',
  digit: '23456789',
  // No quote, backslash, colon or space: the password passes through chpasswd's `user:password` and shells.
  symbol: '!#%+,-./=?@^_~',
};

/** `lower,upper,digit` → classes; throws BAD_REQUEST naming the unknown one. */
export function parsePasswordClasses(text: string): PasswordClass[] {
  const classes = text
    .split(',')
    .map((c) => c.trim())
    .filter(Boolean);
  for (const c of classes) {
    if (!(PASSWORD_CLASSES as readonly string[]).includes(c)) {
      throw new GatehouseError('BAD_REQUEST', `Password class "${c.slice(0, 20)}" is unknown: use ${PASSWORD_CLASSES.join(', ')}.`);
    }
  }
  if (classes.length === 0) throw new GatehouseError('BAD_REQUEST', `Name at least one password class: ${PASSWORD_CLASSES.join(', ')}.`);
  return [...new Set(classes)] as PasswordClass[];
}

/** A random password of the policy's length with at least one character of every class (crypto RNG, no modulo bias). */
export function generatePassword(policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY): string {
  if (!Number.isInteger(policy.length) || policy.length < 12 || policy.length > 128) {
    throw new GatehouseError('BAD_REQUEST', 'The password length must be from 12 to 128.');
  }
  if (policy.classes.length === 0) throw new GatehouseError('BAD_REQUEST', 'The password policy needs at least one class.');
  const all = policy.classes.map((c) => ALPHABETS[c]).join('');
  const chars = policy.classes.map((c) => pick(ALPHABETS[c]));
  while (chars.length < policy.length) chars.push(pick(all));
  // Fisher–Yates, so the guaranteed characters are not always first.
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j] as string, chars[i] as string];
  }
  return chars.join('');
}

const pick = (alphabet: string): string => alphabet[randomInt(alphabet.length)] as string;
