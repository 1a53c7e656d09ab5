/**
 * The machine's side of the peers that both the e2e tests and the benchmarks start (xrdp in
 * `xrdp.ts`, sshd): free ports below 32768, local users, waiting for a listener. No side
 * effects on import (the tests import it through `test/support/`; bench/tsconfig.json
 * compiles only this folder, so shared peer code lives here, like `chromium.ts`).
 */
import { execFileSync } from 'node:child_process';
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

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`Nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
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
