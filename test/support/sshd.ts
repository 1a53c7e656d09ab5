import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import ssh2 from 'ssh2';

import { waitForPort } from '../../bench/host.js';

export { ensureSystemUser, waitForPort } from '../../bench/host.js';

/** A free TCP port on 127.0.0.1 (closed again, so there is a small race; fine for tests). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * The password e2e tests give the machine user their devices log in with (`gh-test-pw`).
 * Fixed: every e2e file sets it, in every work tree on the machine, so a random one per run
 * breaks the sign-ins of any run going on at the same time.
 */
export const TEST_USER_PASSWORD = 'pw-e2e-7c1d9a4b2f';

/** An ed25519 key pair made by ssh-keygen: OpenSSH private key and the public key line. */
export function generateKeyPair(dir: string, name: string, passphrase = ''): { privateKey: string; publicKey: string; file: string } {
  const file = path.join(dir, name);
  rmSync(file, { force: true });
  rmSync(`${file}.pub`, { force: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', name, '-f', file]);
  return { privateKey: readFileSync(file, 'utf8'), publicKey: readFileSync(`${file}.pub`, 'utf8').trim(), file };
}

/** The `SHA256:…` fingerprint of a public key file, as ssh-keygen prints it. */
export function fingerprintOfKeyFile(file: string): string {
  const out = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', file], { encoding: 'utf8' });
  const match = /(SHA256:\S+)/.exec(out);
  if (!match?.[1]) throw new Error(`ssh-keygen printed no fingerprint for ${file}: ${out}`);
  return match[1];
}

/**
 * A private OpenSSH sshd on 127.0.0.1 and a high port, with its own config, host key,
 * log and authorized keys (one file per user in its directory); the target the gateway
 * connects to. `restart({ newHostKey: true })` brings it back on the same port with
 * another host key, as a reinstalled (or impersonated) device would.
 */
export class TestSshd {
  private child: ChildProcess | undefined;
  hostKeyFingerprint = '';

  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly listenAddress = '127.0.0.1',
    /** A network namespace to run in (`ip netns exec`), for devices only a gateway can reach. */
    readonly netns?: string,
    /** An existing host key to serve instead of one made for it. */
    private readonly hostKey?: string,
    private readonly sshd = '/usr/sbin/sshd',
  ) {}

  /** The listening sshd's process id: each connection to it is one child process. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  static async start(
    dir: string,
    opts: {
      listenAddress?: string;
      port?: number;
      netns?: string;
      /** More sshd_config lines. */
      config?: string[];
      /** Let root log in with a key (runbooks' privileged account); otherwise root may not log in. */
      rootKeyLogin?: boolean;
      /**
       * Serve this host key file (the machine's own, say) instead of a new one in `dir`: an
       * sshd started later from a default config, which has no HostKey line, then presents the same key.
       */
      hostKey?: string;
      /** Another OpenSSH's sshd (an absolute path, its sshd-session and sshd-auth beside it) instead of Debian's. */
      sshd?: string;
      /** sshd's LogLevel (VERBOSE unless given; DEBUG1 logs each connection's key exchange). */
      logLevel?: string;
    } = {},
  ): Promise<TestSshd> {
    mkdirSync(path.join(dir, 'authorized_keys'), { recursive: true });
    // sshd reads authorized keys as the user logging in: the path must be traversable.
    for (const d of [path.dirname(dir), dir]) chmodSync(d, 0o711);
    chmodSync(path.join(dir, 'authorized_keys'), 0o755);
    // sshd refuses to start without its privilege separation directory.
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const sshd = new TestSshd(dir, opts.port ?? (await freePort()), opts.listenAddress, opts.netns, opts.hostKey, opts.sshd);
    const helpers = opts.sshd
      ? [
          `SshdSessionPath ${path.join(path.dirname(opts.sshd), 'sshd-session')}`,
          `SshdAuthPath ${path.join(path.dirname(opts.sshd), 'sshd-auth')}`,
        ]
      : [];
    sshd.writeHostKey();
    writeFileSync(
      path.join(dir, 'sshd_config'),
      [
        `Port ${sshd.port}`,
        `ListenAddress ${sshd.listenAddress}`,
        `HostKey ${opts.hostKey ?? path.join(dir, 'host_key')}`,
        `PidFile ${path.join(dir, 'sshd.pid')}`,
        ...helpers,
        // Built without PAM (an unsupported option there).
        ...(opts.sshd ? [] : ['UsePAM no']),
        'PasswordAuthentication yes',
        'KbdInteractiveAuthentication no',
        'PubkeyAuthentication yes',
        `AuthorizedKeysFile ${path.join(dir, 'authorized_keys', '%u')}`,
        // The temp directory is not root-owned all the way up.
        'StrictModes no',
        `PermitRootLogin ${opts.rootKeyLogin ? 'prohibit-password' : 'no'}`,
        'Subsystem sftp internal-sftp',
        `LogLevel ${opts.logLevel ?? 'VERBOSE'}`,
        ...(opts.config ?? []),
        '',
      ].join('\n'),
    );
    await sshd.run();
    return sshd;
  }

  /** Lets `user` log in with `publicKey`. */
  authorize(user: string, publicKey: string): void {
    const file = path.join(this.dir, 'authorized_keys', user);
    writeFileSync(file, `${publicKey}\n`);
    chmodSync(file, 0o644);
  }

  get log(): string {
    try {
      return readFileSync(path.join(this.dir, 'sshd.log'), 'utf8');
    } catch {
      return '';
    }
  }

  private writeHostKey(): void {
    if (this.hostKey) {
      this.hostKeyFingerprint = fingerprintOfKeyFile(`${this.hostKey}.pub`);
      return;
    }
    const { file } = generateKeyPair(this.dir, 'host_key');
    this.hostKeyFingerprint = fingerprintOfKeyFile(`${file}.pub`);
  }

  private async run(): Promise<void> {
    const argv = ['-D', '-f', path.join(this.dir, 'sshd_config'), '-E', path.join(this.dir, 'sshd.log')];
    rmSync(path.join(this.dir, 'sshd.log'), { force: true });
    this.child = this.netns
      ? spawn('ip', ['netns', 'exec', this.netns, this.sshd, ...argv], { stdio: 'ignore' })
      : spawn(this.sshd, argv, { stdio: 'ignore' });
    if (!this.netns) return waitForPort(this.port);
    // Not reachable from here (that is the point): its log says when it listens.
    const deadline = Date.now() + 10_000;
    while (!this.log.includes('Server listening')) {
      if (Date.now() > deadline) throw new Error(`sshd in ${this.netns} did not start:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  async restart(opts: { newHostKey?: boolean } = {}): Promise<void> {
    await this.stop();
    if (opts.newHostKey) this.writeHostKey();
    await this.run();
  }
}

/** Whether sshd on 127.0.0.1:`port` lets `user` in with `password` (a client of its own, not through Gatehouse). */
export function canLogIn(port: number, user: string, password: string): Promise<boolean> {
  return new Promise((resolve) => {
    const client = new ssh2.Client();
    client.on('ready', () => {
      client.end();
      resolve(true);
    });
    client.on('error', () => resolve(false));
    client.connect({ host: '127.0.0.1', port, username: user, password, readyTimeout: 10_000, tryKeyboard: false });
  });
}
