import {
  GatehouseError,
  accessTypes,
  extraCredential,
  formatPath,
  protocolList,
  providerName,
  SECRET_MASK,
  tag,
  ValidationError,
  type ErrorCode,
  type FieldIssue,
} from '@gatehouse/core';
import { inventoryColumns } from '@gatehouse/api';
import { parse } from 'csv-parse/sync';
import { z } from 'zod';
import { INVALID_JSON_MESSAGE, nulCharacterError, nulCharacterPaths } from '../../json-body.js';

/*
 * Reading an inventory file: the columns, the row schema and the CSV cell rules. Kept apart
 * from the routes so the import's worker thread (inventory-file-worker.ts) loads only this.
 */

export { inventoryColumns };

/**
 * A cell that starts with = + - @, a tab or a carriage return is a formula to a spreadsheet
 * (OWASP "CSV injection"); so is one that starts with quotes and then one of those, once a
 * spreadsheet drops the first quote.
 */
const FORMULA_START = /^'*[=+\-@\t\r]/;
const QUOTED_FORMULA_START = /^'+[=+\-@\t\r]/;

/**
 * The export's cell for `value`: a leading quote (which a spreadsheet shows as text) before
 * anything a spreadsheet would run as a formula.
 */
export const csvCell = (value: string) => (FORMULA_START.test(value) ? `'${value}` : value);

/**
 * The value of an imported CSV cell: the inverse of csvCell. One leading quote comes off
 * only when quotes and then = + - @, a tab or CR follow, so every exported cell reads back
 * as it was and any other cell (`'abc`) is kept whole; a hand-written `'=x` imports as `=x`,
 * and `''=x` as `'=x`.
 */
export const csvValue = (cell: string) => (QUOTED_FORMULA_START.test(cell) ? cell.slice(1) : cell);

/** A cell of `;`- or `,`-separated words (a JSON row may give an array) read by `array`. */
const list = <T extends z.ZodType>(array: T) =>
  z.preprocess(
    (v) =>
      typeof v === 'string'
        ? v
            .split(/[;,]/)
            .map((s) => s.trim())
            .filter((s) => s !== '')
        : (v ?? []),
    array,
  );
const blankToNull = (v: unknown) => (v === '' || v === undefined ? null : v);
const text = (max: number) => z.preprocess(blankToNull, z.string().max(max, `must be at most ${max} characters`).nullable());
const ip = z.preprocess(
  blankToNull,
  z
    .string()
    .refine((s) => z.ipv4().safeParse(s).success || z.ipv6().safeParse(s).success, 'must be an IPv4 or IPv6 address')
    .nullable(),
);

const importRow = z.strictObject({
  project: z.string().trim().min(1, 'is required').max(200),
  device: z.string().trim().min(1, 'is required').max(200),
  provider: z.preprocess((v) => (v === undefined ? '' : v), providerName),
  protocols: list(protocolList),
  public_ip: ip,
  private_ip: ip,
  url_port: text(2048),
  access_type: z.preprocess(
    (v) => (v === '' || v === undefined ? 'gateway' : v),
    z.enum(accessTypes, { error: `must be one of ${accessTypes.join(', ')}` }),
  ),
  tags: list(z.array(tag)),
  account: text(200),
  password: text(4096),
  private_key: text(65_536).refine(
    (s) => s === null || s === SECRET_MASK || /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(s),
    'must be a PEM private key',
  ),
  pem_file_name: text(255).refine((s) => s === null || /^[^/\\]+$/.test(s), 'must be a file name without / or \\'),
  passphrase: text(4096),
  extra_credential: z.preprocess(
    (v) => {
      if (v === '' || v === undefined || v === null) return null;
      if (typeof v !== 'string' || v === SECRET_MASK) return v;
      try {
        return JSON.parse(v) as unknown;
      } catch {
        return Symbol('invalid');
      }
    },
    z.union([z.literal(SECRET_MASK), extraCredential]).nullable(),
  ),
});
export type ImportRow = z.infer<typeof importRow>;

/** A file that is not rows at all: CSV that does not parse, or JSON that is not an array of rows. */
function unreadable(format: 'csv' | 'json', line?: number): ValidationError {
  return new ValidationError(
    `The ${format.toUpperCase()} file could not be read${line ? ` (near line ${line})` : ''}. ${format === 'csv' ? `Check quoting and that every row has the ${inventoryColumns.length} columns.` : 'Send an array of row objects.'}`,
    [{ path: 'file', message: `is not valid ${format.toUpperCase()}` }],
  );
}

/**
 * Parses and checks every row; throws one ValidationError that lists every bad row and
 * field. Synchronous and seconds long for a large file: the import runs it on a worker
 * thread (readInventoryFile).
 */
export function parseInventoryFile(format: 'csv' | 'json', body: string): ImportRow[] {
  let records: unknown[];
  let json: unknown;
  const lineOf = (i: number) => (format === 'csv' ? `row ${i + 2}` : `rows[${i}]`);
  try {
    if (format === 'csv') {
      records = parse<Record<string, string>>(body, {
        columns: true,
        skip_empty_lines: true,
        trim: false,
        bom: true,
        relax_column_count: false,
        cast: (cell) => csvValue(cell),
      });
    } else {
      try {
        json = JSON.parse(body);
      } catch {
        // As for any other body that is not JSON (errors.ts).
        throw new GatehouseError('BAD_REQUEST', INVALID_JSON_MESSAGE);
      }
      const rows = Array.isArray(json) ? json : (json as { rows?: unknown } | null)?.rows;
      if (!Array.isArray(rows)) throw unreadable(format);
      records = rows;
    }
  } catch (error) {
    if (error instanceof GatehouseError) throw error;
    // The parser's own message may quote the file; give the position only.
    throw unreadable(format, (error as { lines?: number }).lines);
  }
  // The checks every body gets (app.ts), on the file the route kept as bytes.
  const nul = nulCharacterError(format === 'csv' ? (body.includes('\u0000') ? ['body'] : []) : nulCharacterPaths(json));
  if (nul) throw nul;
  const issues: FieldIssue[] = [];
  const rows: ImportRow[] = [];
  const seen = new Map<string, number>();
  records.forEach((record, i) => {
    const result = importRow.safeParse(record);
    if (!result.success) {
      for (const issue of result.error.issues) {
        const fields = issue.code === 'unrecognized_keys' ? issue.keys : [formatPath(issue.path)];
        for (const f of fields)
          issues.push({
            path: `${lineOf(i)}.${f}`,
            message: issue.code === 'unrecognized_keys' ? `is not a column (columns: ${inventoryColumns.join(', ')})` : issue.message,
          });
      }
      return;
    }
    const row = result.data;
    if (row.account === null && (row.password ?? row.private_key ?? row.passphrase ?? row.extra_credential) !== null) {
      issues.push({ path: `${lineOf(i)}.account`, message: 'is required when a credential is given' });
    }
    const key = JSON.stringify([row.project, row.device, row.account]);
    const first = seen.get(key);
    if (first !== undefined)
      issues.push({ path: `${lineOf(i)}.account`, message: `repeats ${lineOf(first)} (same project, device and account)` });
    else seen.set(key, i);
    rows.push(row);
  });
  if (records.length === 0) issues.push({ path: 'file', message: 'has no rows' });
  if (issues.length > 0) {
    const shown = issues.slice(0, 20).map((x) => `${x.path} ${x.message}`);
    throw new ValidationError(
      `The import has ${issues.length} problem${issues.length === 1 ? '' : 's'}; nothing was written. ${shown.join('; ')}${issues.length > 20 ? '; …' : ''}`,
      issues,
    );
  }
  return rows;
}

/** The import's body: the file as it came, read on the worker thread. */
export interface InventoryFile {
  format: 'csv' | 'json';
  bytes: Uint8Array;
}

/** What it sends back: the checked rows in batches and then `done`, or the 400 it found. */
export type InventoryFileMessage =
  { rows: ImportRow[] } | { done: true } | { failure: { code: ErrorCode; message: string; issues: readonly FieldIssue[] } };

/** Rows per message: each message is deserialized on the main thread in one go (about 1-2 ms). */
export const ROWS_PER_MESSAGE = 1000;
