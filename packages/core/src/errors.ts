/**
 * The one error type of Gatehouse. Every failure a user can act on carries a stable
 * `code` from the closed union below and a message that says what to do next.
 * Messages never contain secrets: callers name the field, never its value.
 */
export const errorCodes = {
  BAD_REQUEST: 400,
  VALIDATION_FAILED: 400,
  UNAUTHENTICATED: 401,
  MFA_REQUIRED: 401,
  FORBIDDEN: 403,
  CSRF_FAILED: 403,
  /**
   * A connection to a link-local or cloud-metadata address, refused (the server setting
   * breakglassAllowLinkLocal allows them). Its own code: the storage SDKs copy an error's
   * code onto theirs, and networkReason() knows the refusal by it.
   */
  FORBIDDEN_ADDRESS: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  LOCKED: 423,
  RATE_LIMITED: 429,
  CONFIG_INVALID: 500,
  VAULT_UNAVAILABLE: 500,
  INTERNAL: 500,
  /**
   * A peer answered something unusable, or refused: a gateway (wrong key, malformed answer),
   * the server on a gateway's link, a break-glass storage target (TargetError).
   */
  BAD_GATEWAY: 502,
  NOT_READY: 503,
  /**
   * A peer did not answer: a gateway's management port, the server over a gateway's link,
   * the built-in gateway; the server, to the CLI or the console.
   */
  UNREACHABLE: 503,
} as const;

export type ErrorCode = keyof typeof errorCodes;

/** Whether `value` is one of the codes (an error code received from another process). */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorCodes, value);
}

/** One problem with one field of an input: `path` names it, `message` says what is wrong. */
export interface FieldIssue {
  path: string;
  message: string;
}

export class GatehouseError extends Error {
  readonly code: ErrorCode;
  readonly issues: readonly FieldIssue[];

  constructor(code: ErrorCode, message: string, issues: readonly FieldIssue[] = []) {
    super(message);
    this.name = 'GatehouseError';
    this.code = code;
    this.issues = issues;
  }

  get httpStatus(): number {
    return errorCodes[this.code];
  }
}

export class ValidationError extends GatehouseError {
  constructor(message: string, issues: readonly FieldIssue[]) {
    super('VALIDATION_FAILED', message, issues);
    this.name = 'ValidationError';
  }
}

export class NotFoundError extends GatehouseError {
  constructor(what: string, id: string) {
    super('NOT_FOUND', `${what} ${JSON.stringify(id)} does not exist. Check the id, or list them to find it.`);
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends GatehouseError {
  constructor(message: string, issues: readonly FieldIssue[] = []) {
    super('CONFLICT', message, issues);
    this.name = 'ConflictError';
  }
}

/**
 * A broken invariant: a bug, never the caller's doing. The server logs it and answers the
 * opaque 500 it gives any unknown error; the message is for the log.
 */
export class InternalError extends GatehouseError {
  constructor(message: string) {
    super('INTERNAL', message);
    this.name = 'InternalError';
  }
}

export class ForbiddenError extends GatehouseError {
  constructor(message = 'Your role does not allow this. Ask an administrator for access.') {
    super('FORBIDDEN', message);
    this.name = 'ForbiddenError';
  }
}

/** Turns zod-style issue paths (`['devices', 3, 'name']`) into `devices[3].name`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(body)' : out;
}
