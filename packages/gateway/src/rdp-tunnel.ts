import { randomUUID } from 'node:crypto';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { AccessBroker, AuthorizedTarget, DesktopBroker, GatewayUser, SessionEnd } from './broker.js';
import { directDialer, type TargetDialer } from './dial.js';
import type { GatewayLogger } from './gateway.js';
import type { LiveSessions } from './management.js';

/**
 * The first line a `gatehouse rdp` tunnel connection sends, inside TLS: `GATEHOUSE-RDP/1 <ticket>`.
 * The gateway answers one line, `OK <session id>` or `ERROR <message>`; after `OK` the
 * connection carries the RDP client's bytes both ways, untouched.
 */
export const RDP_TUNNEL_HELLO = 'GATEHOUSE-RDP/1';
/** The longest set-up line accepted (a ticket is far shorter). */
const MAX_LINE_BYTES = 1024;

/** A tunnel ticket redeemed: who it was issued to, for which device and account. */
export type RdpTicketRedemption = { ok: true; user: GatewayUser; deviceId: string; accountId: string } | { ok: false; message: string };

/** What the RDP tunnel needs from the platform: the ticket, the desktop decision, and sessions. */
export interface RdpTunnelBroker
  extends Pick<AccessBroker, 'sessionStarted' | 'sessionEnded' | 'connectionFailed'>, Pick<DesktopBroker, 'authorizeDesktop'> {
  /**
   * A ticket from `POST /devices/:id/rdp-tunnel`, for one connection from `remoteAddress`:
   * good for every connection of the `gatehouse rdp` run it was issued to until it expires.
   * Every answer is audited; a forged or expired ticket is refused with what to do.
   */
  redeemRdpTicket(ticket: string, remoteAddress: string): Promise<RdpTicketRedemption>;
}

export interface RdpTunnelOptions {
  broker: RdpTunnelBroker;
  /** The server's own TLS certificate and key (the CLI verifies them as it verifies the API). */
  tls: { cert: string; key: string } & Pick<tls.TlsOptions, 'ciphers' | 'minVersion' | 'honorCipherOrder'>;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** How sessions and audit events name this gateway. */
  name: string;
  logger: GatewayLogger;
  /** Opens the TCP path to the device (segments, failover, tunnel mode); by default directly. */
  dial?: TargetDialer;
  /** How long the device may take to accept. */
  targetTimeoutMs?: number;
  /** How long a client may take to send its ticket after connecting. */
  helloTimeoutMs?: number;
}

/** One relayed RDP connection. */
interface TunnelSession {
  user: Duplex;
  target: Duplex;
  /** Why it was ended from the gateway's side (an administrator, a maintenance window, a stop). */
  endedBy: string | null;
  done: Promise<void>;
}

/**
 * The built-in gateway's listener for `gatehouse rdp`: TLS with the server's certificate, a
 * ticket as the first line, then the desktop decision (grants, maintenance window) and a
 * byte relay to the device's RDP port through the gateway's dialer. Each connection is a
 * session of kind `rdp` with its bytes and duration; nothing is recorded (the RDP stream is
 * TLS between the client and the device).
 */
export class RdpTunnel implements LiveSessions {
  private readonly sessions = new Map<string, TunnelSession>();
  private readonly sockets = new Set<tls.TLSSocket>();
  private stopping = false;

  private constructor(
    private readonly options: Required<RdpTunnelOptions>,
    private readonly server: tls.Server,
  ) {}

  /** Starts listening; resolves once the port is bound. */
  static async start(options: RdpTunnelOptions): Promise<RdpTunnel> {
    const full: Required<RdpTunnelOptions> = {
      targetTimeoutMs: 15_000,
      helloTimeoutMs: 10_000,
      dial: directDialer(options.name, options.targetTimeoutMs ?? 15_000),
      ...options,
    };
    const server = tls.createServer({ ...options.tls });
    const tunnel = new RdpTunnel(full, server);
    server.on('secureConnection', (socket) => tunnel.accept(socket));
    // A client that fails the TLS handshake (a port scanner, a plain RDP client) is only logged.
    server.on('tlsClientError', (error, socket) => {
      options.logger.debug({ err: error, remoteAddress: socket.remoteAddress }, 'RDP tunnel: TLS handshake failed');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return tunnel;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  async endSession(id: string, reason: string): Promise<boolean> {
    const session = this.sessions.get(id);
    if (!session) return false;
    session.endedBy ??= reason;
    session.user.destroy();
    session.target.destroy();
    await session.done;
    return true;
  }

  /** RDP has no place to show a line of text: the session is there, and nothing is shown. */
  async warnSession(id: string): Promise<boolean> {
    return Promise.resolve(this.sessions.has(id));
  }

  /** Ends every session (their ends reach the broker) and stops listening. */
  async stop(): Promise<void> {
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    await Promise.all([...this.sessions.keys()].map((id) => this.endSession(id, 'The gateway stopped.')));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private accept(socket: tls.TLSSocket): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.setNoDelay(true);
    this.open(socket).catch((error: unknown) => {
      this.options.logger.error({ err: error, remoteAddress: socket.remoteAddress }, 'RDP tunnel: connection failed');
      refuse(socket, 'The gateway failed to open the tunnel. Try again; if it persists, tell an administrator.');
    });
  }

  /** Ticket, decision, dial, session: the steps of one connection, each refusal told to the client. */
  private async open(socket: tls.TLSSocket): Promise<void> {
    const remoteAddress = socket.remoteAddress ?? 'unknown';
    const hello = await readHello(socket, this.options.helloTimeoutMs);
    if (!hello.ok) {
      refuse(socket, hello.message);
      return;
    }
    const { broker, name } = this.options;
    const ticket = await broker.redeemRdpTicket(hello.ticket, remoteAddress);
    if (!ticket.ok) {
      refuse(socket, ticket.message);
      return;
    }
    const request = { deviceId: ticket.deviceId, accountId: ticket.accountId, protocol: 'rdp' } as const;
    const decision = await broker.authorizeDesktop(ticket.user, request, remoteAddress);
    if (!decision.allow) {
      refuse(socket, decision.message);
      return;
    }
    if (socket.destroyed) return;
    const { user } = ticket;
    const target = decision.target;
    const dialed = await this.options.dial(target, { user, remoteAddress });
    if (!dialed.ok) {
      await broker.connectionFailed({
        user,
        target,
        gateway: dialed.gateway,
        segment: dialed.segment,
        remoteAddress,
        at: new Date().toISOString(),
        reason: dialed.reason,
      });
      refuse(socket, dialed.reason);
      return;
    }
    const id = randomUUID();
    const device = dialed.socket;
    dialed.socket.setNoDelay?.(true);
    device.on('error', () => undefined);
    if (socket.destroyed || this.stopping) {
      device.destroy();
      return;
    }
    await broker.sessionStarted({
      id,
      user,
      target,
      gateway: dialed.gateway,
      segment: dialed.segment,
      kind: 'rdp',
      command: null,
      remoteAddress,
      startedAt: new Date().toISOString(),
      recording: null,
    });
    this.options.logger.info({ sessionId: id, device: target.deviceName, gateway: name }, 'RDP tunnel session started');
    socket.write(`OK ${id}\n`);
    this.relay(id, socket, device, hello.rest, target);
  }

  /** Relays bytes both ways until either side closes, then records the session's end. */
  private relay(id: string, user: tls.TLSSocket, target: Duplex, head: Buffer, authorized: AuthorizedTarget): void {
    let bytesIn = 0;
    let bytesOut = 0;
    let resolveDone!: () => void;
    const session: TunnelSession = { user, target, endedBy: null, done: new Promise((r) => (resolveDone = r)) };
    this.sessions.set(id, session);
    user.on('data', (chunk: Buffer) => (bytesIn += chunk.length));
    target.on('data', (chunk: Buffer) => (bytesOut += chunk.length));
    if (head.length > 0) {
      bytesIn += head.length;
      target.write(head);
    }
    user.pipe(target);
    target.pipe(user);
    let targetError: string | null = null;
    target.once(
      'error',
      (error: NodeJS.ErrnoException) =>
        (targetError = `The connection to ${authorized.deviceName} failed: ${error.code ?? error.message}.`),
    );
    let closed = 0;
    const onClose = () => {
      // Either side closing ends the other; the session ends once both are closed.
      user.destroy();
      target.destroy();
      if (++closed < 2) return;
      this.sessions.delete(id);
      const reason = session.endedBy ?? targetError;
      const end: SessionEnd = {
        endedAt: new Date().toISOString(),
        bytesIn,
        bytesOut,
        result: reason === null ? 'success' : 'failure',
        exitStatus: null,
        reason,
      };
      this.options.broker
        .sessionEnded(id, end)
        .catch((error: unknown) => this.options.logger.error({ err: error, sessionId: id }, 'RDP tunnel: could not record the session end'))
        .finally(resolveDone);
    };
    user.once('close', onClose);
    target.once('close', onClose);
  }
}

/** Tells the client why, and closes. */
function refuse(socket: Duplex, message: string): void {
  if (socket.destroyed) return;
  socket.end(`ERROR ${message.replace(/[\r\n]+/g, ' ')}\n`);
}

/** Reads the first line, `GATEHOUSE-RDP/1 <ticket>`; `rest` is whatever followed it. */
async function readHello(
  socket: Duplex,
  timeoutMs: number,
): Promise<{ ok: true; ticket: string; rest: Buffer } | { ok: false; message: string }> {
  const read = await readTunnelLine(socket, timeoutMs);
  if (!read.ok) {
    return read.problem === 'timeout'
      ? { ok: false, message: `No ticket within ${Math.round(timeoutMs / 1000)} s. Connect with ./gatehouse rdp <device>.` }
      : {
          ok: false,
          message: 'This port takes ./gatehouse rdp tunnels only: run ./gatehouse rdp <device> and connect to the port it opens.',
        };
  }
  const [hello, ticket, ...extra] = read.line.split(' ');
  if (hello !== RDP_TUNNEL_HELLO || !ticket || extra.length > 0)
    return {
      ok: false,
      message: 'This port takes ./gatehouse rdp tunnels only: run ./gatehouse rdp <device> and connect to the port it opens.',
    };
  return { ok: true, ticket, rest: read.rest };
}

/**
 * Reads one line (up to 1 KiB) of a tunnel connection's set-up, either side's: the
 * ticket, or the gateway's answer. The socket is left paused; `rest` is what followed.
 */
export function readTunnelLine(
  socket: Duplex,
  timeoutMs: number,
): Promise<{ ok: true; line: string; rest: Buffer } | { ok: false; problem: 'timeout' | 'closed' | 'too long' }> {
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    const finish = (answer: { ok: true; line: string; rest: Buffer } | { ok: false; problem: 'timeout' | 'closed' | 'too long' }) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      resolve(answer);
    };
    const timer = setTimeout(() => finish({ ok: false, problem: 'timeout' }), timeoutMs);
    const onClose = () => finish({ ok: false, problem: 'closed' });
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline >= 0)
        finish({ ok: true, line: buffered.subarray(0, newline).toString('utf8').trim(), rest: buffered.subarray(newline + 1) });
      else if (buffered.length > MAX_LINE_BYTES) finish({ ok: false, problem: 'too long' });
    };
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}
