import { once, type EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import ExcelJS from 'exceljs';
import { assignSheetNames, INDEX_SHEET, PEM_SHEET } from './sheet-names.js';

/** The columns of every project sheet, exactly as spec/001 "Connection Information" lists them. */
export const CONNECTION_COLUMNS = [
  'Provider',
  'Device name',
  'Protocol',
  'Public IP address',
  'Private IP address',
  'URL/Port',
  'Access type',
  'Account',
  'Password',
  'PEM file name',
  'Extra credential',
] as const;

export const PEM_COLUMNS = ['PEM file name', 'Project', 'Device name', 'Account', 'Private key', 'Passphrase'] as const;
export const INDEX_COLUMNS = ['Project', 'Sheet', 'Devices', 'Accounts'] as const;

/** One row of a project sheet: one account (or a device with no account). */
export interface ConnectionRow {
  /** As the inventory wrote it (`AWS`), as are the protocols (`MySQL`). */
  provider: string;
  deviceName: string;
  protocols: readonly string[];
  publicIp: string | null;
  privateIp: string | null;
  urlPort: string | null;
  accessType: string;
  account: string | null;
  password: string | null;
  pemFileName: string | null;
  extraCredential: Readonly<Record<string, string>> | null;
}

export interface PemKeyRow {
  pemFileName: string;
  project: string;
  deviceName: string;
  account: string;
  privateKey: string;
  passphrase: string | null;
}

export interface ProjectSummary {
  id: string;
  name: string;
  devices: number;
  accounts: number;
}

/**
 * What the workbook is made from. Rows are pulled project by project, already sorted by
 * device name, so nothing but the current row is held in memory.
 */
export interface BreakGlassSource {
  projects(): Promise<ProjectSummary[]>;
  rows(projectId: string): AsyncIterable<ConnectionRow>;
  privateKeys(): AsyncIterable<PemKeyRow>;
}

export interface WorkbookCounts {
  projects: number;
  devices: number;
  accounts: number;
  privateKeys: number;
}

/** Extra credentials as `key: value` lines in one cell. */
export function formatExtraCredential(extra: Readonly<Record<string, string>> | null): string {
  if (!extra) return '';
  return Object.entries(extra)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n');
}

/**
 * Every cell is a plain string (written inline, never a formula or a number), whatever
 * it starts with: a device named `=HYPERLINK("x")` stays text.
 */
function textRow(values: readonly (string | null | undefined)[]): string[] {
  return values.map((v) => v ?? '');
}

/**
 * Lets the zip compressor and the consumer run. exceljs' sheet streams neither apply
 * backpressure nor give the event loop a turn, and a synchronous source (SQLite) never
 * does either: without this pause the whole workbook would pile up in memory before a
 * byte left. When the consumer is behind, wait until it has drained.
 */
async function letOutputFlow(output: Writable): Promise<void> {
  if (output.writableNeedDrain) await once(output, 'drain');
  else await new Promise((resolve) => setImmediate(resolve));
}

const ROWS_PER_TURN = 256;

/**
 * exceljs commits a sheet at once but zips it later, in order; a fast source would queue
 * every sheet in memory ahead of the compressor. This waits, after each commit, until the
 * committed sheets are zipped, so the next sheet streams straight into the compressor
 * instead of queuing whole behind the previous one. (Allowing one committed sheet in
 * flight kept a sheet's XML buffered at all times: those buffers outlived young-generation
 * GCs and piled up as about 60 MiB of external memory at 100,000 devices, for no gain in
 * speed; see bench/README.md.)
 */
function sheetGate(workbook: ExcelJS.stream.xlsx.WorkbookWriter) {
  const zip = (workbook as unknown as { zip: EventEmitter }).zip;
  let zipped = 0;
  let wake: (() => void) | undefined;
  zip.on('entry', (entry: { name?: string }) => {
    if (/worksheets\/sheet\d+\.xml$/.test(entry.name ?? '')) {
      zipped += 1;
      wake?.();
    }
  });
  return async (committed: number) => {
    while (committed > zipped) await new Promise<void>((resolve) => (wake = resolve));
  };
}

/**
 * Streams the break-glass workbook into `output`: an index sheet, one sheet per project,
 * and a sheet of PEM keys. Each sheet is committed as soon as it is written, so memory
 * holds one row at a time, not the workbook.
 */
export async function writeConnectionWorkbook(source: BreakGlassSource, output: Writable, generatedAt: Date): Promise<WorkbookCounts> {
  const workbook = new ExcelJS.stream.xlsx.WorkbookWriter({ stream: output, useSharedStrings: false, useStyles: false });
  workbook.creator = 'Gatehouse';
  workbook.created = generatedAt;

  const zipped = sheetGate(workbook);
  let committed = 0;
  const commit = async (sheet: ExcelJS.Worksheet) => {
    sheet.commit();
    committed += 1;
    await zipped(committed);
  };
  const projects = await source.projects();
  const sheetNames = assignSheetNames(projects.map((p) => p.name));
  const counts: WorkbookCounts = { projects: projects.length, devices: 0, accounts: 0, privateKeys: 0 };
  for (const p of projects) {
    counts.devices += p.devices;
    counts.accounts += p.accounts;
  }

  const index = workbook.addWorksheet(INDEX_SHEET);
  index.addRow(textRow(['Gatehouse break-glass export'])).commit();
  index.addRow(textRow(['Generated at (UTC)', generatedAt.toISOString()])).commit();
  index
    .addRow(textRow(['Projects', String(counts.projects), 'Devices', String(counts.devices), 'Accounts', String(counts.accounts)]))
    .commit();
  index.addRow([]).commit();
  index.addRow(textRow([...INDEX_COLUMNS])).commit();
  projects.forEach((p, i) => index.addRow(textRow([p.name, sheetNames[i], String(p.devices), String(p.accounts)])).commit());
  await commit(index);

  for (const [i, project] of projects.entries()) {
    const sheet = workbook.addWorksheet(sheetNames[i]);
    sheet.addRow(textRow([...CONNECTION_COLUMNS])).commit();
    let n = 0;
    for await (const r of source.rows(project.id)) {
      if (++n % ROWS_PER_TURN === 0) await letOutputFlow(output);
      sheet
        .addRow(
          textRow([
            r.provider,
            r.deviceName,
            r.protocols.join(', '),
            r.publicIp,
            r.privateIp,
            r.urlPort,
            r.accessType,
            r.account,
            r.password,
            r.pemFileName,
            formatExtraCredential(r.extraCredential),
          ]),
        )
        .commit();
    }
    await commit(sheet);
  }

  const pem = workbook.addWorksheet(PEM_SHEET);
  pem.addRow(textRow([...PEM_COLUMNS])).commit();
  for await (const k of source.privateKeys()) {
    if ((counts.privateKeys + 1) % ROWS_PER_TURN === 0) await letOutputFlow(output);
    pem.addRow(textRow([k.pemFileName, k.project, k.deviceName, k.account, k.privateKey, k.passphrase])).commit();
    counts.privateKeys += 1;
  }
  await commit(pem);
  await workbook.commit();
  return counts;
}
