import net from 'node:net';
import type { AccessBroker, DesktopBroker } from '../broker.js';
import type { TargetDialer } from '../dial.js';
import type { GatewayLogger } from '../gateway.js';
import type { LiveSessions } from '../management.js';
import { DesktopSessions, openDesktop, type LiveDesktop } from './desktop-session.js';
import { acceptVncUser } from './user.js';

export interface VncGatewayOptions {
  broker: AccessBroker & DesktopBroker;
  host: string;
  port: number;
  recordingsDir: string;
  /** The gateway's name in sessions and audit events. */
  name: string;
  logger: GatewayLogger;
  dial: TargetDialer;
  targetTimeoutMs: number;
  /** The registry its sessions join (shared with the console's desktop WebSocket); a new one by default. */
  sessions?: DesktopSessions;
  /** How long the gateway waits for each of a viewer's handshake messages (default 30 s). */
  handshakeTimeoutMs?: number;
}

/**
 * Native VNC viewers on the gateway's VNC port. A viewer authenticates with VncAuth using a
 * one-time token as the password; the answer to the challenge redeems the token (which names
 * the user, device and account), and the gateway connects to the device with the vaulted
 * password before it answers the viewer, so a refusal or a failed connection reaches the
 * viewer as the SecurityResult's reason. Then the session is recorded and relayed.
 */
export class VncGateway implements LiveSessions {
  readonly sessions: DesktopSessions;
  private readonly listener: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly handling = new Set<Promise<void>>();
  private stopping = false;

  private constructor(private readonly options: VncGatewayOptions) {
    this.sessions = options.sessions ?? new DesktopSessions();
    this.listener = net.createServer((socket) => this.accept(socket));
  }

  static async start(options: VncGatewayOptions): Promise<VncGateway> {
    const gateway = new VncGateway(options);
    await new Promise<void>((resolve, reject) => {
      gateway.listener.once('error', reject);
      gateway.listener.listen({ host: options.host, port: options.port }, () => {
        gateway.listener.off('error', reject);
        resolve();
      });
    });
    gateway.listener.on('error', (error) => options.logger.error({ err: error }, 'VNC gateway listener error'));
    return gateway;
  }

  get port(): number {
    return (this.listener.address() as net.AddressInfo).port;
  }

  endSession(id: string, reason: string): Promise<boolean> {
    return this.sessions.endSession(id, reason);
  }

  warnSession(id: string): Promise<boolean> {
    return this.sessions.warnSession(id);
  }

  /** Stops listening, ends every live desktop (their ends are recorded) and closes every viewer's connection. */
  async stop(): Promise<void> {
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await this.sessions.endAll('The gateway is stopping.');
    await Promise.all(this.handling);
    await closed;
  }

  private accept(socket: net.Socket): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const handled = this.handle(socket).catch((error: unknown) => {
      this.options.logger.error({ err: error }, 'VNC connection failed with an error');
      socket.destroy();
    });
    this.handling.add(handled);
    void handled.finally(() => this.handling.delete(handled));
  }

  private async handle(socket: net.Socket): Promise<void> {
    const { broker, logger } = this.options;
    const remoteAddress = socket.remoteAddress ?? 'unknown';
    let desktop: LiveDesktop | undefined;
    try {
      await acceptVncUser(
        socket,
        {
          kind: 'vnc',
          // `signal` aborts when the viewer hangs up while the device is being connected.
          check: async (challenge, response, signal) => {
            const redeemed = await broker.redeemVncToken({ challenge, response }, remoteAddress);
            if (!redeemed.ok) return { ok: false, message: redeemed.message };
            const request = { deviceId: redeemed.deviceId, accountId: redeemed.accountId, protocol: 'vnc' as const };
            const authorized = await broker.authorizeDesktop(redeemed.user, request, remoteAddress);
            if (!authorized.allow) return { ok: false, message: authorized.message };
            const opened = await openDesktop({
              broker,
              dial: this.options.dial,
              user: redeemed.user,
              target: authorized.target,
              remoteAddress,
              recordingsDir: this.options.recordingsDir,
              protocol: 'vnc',
              gatewayName: this.options.name,
              timeoutMs: this.options.targetTimeoutMs,
              sessions: this.sessions,
              logger,
              signal,
            });
            if (!opened.ok) return { ok: false, message: opened.message };
            desktop = opened.session;
            return { ok: true };
          },
        },
        { timeoutMs: this.options.handshakeTimeoutMs ?? 30_000 },
      );
    } catch (error) {
      // acceptVncUser closed the socket (a refusal after its reason is written).
      logger.debug({ err: error, remoteAddress }, 'VNC viewer handshake failed');
      await desktop?.abandon(`The viewer's handshake did not finish: ${(error as Error).message}`);
      return;
    }
    if (!desktop) {
      socket.destroy();
      return;
    }
    await desktop.attach(socket);
  }
}
