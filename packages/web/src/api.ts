/**
 * The console's one way to the API: JSON over fetch with the session cookie, the CSRF
 * token on every write, and the API's error body turned into an ApiError whose issues
 * name the fields. The CSRF token lives only in this module's memory (never in storage or
 * a URL); after a reload it comes back from GET /auth/me.
 */

export const API = '/api/v1';

import type { ErrorBody } from '@gatehouse/api';

export type FieldIssue = NonNullable<ErrorBody['error']['issues']>[number];

/** One of the API's closed set of error codes (core/src/errors.ts). */
export type ErrorCode = ErrorBody['error']['code'];

/** The server's code, or for an answer without one (a proxy's), INTERNAL or BAD_REQUEST by its status. */
export function errorCodeOf(status: number, code: ErrorCode | undefined): ErrorCode {
  return code ?? (status >= 500 ? 'INTERNAL' : 'BAD_REQUEST');
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly issues: readonly FieldIssue[] = [],
  ) {
    super(message);
  }

  /** The message for one field (the issue's path without a leading `body.`), if the API named it. */
  field(name: string): string | undefined {
    return this.issues.find(
      (i) => i.path === name || i.path === `body.${name}` || i.path.startsWith(`${name}.`) || i.path.startsWith(`${name}[`),
    )?.message;
  }
}

let csrfToken: string | null = null;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** The session's CSRF token, for requests that do not go through `request` (a file upload's XHR). */
export function currentCsrfToken(): string | null {
  return csrfToken;
}

/**
 * A WebSocket to the API's `path` (binary messages as ArrayBuffer) whose first message, once
 * open, is the `start` that `start()` answers then, with the session's CSRF token: how the
 * browser terminal and desktop begin (the server checks the token before anything else).
 */
export function openStartedSocket<S extends { type: 'start'; csrfToken: string }>(
  path: string,
  start: () => Omit<S, 'csrfToken'>,
): WebSocket {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${API}${path}`);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => ws.send(JSON.stringify({ ...start(), csrfToken: csrfToken ?? '' }));
  return ws;
}

/** Called when a request answers 401: the shell goes back to the sign-in page. */
let onSignedOut: (() => void) | undefined;
export function whenSignedOut(fn: () => void): void {
  onSignedOut = fn;
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A body sent as it is (a CSV file, say) instead of as JSON. */
export class RawBody {
  constructor(
    readonly text: string,
    readonly contentType: string,
  ) {}
}

/** One request with the session cookie and, for writes, the CSRF header; a network failure as an ApiError. */
async function send(method: Method, path: string, accept: string, body: unknown): Promise<Response> {
  const headers: Record<string, string> = { accept };
  const raw = body instanceof RawBody ? body : undefined;
  if (body !== undefined) headers['content-type'] = raw ? raw.contentType : 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  try {
    return await fetch(`${API}${path}`, {
      method,
      headers,
      body: body === undefined ? null : raw ? raw.text : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'UNREACHABLE', 'The server did not answer. Check that Gatehouse is running and try again.');
  }
}

/** The API's error body (`{ error: { code, message, issues } }`) of a failed answer; a 401 signs the page out. */
function failureOf(res: Response, parsed: unknown, path: string): ApiError {
  const error = (parsed as Partial<ErrorBody> | undefined)?.error;
  if (res.status === 401 && path !== '/auth/login' && path !== '/auth/me') onSignedOut?.();
  return new ApiError(
    res.status,
    errorCodeOf(res.status, error?.code),
    error?.message ?? `The server answered ${res.status} ${res.statusText}.`,
    error?.issues ?? [],
  );
}

export async function api<T>(method: Method, path: string, body?: unknown): Promise<T> {
  const res = await send(method, path, 'application/json', body);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    // not JSON: reported below
  }
  if (!res.ok) throw failureOf(res, parsed, path);
  return parsed as T;
}

/** A GET whose answer is bytes (a desktop recording); errors are the API's usual error body. */
export async function apiBytes(path: string): Promise<Uint8Array> {
  const res = await send('GET', path, '*/*', undefined);
  if (res.ok) return new Uint8Array(await res.arrayBuffer());
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: failureOf says the status
  }
  throw failureOf(res, parsed, path);
}

/**
 * A request whose answer is JSON lines (application/x-ndjson), each handed to `onLine` as
 * it arrives: the break-glass Test reports each stage when it is done. Errors before the
 * stream starts are the API's usual error body.
 */
export async function apiLines(path: string, body: unknown, onLine: (line: Record<string, unknown>) => void): Promise<void> {
  const res = await send('POST', path, 'application/x-ndjson', body);
  if (!res.ok || !res.body) throw failureOf(res, await res.json().catch(() => undefined), path);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (value) buffered += value;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line !== '') onLine(JSON.parse(line) as Record<string, unknown>);
    }
    if (done) return;
  }
}

/** A query string from the defined values, in order. */
export function query(values: Record<string, string | number | boolean | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}

// Shapes of what the pages read (the API's OpenAPI document has them all).

/** The signed-in user, which every page is given. */
export type { Role, User } from '@gatehouse/api';

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}
