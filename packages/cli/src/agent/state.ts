import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { verifyAgentGateways, type AgentGatewayList, type SignedToken } from '@gatehouse/core/agent-protocol';
import { GatehouseError } from '@gatehouse/core/errors';

export const AGENT_VERSION = '0.1.0';
export const AGENT_STATE_DIR = '/var/lib/gatehouse-agent';
export const AGENT_KEY_FILE = 'agent_ed25519_key.pem';
export const AGENT_STATE_FILE = 'agent.json';

/** What `agent.json` holds once the agent is enrolled. */
export interface AgentState {
  agentId: string;
  deviceId: string;
  deviceName: string;
  server: string;
  serverFingerprint: string;
  /** The server's link key (base64 SPKI DER), pinned at enrollment: it signs grants and gateway lists. */
  serverKey: string;
  /** The newest gateway list the server signed (a SignedToken of an AgentGatewayList). */
  gateways: SignedToken;
  enrolledAt: string;
}

/** An enrolled agent as `gatehouse agent run` starts it: its state, its verified gateway list and its key. */
export interface LoadedAgent {
  stateDir: string;
  state: AgentState;
  gateways: AgentGatewayList;
  /** The agent's Ed25519 private key, PKCS#8 PEM. */
  privateKey: string;
}

const notEnrolled = (message: string) => new GatehouseError('CONFIG_INVALID', message);

/**
 * Reads `agent.json` and the key from the state directory and checks the stored gateway
 * list against the pinned server key, so the agent never dials a gateway the server did
 * not name.
 */
export function loadAgentState(stateDir: string): LoadedAgent {
  const file = path.join(stateDir, AGENT_STATE_FILE);
  let state: Partial<AgentState>;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as Partial<AgentState>;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw notEnrolled(
      code === 'ENOENT'
        ? `${file} does not exist: enroll first with the install command the console or \`./gatehouse agents token\` printed.`
        : `${file} is not readable JSON (${code ?? 'syntax error'}). Remove the state directory and enroll again with a new join token.`,
    );
  }
  for (const key of ['agentId', 'deviceId', 'server', 'serverKey', 'gateways'] as const) {
    if (typeof state[key] !== 'string' || state[key] === '') {
      throw notEnrolled(
        `${file} has no ${key}: it was written by an older enrollment. Revoke the agent, remove ${stateDir} and enroll again with a new join token.`,
      );
    }
  }
  const complete = state as AgentState;
  const list = verifyAgentGateways(complete.gateways, { serverKey: complete.serverKey, agentId: complete.agentId });
  if (!list.ok || list.list.gateways.length === 0) {
    throw notEnrolled(
      `${file}: the stored gateway list is not usable (${list.ok ? 'no gateway' : list.reason}). Remove ${stateDir} and enroll again.`,
    );
  }
  const keyFile = path.join(stateDir, AGENT_KEY_FILE);
  let privateKey: string;
  try {
    privateKey = readFileSync(keyFile, 'utf8');
  } catch (error) {
    throw notEnrolled(
      `${keyFile} is not readable (${(error as NodeJS.ErrnoException).code ?? 'error'}); the agent cannot prove who it is without it.`,
    );
  }
  return { stateDir, state: complete, gateways: list.list, privateKey };
}

/** Writes `agent.json` (0600) under another name and renames it, so a crash never leaves half a file. */
export function writeAgentState(stateDir: string, state: AgentState): void {
  const file = path.join(stateDir, AGENT_STATE_FILE);
  const partial = `${file}.partial`;
  writeFileSync(partial, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  chmodSync(partial, 0o600);
  renameSync(partial, file);
}
