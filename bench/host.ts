/**
 * The machine's side of the peers that both the e2e tests and the benchmarks start (xrdp in
 * `xrdp.ts`, sshd): free ports below 32768, local users, waiting for a listener. No side
 * effects on import (the tests import it through `test/support/`; bench/tsconfig.json
 * compiles only this folder, so shared peer code lives here, like `chromium.ts`).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';

/**
 * A free TCP port below 32768 on `host` (the tests' rule: listeners stay out of the
 * ephemeral range other connections take theirs from). Closed again: a small race.
 */
export async function freeLowPort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen(port, host, () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`No free port below 32768 on ${host} after 50 tries`);
}

/** The process expected to listen: waiting fails at once, with its output, if it exits first. */
export interface Listener {
  child: ChildProcess;
  what: string;
  log: () => string;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs = 10_000, listener?: Listener): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (listener && listener.child.exitCode !== null) {
      throw new Error(`${listener.what} exited (${listener.child.exitCode}): ${listener.log()}`);
    }
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) {
      const what = listener ? `${listener.what} did not open port ${port}: ${listener.log()}` : `Nothing listens on 127.0.0.1:${port}`;
      throw new Error(`${what} after ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGTERM (after SIGCONT, in case it was stopped), then SIGKILL after 5 s; resolves when the child has exited. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGCONT');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** A local user for sshd or xrdp to log in: created once per machine (root needed), kept between runs. */
export function ensureSystemUser(name: string, opts: { password?: string } = {}): void {
  try {
    execFileSync('id', [name], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', name]);
  }
  if (opts.password !== undefined) {
    execFileSync('chpasswd', { input: `${name}:${opts.password}\n` });
  } else {
    // useradd leaves the account locked ("!"), and with UsePAM no sshd refuses even key
    // logins for a locked account: "*" means no password, but not locked.
    execFileSync('usermod', ['-p', '*', name]);
  }
}
