import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
export { freeLowPort } from '../../bench/host.js';
import { baseEnv, gatehouseBin, type CliResult, type ExitStatus } from './server.js';

const running = new Set<AgentProcess>();
process.once('exit', () => {
  for (const a of running) a.kill();
});

/** What `gatehouse agent enroll` writes to `<state-dir>/agent.json` (the fields a test reads). */
export interface EnrolledAgent {
  agentId: string;
  deviceId: string;
  deviceName: string;
}

/** Runs `argv` as it is, or inside a network namespace (`ip netns exec`). */
const inNetns = (netns: string | undefined, argv: string[]): [string, string[]] =>
  netns ? ['ip', ['netns', 'exec', netns, ...argv]] : [argv[0] as string, argv.slice(1)];

/**
 * Runs the install command `POST /devices/:id/agent-tokens` answered, as an administrator
 * pastes it into a root shell on the device: `gatehouse` is the built executable, `--server`
 * is `server` (the address the device reaches the server by, when it is not the one the
 * API was called on) and the state directory is `stateDir`. The command goes to `sh` on
 * standard input, so the token it holds is in no process's arguments.
 */
export async function enrollAgent(opts: {
  installCommand: string;
  stateDir: string;
  /** https://host:port to put in place of the command's `--server`. */
  server?: string;
  netns?: string;
}): Promise<{ result: CliResult; agent: EnrolledAgent | undefined }> {
  const bin = path.join(path.dirname(opts.stateDir), 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(path.join(bin, 'gatehouse'), `#!/bin/sh\nexec '${process.execPath}' '${gatehouseBin}' "$@"\n`);
  chmodSync(path.join(bin, 'gatehouse'), 0o755);
  let line = opts.installCommand.trim();
  if (opts.server !== undefined) line = line.replace(/--server \S+/, `--server ${opts.server}`);
  const script = `${line} --state-dir '${opts.stateDir}'\n`;
  const [command, argv] = inNetns(opts.netns, ['sh', '-s']);
  const child = spawn(command, argv, {
    env: baseEnv({ PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdin.end(script);
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  clearTimeout(timer);
  let agent: EnrolledAgent | undefined;
  if (code === 0) agent = JSON.parse(readFileSync(path.join(opts.stateDir, 'agent.json'), 'utf8')) as EnrolledAgent;
  return { result: { code, stdout, stderr }, agent };
}

/**
 * A `gatehouse agent run` child process with its state directory, optionally inside a
 * network namespace; it runs as root, as the systemd unit runs it.
 */
export class AgentProcess {
  private output = '';
  private status: ExitStatus | undefined;
  readonly exited: Promise<ExitStatus>;

  private constructor(
    private readonly child: ChildProcess,
    readonly stateDir: string,
  ) {
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    this.exited = new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => {
        this.status = { code, signal };
        running.delete(this);
        resolve(this.status);
      });
    });
  }

  static start(opts: { stateDir: string; netns?: string }): AgentProcess {
    const [command, argv] = inNetns(opts.netns, [process.execPath, gatehouseBin, 'agent', 'run', '--state-dir', opts.stateDir]);
    // `ip netns exec` execs the command: the child's pid is the agent's.
    const agent = new AgentProcess(spawn(command, argv, { env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] }), opts.stateDir);
    running.add(agent);
    return agent;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Everything it wrote (stdout and stderr, interleaved as they came). */
  get log(): string {
    return this.output;
  }

  /** How it exited, or undefined while it runs. */
  get exitStatus(): ExitStatus | undefined {
    return this.status;
  }

  /** SIGTERM, and resolves once it exited. */
  async stop(): Promise<ExitStatus> {
    if (this.status === undefined) this.child.kill('SIGTERM');
    return this.exited;
  }

  /** SIGKILL: the agent gets no chance to say goodbye. */
  kill(): void {
    if (this.status === undefined) this.child.kill('SIGKILL');
  }
}

/** Stops every agent still running (afterAll). */
export async function stopAgents(): Promise<void> {
  await Promise.all([...running].map((a) => a.stop()));
}
