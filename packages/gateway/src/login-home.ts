/** What may stand right before `~` and right after the login in a shell word. */
const BEFORE = String.raw`(^|[\s'"\x60(=;&|])`;
const AFTER = String.raw`(?=$|[\s/'"\x60);&|])`;

/**
 * An exec command with every word `~<login>` (the SSH user name as typed, `admin+db-1`)
 * written as `~`, the home of the account on the device: no device has a user of that name,
 * so its shell would leave the word as it stands. The rule is general, for any client and
 * any login holding `+` or `:` (which no account name on a device has); Ansible is one
 * client that needs it (`echo ~<remote_user>`, else a literal `~admin+db-1/.ansible/tmp`
 * on every host). Only the whole name as a word of its own is replaced.
 */
export function expandLoginHome(command: string, login: string): string {
  if (!/[+:]/.test(login) || !command.includes(`~${login}`)) return command;
  const escaped = login.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return command.replace(new RegExp(`${BEFORE}~${escaped}${AFTER}`, 'g'), '$1~');
}
