import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { baseEnv, gatehouseBin } from './server.js';
import { freePort } from './sshd.js';

const running = new Set<RemoteGatewayProcess>();
process.once('exit', () => {
  for (const g of running) g.kill();
});

/**
 * A `gatehouse gateway` child process (optionally inside a network namespace), started
 * with the server's key; it resolves once it printed its public key.
 */
export class RemoteGatewayProcess {
  private child: ChildProcess | undefined;
  private output = '';
  publicKey = '';
  fingerprint = '';

  private constructor(
    readonly dataDir: string,
    readonly host: string,
    readonly port: number,
    private readonly serverKey: string,
    private readonly netns: string | undefined,
    /** Its own SSH entry for users; 0 (off) unless a test asks for one. */
    readonly sshPort: number,
    /** Its listener for host agents; 0 (off) unless a test asks for one. */
    readonly agentPort: number,
    /** The SSH entry's host key file (--host-key-file); unset: generated in the data directory. */
    private readonly hostKeyFile: string | undefined,
  ) {}

  static async start(opts: {
    dataDir: string;
    serverKey: string;
    host?: string;
    port?: number;
    netns?: string;
    sshPort?: number;
    agentPort?: number;
    hostKeyFile?: string;
  }): Promise<RemoteGatewayProcess> {
    const gateway = new RemoteGatewayProcess(
      opts.dataDir,
      opts.host ?? '127.0.0.1',
      opts.port ?? (await freePort()),
      opts.serverKey,
      opts.netns,
      opts.sshPort ?? 0,
      opts.agentPort ?? 0,
      opts.hostKeyFile,
    );
    await gateway.run();
    return gateway;
  }

  /** `host:port` of the management endpoint, as it is registered. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  get stdout(): string {
    return this.output;
  }

  /** Starts it again on the same port and data directory (so with the same key). */
  async run(): Promise<void> {
    const args = [
      gatehouseBin,
      'gateway',
      '--host',
      this.host,
      '--management-port',
      String(this.port),
      '--data-dir',
      this.dataDir,
      '--server-key',
      this.serverKey,
      '--ssh-port',
      String(this.sshPort),
      '--agent-port',
      String(this.agentPort),
      ...(this.hostKeyFile ? ['--host-key-file', this.hostKeyFile] : []),
      '--log-level',
      'warn',
    ];
    const [command, argv]: [string, string[]] = this.netns
      ? ['ip', ['netns', 'exec', this.netns, process.execPath, ...args]]
      : [process.execPath, args];
    const child = spawn(command, argv, { env: baseEnv(), cwd: path.dirname(this.dataDir), stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    running.add(this);
    this.output = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gatehouse gateway printed no key within 20 s:\n${this.output}`)), 20_000);
      const look = () => {
        const key = /^Public key:\s+(\S+)$/m.exec(this.output);
        const fingerprint = /^Fingerprint:\s+(\S+)$/m.exec(this.output);
        if (key?.[1] && fingerprint?.[1] && /^Management:/m.test(this.output)) {
          clearTimeout(timer);
          this.publicKey = key[1];
          this.fingerprint = fingerprint[1];
          resolve();
        }
      };
      child.stdout.on('data', look);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`gatehouse gateway exited (${code ?? signal}) before it was ready:\n${this.output}`));
      });
    });
  }

  /** SIGTERM, and resolves once it exited. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    running.delete(this);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    // A paused gateway takes the SIGTERM only once it runs again.
    child.kill('SIGCONT');
    await exited;
  }

  /** SIGSTOP: hung, not dead. Its ports still accept TCP connections (the kernel does) and answer nothing. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  /** SIGCONT after `pause`. */
  resume(): void {
    this.child?.kill('SIGCONT');
  }

  kill(): void {
    this.child?.kill('SIGKILL');
    this.child = undefined;
    running.delete(this);
  }
}

/** Stops every gateway still running (afterAll). */
export async function stopGateways(): Promise<void> {
  await Promise.all([...running].map((g) => g.stop()));
}
