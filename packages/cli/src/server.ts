import { Option, type Command } from 'commander';

interface ServerFlags {
  host?: string;
  port?: string;
  dataDir?: string;
  config?: string;
  databaseUrl?: string;
  logLevel?: string;
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
      "port of the built-in gateway's tunnel for gatehouse rdp (native RDP clients), 0 to turn it off (env GATEHOUSE_RDP_PORT; default 7994)",
    )
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action(async (o: ServerFlags) => {
      const { loadServerConfig, startServer, describeStartupError, createLogger } = await import('@gatehouse/server');
      let running: Awaited<ReturnType<typeof startServer>>;
      try {
        const config = loadServerConfig({
          configFile: o.config,
          flags: {
            host: o.host,
            port: o.port,
            dataDir: o.dataDir,
            databaseUrl: o.databaseUrl,
            logLevel: o.logLevel,
            gatewayPort: o.gatewayPort,
            vncPort: o.vncPort,
            agentPort: o.agentPort,
            agentAddress: o.agentAddress,
            rdpPort: o.rdpPort,
          },
        });
        running = await startServer(config, createLogger(config.logLevel));
      } catch (error) {
        process.stderr.write(`gatehouse server: ${describeStartupError(error)}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(
        `Gatehouse ${running.url}\nCertificate SHA-256 fingerprint: ${running.fingerprint}\nCertificate: ${running.certFile}\n`,
      );
      if (running.gateway) {
        process.stdout.write(`SSH gateway port ${running.gateway.port}, host key ${running.gateway.fingerprint}\n`);
      }
      if (running.vncPort !== null) process.stdout.write(`VNC viewers connect on port ${running.vncPort}\n`);
      if (running.agentPort !== null) process.stdout.write(`Host agents link on port ${running.agentPort}\n`);
      if (running.rdpPort !== null) process.stdout.write(`RDP tunnel (gatehouse rdp) on port ${running.rdpPort}\n`);
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          running.services.logger.info({ signal }, 'shutting down');
          running.close().then(resolve, resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      return;
    });
}
