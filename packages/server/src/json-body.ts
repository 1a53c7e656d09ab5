import { Readable } from 'node:stream';
import { formatPath, GatehouseError, ValidationError } from '@gatehouse/core';

/** The deepest nesting of arrays and objects a request may have; no API body needs more than a few. */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Whether the JSON text `text` nests arrays and objects deeper than `max`, counted outside
 * strings in one pass without parsing, so a body nested thousands deep is refused before
 * anything walks it.
 */
export function jsonNestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // Skip to the closing quote: one not preceded by an odd run of backslashes.
      for (;;) {
        i = text.indexOf('"', i + 1);
        if (i < 0) return false; // not valid JSON: the parser says so
        let backslashes = 0;
        while (text.charCodeAt(i - 1 - backslashes) === BACKSLASH) backslashes++;
        if (backslashes % 2 === 0) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

/** The answer to a body that does not parse as JSON (the parser's own message quotes the body). */
export const INVALID_JSON_MESSAGE = 'The request body is not valid JSON. Send one JSON object with Content-Type: application/json.';

export const tooDeepError = () =>
  new GatehouseError(
    'BAD_REQUEST',
    `The request body nests arrays or objects more than ${MAX_JSON_DEPTH} levels deep. Send the flat JSON the API documents (see /api/v1/docs).`,
  );

/**
 * The paths in `value` of strings (or keys) that hold a NUL character. Walks with its own
 * stack (a deep value cannot overflow the call stack) and refuses values nested deeper
 * than MAX_JSON_DEPTH.
 */
export function nulCharacterPaths(value: unknown): string[] {
  const found: string[] = [];
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value, path: [] }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const { value: v, path } = next;
    if (typeof v === 'string') {
      if (v.includes('\u0000')) found.push(formatPath(path));
      continue;
    }
    // A streamed body (an upload) or bytes (the import's file, read by its route) is not text.
    if (v === null || typeof v !== 'object' || v instanceof Readable || ArrayBuffer.isView(v)) continue;
    if (path.length >= MAX_JSON_DEPTH) throw tooDeepError();
    const children: [string | number, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    // Pushed last to first, so the paths come out in document order.
    for (let i = children.length - 1; i >= 0; i--) {
      const [key, child] = children[i] as [string | number, unknown];
      if (typeof key === 'string' && key.includes('\u0000')) found.push(formatPath(path));
      else stack.push({ value: child, path: [...path, key] });
    }
  }
  return found;
}

/** The 400 for NUL characters at `paths` (as nulCharacterPaths gives them, with a prefix), or null when there are none. */
export function nulCharacterError(paths: readonly string[]): ValidationError | null {
  if (paths.length === 0) return null;
  const issues = paths.map((path) => ({ path, message: 'must not contain a NUL character (\\u0000)' }));
  return new ValidationError(`The request is invalid: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}.`, issues);
}
