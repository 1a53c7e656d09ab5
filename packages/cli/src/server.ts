import path from 'node:path';
import { Option, type Command } from 'commander';

interface ServerFlags {
  host?: string;
  port?: string;
  dataDir?: string;
  config?: string;
  databaseUrl?: string;
  logLevel?: string;
  logFormat?: string;
  gatewayPort?: string;
  vncPort?: string;
  agentPort?: string;
  agentAddress?: string;
  rdpPort?: string;
}

/** `gatehouse server`: runs the server until SIGTERM or SIGINT. */
export function serverCommand(program: Command): void {
  program
    .command('server')
    .description('run the server: HTTPS API and console, embedded database unless DATABASE_URL is set')
    .option('--host <host>', 'address to listen on (env GATEHOUSE_HOST; default 0.0.0.0)')
    .option('--port <port>', 'port (env GATEHOUSE_PORT; default 443 as root, 8443 otherwise)')
    .option('--data-dir <dir>', 'data directory (env GATEHOUSE_DATA_DIR; default ./data)')
    .option('--config <file>', 'JSON config file (env GATEHOUSE_CONFIG)')
    .option('--database-url <url>', 'PostgreSQL URL (env DATABASE_URL)')
    .option('--gateway-port <port>', 'port of the built-in SSH/SFTP gateway, 0 to turn it off (env GATEHOUSE_GATEWAY_PORT; default 7993)')
    .option(
      '--vnc-port <port>',
      'port native VNC viewers connect to with a one-time token, 0 to turn it off (env GATEHOUSE_VNC_PORT; default 7995)',
    )
    .option(
      '--agent-port <port>',
      'port host agents link to the built-in gateway on, 0 to turn it off (env GATEHOUSE_AGENT_PORT; default 7996)',
    )
    .option(
      '--agent-address <host:port>',
      'the address host agents are told to dial, behind NAT or a load balancer (env GATEHOUSE_AGENT_ADDRESS)',
    )
    .option(
      '--rdp-port <port>',
      "port of the built-in gateway's tunnel for ./gatehouse rdp (native RDP clients), 0 to turn it off (env GATEHOUSE_RDP_PORT; default 7994)",
    )
    .addOption(
      new Option('--log-level <level>', 'log level (env GATEHOUSE_LOG_LEVEL; default info; debug adds a line per request)').choices([
        'fatal',
        'error',
        'warn',
        'info',
        'debug',
        'trace',
        'silent',
      ]),
    )
    .addOption(
      new Option(
        '--log-format <format>',
        'text: readable lines; json: JSON lines with every request (env GATEHOUSE_LOG_FORMAT; default text on a terminal, json otherwise)',
      ).choices(['text', 'json']),
    )
    .action(async (o: ServerFlags) => {
      const { loadServerConfig, startServer, describeStartupError, createLogger, textLogDestination, STOP_DEADLINE_MS } =
        await import('@gatehouse/server');
      let running: Awaited<ReturnType<typeof startServer>>;
      let text = false;
      try {
        const config = loadServerConfig({
          configFile: o.config,
          flags: {
            host: o.host,
            port: o.port,
            dataDir: o.dataDir,
            databaseUrl: o.databaseUrl,
            logLevel: o.logLevel,
            logFormat: o.logFormat,
            gatewayPort: o.gatewayPort,
            vncPort: o.vncPort,
            agentPort: o.agentPort,
            agentAddress: o.agentAddress,
            rdpPort: o.rdpPort,
          },
        });
        const logFormat = config.logFormat ?? (process.stdout.isTTY ? 'text' : 'json');
        text = logFormat === 'text';
        const logger = createLogger(config.logLevel, text ? textLogDestination(process.stdout) : undefined);
        running = await startServer({ ...config, logFormat }, logger);
      } catch (error) {
        process.stderr.write(`gatehouse server: ${describeStartupError(error)}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(text ? textBanner(running) : jsonModeBanner(running));
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          const { logger } = running.services;
          logger.info({ signal }, 'shutting down');
          // The stop is bounded: whatever still holds the process after the deadline (a peer
          // that does not close its connection) does not keep a stopped server running.
          setTimeout(() => {
            logger.error({ deadlineMs: STOP_DEADLINE_MS }, `Gatehouse did not stop within ${STOP_DEADLINE_MS / 1000} s; exiting`);
            process.exit(1);
          }, STOP_DEADLINE_MS).unref();
          running.close().then(resolve, resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      return;
    });
}

interface Started {
  url: string;
  fingerprint: string;
  certFile: string;
  gateway: { port: number; fingerprint: string } | null;
  vncPort: number | null;
  agentPort: number | null;
  rdpPort: number | null;
  setupTokenFile: string | null;
}

/** What `gatehouse server` prints once it listens, between JSON log lines (scripts and tests read these lines). */
export function jsonModeBanner(s: Started): string {
  return [
    `Gatehouse ${s.url}`,
    `Certificate SHA-256 fingerprint: ${s.fingerprint}`,
    `Certificate: ${s.certFile}`,
    ...(s.gateway ? [`SSH gateway port ${s.gateway.port}, host key ${s.gateway.fingerprint}`] : []),
    ...(s.vncPort !== null ? [`VNC viewers connect on port ${s.vncPort}`] : []),
    ...(s.agentPort !== null ? [`Host agents link on port ${s.agentPort}`] : []),
    ...(s.rdpPort !== null ? [`RDP tunnel (./gatehouse rdp) on port ${s.rdpPort}`] : []),
    '',
  ].join('\n');
}

/** The same on a terminal: a block that says what to open, what to compare and what to do next. */
export function textBanner(s: Started): string {
  const rows: [string, string][] = [
    ['Console and API', `${s.url}/  (API docs ${s.url}/api/v1/docs)`],
    ['Certificate SHA-256', s.fingerprint],
    ['Certificate file', s.certFile],
    ['SSH gateway', s.gateway ? `port ${s.gateway.port}, host key ${s.gateway.fingerprint}` : 'off'],
    ...(s.vncPort !== null ? [['VNC viewers', `port ${s.vncPort}`] as [string, string]] : []),
    ...(s.agentPort !== null ? [['Host agents', `port ${s.agentPort}`] as [string, string]] : []),
    ...(s.rdpPort !== null ? [['RDP tunnel', `port ${s.rdpPort} (./gatehouse rdp <device>)`] as [string, string]] : []),
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const next = s.setupTokenFile
    ? [
        'No administrator yet. Open the console and enter the set-up token from',
        `  ${s.setupTokenFile}`,
        'or run:',
        `  ./gatehouse setup --data-dir ${path.dirname(s.setupTokenFile)}`,
      ]
    : ['Sign in at the console, or: ./gatehouse login --username <name>'];
  return [
    '',
    `Gatehouse ${s.url}`,
    ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`),
    '',
    ...next,
    '',
    'Logs follow (--log-level debug adds a line per request; --log-format json for JSON lines). Ctrl-C stops the server.',
    '',
  ].join('\n');
}
