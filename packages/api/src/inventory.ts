import { z } from 'zod';

/**
 * The inventory as one file (`/inventory/import`, `/inventory/export`): one row per account,
 * the columns of the break-glass workbook; a device without accounts has one row with no account.
 */

/** The columns of an inventory file, in order. */
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
export type InventoryColumn = (typeof inventoryColumns)[number];

export const inventoryImportQuery = z.strictObject({ dryRun: z.enum(['true', 'false']).default('false') });

/** What a secret cell does: "set" (a new value), "keep" (the mask: the stored value stays) or "none". */
export const secretCellAction = z.enum(['set', 'keep', 'none']);

/** A dry run's row as it would be written, each secret only as what it does. */
export const importPreviewRow = z.object({
  line: z.string(),
  project: z.string(),
  device: z.string(),
  provider: z.string(),
  address: z.string().nullable(),
  account: z.string().nullable(),
  secrets: z.object({
    password: secretCellAction,
    private_key: secretCellAction,
    passphrase: secretCellAction,
    extra_credential: secretCellAction,
  }),
});
export type ImportPreviewRow = z.infer<typeof importPreviewRow>;

export const importResult = z.object({
  rows: z.number().int(),
  projectsCreated: z.number().int(),
  devicesCreated: z.number().int(),
  devicesUpdated: z.number().int(),
  accountsCreated: z.number().int(),
  accountsUpdated: z.number().int(),
  dryRun: z.boolean(),
  /** A dry run's first rows (at most 200). */
  preview: z.array(importPreviewRow).optional(),
});
export type ImportResult = z.infer<typeof importResult>;

export const inventoryExportQuery = z.strictObject({ format: z.enum(['csv', 'json']).default('json') });

/** One exported row: every column, secrets only as the mask. */
export const inventoryRow = z.record(z.enum(inventoryColumns), z.string());
export type InventoryRow = z.infer<typeof inventoryRow>;

/** JSON: `{ rows }`; CSV (format=csv): the same rows under a header line. */
export const inventoryExport = z.union([
  z.object({ rows: z.array(inventoryRow) }),
  z.string().describe('text/csv: a header line with the columns, then one line per row'),
]);
export type InventoryExport = z.infer<typeof inventoryExport>;
