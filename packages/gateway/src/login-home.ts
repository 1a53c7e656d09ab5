/** What may stand right before `~` and right after the login in a shell word. */
const BEFORE = String.raw`(^|[\s'"\x60(=;&|])`;
const AFTER = String.raw`(?=$|[\s/'"\x60);&|])`;

/**
 * An exec command with `~<login>` (the SSH user name as typed, `admin+db-1`) written as
 * `~`, the home of the account on the device. Ansible asks the device for `echo
 * ~<remote_user>` to place its temporary files; no device has a user of that name, so
 * the shell prints it as it stands and Ansible leaves a literal `~admin+db-1/.ansible/tmp`
 * directory on every host. Only the whole name as a word of its own is replaced (a login
 * always holds `+` or `:`, which no account name on a device has).
 */
export function expandLoginHome(command: string, login: string): string {
  if (!/[+:]/.test(login) || !command.includes(`~${login}`)) return command;
  const escaped = login.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return command.replace(new RegExp(`${BEFORE}~${escaped}${AFTER}`, 'g'), '$1~');
}
