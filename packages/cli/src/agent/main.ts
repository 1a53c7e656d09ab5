import os from 'node:os';
import { AgentLink } from './link.js';
import { jsonLogger, type AgentLogger } from './log.js';
import { opensshPrivateKey } from './openssh-key.js';
import type { AgentSessionServer } from './session-server.js';
import { AGENT_STATE_DIR, AGENT_VERSION, loadAgentState } from './state.js';

/**
 * `gatehouse agent run [--state-dir dir]`: the agent's process, started by systemd. A lean
 * entry: `bin/gatehouse.js` loads it without the rest of the CLI (no server, database or
 * API code), so an idle agent stays small. Logs JSON lines on stderr; SIGTERM or SIGINT
 * ends the link and every session and exits 0.
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
  // ssh2 and node-pty load with the first session: an agent that only keeps its link stays smaller.
  let sessions: Promise<AgentSessionServer> | undefined;
  const sessionServer = () =>
    (sessions ??= import('./session-server.js').then(
      ({ AgentSessionServer }) =>
        new AgentSessionServer({
          agentId: agent.state.agentId,
          serverKey: agent.state.serverKey,
          hostKey: opensshPrivateKey(agent.privateKey),
          logger,
        }),
    ));
  const link = new AgentLink({
    agent,
    version: AGENT_VERSION,
    hostname: os.hostname(),
    logger,
    onAttach: (socket, gateway) => {
      sessionServer().then(
        (server) => server.handle(socket, gateway),
        (error: Error) => {
          logger.error('the session server could not start', { reason: error.message });
          socket.destroy();
        },
      );
    },
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
  (await sessions)?.close();
  logger.info('agent stopped', { signal });
  // Sessions got SIGHUP; one that ignores it must not hold the agent (systemd would wait).
  setTimeout(() => process.exit(0), 2_000).unref();
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
