import { AGENT_PROTOCOL_VERSION, encodeFrame, type AgentGateway } from '@gatehouse/core/agent-protocol';
import { linkIdentityOf } from '@gatehouse/gateway/identity';
import { dialGateway } from './link.js';
import { jsonLogger, type AgentLogger } from './log.js';
import { opensshPrivateKey } from './openssh-key.js';
import type { AgentSessionServer } from './session-server.js';
import { loadAgentState } from './state.js';

/** The agent's main process to a session process, first and once: where to dial back for which `open`. */
export interface SessionStart {
  t: 'start';
  stateDir: string;
  entry: AgentGateway;
  ref: string;
}

/** A session process asks the main process to spend a checked grant's nonce; `spent` answers with the same id. */
export interface SpendRequest {
  t: 'spend';
  id: number;
  nonce: string;
  expiresAt: string;
}

export interface SpendAnswer {
  t: 'spent';
  id: number;
  ok: boolean;
}

/** How long a session outlives the agent's main process, waiting for the gateway to end it. */
const PARENT_GONE_GRACE_MS = 3_000;

/** As long as the link's own dial may take. */
const DIAL_TIMEOUT_MS = 5_000;

/**
 * A session process (`child_process.fork` from the agent's main process, one per `open`, as
 * sshd forks one per connection): it dials the gateway back, sends `attach` and serves SSH
 * on that one connection; its sessions' processes are its children. It exits when the
 * connection is gone (its sessions hung up with it), on SIGTERM, SIGHUP or SIGINT, or when
 * the main process is gone. Exit status 0 whenever it ended as designed (a failed dial is
 * logged here); anything else is a crash, which the main process logs and outlives. Its
 * memory goes with it, so the agent returns to its idle size after every session.
 */
function runSessionProcess(logger: AgentLogger): void {
  const answers = new Map<number, (ok: boolean) => void>();
  let server: AgentSessionServer | undefined;
  let started = false;
  const end = () => {
    server?.close();
    for (const answer of answers.values()) answer(false);
    process.exit(0);
  };
  for (const signal of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) process.once(signal, end);
  // The main process is gone: no nonce can be spent any more, and its link is down, so the
  // gateway ends this session too, saying why (the link was lost). Hanging up first would
  // race that reason with a plain close the gateway would take for a normal end: give the
  // gateway a moment to hang up (this process exits with the connection), then go anyway.
  process.once('disconnect', () => setTimeout(end, PARENT_GONE_GRACE_MS));

  let nextId = 0;
  const spendNonce = (nonce: string, expiresAt: string) =>
    new Promise<boolean>((resolve) => {
      const id = ++nextId;
      answers.set(id, (ok) => {
        answers.delete(id);
        resolve(ok);
      });
      process.send?.({ t: 'spend', id, nonce, expiresAt } satisfies SpendRequest, (error: Error | null) => {
        if (error) answers.get(id)?.(false);
      });
    });

  process.on('message', (message: SessionStart | SpendAnswer) => {
    if (message.t === 'spent') return answers.get(message.id)?.(message.ok);
    if (message.t !== 'start' || started) return;
    started = true;
    void attach(message, spendNonce, logger, end).then((serving) => {
      if (!serving) return end();
      server = serving;
    });
  });
}

/** Dials the gateway back for `start.ref` and serves SSH on the connection until it closes; undefined when the dial failed (logged). */
async function attach(
  start: SessionStart,
  spendNonce: (nonce: string, expiresAt: string) => Promise<boolean>,
  logger: AgentLogger,
  closed: () => void,
): Promise<AgentSessionServer | undefined> {
  const gateway = start.entry.name;
  let agent;
  try {
    agent = loadAgentState(start.stateDir);
  } catch (error) {
    logger.error('dial-back failed', { gateway, reason: (error as Error).message });
    return undefined;
  }
  // ssh2 and node-pty load while the TLS handshake runs: a session starts sooner.
  const loading = import('./session-server.js');
  let socket;
  try {
    socket = await dialGateway(start.entry, linkIdentityOf(agent.privateKey, 'gatehouse-agent'), DIAL_TIMEOUT_MS);
  } catch (error) {
    logger.warn('dial-back failed', { gateway, reason: (error as Error).message });
    return undefined;
  }
  // The connection is the session process's life: without it, its sessions hang up (as sshd's do) and it exits.
  socket.once('close', closed);
  socket.write(encodeFrame({ t: 'attach', v: AGENT_PROTOCOL_VERSION, agentId: agent.state.agentId, ref: start.ref }));
  const { AgentSessionServer } = await loading;
  const server = new AgentSessionServer({
    agentId: agent.state.agentId,
    serverKey: agent.state.serverKey,
    hostKey: opensshPrivateKey(agent.privateKey),
    logger,
    spendNonce,
  });
  server.handle(socket, gateway);
  return server;
}

runSessionProcess(jsonLogger());
