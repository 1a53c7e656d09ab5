import { describe, expect, it } from 'vitest';
import { assignSheetNames, cleanSheetName } from './sheet-names.js';

describe('sheet names', () => {
  it('replaces the characters Excel forbids and keeps 31 characters at most', () => {
    expect(cleanSheetName('a*b?c:d\\e/f[g]h')).toBe('a_b_c_d_e_f_g_h');
    expect(cleanSheetName("'quoted'")).toBe('quoted');
    expect(cleanSheetName('x'.repeat(40))).toHaveLength(31);
    expect(cleanSheetName('   ')).toBe('Project');
  });

  it('makes names unique ignoring case and avoids the reserved and own sheet names', () => {
    const names = assignSheetNames(['Prod', 'PROD', 'prod', 'History', 'Index', 'PEM keys', 'y'.repeat(40), 'y'.repeat(35)]);
    expect(names.slice(0, 6)).toEqual(['Prod', 'PROD (2)', 'prod (3)', 'History (2)', 'Index (2)', 'PEM keys (2)']);
    expect(names[6]).toBe('y'.repeat(31));
    expect(names[7]).toBe(`${'y'.repeat(27)} (2)`);
    expect(new Set(names.map((n) => n.toLowerCase())).size).toBe(names.length);
    for (const n of names) expect(n.length).toBeLessThanOrEqual(31);
  });
});
