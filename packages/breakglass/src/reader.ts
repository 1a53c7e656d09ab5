import { createHash } from 'node:crypto';
import { Decrypter } from 'age-encryption';
import ExcelJS from 'exceljs';
import { verifyManifest, type SignedManifest } from './manifest.js';
import { INDEX_SHEET, PEM_SHEET } from './sheet-names.js';
import { CONNECTION_COLUMNS, PEM_COLUMNS } from './workbook.js';

export type ConnectionRecord = Record<(typeof CONNECTION_COLUMNS)[number], string>;
export type PemRecord = Record<(typeof PEM_COLUMNS)[number], string>;

export interface OpenedExport {
  generatedAt: string | null;
  /** Hours since generatedAt (by this machine's clock). */
  ageHours: number | null;
  manifest:
    { status: 'verified'; manifest: SignedManifest } | { status: 'unverified'; reason: string } | { status: 'invalid'; reason: string };
  projects: { name: string; sheet: string; rows: ConnectionRecord[] }[];
  pemKeys: PemRecord[];
}

export interface OpenOptions {
  file: Buffer;
  manifest?: string | undefined;
  publicKeyPem?: string | undefined;
  /** age identity files' contents (AGE-SECRET-KEY-1… lines). */
  identities?: string[];
  passphrase?: string | undefined;
  now?: Date;
}

/** A problem opening an export, said so that the holder knows what to try. */
export class OpenError extends Error {
  override name = 'OpenError';
}

const AGE_MAGIC = 'age-encryption.org/v1';

function identityLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.startsWith('AGE-SECRET-KEY-'));
}

/**
 * Opens a break-glass export with no server, database or network: checks the manifest
 * (signature, hash, size), decrypts with age, and reads every sheet.
 */
export async function openExport(o: OpenOptions): Promise<OpenedExport> {
  let manifest: OpenedExport['manifest'] = { status: 'unverified', reason: 'no manifest was given' };
  if (o.manifest !== undefined) {
    if (!o.publicKeyPem) {
      manifest = { status: 'unverified', reason: 'no signing public key was given (--public-key): the manifest cannot be trusted' };
    } else {
      const check = verifyManifest(o.manifest, o.publicKeyPem);
      if (!check.ok) manifest = { status: 'invalid', reason: check.reason };
      else {
        const sha256 = createHash('sha256').update(o.file).digest('hex');
        if (sha256 !== check.manifest.sha256 || o.file.length !== check.manifest.bytes) {
          manifest = {
            status: 'invalid',
            reason: `the file does not match its manifest (SHA-256 ${sha256.slice(0, 16)}…, manifest says ${check.manifest.sha256.slice(0, 16)}…): it was replaced or damaged, or a run failed between its two uploads — check the run history`,
          };
        } else manifest = { status: 'verified', manifest: check.manifest };
      }
    }
  }

  let xlsx = o.file;
  if (o.file.subarray(0, AGE_MAGIC.length).toString('latin1') === AGE_MAGIC) {
    const d = new Decrypter();
    const identities = (o.identities ?? []).flatMap(identityLines);
    for (const id of identities) d.addIdentity(id);
    if (o.passphrase) d.addPassphrase(o.passphrase);
    if (identities.length === 0 && !o.passphrase)
      throw new OpenError('The file is sealed with age: give --identity <age key file> or --passphrase-stdin.');
    try {
      xlsx = Buffer.from(await d.decrypt(new Uint8Array(o.file)));
    } catch (error) {
      throw new OpenError(
        `age could not decrypt the file (${(error as Error).message}). Use the identity or passphrase the export was sealed to.`,
      );
    }
  } else if (o.file.subarray(0, 2).toString('latin1') !== 'PK') {
    throw new OpenError('The file is neither an age-sealed export nor a workbook. Is it the right file?');
  }

  const workbook = new ExcelJS.Workbook();
  try {
    await workbook.xlsx.load(xlsx as unknown as ArrayBuffer);
  } catch {
    throw new OpenError('The decrypted file is not a readable workbook.');
  }
  const cell = (row: ExcelJS.Row, i: number) => {
    const v = row.getCell(i).value;
    return v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  };
  const rowsOf = <K extends string>(sheet: ExcelJS.Worksheet, columns: readonly K[]): Record<K, string>[] => {
    const out: Record<K, string>[] = [];
    sheet.eachRow((row, n) => {
      if (n === 1) return;
      out.push(Object.fromEntries(columns.map((c, i) => [c, cell(row, i + 1)])) as Record<K, string>);
    });
    return out;
  };

  const index = workbook.getWorksheet(INDEX_SHEET);
  if (!index) throw new OpenError(`The workbook has no ${INDEX_SHEET} sheet: it is not a Gatehouse export.`);
  const generatedAt = cell(index.getRow(2), 2) || null;
  const projects: OpenedExport['projects'] = [];
  index.eachRow((row, n) => {
    if (n <= 5) return;
    const name = cell(row, 1);
    const sheetName = cell(row, 2);
    const sheet = workbook.getWorksheet(sheetName);
    if (sheet) projects.push({ name, sheet: sheetName, rows: rowsOf(sheet, CONNECTION_COLUMNS) });
  });
  const pemSheet = workbook.getWorksheet(PEM_SHEET);
  const now = o.now ?? new Date();
  return {
    generatedAt,
    ageHours: generatedAt ? (now.getTime() - Date.parse(generatedAt)) / 3_600_000 : null,
    manifest,
    projects,
    pemKeys: pemSheet ? rowsOf(pemSheet, PEM_COLUMNS) : [],
  };
}
