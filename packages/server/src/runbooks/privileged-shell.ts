import { randomBytes } from 'node:crypto';
import { shellQuote } from '@gatehouse/core/runbooks';
import { RunbookConnectError, type ExecResult, type RunbookConnection } from './gateway-client.js';

/** Every script runs with a known PATH: a device's login shell may have none of the system directories. */
const PATH_PREFIX = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH; ';
export const DEFAULT_TIMEOUT_MS = 60_000;

/** How the engine signs in: as `account` on the device, through the privileged path or straight to sshd. */
export type OpenConnection = (account: string, how: { direct: boolean; credentialId: string | null }) => Promise<RunbookConnection>;

/** Runs commands with the privileged account: as is for root, else through passwordless sudo. */
export class PrivilegedShell {
  constructor(
    private readonly connection: RunbookConnection,
    private readonly sudo: boolean,
  ) {}

  /** Runs a script (`sh -c`, or `sudo -n sh -c`), with the known PATH. */
  run(script: string, options: { stdin?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    const quoted = shellQuote(PATH_PREFIX + script);
    return this.connection.exec(this.sudo ? `sudo -n sh -c ${quoted}` : `sh -c ${quoted}`, {
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      ...(options.stdin !== undefined ? { stdin: options.stdin } : {}),
    });
  }
}

/** A login as `account` (or with a stored credential of it) straight to sshd: does it run a command? */
export async function verifyLogin(
  open: OpenConnection,
  account: string,
  credentialId: string | null,
): Promise<{ ok: boolean; evidence: string; exec?: ExecResult }> {
  const nonce = `gatehouse-verify-${randomBytes(8).toString('hex')}`;
  let connection: RunbookConnection | undefined;
  try {
    connection = await open(account, { direct: true, credentialId });
    const exec = await connection.exec(`echo ${nonce}`, { timeoutMs: 30_000 });
    if (exec.exitCode === 0 && exec.stdout.includes(nonce))
      return { ok: true, evidence: `a new SSH login as ${account} ran a command`, exec };
    return { ok: false, evidence: `a new SSH login as ${account} did not echo back (exit ${exitOf(exec)})`, exec };
  } catch (error) {
    if (!(error instanceof RunbookConnectError)) throw error;
    return { ok: false, evidence: `a new SSH login as ${account} failed: ${oneLine(error.message)}` };
  } finally {
    connection?.close();
  }
}

export function oneLine(text: string): string {
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 199)}…` : flat;
}

export const exitOf = (exec: ExecResult): string =>
  exec.exitCode !== null ? String(exec.exitCode) : exec.signal ? `signal ${exec.signal}` : 'none';
