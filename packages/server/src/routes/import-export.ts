import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { GatehouseError, SECRET_MASK, type protocols, type ValidationError } from '@gatehouse/core';
import { timeSlicer, type ImportCounts, type ImportItem, type Inventory } from '@gatehouse/db';
import { stringify } from 'csv-stringify/sync';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../services.js';
import { csvCell, inventoryColumns, type ImportRow, type InventoryFile, type InventoryFileMessage } from './inventory-file.js';
import { admins, auditors } from '../access.js';

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

/** The worker thread's module beside this one; from the TypeScript sources (unit tests), the built one. */
function workerUrl(): URL {
  const sibling = new URL('./inventory-file-worker.js', import.meta.url);
  return existsSync(sibling) ? sibling : new URL('../../dist/routes/inventory-file-worker.js', import.meta.url);
}

/**
 * The reader thread, given the file's bytes: moved when they own their memory and it may
 * be moved, else copied (Node.js 22 and later refuse to move a Buffer's memory that it
 * marked untransferable, such as memory it may pool, with a DataCloneError).
 */
function startReader(file: InventoryFile): Worker {
  const { bytes } = file;
  const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
  try {
    return new Worker(workerUrl(), {
      workerData: { format: file.format, bytes: own } satisfies InventoryFile,
      transferList: [own.buffer as ArrayBuffer],
    });
  } catch (error) {
    if (!(error instanceof Error) || error.name !== 'DataCloneError') throw error;
    return new Worker(workerUrl(), { workerData: { format: file.format, bytes: new Uint8Array(bytes) } satisfies InventoryFile });
  }
}

/**
 * parseInventoryFile on a worker thread of its own: the main thread hands the bytes over
 * (moved, not copied, when they own their memory; decoding 100,000 rows is a stall of its
 * own) and takes the checked rows back, ROWS_PER_MESSAGE at a time, asking for each batch
 * after a turn of the event loop.
 */
export function readInventoryFile(file: InventoryFile): Promise<ImportRow[]> {
  return new Promise((resolve, reject) => {
    const rows: ImportRow[] = [];
    let settled = false;
    const worker = startReader(file);
    worker.on('message', (message: InventoryFileMessage) => {
      if ('rows' in message) {
        rows.push(...message.rows);
        // The next batch after a turn of the event loop.
        setImmediate(() => worker.postMessage('next'));
        return;
      }
      settled = true;
      void worker.terminate();
      if ('done' in message) resolve(rows);
      else reject(new GatehouseError(message.failure.code, message.failure.message, message.failure.issues));
    });
    worker.on('error', (error) => {
      settled = true;
      reject(error);
    });
    worker.on('exit', (code) => {
      if (!settled) reject(new Error(`The inventory file reader thread stopped (exit code ${code}) before it finished.`));
    });
  });
}

/** Keeps the stored secret when the file holds the export's mask. */
const keep = <T>(v: T | null): T | null | undefined => (v === SECRET_MASK ? undefined : v);

/** Writes the rows in one transaction: projects, devices and accounts are created or updated by name. */
/**
 * Writes the rows in one transaction; with `dryRun`, runs the same writes and rolls them
 * back, so the counts are those a real import would have.
 */
export async function importInventory(inventory: Inventory, rows: ImportRow[], dryRun = false): Promise<Omit<ImportResult, 'dryRun'>> {
  const pause = timeSlicer();
  const items: ImportItem[] = [];
  for (const row of rows) {
    await pause();
    items.push({
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
    });
  }
  let counts: ImportCounts;
  if (!dryRun) counts = await inventory.transaction((tx) => tx.importItems(items));
  else {
    try {
      await inventory.transaction(async (tx) => {
        throw new DryRun(await tx.importItems(items));
      });
      throw new Error('unreachable: a dry run always rolls back');
    } catch (error) {
      if (!(error instanceof DryRun)) throw error;
      counts = error.counts;
    }
  }
  // The COMMIT or ROLLBACK was the slice's last step, and the garbage collection that the
  // rows just freed brings comes next: let the event loop turn in between, so the two do
  // not add up to one stall (SQLite's dry run of 100,000 rows: 125 ms in one, < 80 ms apart).
  await nextTurn();
  return { rows: rows.length, ...counts };
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

  // The import's own context: its file arrives as bytes, CSV and JSON alike, and is read on
  // a worker thread (readInventoryFile), not parsed here on the main thread.
  void app.register((scope, _opts, done) => {
    scope.removeContentTypeParser('application/json');
    for (const format of ['csv', 'json'] as const) {
      const type = format === 'csv' ? 'text/csv' : 'application/json';
      scope.addContentTypeParser(type, { parseAs: 'buffer' }, (_req, bytes, parsed) =>
        parsed(null, { format, bytes: bytes as Buffer } satisfies InventoryFile),
      );
    }
    scope.withTypeProvider<ZodTypeProvider>().post(
      '/inventory/import',
      {
        config: admins,
        schema: {
          tags: ['inventory'],
          summary:
            'Import projects, devices and accounts from CSV (text/csv) or JSON; all rows or none. ' +
            'dryRun=true writes nothing and answers what the import would do and a preview of the rows (secrets only as set/keep/none)',
          querystring: z.strictObject({ dryRun: z.enum(['true', 'false']).default('false') }),
        },
      },
      async (req) => {
        const file = req.body as InventoryFile;
        const { format } = file;
        const dryRun = req.query.dryRun === 'true';
        let rows: ImportRow[];
        try {
          rows = await readInventoryFile(file);
        } catch (error) {
          await services.audit(req, {
            action: 'inventory.import',
            outcome: 'failure',
            details: { format, problems: (error as ValidationError).issues?.length ?? 1 },
          });
          throw error;
        }
        req.log.debug({ rows: rows.length, format }, 'inventory import: file read and checked');
        const result: ImportResult = { ...(await importInventory(services.inventory, rows, dryRun)), dryRun };
        await services.audit(req, { action: 'inventory.import', outcome: 'success', details: { ...result, format } });
        return dryRun ? { ...result, preview: previewOf(rows, format) } : result;
      },
    );
    done();
  });

  r.get(
    '/inventory/export',
    {
      config: auditors,
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
