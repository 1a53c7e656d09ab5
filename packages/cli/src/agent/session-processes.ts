import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AgentGateway } from '@gatehouse/core/agent-protocol';
import type { AgentLogger } from './log.js';
import type { SessionGrants } from './session-grants.js';
import type { SessionStart, SpendAnswer, SpendRequest } from './session-main.js';

/** Session processes alive at once (dialling back or serving): a flood of `open` starts no more. */
export const MAX_SESSION_PROCESSES = 64;
const SESSION_MAIN = fileURLToPath(new URL('./session-main.js', import.meta.url));
/** How long stopped session processes get to hang up their sessions before SIGKILL. */
const STOP_GRACE_MS = 2_000;

export interface SessionProcessesOptions {
  stateDir: string;
  /** The one record of spent grant nonces, shared by every session process. */
  grants: SessionGrants;
  logger: AgentLogger;
}

/**
 * The agent's main process's side of its session processes: one `session-main.js` per
 * `open`, forked with the main process's Node flags, its stderr (the journal) and an IPC
 * channel over which it asks to spend grant nonces, so a grant is good once across all of
 * them. The main process never loads ssh2 or node-pty, and a session process's crash or
 * memory stays its own.
 */
export class SessionProcesses {
  private readonly live = new Set<ChildProcess>();
  private stopping = false;

  constructor(private readonly o: SessionProcessesOptions) {}

  /** Session processes alive now. */
  get size(): number {
    return this.live.size;
  }

  /** Starts a session process that dials `entry` back for `ref`. */
  start(entry: AgentGateway, ref: string): void {
    const { logger } = this.o;
    if (this.stopping) return;
    if (this.live.size >= MAX_SESSION_PROCESSES) {
      logger.warn('open refused: too many session processes', { gateway: entry.name, max: MAX_SESSION_PROCESSES });
      return;
    }
    const child = fork(SESSION_MAIN, [], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      execArgv: process.execArgv,
      serialization: 'json',
    });
    this.live.add(child);
    child.on('message', (message: unknown) => this.answer(child, message));
    child.once('error', (error: NodeJS.ErrnoException) => {
      // Never started (fork failed): no exit follows.
      if (child.pid === undefined) this.live.delete(child);
      logger.error('session process error', { gateway: entry.name, reason: error.code ?? error.message });
    });
    child.once('exit', (code, signal) => {
      this.live.delete(child);
      if (code !== 0) logger.error('session process failed', { gateway: entry.name, pid: child.pid, code, signal });
    });
    child.send({ t: 'start', stateDir: this.o.stateDir, entry, ref } satisfies SessionStart, () => undefined);
  }

  /** SIGTERM to every session process (they hang up their sessions), SIGKILL to any left after the grace. */
  async stop(): Promise<void> {
    this.stopping = true;
    const exited = [...this.live].map((child) => new Promise((resolve) => child.once('exit', resolve)));
    for (const child of this.live) child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(exited), new Promise((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS)))]);
    clearTimeout(timer);
    for (const child of this.live) child.kill('SIGKILL');
  }

  private answer(child: ChildProcess, message: unknown): void {
    if (!isSpendRequest(message)) return;
    const ok = this.o.grants.spend(message.nonce, message.expiresAt);
    child.send({ t: 'spent', id: message.id, ok } satisfies SpendAnswer, () => undefined);
  }
}

function isSpendRequest(message: unknown): message is SpendRequest {
  const m = message as Partial<SpendRequest> | null;
  return (
    typeof m === 'object' &&
    m !== null &&
    m.t === 'spend' &&
    typeof m.id === 'number' &&
    typeof m.nonce === 'string' &&
    typeof m.expiresAt === 'string'
  );
}
