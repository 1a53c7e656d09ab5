import { createHash } from 'node:crypto';
import { GatehouseError } from '@gatehouse/core/errors';
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
export class OpenError extends GatehouseError {
  constructor(message: string) {
    super('BAD_REQUEST', message);
    this.name = 'OpenError';
  }
}

const AGE_MAGIC = 'age-encryption.org/v1';

function identityLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.startsWith('AGE-SECRET-KEY-'));
}

/**
 * Checks a file against its manifest: the signature against the public key kept offline,
 * then the file's size and SHA-256. Cheap, and needs no decryption: a reader can refuse a
 * damaged or replaced file before trying to open it.
 */
export function checkManifest(file: Buffer, manifestText: string | undefined, publicKeyPem: string | undefined): OpenedExport['manifest'] {
  if (manifestText === undefined) return { status: 'unverified', reason: 'no manifest was given' };
  if (!publicKeyPem) {
    return { status: 'unverified', reason: 'no signing public key was given (--public-key): the manifest cannot be trusted' };
  }
  const check = verifyManifest(manifestText, publicKeyPem);
  if (!check.ok) return { status: 'invalid', reason: check.reason };
  const sha256 = createHash('sha256').update(file).digest('hex');
  if (sha256 !== check.manifest.sha256 || file.length !== check.manifest.bytes) {
    return {
      status: 'invalid',
      reason: `the file does not match its manifest (SHA-256 ${sha256.slice(0, 16)}…, manifest says ${check.manifest.sha256.slice(0, 16)}…): it was replaced or damaged, or a run failed between its two uploads — check the run history`,
    };
  }
  return { status: 'verified', manifest: check.manifest };
}

/**
 * Opens a break-glass export with no server, database or network: checks the manifest
 * (signature, hash, size), decrypts with age, and reads every sheet.
 */
export async function openExport(o: OpenOptions): Promise<OpenedExport> {
  const manifest = checkManifest(o.file, o.manifest, o.publicKeyPem);

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
