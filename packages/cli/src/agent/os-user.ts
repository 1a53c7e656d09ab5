import { existsSync, readFileSync } from 'node:fs';

/** A local account from `/etc/passwd`, as a session runs as it. */
export interface OsUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

const NAME = /^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}\$?$/;

/**
 * The `/etc/passwd` entry of `name`, or undefined. Only the local file: the account a grant
 * names must exist on this machine, and a lookup that reads no network directory cannot hang.
 */
export function lookupOsUser(name: string, passwdFile = '/etc/passwd'): OsUser | undefined {
  if (!NAME.test(name)) return undefined;
  let text: string;
  try {
    text = readFileSync(passwdFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [user, , uid, gid, , home, shell] = line.split(':');
    if (user !== name) continue;
    const u = Number(uid);
    const g = Number(gid);
    if (!Number.isSafeInteger(u) || !Number.isSafeInteger(g) || u < 0 || g < 0 || uid === '' || gid === '') return undefined;
    return { name, uid: u, gid: g, home: home || '/', shell: shell || '/bin/sh' };
  }
  return undefined;
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'];

/**
 * The program and arguments that run `file args` as `user`. Switching takes `setpriv`
 * (util-linux) and not spawn's uid/gid: node-pty sets only uid and gid and leaves the
 * agent's own supplementary groups (root's) in the session, and libuv drops all of them,
 * where a login gets the user's groups from `/etc/group` (`--init-groups`). Undefined
 * when the switch is not possible (no setpriv, or the agent is not root and the user is
 * another); nothing is started then.
 */
export function runAs(user: OsUser, file: string, args: string[]): { file: string; args: string[] } | undefined {
  const self = process.getuid?.();
  if (self === user.uid && (user.uid !== 0 || process.getgid?.() === user.gid)) return { file, args };
  if (self !== 0) return undefined;
  const setpriv = SETPRIV.find((p) => existsSync(p));
  if (!setpriv) return undefined;
  return { file: setpriv, args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', file, ...args] };
}
