import {
  accessTypes,
  extraCredential,
  formatPath,
  protocols,
  providers,
  SECRET_MASK,
  tag,
  ValidationError,
  type FieldIssue,
} from '@gatehouse/core';
import type { Inventory } from '@gatehouse/db';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../services.js';

/** The columns of an inventory file, one row per account (a device without accounts has one row with no account). */
export const inventoryColumns = [
  'project',
  'device',
  'provider',
  'protocols',
  'public_ip',
  'private_ip',
  'url_port',
  'access_type',
  'tags',
  'account',
  'password',
  'private_key',
  'pem_file_name',
  'passphrase',
  'extra_credential',
] as const;

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

const list = (item: z.ZodType) =>
  z.preprocess(
    (v) =>
      typeof v === 'string'
        ? v
            .split(/[;,]/)
            .map((s) => s.trim())
            .filter((s) => s !== '')
        : (v ?? []),
    z.array(item),
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
  provider: z.enum(providers, { error: `must be one of ${providers.join(', ')}` }),
  protocols: list(z.enum(protocols, { error: `must be among ${protocols.join(', ')}` })),
  public_ip: ip,
  private_ip: ip,
  url_port: text(2048),
  access_type: z.preprocess(
    (v) => (v === '' || v === undefined ? 'gateway' : v),
    z.enum(accessTypes, { error: `must be one of ${accessTypes.join(', ')}` }),
  ),
  tags: list(tag),
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
type ImportRow = z.infer<typeof importRow>;

export interface ImportResult {
  rows: number;
  projectsCreated: number;
  devicesCreated: number;
  devicesUpdated: number;
  accountsCreated: number;
  accountsUpdated: number;
  dryRun: boolean;
  /** A dry run's first rows as they would be written, each secret only as set / kept / none. */
  preview?: PreviewRow[];
}

export interface PreviewRow {
  line: string;
  project: string;
  device: string;
  provider: string;
  address: string | null;
  account: string | null;
  /** For each secret column: "set" (a new value), "keep" (the mask: the stored value stays) or "none". */
  secrets: Record<'password' | 'private_key' | 'passphrase' | 'extra_credential', 'set' | 'keep' | 'none'>;
}

const PREVIEW_ROWS = 200;

/** Thrown inside a dry run's transaction to roll it back with what it would have done. */
class DryRun extends Error {
  constructor(readonly counts: Awaited<ReturnType<Inventory['importItems']>>) {
    super('dry run');
  }
}

/** Parses and checks every row; throws one ValidationError that lists every bad row and field. */
export function parseInventoryFile(format: 'csv' | 'json', body: string): ImportRow[] {
  let records: unknown[];
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
      const parsed: unknown = JSON.parse(body);
      const rows = Array.isArray(parsed) ? parsed : (parsed as { rows?: unknown } | null)?.rows;
      if (!Array.isArray(rows)) throw new Error('expected an array of rows or { "rows": [...] }');
      records = rows;
    }
  } catch (error) {
    // The parser's own message may quote the file; give the position only.
    const where = (error as { lines?: number }).lines;
    throw new ValidationError(
      `The ${format.toUpperCase()} file could not be read${where ? ` (near line ${where})` : ''}. ${format === 'csv' ? `Check quoting and that every row has the ${inventoryColumns.length} columns.` : 'Send an array of row objects.'}`,
      [{ path: 'file', message: `is not valid ${format.toUpperCase()}` }],
    );
  }
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

/** Keeps the stored secret when the file holds the export's mask. */
const keep = <T>(v: T | null): T | null | undefined => (v === SECRET_MASK ? undefined : v);

/** Writes the rows in one transaction: projects, devices and accounts are created or updated by name. */
/**
 * Writes the rows in one transaction; with `dryRun`, runs the same writes and rolls them
 * back, so the counts are those a real import would have.
 */
export async function importInventory(inventory: Inventory, rows: ImportRow[], dryRun = false): Promise<Omit<ImportResult, 'dryRun'>> {
  const items = rows.map((row) => ({
    project: row.project,
    device: {
      name: row.device,
      provider: row.provider,
      protocols: [...new Set(row.protocols)] as (typeof protocols)[number][],
      publicIp: row.public_ip,
      privateIp: row.private_ip,
      urlPort: row.url_port,
      accessType: row.access_type,
      tags: [...new Set(row.tags)] as string[],
    },
    account:
      row.account === null
        ? null
        : {
            username: row.account,
            password: keep(row.password),
            privateKey: keep(row.private_key),
            passphrase: keep(row.passphrase),
            extraCredential: keep(row.extra_credential) as Record<string, string> | null | undefined,
            pemFileName: row.pem_file_name,
          },
  }));
  if (!dryRun) return { rows: rows.length, ...(await inventory.transaction((tx) => tx.importItems(items))) };
  try {
    await inventory.transaction(async (tx) => {
      throw new DryRun(await tx.importItems(items));
    });
  } catch (error) {
    if (error instanceof DryRun) return { rows: rows.length, ...error.counts };
    throw error;
  }
  throw new Error('unreachable: a dry run always rolls back');
}

function previewOf(rows: ImportRow[], format: 'csv' | 'json'): PreviewRow[] {
  const state = (v: unknown) => (v === null || v === undefined || v === '' ? 'none' : v === SECRET_MASK ? 'keep' : 'set');
  return rows.slice(0, PREVIEW_ROWS).map((row, i) => ({
    line: format === 'csv' ? `row ${i + 2}` : `rows[${i}]`,
    project: row.project,
    device: row.device,
    provider: row.provider,
    address: row.private_ip ?? row.public_ip ?? row.url_port,
    account: row.account,
    secrets: {
      password: state(row.password),
      private_key: state(row.private_key),
      passphrase: state(row.passphrase),
      extra_credential: state(row.extra_credential),
    },
  }));
}

/** Every device and account as rows, secrets shown only as the mask. */
export async function exportInventory(inventory: Inventory): Promise<Record<(typeof inventoryColumns)[number], string>[]> {
  const rows: Record<(typeof inventoryColumns)[number], string>[] = [];
  for await (const { project, device, accounts } of inventory.walk()) {
    const base = {
      project: project.name,
      device: device.name,
      provider: device.provider,
      protocols: device.protocols.join(';'),
      public_ip: device.publicIp ?? '',
      private_ip: device.privateIp ?? '',
      url_port: device.urlPort ?? '',
      access_type: device.accessType,
      tags: device.tags.join(';'),
    };
    const none = { account: '', password: '', private_key: '', pem_file_name: '', passphrase: '', extra_credential: '' };
    if (accounts.length === 0) rows.push({ ...base, ...none });
    for (const a of accounts) {
      rows.push({
        ...base,
        account: a.username,
        password: a.password ?? '',
        private_key: a.privateKey ?? '',
        pem_file_name: a.pemFileName ?? '',
        passphrase: a.passphrase ?? '',
        extra_credential: a.extraCredential ?? '',
      });
    }
  }
  return rows;
}

export function importExportRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  app.addContentTypeParser('text/csv', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  r.post(
    '/inventory/import',
    {
      config: { access: ['admin'] },
      schema: {
        tags: ['inventory'],
        summary:
          'Import projects, devices and accounts from CSV (text/csv) or JSON; all rows or none. ' +
          'dryRun=true writes nothing and answers what the import would do and a preview of the rows (secrets only as set/keep/none)',
        querystring: z.strictObject({ dryRun: z.enum(['true', 'false']).default('false') }),
      },
    },
    async (req) => {
      const isCsv = (req.headers['content-type'] ?? '').startsWith('text/csv');
      const raw = isCsv ? (req.body as string) : JSON.stringify(req.body);
      const dryRun = req.query.dryRun === 'true';
      let rows: ImportRow[];
      try {
        rows = parseInventoryFile(isCsv ? 'csv' : 'json', raw);
      } catch (error) {
        await services.audit(req, {
          action: 'inventory.import',
          outcome: 'failure',
          details: { format: isCsv ? 'csv' : 'json', problems: (error as ValidationError).issues?.length ?? 1 },
        });
        throw error;
      }
      const result: ImportResult = { ...(await importInventory(services.inventory, rows, dryRun)), dryRun };
      await services.audit(req, { action: 'inventory.import', outcome: 'success', details: { ...result, format: isCsv ? 'csv' : 'json' } });
      return dryRun ? { ...result, preview: previewOf(rows, isCsv ? 'csv' : 'json') } : result;
    },
  );

  r.get(
    '/inventory/export',
    {
      config: { access: ['admin', 'auditor'] },
      schema: {
        tags: ['inventory'],
        summary: 'Export the inventory (secrets masked)',
        querystring: z.strictObject({ format: z.enum(['csv', 'json']).default('json') }),
      },
    },
    async (req, reply) => {
      const rows = await exportInventory(services.inventory);
      await services.audit(req, {
        action: 'inventory.export',
        outcome: 'success',
        details: { rows: rows.length, format: req.query.format },
      });
      if (req.query.format === 'csv') {
        return reply
          .type('text/csv; charset=utf-8')
          .send(stringify(rows, { header: true, columns: [...inventoryColumns], cast: { string: csvCell } }));
      }
      return { rows };
    },
  );
}
