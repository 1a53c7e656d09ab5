import net from 'node:net';
import ssh2 from 'ssh2';
import type { AccessBroker } from './broker.js';
import { directDialer, type TargetDialer } from './dial.js';
import { GatewayConnection, signedIn } from './gateway-connection.js';
import { batchWrites } from './batch-writes.js';
import { useGcmKeyObjects } from './ssh2-gcm-keys.js';
import { usePooledPadding } from './ssh2-padding.js';

/** The slice of a pino logger the gateway uses. Recording data and secrets never go to it. */
export interface GatewayLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface SshGatewayOptions {
  broker: AccessBroker;
  /** The gateway's host private key, OpenSSH format (see loadOrCreateHostKey). */
  hostKey: string;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  recordingsDir: string;
  /** How audit events and sessions name this gateway. */
  name: string;
  logger: GatewayLogger;
  /** Record what the user types ("i" events), not only what the device prints. */
  recordInput?: boolean | (() => boolean);
  /**
   * Record the bytes of exec output without a terminal that is not text (downloads by
   * rsync, git, scp, cat). Off by default: such a stream is only counted and hashed
   * (SHA-256), and the recording says so with markers.
   */
  recordBinaryExec?: boolean | (() => boolean);
  /** How long the target may take to connect and authenticate. */
  targetTimeoutMs?: number;
  /** How long a client may take from TCP connect to a finished sign-in. */
  loginGraceMs?: number;
  /** Failed sign-in attempts on one connection before it is closed. */
  maxAuthAttempts?: number;
  /** Opens the TCP path to the device; by default this gateway connects directly. */
  dial?: TargetDialer;
  /**
   * Logs where each proxied channel's relay waited ("relay stats" at its end: bytes, time
   * blocked on each leg, window adjusts; `relay-stats.ts`). By default when the process
   * was started with GATEHOUSE_RELAY_STATS=1; a diagnostic, off otherwise.
   */
  relayStats?: boolean;
}

/**
 * The SSH/SFTP gateway: terminates the user's SSH connection, signs the user in and
 * checks their access through the broker, connects to the device with the vaulted
 * credential, and proxies exec, shell and the sftp subsystem, recording terminals as
 * asciicast v2. Port forwarding, agent and X11 forwarding are refused.
 */
export class SshGateway {
  private readonly ssh: ssh2.Server;
  private readonly listener: net.Server;
  private readonly connections = new Set<GatewayConnection>();
  private readonly sockets = new Set<net.Socket>();
  private stopping = false;

  private constructor(readonly options: Required<SshGatewayOptions>) {
    this.ssh = new ssh2.Server({ hostKeys: [options.hostKey], ident: 'Gatehouse' }, (client, info) => {
      const connection = new GatewayConnection(this.options, client, info.ip);
      this.connections.add(connection);
      client.once('close', () => this.connections.delete(connection));
    });
    this.listener = net.createServer((socket) => this.accept(socket));
  }

  /**
   * Ends a live session now (an administrator's decision): the user sees `reason`, the
   * recording is closed and the session ends with it. False when no session has that id here.
   */
  async endSession(id: string, reason: string): Promise<boolean> {
    for (const c of this.connections) if (await c.endSession(id, reason)) return true;
    return false;
  }

  /**
   * Shows the user of a live session `text` (`*** text ***` on a line of its own) without
   * ending it, and records it. A terminal shows it; an exec without one gets it on stderr;
   * an sftp session, a forward or an `ssh -N` connection have nowhere to show it that their
   * protocol would not take for data, and show nothing. False when no session has that id here.
   */
  async warnSession(id: string, text: string): Promise<boolean> {
    for (const c of this.connections) if (c.warnSession(id, text)) return true;
    return false;
  }

  /** Starts listening; resolves once the port is bound. */
  static async start(options: SshGatewayOptions): Promise<SshGateway> {
    // Both legs' packets: the user's connection and the gateway's own to the device.
    usePooledPadding();
    useGcmKeyObjects();
    const gateway = new SshGateway({
      recordInput: false,
      recordBinaryExec: false,
      targetTimeoutMs: 15_000,
      loginGraceMs: 60_000,
      maxAuthAttempts: 3,
      relayStats: process.env.GATEHOUSE_RELAY_STATS === '1',
      dial: directDialer(options.name, options.targetTimeoutMs ?? 15_000),
      ...options,
    });
    await new Promise<void>((resolve, reject) => {
      gateway.listener.once('error', reject);
      gateway.listener.listen({ host: options.host, port: options.port }, () => {
        gateway.listener.off('error', reject);
        resolve();
      });
    });
    gateway.listener.on('error', (error) => options.logger.error({ err: error }, 'SSH gateway listener error'));
    return gateway;
  }

  /** The bound port (useful when started on port 0). */
  get port(): number {
    return (this.listener.address() as net.AddressInfo).port;
  }

  private accept(socket: net.Socket): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    // Without it every small packet waits for the peer's delayed ACK (see notes: 178 → 57 ms setup).
    socket.setNoDelay(true);
    batchWrites(socket);
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => this.sockets.delete(socket));
    // Garbage, a stalled handshake or a client that never signs in: closed after the grace time.
    const grace = setTimeout(() => {
      if (!signedIn.has(socket)) socket.destroy();
    }, this.options.loginGraceMs);
    grace.unref();
    socket.once('close', () => clearTimeout(grace));
    this.ssh.injectSocket(socket);
  }

  /**
   * Stops accepting connections, ends every session (recordings are closed and each
   * session's end is reported to the broker) and closes every connection.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    await Promise.all([...this.connections].map((c) => c.shutDown()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }
}
