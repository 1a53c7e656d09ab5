import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseRunbook, type RunbookDocument } from '@gatehouse/core/runbooks';

/** A runbook as written and as parsed, with the SHA-256 of its text (what a run records). */
export interface LoadedRunbook {
  document: RunbookDocument;
  yaml: string;
  sha256: string;
}

/** Where the built-in runbooks' YAML lies: beside this module, in src and (copied by the build) in dist. */
export const BUILTIN_RUNBOOK_DIR = fileURLToPath(new URL('./builtin/', import.meta.url));

export const sha256Of = (text: string): string => createHash('sha256').update(text).digest('hex');

/**
 * The runbooks that ship with the product, parsed at start: a built-in that does not parse
 * stops the server rather than failing each run. Their names are reserved.
 */
export function loadBuiltinRunbooks(dir: string = BUILTIN_RUNBOOK_DIR): Map<string, LoadedRunbook> {
  const out = new Map<string, LoadedRunbook>();
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const yaml = readFileSync(`${dir}${file}`, 'utf8');
    const document = parseRunbook(yaml);
    out.set(document.name, { document, yaml, sha256: sha256Of(yaml) });
  }
  return out;
}
