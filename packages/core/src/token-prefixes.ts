/**
 * How Gatehouse's bearer secrets begin, so secret scanners (gitleaks, trufflehog) can tell
 * them from anyone else's: `gatehouse_pat_` API tokens, `gatehouse_ses_` web sessions,
 * `gatehouse_setup_` the first-run set-up token, each then 43 base64url characters
 * (docs/SECURITY.md has the rule). Never GitHub's `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` or
 * `github_pat_`: scanners report those as leaked GitHub tokens.
 */
export const API_TOKEN_PREFIX = 'gatehouse_pat_';
export const SESSION_TOKEN_PREFIX = 'gatehouse_ses_';
export const SETUP_TOKEN_PREFIX = 'gatehouse_setup_';

/**
 * Tokens issued before the prefixes above (`ghp_` API tokens, `ghs_` sessions). They are
 * looked up by hash like any other and keep working until they expire or are revoked.
 */
const LEGACY_PREFIXES = ['ghp_', 'ghs_'] as const;

/** Random characters a listing shows after the prefix, enough to tell a user's tokens apart. */
const SHOWN_RANDOM_CHARACTERS = 8;

/** What a token list shows of `token`: its prefix and the first 8 random characters after it (any other: 12 characters). */
export function shownTokenPrefix(token: string): string {
  const prefix = [API_TOKEN_PREFIX, SESSION_TOKEN_PREFIX, SETUP_TOKEN_PREFIX, ...LEGACY_PREFIXES].find((p) => token.startsWith(p));
  return token.slice(0, prefix === undefined ? 12 : prefix.length + SHOWN_RANDOM_CHARACTERS);
}

/**
 * A Gatehouse API token, web session or set-up token anywhere in a text, as the gitleaks and
 * trufflehog rules in docs/SECURITY.md match it (RE2 syntax: Go's regexp reads it as is).
 */
export const TOKEN_PATTERN = /gatehouse_(?:pat|ses|setup)_[A-Za-z0-9_-]{43}/;
