/**
 * The words of runbooks (verdicts, step types and statuses, input types, password classes),
 * apart from the document parser so that the console can import them without Node's modules.
 */

export const VERDICTS = ['SUCCESS', 'FAILED', 'CHANGED-BUT-UNVERIFIED'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** A device's item in a run: a verdict, or SKIPPED when it never ran (rotation: nothing to rotate). */
export type ItemVerdict = Verdict | 'SKIPPED';

export const STEP_TYPES = ['check', 'fix', 'verify-login', 'rotate-credential'] as const;
export type StepType = (typeof STEP_TYPES)[number];

export const STEP_STATUSES = ['passed', 'failed', 'fixed', 'would-fix', 'would-rotate', 'skipped', 'error', 'rotated', 'ran'] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

export const INPUT_TYPES = ['string', 'integer', 'boolean', 'path', 'enum'] as const;
export type InputType = (typeof INPUT_TYPES)[number];

export const PASSWORD_CLASSES = ['lower', 'upper', 'digit', 'symbol'] as const;
export type PasswordClass = (typeof PASSWORD_CLASSES)[number];
