/**
 * Excel's rules for sheet names: at most 31 characters, none of `* ? : \ / [ ]`, not
 * starting or ending with an apostrophe, not `History` (reserved), unique ignoring case.
 * exceljs truncates silently and throws on the rest, so names are made valid here.
 */
export const MAX_SHEET_NAME = 31;
export const INDEX_SHEET = 'Index';
export const PEM_SHEET = 'PEM keys';
const RESERVED = ['history', INDEX_SHEET.toLowerCase(), PEM_SHEET.toLowerCase()];

export function cleanSheetName(name: string): string {
  let s = name
    .replace(/[*?:\\/[\]]/g, '_')
    .replace(/[\u0000-\u001f\u007f]/g, ' ')
    .trim()
    .replace(/^'+|'+$/g, '')
    .trim();
  if (s === '') s = 'Project';
  return [...s].slice(0, MAX_SHEET_NAME).join('').trim();
}

/**
 * Gives every project a valid sheet name, unique ignoring case and distinct from the
 * workbook's own sheets; clashes get ` (2)`, ` (3)`… within the 31 characters.
 */
export function assignSheetNames(projectNames: readonly string[]): string[] {
  const taken = new Set(RESERVED);
  return projectNames.map((project) => {
    const base = cleanSheetName(project);
    let candidate = base;
    for (let n = 2; taken.has(candidate.toLowerCase()); n += 1) {
      const suffix = ` (${n})`;
      candidate =
        [...base]
          .slice(0, MAX_SHEET_NAME - suffix.length)
          .join('')
          .trimEnd() + suffix;
    }
    taken.add(candidate.toLowerCase());
    return candidate;
  });
}
