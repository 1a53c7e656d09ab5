import os from 'node:os';
import { AgentLink } from './link.js';
import { jsonLogger, type AgentLogger } from './log.js';
import { SessionGrants } from './session-grants.js';
import { SessionProcesses } from './session-processes.js';
import { AGENT_STATE_DIR, AGENT_VERSION, loadAgentState } from './state.js';

/**
 * `gatehouse agent run [--state-dir dir]`: the agent's process, started by systemd. A lean
 * entry: `bin/gatehouse.js` loads it without the rest of the CLI (no server, database or
 * API code), so an idle agent stays small. It keeps the link; each session runs in a
 * session process of its own (`session-main.ts`, which alone loads ssh2 and node-pty), as
 * sshd forks one per connection: the agent returns to its idle size after sessions, and a
 * session's crash is not the agent's. Logs JSON lines on stderr (session processes share
 * it); SIGTERM or SIGINT ends the link and every session and exits 0.
 */
export async function runAgent(argv: string[], logger: AgentLogger = jsonLogger()): Promise<number> {
  const args = parseArgs(argv);
  if ('help' in args) {
    process.stdout.write(
      `Usage: gatehouse agent run [--state-dir <dir>]\n\nRuns the enrolled host agent (default state directory ${AGENT_STATE_DIR}).\n`,
    );
    return args.help ? 0 : 2;
  }
  let agent;
  try {
    agent = loadAgentState(args.stateDir);
  } catch (error) {
    logger.error((error as Error).message, { stateDir: args.stateDir });
    return 1;
  }
  // The spent grant nonces of every session process: a grant is good once, whichever process it reaches.
  const grants = new SessionGrants({ serverKey: agent.state.serverKey, agentId: agent.state.agentId });
  const sessions = new SessionProcesses({ stateDir: agent.stateDir, grants, logger });
  const link = new AgentLink({
    agent,
    version: AGENT_VERSION,
    hostname: os.hostname(),
    logger,
    onOpen: (entry, ref) => sessions.start(entry, ref),
  });
  logger.info('agent started', {
    agentId: agent.state.agentId,
    device: agent.state.deviceName,
    version: AGENT_VERSION,
    gateways: agent.gateways.gateways.map((g) => `${g.name} ${g.address}`),
  });
  link.start();
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  link.stop();
  await sessions.stop();
  logger.info('agent stopped', { signal });
  return 0;
}

function parseArgs(argv: string[]): { stateDir: string } | { help: boolean } {
  let stateDir = AGENT_STATE_DIR;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--help' || arg === '-h') return { help: true };
    if (arg === '--state-dir' && argv[i + 1] !== undefined) stateDir = argv[++i] as string;
    else if (arg.startsWith('--state-dir=')) stateDir = arg.slice('--state-dir='.length);
    else {
      process.stderr.write(`gatehouse agent run: unknown argument ${JSON.stringify(arg)}\n`);
      return { help: false };
    }
  }
  return { stateDir };
}
