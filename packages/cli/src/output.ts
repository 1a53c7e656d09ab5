import { Option, type Command } from 'commander';
import { formatTable } from './table.js';

/**
 * How every command prints what it got: tables and sentences for people by default, the API's
 * JSON for scripts with `--json` or `-o json`. The format is set once per run, from the
 * options of the command that runs (`useOutputFormat`, called by the program's preAction hook).
 */
let json = false;

/** `--json` and `-o, --output json|table`, on every command that prints an API answer. */
export function withOutput(cmd: Command): Command {
  return cmd
    .option('--json', 'print JSON (the API answer) for scripts instead of a table')
    .addOption(new Option('-o, --output <format>', 'output format: a table for people (the default), or json').choices(['table', 'json']));
}

/** Takes the format from a command's options (`--output` of a command without `withOutput` is its own, e.g. a file). */
export function useOutputFormat(opts: { json?: unknown; output?: unknown }): void {
  json = opts.json === true || opts.output === 'json';
}

/** Whether this run prints JSON. */
export const jsonOutput = (): boolean => json;

/** A word with its count: `1 device`, `2 devices`, `0 devices`; `plural` when it is not the word and an s. */
export function count(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : plural}`;
}

const write = (text: string): void => {
  process.stdout.write(`${text}\n`);
};

/** Writes a string as it is; anything else as JSON (--json) or as labelled lines. */
export function print(value: unknown): void {
  if (typeof value === 'string') return write(value);
  if (json) return write(JSON.stringify(value, null, 2));
  write(value === undefined || value === null ? '-' : formatDetails(value).join('\n'));
}

/** One table column: its header and the cell of a row. */
export type Column<T> = readonly [header: string, cell: (row: T) => string];

export interface ListSpec<T> {
  columns: readonly Column<T>[];
  /** The rows' noun, singular (and plural when not +s): the footer counts them. */
  noun: string | readonly [singular: string, plural: string];
  /** What to print when there is no row (default `No <plural>.`). */
  empty?: string;
  /** The first row's offset, for a paged answer (the footer then says how to get the next page). */
  offset?: number;
}

/**
 * A list answer (`{ items, total? }`): JSON as the API gave it, or a table with one row per
 * item and a footer that counts them.
 */
export function printList<T>(answer: { items: readonly T[]; total?: number }, spec: ListSpec<T>): void {
  if (json) return print(answer);
  const [singular, plural] = typeof spec.noun === 'string' ? [spec.noun, `${spec.noun}s`] : spec.noun;
  const { items, total = items.length } = answer;
  if (items.length === 0) return write(spec.empty ?? (total > 0 ? `No ${plural} on this page (${total} in all).` : `No ${plural}.`));
  const lines = formatTable([spec.columns.map(([header]) => header), ...items.map((row) => spec.columns.map(([, cell]) => cell(row)))]);
  write([...lines, '', `${pageFooter(items.length, total, spec.offset ?? 0, singular, plural)}.`].join('\n'));
}

/** `3 devices`, or for a part of a longer list `51–100 of 120 devices (--offset 100 for more)`. */
export function pageFooter(shown: number, total: number, offset: number, singular: string, plural = `${singular}s`): string {
  const next = offset + shown;
  if (offset === 0 && total <= next) return count(total, singular, plural);
  return `${offset + 1}–${next} of ${count(total, singular, plural)}${total > next ? ` (--offset ${next} for more)` : ''}`;
}

/** What a delete prints: `Device Ops/web-1 (<id>) deleted.`, or with --json `{ "deleted": { kind, name, id } }`. */
export function printDeleted(kind: string, name: string, id: string): void {
  if (json) return print({ deleted: { kind: kind.toLowerCase(), name, id } });
  write(`${kind} ${name} (${id}) deleted.`);
}

/** A cell: `-` for nothing, lists comma separated. */
export function cell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  if (Array.isArray(value)) return value.length === 0 ? '-' : value.map(cell).join(', ');
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

const ACRONYMS: Record<string, string> = { id: 'ID', ip: 'IP', url: 'URL', totp: 'TOTP', ssh: 'SSH', pem: 'PEM', api: 'API', ms: 'ms' };

/** `publicIp` → `Public IP`, `totpEnabled` → `TOTP enabled`. */
export function label(key: string): string {
  const words = key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[\s_]+/)
    .map((w) => ACRONYMS[w.toLowerCase()] ?? w.toLowerCase());
  const [first = '', ...rest] = words;
  return [first.charAt(0).toUpperCase() + first.slice(1), ...rest].join(' ');
}

/** An object as aligned `Label  value` lines; nested objects indented below their label, lists of objects one per line. */
export function formatDetails(value: unknown, indent = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${indent}${cell(value)}`];
  const entries = Object.entries(value as Record<string, unknown>);
  const width = Math.max(...entries.map(([k]) => label(k).length));
  return entries.flatMap(([k, v]) => {
    const head = `${indent}${label(k).padEnd(width)}`;
    if (Array.isArray(v) && v.some((x) => typeof x === 'object' && x !== null))
      return [`${head}  ${v.length}`, ...v.map((x) => `${indent}  - ${inline(x)}`)];
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return [head, ...formatDetails(v, `${indent}  `)];
    return [`${head}  ${cell(v)}`.trimEnd()];
  });
}

/** `key=value, key=value`, for an item of a list inside an object. */
const inline = (value: unknown): string =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
    ? Object.entries(value as Record<string, unknown>)
        .map(([k, v]) => `${k}=${cell(v)}`)
        .join(', ')
    : cell(value);

/** `2026-12-06 11:30` in this machine's zone; `-` for none. */
export function localTime(iso: string | null | undefined): string {
  if (!iso) return '-';
  const d = new Date(iso);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}
