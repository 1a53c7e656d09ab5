import type ssh2 from 'ssh2';
import type { ClientChannel, Connection, PseudoTtyOptions } from 'ssh2';
import { GatehouseError } from '@gatehouse/core';

/**
 * Channel opens as the device answers them. ssh2 opens a device's session channel only
 * together with its request (`exec`, `shell`, `subsys`), and refuses a user's channel with
 * a fixed reason and no text. The gateway needs both the other way: a user's channel is
 * accepted only once the device has accepted one (a stock sshd takes 10 per connection,
 * MaxSessions), and the device's refusal reaches the user as the device sent it, so that
 * OpenSSH prints it ("open failed: connect failed: Connection refused") and a ControlMaster
 * client falls back to a connection of its own. These reach into ssh2 1.17's channel
 * manager and protocol writer, the same calls its own `exec` makes; every channel of the
 * e2e tests goes through them, and `openSessionChannel` refuses to run on an ssh2 without them.
 */

/** SSH_MSG_CHANNEL_OPEN_FAILURE reason codes (RFC 4254, 5.1). */
export const OPEN_FAILURE = { ADMINISTRATIVELY_PROHIBITED: 1, CONNECT_FAILED: 2, RESOURCE_SHORTAGE: 4 } as const;

/** Why a channel could not be opened, as the SSH protocol carries it. */
export interface ChannelRefusal {
  reason: number;
  description: string;
}

// ssh2's window and packet size for channels it opens (lib/Channel.js).
const MAX_WINDOW = 2 * 1024 * 1024;
const PACKET_SIZE = 32 * 1024;
const OPEN_FAILURE_PREFIX = '(SSH) Channel open failure: ';

interface ClientInternals {
  _chanMgr: { add(callback: unknown): number };
  _protocol: { session(localChannel: number, window: number, packetSize: number): void };
}
interface ChannelInternals {
  outgoing: { id: number; state: string };
  _callbacks: ((failed: boolean | Error) => void)[];
  _client: { _protocol: DeviceProtocol };
  subtype?: string;
  allowHalfOpen: boolean;
}
interface DeviceProtocol {
  pty(id: number, rows: number, cols: number, height: number, width: number, term: string, modes: unknown, wantReply: boolean): void;
  exec(id: number, command: string, wantReply: boolean): void;
  shell(id: number, wantReply: boolean): void;
  subsystem(id: number, name: string, wantReply: boolean): void;
}
interface ServerInternals {
  _protocol: { channelOpenFail(remote: number, reason: number, description: string): void };
}

/** The refusal in an ssh2 channel-open error, or undefined when it is another error (the connection dropped). */
export function refusalOf(error: Error & { reason?: unknown }): ChannelRefusal | undefined {
  if (typeof error.reason !== 'number' || !error.message.startsWith(OPEN_FAILURE_PREFIX)) return undefined;
  return { reason: error.reason, description: error.message.slice(OPEN_FAILURE_PREFIX.length) };
}

/** Refuses a user's channel with `refusal`'s reason and text (ssh2's own `reject` sends a fixed reason and none). */
export function rejectChannel(connection: Connection, reject: () => void, refusal: ChannelRefusal): void {
  const protocol = (connection as unknown as ServerInternals)._protocol;
  const send = protocol.channelOpenFail.bind(protocol);
  // Shadows the prototype's method for this one call; deleting the own property restores it.
  protocol.channelOpenFail = (remote) => send(remote, refusal.reason, refusal.description.slice(0, 1000));
  try {
    reject();
  } finally {
    Reflect.deleteProperty(protocol, 'channelOpenFail');
  }
}

/** Opens a session channel on the device with no request yet: the user's requests follow on it. */
export function openSessionChannel(client: ssh2.Client): Promise<ClientChannel> {
  const c = client as unknown as Partial<ClientInternals>;
  return new Promise((resolve, reject) => {
    if (typeof c._chanMgr?.add !== 'function' || typeof c._protocol?.session !== 'function') {
      return reject(
        new GatehouseError('INTERNAL', 'ssh2 has changed: the gateway cannot open a session channel on its own. Use ssh2 1.17.'),
      );
    }
    const callback = Object.assign((error: Error | undefined, channel: ClientChannel) => (error ? reject(error) : resolve(channel)), {
      type: 'session',
    });
    try {
      const local = c._chanMgr.add(callback);
      if (local === -1) return reject(new GatehouseError('BAD_GATEWAY', 'No free channels available on the connection to the device.'));
      c._protocol.session(local, MAX_WINDOW, PACKET_SIZE);
    } catch (error) {
      reject(error instanceof Error ? error : new GatehouseError('INTERNAL', String(error)));
    }
  });
}

/** What a user's session channel asks for; sent to the device's channel, after a pty when there is one. */
export type SessionRequest = { kind: 'exec'; command: string } | { kind: 'shell' } | { kind: 'subsystem'; name: string };

/** Sends `request` (after `pty`, if given) on a channel from `openSessionChannel`; resolves once the device agreed. */
export async function startSession(channel: ClientChannel, request: SessionRequest, pty?: PseudoTtyOptions): Promise<void> {
  const ch = channel as unknown as ChannelInternals;
  const ask = (what: string, send: (protocol: DeviceProtocol, id: number) => void) =>
    new Promise<void>((resolve, reject) => {
      if (ch.outgoing.state !== 'open') return reject(new GatehouseError('BAD_GATEWAY', 'the channel closed'));
      ch._callbacks.push((failed) =>
        failed
          ? reject(failed instanceof Error ? failed : new GatehouseError('BAD_GATEWAY', `the device refused the ${what} request`))
          : resolve(),
      );
      send(ch._client._protocol, ch.outgoing.id);
    });
  if (pty) {
    await ask('pty', (p, id) =>
      p.pty(id, pty.rows ?? 24, pty.cols ?? 80, pty.height ?? 480, pty.width ?? 640, pty.term ?? 'vt100', pty.modes ?? null, true),
    );
  }
  switch (request.kind) {
    case 'exec':
      await ask('exec', (p, id) => p.exec(id, request.command, true));
      // As ssh2's exec: the device may go on sending after the user's EOF.
      ch.allowHalfOpen = true;
      break;
    case 'shell':
      await ask('shell', (p, id) => p.shell(id, true));
      break;
    case 'subsystem':
      await ask(`${request.name} subsystem`, (p, id) => p.subsystem(id, request.name, true));
      break;
  }
  ch.subtype = request.kind;
}
