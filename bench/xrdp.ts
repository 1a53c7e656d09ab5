import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureSystemUser, freeLowPort, waitForPort } from './host.js';

/** An xrdp target: RDP on 127.0.0.1:`port`, a local user who signs in with a password. */
export interface XrdpTarget {
  port: number;
  user: string;
  /** What xrdp logged so far (its log names each login). */
  log(): string;
  /** Whether xrdp logged a successful login of `user` (sesman checked the password with PAM). */
  loggedIn(): boolean;
  stop(): Promise<void>;
}

/**
 * Starts xrdp and xrdp-sesman without systemd, as root, on free ports below 32768, with a
 * local user `user` whose password is `password` (created once per machine, kept). xrdp
 * reads sesman's port from the fixed /etc/xrdp/sesman.ini, so both run in a mount namespace
 * of their own where that file is this target's copy: several targets (and a machine's own
 * xrdp) do not meet. A session's desktop is a bare X server with `xsetroot` (no window
 * manager, no D-Bus daemons left behind) and `content` if given, killed when its client
 * disconnects.
 */
export async function startXrdp(opts: {
  user: string;
  password: string;
  /** A program each session starts on its desktop, as the user (e.g. `['xterm', '-e', 'sh', '-c', 'cat > /tmp/x']`). */
  content?: string[];
}): Promise<XrdpTarget> {
  ensureSystemUser(opts.user, { password: opts.password });
  execFileSync('sh', ['/usr/share/xrdp/socksetup']);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-xrdp-'));
  // The session runs as the user, who must read its start script.
  chmodSync(dir, 0o755);
  const [port, sesmanPort] = [await freeLowPort(), await freeLowPort()];
  const wm = path.join(dir, 'startwm.sh');
  const content = opts.content ? `${opts.content.map(shellQuote).join(' ')} &\n` : '';
  writeFileSync(wm, `#!/bin/sh\nxsetroot -solid '#3366cc' 2>/dev/null\n${content}exec sleep 3600\n`, { mode: 0o755 });
  const xrdpIni = path.join(dir, 'xrdp.ini');
  const sesmanIni = path.join(dir, 'sesman.ini');
  writeFileSync(
    xrdpIni,
    edit(readFileSync('/etc/xrdp/xrdp.ini', 'utf8'), {
      port: `tcp://127.0.0.1:${port}`,
      fork: 'false',
      LogFile: path.join(dir, 'xrdp.log'),
      LogLevel: 'INFO',
      EnableSyslog: 'false',
    }),
  );
  writeFileSync(
    sesmanIni,
    edit(readFileSync('/etc/xrdp/sesman.ini', 'utf8'), {
      ListenPort: String(sesmanPort),
      EnableUserWindowManager: 'false',
      DefaultWindowManager: wm,
      KillDisconnected: 'true',
      DisconnectedTimeLimit: '0',
      LogFile: path.join(dir, 'sesman.log'),
      EnableSyslog: 'false',
    }),
  );
  const run = path.join(dir, 'run.sh');
  writeFileSync(
    run,
    [
      'set -e',
      `mount --bind ${sesmanIni} /etc/xrdp/sesman.ini`,
      `xrdp-sesman -n -c ${sesmanIni} > ${dir}/sesman.out 2>&1 &`,
      `exec xrdp -n -c ${xrdpIni} > ${dir}/xrdp.out 2>&1`,
      '',
    ].join('\n'),
  );
  const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', run], { stdio: 'ignore' });
  const logFile = path.join(dir, 'xrdp.log');
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  try {
    await waitForPort(port, 15_000);
  } catch (error) {
    await stopTree(child);
    throw new Error(`xrdp did not listen on ${port}: ${(error as Error).message}\n${log()}`);
  }
  return {
    port,
    user: opts.user,
    log,
    loggedIn: () => log().includes(`login successful for user ${opts.user} `),
    async stop() {
      await stopTree(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Sets `key=value` lines of an ini file (every section's: the keys edited here are unique). */
function edit(ini: string, values: Record<string, string>): string {
  let out = ini;
  for (const [key, value] of Object.entries(values)) {
    const line = new RegExp(`^${key}=.*$`, 'm');
    if (!line.test(out)) throw new Error(`No ${key}= line to set in the xrdp configuration`);
    out = out.replace(line, `${key}=${value}`);
  }
  return out;
}

/** The pids of `root`'s descendants, from /proc. */
function descendantsOf(root: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name is in parentheses and may hold spaces: the parent pid follows the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = [];
  const walk = (pid: number) => {
    for (const child of parents.get(pid) ?? []) {
      found.push(child);
      walk(child);
    }
  };
  walk(root);
  return found;
}

/** Ends the namespace's processes (xrdp, sesman and their sessions), each by its pid. */
async function stopTree(child: ChildProcess): Promise<void> {
  if (child.pid === undefined) return;
  const exited = child.exitCode !== null ? Promise.resolve() : new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pids = [...descendantsOf(child.pid), child.pid];
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const pid of pids.filter(alive)) signal(pid, 'SIGKILL');
  await exited;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
