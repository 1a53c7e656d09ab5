import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  importResult,
  inventoryExport,
  inventoryExportQuery,
  inventoryImportQuery,
  responses,
  type ImportPreviewRow,
  type ImportResult,
  type InventoryRow,
} from '@gatehouse/api';
import { InternalError, SECRET_MASK, type ValidationError } from '@gatehouse/core';
import { timeSlicer, type ImportCounts, type ImportItem, type Inventory } from '@gatehouse/db';
import { stringify } from 'csv-stringify/sync';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { admins, auditors } from '../../access.js';
import type { Services } from '../../services.js';
import { presentAccount } from '../accounts/presenter.js';
import { csvCell, inventoryColumns, type ImportRow, type InventoryFile } from './inventory-file.js';
import { readInventoryFile } from './read-inventory-file.js';

const PREVIEW_ROWS = 200;

/** Thrown inside a dry run's transaction to roll it back with what it would have done. */
class DryRun extends Error {
  constructor(readonly counts: ImportCounts) {
    super('dry run');
  }
}

/** Keeps the stored secret when the file holds the export's mask. */
const keep = <T>(v: T | null): T | null | undefined => (v === SECRET_MASK ? undefined : v);

/** The checked rows as the repository writes them, pausing every 10 ms of work (timeSlicer). */
async function importItemsOf(rows: readonly ImportRow[]): Promise<ImportItem[]> {
  const pause = timeSlicer();
  const items: ImportItem[] = [];
  for (const row of rows) {
    await pause();
    items.push({
      project: row.project,
      device: {
        name: row.device,
        provider: row.provider.value,
        providerAsWritten: row.provider.written,
        protocols: row.protocols.map((p) => p.value),
        protocolsAsWritten: row.protocols.map((p) => p.written),
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
  return items;
}

/** The same writes as an import, rolled back: the counts are those a real import would have. */
async function tryImport(inventory: Inventory, items: readonly ImportItem[]): Promise<ImportCounts> {
  try {
    await inventory.transaction(async (tx) => {
      throw new DryRun(await tx.importItems(items));
    });
  } catch (error) {
    if (error instanceof DryRun) return error.counts;
    throw error;
  }
  throw new InternalError('unreachable: a dry run always rolls back');
}

function previewOf(rows: ImportRow[], format: 'csv' | 'json'): ImportPreviewRow[] {
  const state = (v: unknown) => (v === null || v === undefined || v === '' ? 'none' : v === SECRET_MASK ? 'keep' : 'set');
  return rows.slice(0, PREVIEW_ROWS).map((row, i) => ({
    line: format === 'csv' ? `row ${i + 2}` : `rows[${i}]`,
    project: row.project,
    device: row.device,
    provider: row.provider.written,
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
export async function exportInventory(inventory: Inventory): Promise<InventoryRow[]> {
  const rows: InventoryRow[] = [];
  for await (const { project, device, accounts } of inventory.walk()) {
    const base = {
      project: project.name,
      device: device.name,
      provider: device.providerAsWritten,
      protocols: device.protocolsAsWritten.join(';'),
      public_ip: device.publicIp ?? '',
      private_ip: device.privateIp ?? '',
      url_port: device.urlPort ?? '',
      access_type: device.accessType,
      tags: device.tags.join(';'),
    };
    const none = { account: '', password: '', private_key: '', pem_file_name: '', passphrase: '', extra_credential: '' };
    if (accounts.length === 0) rows.push({ ...base, ...none });
    for (const a of accounts.map(presentAccount)) {
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

/** The inventory as one file: the import (all rows or none, checked first) and the export (secrets masked). */
export function inventoryFileRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['inventory'];

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
          tags,
          summary:
            'Import projects, devices and accounts from CSV (text/csv) or JSON; all rows or none. ' +
            'dryRun=true writes nothing and answers what the import would do and a preview of the rows (secrets only as set/keep/none)',
          querystring: inventoryImportQuery,
          response: responses({ 200: importResult }),
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
        const items = await importItemsOf(rows);
        let result: ImportResult;
        if (dryRun) {
          result = { rows: rows.length, ...(await tryImport(services.inventory, items)), dryRun };
          // A dry run changes nothing: its event is appended on its own.
          await services.audit(req, { action: 'inventory.import', outcome: 'success', details: { ...result, format } });
        } else {
          result = await services.withAudit(req, async (tx, audit) => {
            const written: ImportResult = { rows: rows.length, ...(await tx.inventory.importItems(items)), dryRun };
            audit({ action: 'inventory.import', outcome: 'success', details: { ...written, format } });
            return written;
          });
        }
        // The COMMIT or ROLLBACK was the slice's last step, and the garbage collection that the
        // rows just freed brings comes next: let the event loop turn in between, so the two do
        // not add up to one stall (SQLite's dry run of 100,000 rows: 125 ms in one, < 80 ms apart).
        await nextTurn();
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
        tags,
        summary: 'Export the inventory (secrets masked)',
        querystring: inventoryExportQuery,
        response: responses({ 200: inventoryExport }),
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
