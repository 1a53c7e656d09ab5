import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync } from 'node:fs';
import os from 'node:os';
import pty, { type IPty } from 'node-pty';
import type { ServerChannel, Session } from 'ssh2';
import type { AgentLogger } from './log.js';
import { runAs, type OsUser } from './os-user.js';

const SFTP_SERVERS = ['/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server', '/usr/lib/ssh/sftp-server'];
/** The signals a client may send (RFC 4254 6.9), without `SIG`. */
const SIGNALS = new Set(['ABRT', 'ALRM', 'FPE', 'HUP', 'ILL', 'INT', 'KILL', 'PIPE', 'QUIT', 'SEGV', 'TERM', 'USR1', 'USR2']);
const USER_PATH = '/usr/local/bin:/usr/bin:/bin:/usr/games';
const ROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

type Accept<T> = () => T | undefined;
type Reject = (() => void) | undefined;

interface Terminal {
  term: string;
  cols: number;
  rows: number;
}

type Running = { kind: 'pty'; pty: IPty } | { kind: 'pipe'; child: ChildProcess } | { kind: 'exited' };

/**
 * One SSH session channel on the agent, run as the OS user the grant named: a terminal
 * (`pty-req`, `window-change`), the environment a login keeps (TERM, LANG, LC_*), a shell,
 * a command or the system's SFTP server, signals, and the exit status or signal. X11 and
 * agent forwarding have no handler, so ssh2 refuses them.
 */
export class UserSession {
  private terminal: Terminal | undefined;
  private readonly env: Record<string, string> = {};
  private running: Running | undefined;

  constructor(
    session: Session,
    private readonly user: OsUser,
    private readonly logger: AgentLogger,
    /** Called once, when the session's channel closed (or never opened one). */
    private readonly closed: () => void = () => undefined,
  ) {
    session.on('pty', (accept, reject, info) => {
      if (this.running) return reject?.();
      this.terminal = { term: info.term || 'xterm', cols: info.cols || 80, rows: info.rows || 24 };
      accept?.();
    });
    session.on('env', (accept, reject, info) => {
      if (!/^(TERM|LANG|LC_[A-Z]+)$/.test(info.key) || info.val.length > 256) return reject?.();
      this.env[info.key] = info.val;
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      if (this.terminal) Object.assign(this.terminal, { cols: info.cols || this.terminal.cols, rows: info.rows || this.terminal.rows });
      if (this.running?.kind === 'pty' && this.terminal) this.running.pty.resize(this.terminal.cols, this.terminal.rows);
      accept?.();
    });
    session.on('signal', (accept, reject, info) => {
      if (!SIGNALS.has(info.name) || !this.running) return reject?.();
      this.signal(`SIG${info.name}` as NodeJS.Signals);
      accept?.();
    });
    session.on('shell', (accept, reject) => this.start(accept, reject, [this.user.shell, '-l']));
    session.on('exec', (accept, reject, info) => this.start(accept, reject, [this.user.shell, '-c', info.command]));
    session.on('subsystem', (accept, reject, info) => {
      const server = SFTP_SERVERS.find((p) => existsSync(p));
      if (info.name !== 'sftp' || !server) {
        this.logger.warn('subsystem refused', {
          name: info.name.slice(0, 64),
          reason: server ? 'only sftp is served' : 'no sftp-server found',
        });
        return reject?.();
      }
      this.start(accept, reject, [server], { terminal: false });
    });
    session.once('close', () => this.end());
  }

  /**
   * Ends what runs in the session, as sshd does when the client goes: the channel closed,
   * the connection was lost (ssh2 then closes the channel but not the session), or the
   * agent stops.
   */
  end(): void {
    this.signal('SIGHUP', { group: true });
    this.closed();
  }

  /**
   * A signal to the session's process; with `group`, to its whole process group: a command
   * without a terminal has no kernel hangup to end what it started (`sh -c 'sleep 1000'`).
   */
  private signal(name: NodeJS.Signals, o: { group?: boolean } = {}): void {
    try {
      if (this.running?.kind === 'pty') this.running.pty.kill(name);
      else if (this.running?.kind === 'pipe' && this.running.child.pid !== undefined) {
        if (o.group) process.kill(-this.running.child.pid, name);
        else this.running.child.kill(name);
      }
    } catch {
      // Already gone.
    }
  }

  private start(accept: Accept<ServerChannel>, reject: Reject, command: string[], o: { terminal?: boolean } = {}): void {
    const [file = '', ...args] = command;
    const launch = this.running ? undefined : runAs(this.user, file, args);
    if (!launch) {
      if (!this.running)
        this.logger.error('session refused: cannot run as the user', {
          osUser: this.user.name,
          reason: 'setpriv missing or agent not root',
        });
      return reject?.();
    }
    // accept() synchronously: OpenSSH sends EOF right after exec, and a late accept loses the channel.
    const channel = accept();
    if (!channel) return;
    channel.once('close', () => this.end());
    const terminal = o.terminal === false ? undefined : this.terminal;
    const env: Record<string, string> = {
      HOME: this.user.home,
      USER: this.user.name,
      LOGNAME: this.user.name,
      SHELL: this.user.shell,
      PATH: this.user.uid === 0 ? ROOT_PATH : USER_PATH,
      MAIL: `/var/mail/${this.user.name}`,
      ...this.env,
      ...(terminal ? { TERM: terminal.term } : {}),
    };
    const cwd = existsSync(this.user.home) ? this.user.home : '/';
    try {
      this.running = terminal ? this.startPty(channel, launch, terminal, env, cwd) : this.startPipe(channel, launch, env, cwd);
    } catch (error) {
      this.logger.error('session could not start', {
        osUser: this.user.name,
        reason: (error as NodeJS.ErrnoException).code ?? (error as Error).message,
      });
      channel.stderr.write('gatehouse agent: the session could not start on the device.\r\n');
      channel.exit(1);
      channel.end();
    }
  }

  private startPty(
    channel: ServerChannel,
    launch: { file: string; args: string[] },
    t: Terminal,
    env: Record<string, string>,
    cwd: string,
  ): Running {
    const term = pty.spawn(launch.file, launch.args, { name: t.term, cols: t.cols, rows: t.rows, cwd, env, encoding: null });
    // The terminal belongs to the user, as sshd gives it (programs that reopen it by name need that).
    const name = (term as { ptsName?: string }).ptsName;
    if (name) {
      try {
        chownSync(name, this.user.uid, -1);
      } catch {
        // Not root: the terminal is the agent's user's already.
      }
    }
    term.onData((data: string | Buffer) => {
      if (!channel.write(data)) {
        term.pause();
        channel.once('drain', () => term.resume());
      }
    });
    channel.on('data', (data: Buffer) => term.write(data));
    term.onExit(({ exitCode, signal }) => {
      // node-pty signals by pid: never again once it is reaped (the pid may be reused).
      if (this.running?.kind === 'pty' && this.running.pty === term) this.running = { kind: 'exited' };
      finish(channel, exitCode, signal ? signalName(signal) : undefined);
    });
    return { kind: 'pty', pty: term };
  }

  private startPipe(channel: ServerChannel, launch: { file: string; args: string[] }, env: Record<string, string>, cwd: string): Running {
    // Its own session and process group (setsid), as a login has, so end() can signal the group.
    const child = spawn(launch.file, launch.args, { cwd, env, stdio: 'pipe', detached: true });
    child.stdin.on('error', () => undefined);
    child.stdout.pipe(channel, { end: false });
    child.stderr.pipe(channel.stderr, { end: false });
    channel.pipe(child.stdin);
    child.once('error', (error: NodeJS.ErrnoException) => {
      this.logger.error('session could not start', { osUser: this.user.name, reason: error.code ?? error.message });
      finish(channel, 127, undefined);
    });
    // 'close': after the exit and the end of stdout and stderr, so no output is lost.
    child.once('close', (code, signal) => {
      if (this.running?.kind === 'pipe' && this.running.child === child) this.running = { kind: 'exited' };
      finish(channel, code ?? 0, signal ? signal.replace(/^SIG/, '') : undefined);
    });
    return { kind: 'pipe', child };
  }
}

/** Sends the exit status (or signal) and EOF once, whichever of exit, error or close comes first. */
function finish(channel: ServerChannel, code: number, signal: string | undefined): void {
  if (finished.has(channel) || channel.destroyed) return;
  finished.add(channel);
  if (signal) channel.exit(signal, false, '');
  else channel.exit(code);
  channel.end();
}
const finished = new WeakSet<ServerChannel>();

function signalName(n: number): string {
  const entry = Object.entries(os.constants.signals).find(([, v]) => v === n);
  return entry ? entry[0].replace(/^SIG/, '') : 'KILL';
}
