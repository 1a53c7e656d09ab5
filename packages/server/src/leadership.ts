import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Leases } from '@gatehouse/db';
import type { Logger } from './logger.js';

/** The lease row that names the replica running the scheduled jobs. */
export const LEADER_LEASE = 'leader';
/** Each replica's own lease, renewed with the leader's: while it holds, the sessions its built-in gateway holds are its own. */
export const replicaLease = (holder: string) => `replica:${holder}`;

export interface LeadershipOptions {
  /** The shared leases; undefined on SQLite, where the one process is always the leader. */
  leases: Leases | undefined;
  logger: Logger;
  /** How long the lease lasts unrenewed (`leaderLeaseSeconds`): a killed leader is replaced within it and one renewal. */
  leaseMs: number;
}

/**
 * Which replica runs the scheduled jobs (break-glass schedule and recovery, staleness
 * alarm, gateway status syncs, audit checkpoints). One row of `leases`, named `leader`:
 * every replica tries to renew or take it every third of `leaseMs`; whoever holds it is
 * the leader. A replica counts itself leader only until its last successful renewal could
 * have lapsed (less a renewal period, for clock skew), so after losing the database it
 * steps down before another replica can take over: never two leaders at once. On SQLite
 * (embedded, one process) it is always the leader. Each replica also renews its own
 * `replica:<holder>` row, which says it still runs (`GatewaySessions.endAbandoned`).
 */
export class Leadership {
  readonly holder = `${os.hostname()}:${process.pid}:${randomUUID()}`;
  /** performance.now() until which this replica is surely the holder. */
  private until = 0;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  private was = false;
  private readonly listeners = new Set<(leader: boolean) => void>();

  constructor(private readonly o: LeadershipOptions) {}

  private get renewMs() {
    return Math.max(Math.floor(this.o.leaseMs / 3), 100);
  }

  /** Whether this replica runs the scheduled jobs now. */
  get isLeader(): boolean {
    return this.o.leases === undefined || performance.now() < this.until;
  }

  /** Called with true when this replica becomes the leader, false when it stops being it. */
  onChange(listener: (leader: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tries for the lease once (awaited), then every third of the lease. */
  async start(): Promise<void> {
    if (this.o.leases === undefined) {
      this.settle();
      return;
    }
    await this.contend();
    this.timer = setInterval(() => {
      // A round stuck on an unreachable database still steps down once the lease could have lapsed.
      this.settle();
      void this.contend();
    }, this.renewMs);
    this.timer.unref();
  }

  /** Stops contending and lets the lease go, so another replica takes over at its next try. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.round;
    await this.o.leases?.release(replicaLease(this.holder), this.holder).catch(() => undefined);
    if (!this.o.leases || !this.isLeader) return;
    this.until = 0;
    this.settle();
    await this.o.leases.release(LEADER_LEASE, this.holder).catch(() => undefined);
  }

  /** One renewal or take-over attempt (a slow database never has two under way). Exposed for tests. */
  contend(): Promise<void> {
    this.round ??= this.attempt().finally(() => (this.round = undefined));
    return this.round;
  }

  private async attempt(): Promise<void> {
    const leases = this.o.leases;
    if (!leases) return;
    const asked = performance.now();
    // This replica runs (whether or not it leads): its sessions are not abandoned.
    await leases
      .renew(replicaLease(this.holder), this.holder, this.o.leaseMs)
      .then((renewed) => renewed || leases.acquire(replicaLease(this.holder), this.holder, this.o.leaseMs))
      .catch(() => undefined);
    try {
      const held =
        (await leases.renew(LEADER_LEASE, this.holder, this.o.leaseMs)) ||
        (await leases.acquire(LEADER_LEASE, this.holder, this.o.leaseMs));
      // The lease runs from before the statement was sent: counted from `asked`, it lapses no earlier.
      this.until = held ? asked + this.o.leaseMs - this.renewMs : 0;
    } catch (error) {
      // Still the leader until the lease could have lapsed; then another replica may hold it.
      if (this.was) this.o.logger.warn({ err: error }, 'could not renew the leader lease');
    }
    this.settle();
  }

  private settle(): void {
    const now = this.isLeader;
    if (now === this.was) return;
    this.was = now;
    this.o.logger.info(
      { holder: this.holder },
      now ? 'this replica now runs the scheduled jobs' : 'this replica no longer runs the scheduled jobs',
    );
    for (const listener of this.listeners) listener(now);
  }
}
