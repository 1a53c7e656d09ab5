import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { AuthorizedTarget, GatewayUser } from './broker.js';
import { GatehouseError } from '@gatehouse/core';

/** A TCP path to the device: a direct socket, or a relay through another gateway. */
export type DialOutcome =
  | { ok: true; socket: Duplex & { setNoDelay?(noDelay?: boolean): unknown }; gateway: string; segment: string | null }
  | { ok: false; reason: string; gateway: string; segment: string | null };

/**
 * Opens the TCP connection to the device for a signed-in, authorized user. The built-in
 * gateway's dialer chooses among the online gateways of the device's segment and fails
 * over to the next; the default connects directly.
 */
export type TargetDialer = (target: AuthorizedTarget, context: { user: GatewayUser; remoteAddress: string }) => Promise<DialOutcome>;

/** The dialer of a gateway that reaches devices itself. */
export function directDialer(gateway: string, timeoutMs: number): TargetDialer {
  return async (target) => {
    try {
      const socket = await connectSocket(target.host, target.port, timeoutMs);
      return { ok: true, socket, gateway, segment: target.segment };
    } catch (error) {
      return {
        ok: false,
        reason: describeSocketError(error as NodeJS.ErrnoException, target, timeoutMs),
        gateway,
        segment: target.segment,
      };
    }
  };
}

/** How a device is named in messages: `db-1 (10.0.0.5:22)`. */
export function whereOf(target: AuthorizedTarget): string {
  return `${target.deviceName} (${target.host}:${target.port})`;
}

export function connectSocket(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new SocketError('ETIMEDOUT', 'timed out'));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** The device could not be reached: `socketCode` is the socket error's code (`ECONNREFUSED`, `ETIMEDOUT`), as Node names it. */
export class SocketError extends GatehouseError {
  constructor(
    readonly socketCode: string,
    message: string,
  ) {
    super('UNREACHABLE', message);
    this.name = 'SocketError';
  }
}

/** How a refused connection's message names the service that should listen, per protocol. */
const LISTENERS = {
  ssh: { port: 'port', server: 'sshd runs' },
  vnc: { port: 'VNC port (vnc://host:port in its URL/Port, else 5900)', server: 'its VNC server runs' },
  rdp: { port: 'RDP port (rdp://host:port in its URL/Port, else 3389)', server: 'its RDP service runs' },
} as const;

/** What the user is told about a device the gateway could not connect to, from the socket error. */
export function describeSocketError(error: NodeJS.ErrnoException | SocketError, target: AuthorizedTarget, timeoutMs: number): string {
  const code = error instanceof SocketError ? error.socketCode : error.code;
  const where = whereOf(target);
  switch (code ?? '') {
    case 'EAGENTLINK':
      return `The host agent of ${where} is not linked to the gateway that was asked. Check that gatehouse-agent runs on the device and can reach a gateway of its segment.`;
    case 'ECONNREFUSED': {
      const listener = LISTENERS[target.protocol ?? 'ssh'];
      return `${where} refused the connection: nothing listens on that port. Check the device's address and ${listener.port}, and that ${listener.server}.`;
    }
    case 'ETIMEDOUT':
      return `${where} did not answer within ${Math.round(timeoutMs / 1000)} s. Check that the gateway can reach the device (firewall, address).`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${where} is unreachable from the gateway (${code}). Check the device's address and the network route.`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `The address of ${where} does not resolve. Check the device's address.`;
    default:
      return `Cannot connect to ${where}: ${code ?? 'network error'}.`;
  }
}
