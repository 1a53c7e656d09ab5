import { spawn } from 'node:child_process';

export interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
  ms: number;
}

// BatchMode=no first: `sftp -b` turns batch mode on, which forbids password prompts, and ssh keeps the first value given.
const CLIENT_OPTIONS = [
  '-o',
  'BatchMode=no',
  '-o',
  'StrictHostKeyChecking=no',
  '-o',
  'UserKnownHostsFile=/dev/null',
  '-o',
  'PubkeyAuthentication=no',
  '-o',
  'PreferredAuthentications=keyboard-interactive,password',
  '-o',
  'NumberOfPasswordPrompts=1',
  '-o',
  'ConnectTimeout=10',
];

/** An OpenSSH client (ssh, sftp, scp, or `program`) with the Gatehouse password given by sshpass, its standard streams piped. */
function spawnClient(command: 'ssh' | 'sftp' | 'scp', args: string[], password: string, program?: string) {
  return spawn('sshpass', ['-p', password, program ?? command, ...CLIENT_OPTIONS, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs an OpenSSH client (ssh, sftp, scp) with the Gatehouse password given by sshpass. */
export function runClient(
  command: 'ssh' | 'sftp' | 'scp',
  args: string[],
  opts: {
    password: string;
    stdin?: string;
    timeoutMs?: number;
    /** Another OpenSSH's client (a path to its ssh, sftp or scp) instead of the one on PATH. */
    program?: string;
  },
): Promise<Run> {
  const started = performance.now();
  const child = spawnClient(command, args, opts.password, opts.program);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  child.stdin.end(opts.stdin ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8'), ms: performance.now() - started });
    });
  });
}

/** `ssh -p port user@127.0.0.1 command` with the Gatehouse password; output as text. */
export async function sshCommand(
  port: number,
  user: string,
  command: string,
  password: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = await runClient('ssh', ['-p', String(port), `${user}@127.0.0.1`, command], { password, timeoutMs: 60_000 });
  return { code: run.code, stdout: run.stdout.toString('utf8'), stderr: run.stderr };
}

/** `ssh -p port user@127.0.0.1 command` with the Gatehouse password, left running: its standard input is ours to write. */
export function openSsh(port: number, user: string, command: string, password: string) {
  const child = spawnClient('ssh', ['-p', String(port), `${user}@127.0.0.1`, command], password);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  return { child, exited, out: () => stdout, err: () => stderr };
}
