/**
 * What a user asks for in the SSH user name: `<user>+<device>[+<account>]` or
 * `<user>:<device>[:<account>]`, where `<device>` may be `<project>.<device>` or
 * `<project>/<device>` when the device name alone is ambiguous.
 */
export interface ConnectionTarget {
  /** The Gatehouse user name. */
  user: string;
  /** The device as typed: a device name, or `<project>/<device>`. */
  device: string;
  /** The account (user name on the device); undefined when the device has only one. */
  account: string | undefined;
}

export type ParsedTarget = { ok: true; target: ConnectionTarget } | { ok: false; reason: string };

/** OpenSSH accepts long user names; ours are never longer than this. */
export const MAX_TARGET_LENGTH = 512;
const MAX_PART_LENGTH = 200;

/** Gatehouse user names, as the API accepts them. */
const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
/** C0 and C1 control characters, DEL, and unpaired surrogates (not text). */
const NOT_TEXT = /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/**
 * Characters that change how text around them reads without showing themselves: format
 * characters (bidi overrides such as U+202E, zero-width spaces and joiners), line and
 * paragraph separators, and the rest of Unicode's default-ignorable code points.
 */
const INVISIBLE = /[\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u;
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\p{Cs}]/gu;
/** How much of a refused user name an audit event keeps. */
const SHOWN_LENGTH = 200;

/**
 * The separators between user, device and account. `+` first: no client parses it (a `:`
 * in the user name splits rsync, scp and git host specs, is a password in URLs, and
 * Ansible's `~user`), and `:` keeps working. A space stands for `+` as well: OpenSSH's
 * sftp:// and scp:// URLs decode a `+` in the user name to one. A user name never holds any.
 */
export const TARGET_SEPARATORS = ['+', ':', ' '] as const;

export const TARGET_FORMAT =
  'Connect as <user>+<device>[+<account>] (<device> may be <project>.<device> when several projects have one; ":" works in place of "+").';

/**
 * Parses the SSH user name strictly: exactly two or three non-empty parts separated by
 * the first `+`, `:` or space after the user (the others may then appear in the device
 * and account names), no control characters, nothing over-long. A refusal says what the
 * format is and never echoes the input (it may be anything).
 */
export function parseConnectionTarget(raw: string): ParsedTarget {
  const refuse = (problem: string): ParsedTarget => ({ ok: false, reason: `${problem} ${TARGET_FORMAT}` });
  if (raw.length === 0) return refuse('The user name is empty.');
  if (raw.length > MAX_TARGET_LENGTH) return refuse(`The user name is longer than ${MAX_TARGET_LENGTH} characters.`);
  if (NOT_TEXT.test(raw)) return refuse('The user name contains control characters.');
  if (INVISIBLE.test(raw)) return refuse('The user name contains invisible or text-direction characters.');
  const at = raw.search(/[+: ]/);
  if (at < 0) return refuse('The user name names no device.');
  const separator = raw.charAt(at);
  const parts = raw.split(separator);
  if (parts.length > 3) {
    const other = separator === ':' ? '+' : ':';
    return refuse(
      `The user name has too many "${separator}" parts. A device or account name with "${separator}" in it is written with "${other}" as the separator.`,
    );
  }
  if (parts.some((p) => p.trim() === '' || p !== p.trim())) return refuse('A part of the user name is empty or has spaces around it.');
  if (parts.some((p) => p.length > MAX_PART_LENGTH)) return refuse(`A part of the user name is longer than ${MAX_PART_LENGTH} characters.`);
  const [user, device, account] = parts as [string, string, string | undefined];
  if (!USER_NAME.test(user)) return refuse('The Gatehouse user name is not valid.');
  if (device.startsWith('/') || device.endsWith('/')) return refuse('The device is missing its project or its name around "/".');
  return { ok: true, target: { user, device, account } };
}

/**
 * Text from a user name, safe to show or store: control, format (bidi, zero-width) and
 * other invisible characters and lone surrogates as `\u{…}` escapes, cut to 200
 * characters (with `…`). For audit events and messages that must name what was asked for.
 * Applying it again changes nothing.
 */
export function printableName(raw: string): string {
  const chars = Array.from(raw);
  const shown = chars.slice(0, SHOWN_LENGTH).join('');
  const escaped = shown.replace(UNPRINTABLE, (c) => `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`);
  return chars.length > SHOWN_LENGTH ? `${escaped}…` : escaped;
}
