import { randomUUID } from 'node:crypto';
import type { AccessBroker, AuthorizedTarget, GatewayUser, SessionKex } from './broker.js';
import type { GatewayLogger } from './gateway.js';

/**
 * How long a connection to a device may carry no channel before it is a session of its
 * own. Long enough that a client closing right after its last command (`ssh host cmd`)
 * does not make one; short enough that an `ssh -N` is seen at once.
 */
export const CHANNEL_LESS_SESSION_MS = 1500;

/**
 * The session of a user's connection to a device while it carries no channel: `ssh -N`,
 * a ControlMaster between commands, a tunnel waiting for its first forward. Each channel
 * is a session of its own (shell, exec, sftp, forward); a connection that reached the
 * device and has had no channel for `CHANNEL_LESS_SESSION_MS` becomes a `connection`
 * session, from the time it reached the device until it closes, so that every connection
 * holding a login on a device is visible, counted and endable. Ending it ends the whole
 * connection with every channel on it.
 */
export class ConnectionSession {
  readonly id = randomUUID();
  private channels = 0;
  private reached: { at: Date; gateway: string; segment: string | null; kex: SessionKex } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private started: Promise<boolean> | undefined;
  private ended: Promise<void> | undefined;
  /** Why the connection is ending, when the gateway ends it (kept from the first). */
  private reason: string | null = null;
  private bytesIn = 0;
  private bytesOut = 0;

  constructor(
    private readonly broker: AccessBroker,
    private readonly logger: GatewayLogger,
    private readonly user: GatewayUser,
    private readonly target: AuthorizedTarget,
    private readonly remoteAddress: string,
    private readonly afterMs = CHANNEL_LESS_SESSION_MS,
  ) {}

  /** Live (its row is written and it has not ended): ending it by id ends the connection. */
  get live(): boolean {
    return this.started !== undefined && this.ended === undefined;
  }

  /** The connection reached the device through `gateway`. */
  reachedDevice(gateway: string, segment: string | null, kex: SessionKex): void {
    this.reached = { at: new Date(), gateway, segment, kex };
    this.watch();
  }

  channelOpened(): void {
    this.channels++;
    clearTimeout(this.timer);
  }

  channelClosed(): void {
    this.channels--;
    this.watch();
  }

  /** What a proxied channel carried counts for its connection too. */
  carried(bytesIn: number, bytesOut: number): void {
    this.bytesIn += bytesIn;
    this.bytesOut += bytesOut;
  }

  /** The gateway ends the connection: the session ends as a failure with `reason`. */
  ending(reason: string): void {
    this.reason ??= reason;
  }

  /** The connection closed: ends the session, if it became one. */
  end(): Promise<void> {
    clearTimeout(this.timer);
    const reason = this.reason;
    this.ended ??= (async () => {
      if (!(await this.started)) return;
      await this.broker
        .sessionEnded(this.id, {
          endedAt: new Date().toISOString(),
          bytesIn: this.bytesIn,
          bytesOut: this.bytesOut,
          result: reason === null ? 'success' : 'failure',
          exitStatus: null,
          reason,
        })
        .catch((error: unknown) => this.logger.error({ err: error, sessionId: this.id }, 'could not record the end of a session'));
    })();
    return this.ended;
  }

  private watch(): void {
    if (this.channels > 0 || !this.reached || this.started || this.ended) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(), this.afterMs);
    this.timer.unref();
  }

  private start(): void {
    const reached = this.reached;
    if (this.channels > 0 || !reached || this.started || this.ended) return;
    this.started = this.broker
      .sessionStarted({
        id: this.id,
        user: this.user,
        target: this.target,
        gateway: reached.gateway,
        segment: reached.segment,
        kind: 'connection',
        command: null,
        remoteAddress: this.remoteAddress,
        startedAt: reached.at.toISOString(),
        recording: null,
        kex: reached.kex,
      })
      .then(
        () => true,
        (error: unknown) => {
          this.logger.error({ err: error, sessionId: this.id }, 'could not record a connection session');
          return false;
        },
      );
  }
}
