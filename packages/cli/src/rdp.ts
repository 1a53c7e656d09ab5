import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import type { RdpTunnel } from '@gatehouse/api';
import { GatehouseError } from '@gatehouse/core/errors';
import type { Command } from 'commander';
import { client, withConnection } from './api-command.js';
import { explainConnectionError, type ApiClient, type ClientOptions } from './client.js';
import { NameResolver } from './names.js';
import { wholeNumberOption } from './options.js';

interface RdpOptions extends ClientOptions {
  account?: string;
  port?: number;
  /** true: start xfreerdp; false: only print how to connect; undefined: start it when it and a display are there. */
  client?: boolean;
}

/** How long the gateway may take to answer a tunnel connection (it dials the device meanwhile). */
const ANSWER_TIMEOUT_MS = 60_000;

/** `gatehouse rdp <device>`: a local port tunnelled through the built-in gateway to the device's RDP port. */
export function rdpCommand(program: Command): void {
  withConnection(program.command('rdp <device> [client-args...]'))
    .description(
      "open a local port tunnelled through the gateway to the device's RDP port, and start xfreerdp on it " +
        '(or say how to connect mstsc, Remmina or xfreerdp); arguments after -- go to xfreerdp',
    )
    .option('--account <name>', 'the account to connect as, when the device has several you may use')
    .option('--port <port>', 'local port on 127.0.0.1 (default: a free one)', wholeNumberOption('a TCP port, 0 for a free one', 0, 65535))
    .option('--client', 'start xfreerdp (default: when it is installed and a display is there)')
    .option('--no-client', 'only open the tunnel and print how to connect')
    .action(async (deviceName: string, clientArgs: string[], o: RdpOptions) => {
      const api = client(o);
      const names = new NameResolver(api);
      const device = await names.anyDevice('<device>', deviceName);
      const accountId = o.account === undefined ? undefined : (await names.accounts('--account', o.account, [device]))[0]?.id;
      const ticket = await api.call<RdpTunnel>('POST', `/devices/${encodeURIComponent(device.id)}/rdp-tunnel`, { accountId });
      const local = await listenLocally(o.port ?? 0, ticket, api);
      const port = (local.server.address() as net.AddressInfo).port;
      const until = `${ticket.expiresAt.slice(11, 16)} UTC`;
      process.stdout.write(
        `Tunnel to ${ticket.deviceName} (RDP, account ${ticket.accountUsername}) listening on 127.0.0.1:${port}; new connections until ${until}.\n`,
      );
      const xfreerdp = o.client === false ? undefined : findOnPath('xfreerdp');
      const display = Boolean(process.env.DISPLAY || process.env.WAYLAND_DISPLAY);
      if (o.client === true && !xfreerdp)
        throw new GatehouseError('NOT_FOUND', 'xfreerdp is not installed (apt-get install freerdp2-x11), so --client cannot start it.');
      let viewer: ChildProcess | undefined;
      if (xfreerdp && (o.client === true || display)) {
        const args = [`/v:127.0.0.1:${port}`, `/u:${ticket.accountUsername}`, ...clientArgs];
        process.stdout.write(`Starting xfreerdp ${args.join(' ')}\n`);
        viewer = spawn(xfreerdp, args, { stdio: 'inherit' });
      } else {
        process.stdout.write(howToConnect(port, ticket.accountUsername));
      }
      process.exitCode = await local.until(viewer);
    });
}

/** What to type into an RDP client, when none is started. */
function howToConnect(port: number, account: string): string {
  return [
    `Connect an RDP client to 127.0.0.1:${port} and sign in as ${account} with the account's password:`,
    `  xfreerdp /v:127.0.0.1:${port} /u:${account}`,
    `  Remmina: new connection, protocol RDP, server 127.0.0.1:${port}, user name ${account}`,
    `  Windows: mstsc /v:127.0.0.1:${port}`,
    'Press Ctrl-C to close the tunnel.',
    '',
  ].join('\n');
}

/** An executable on PATH, or undefined. */
function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir || '.', name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The gateway's tunnel listener; a wildcard host (the gateway listens on every address) is the API's host. */
function gatewayOf(address: string, api: ApiClient): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
  const apiHost = new URL(api.url).hostname.replace(/^\[|\]$/g, '');
  return { host: host === '' || host === '0.0.0.0' || host === '::' ? apiHost : host, port: Number(address.slice(colon + 1)) };
}

/**
 * Listens on 127.0.0.1:`port` and tunnels each connection: TLS to the gateway (verified as
 * the API is), the ticket, the gateway's answer, then the bytes both ways. `until` resolves
 * with the exit code once the client exits (or, without one, Ctrl-C), or once the ticket
 * expired and the last connection closed.
 */
async function listenLocally(port: number, ticket: RdpTunnel, api: ApiClient) {
  const gateway = gatewayOf(ticket.address, api);
  const { readTunnelLine, RDP_TUNNEL_HELLO } = await import('@gatehouse/gateway');
  const open = new Set<net.Socket>();
  const server = net.createServer((local) => {
    open.add(local);
    local.once('close', () => open.delete(local));
    local.on('error', () => undefined);
    local.pause();
    const remote = tls.connect({ host: gateway.host, port: gateway.port, ...api.tlsOptions() });
    local.once('close', () => remote.destroy());
    remote.once('close', () => local.destroy());
    remote.once('error', (error: NodeJS.ErrnoException) => {
      const where = `${gateway.host}:${gateway.port}`;
      const why =
        error.code === 'ECONNREFUSED'
          ? `nothing listens on the gateway's RDP tunnel at ${where}. Ask an administrator to check the server's --rdp-port and the firewall.`
          : explainConnectionError(error, `the gateway's RDP tunnel at ${where}`, api.caFile).message;
      process.stderr.write(`gatehouse rdp: ${why}\n`);
    });
    remote.once('secureConnect', () => {
      remote.write(`${RDP_TUNNEL_HELLO} ${ticket.ticket}\n`);
      void readTunnelLine(remote, ANSWER_TIMEOUT_MS).then((answer) => {
        if (!answer.ok || !answer.line.startsWith('OK ')) {
          const why = answer.ok ? answer.line.replace(/^ERROR /, '') : `the gateway did not answer (${answer.problem})`;
          process.stderr.write(`gatehouse rdp: ${why}\n`);
          remote.destroy();
          return;
        }
        if (answer.rest.length > 0) local.write(answer.rest);
        local.pipe(remote);
        remote.pipe(local);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new GatehouseError(
              'CONFLICT',
              `Port ${port} on 127.0.0.1 is in use. Choose another with --port, or leave it out for a free one.`,
            )
          : error,
      ),
    );
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const until = (viewer: ChildProcess | undefined) =>
    new Promise<number>((resolve) => {
      let finished = false;
      const finish = (code: number) => {
        if (finished) return;
        finished = true;
        clearTimeout(expiry);
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        server.close();
        for (const socket of open) socket.destroy();
        resolve(code);
      };
      const stop = () => {
        viewer?.kill('SIGTERM');
        finish(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      viewer?.once('exit', (code) => finish(code ?? 1));
      viewer?.once('error', (error) => {
        process.stderr.write(`gatehouse rdp: could not start xfreerdp: ${error.message}\n`);
        finish(1);
      });
      // New connections would be refused after the ticket expires: stop taking them, and end
      // once the open ones close (a client that is still connected keeps its session).
      const expiry = setTimeout(
        () => {
          if (viewer) return;
          process.stdout.write('The ticket expired: no new connections. Run ./gatehouse rdp again for a new one.\n');
          server.close(() => finish(0));
        },
        Math.max(0, Date.parse(ticket.expiresAt) - Date.now()),
      );
    });
  return { server, until };
}
