import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { API_TOKEN_PREFIX, SESSION_TOKEN_PREFIX, SETUP_TOKEN_PREFIX, shownTokenPrefix, TOKEN_PATTERN } from './token-prefixes.js';

/** GitHub's token rules as gitleaks (github-pat, github-oauth, github-app-token, …) and trufflehog write them. */
const githubRules = [
  /ghp_[0-9a-zA-Z]{36}/,
  /gho_[0-9a-zA-Z]{36}/,
  /(?:ghu|ghs)_[0-9a-zA-Z]{36}/,
  /ghr_[0-9a-zA-Z]{36}/,
  /github_pat_\w{82}/,
  /\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[a-zA-Z0-9_]{36,255}\b/,
];

describe('token prefixes', () => {
  const tokens = [API_TOKEN_PREFIX, SESSION_TOKEN_PREFIX, SETUP_TOKEN_PREFIX].map((p) => `${p}${randomBytes(32).toString('base64url')}`);

  it('match the documented rule and none of GitHub’s', () => {
    for (const token of tokens) {
      expect(TOKEN_PATTERN.exec(`TOKEN="${token}"`)?.[0]).toBe(token);
      for (const rule of githubRules) expect(rule.test(token), `${rule} on ${token.slice(0, 16)}`).toBe(false);
    }
  });

  it('is the rule docs/SECURITY.md gives gitleaks and trufflehog', () => {
    const doc = readFileSync(new URL('../../../docs/SECURITY.md', import.meta.url), 'utf8');
    expect(doc).toContain(`regex = '''${TOKEN_PATTERN.source}'''`);
    expect(doc).toContain(`token: '${TOKEN_PATTERN.source}'`);
  });

  it('shows a prefix and 8 random characters, for new and ghp_ tokens alike', () => {
    const token = tokens[0] as string;
    expect(shownTokenPrefix(token)).toBe(token.slice(0, API_TOKEN_PREFIX.length + 8));
    expect(shownTokenPrefix('ghp_abcdefghijklmnop')).toBe('ghp_abcdefgh');
  });
});
