import { ForbiddenError } from '@gatehouse/core';
import type { Gateway, Gateways } from '@gatehouse/db';
import { fetchGatewayStatus, GatewayLinkError, linkGateway, type GatewayStatusReport, type LinkIdentity } from '@gatehouse/gateway';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';

export interface GatewayHealthOptions {
  gateways: Gateways;
  identity: () => Promise<LinkIdentity>;
  audit: Services['audit'];
  logger: Logger;
  /** Between two syncs of a gateway that answers (the documents' 15 s). */
  intervalMs?: number;
  /** How long one status sync may take. */
  timeoutMs?: number;
  /**
   * How often the registry is read again when no sync is due, to find gateways registered
   * or removed through another server replica (this server's own changes act at once).
   */
  registryRefreshMs?: number;
  /** Failed syncs in a row before a gateway is offline. */
  offlineAfter?: number;
  /** Waits before each retry after a failed sync, then `intervalMs` while it stays down. */
  backoffMs?: readonly number[];
  /** Whether gateways' SSH entries record what users type (the server's gatewayRecordInput). */
  recordInput?: boolean;
  /** Whether they record binary exec output whole (the server's gatewayRecordBinaryExec). */
  recordBinaryExec?: boolean;
  /** Answers a call of the gateway's own SSH entry, coming up its link. */
  onCall?: (gateway: Gateway, procedure: string, input: unknown) => Promise<unknown>;
  /** The link to a gateway is up (with its first status report): fetch what it holds for the server. */
  onLinkOpen?: (gateway: Gateway, report: GatewayStatusReport) => void;
  /** The gateway went offline (a failed sync, or a connection that found it dead). */
  onOffline?: (gateway: Gateway) => Promise<void>;
}

interface Watched {
  nextSyncAt: number;
  failures: number;
  syncing: Promise<Gateway | undefined> | undefined;
  stopWatch: (() => void) | undefined;
  /** The key address + fingerprint the watch was opened for: a change reopens it. */
  watchFor: string | undefined;
  /** The last mismatching fingerprint audited, so a wrong key is one event, not one per sync. */
  auditedMismatch: string | undefined;
}

/**
 * Keeps every registered gateway's status current: a status sync every 15 s, retried
 * with backoff when it fails (1 s, 2 s, 4 s, … then every 15 s while down), offline after
 * `offlineAfter` failures in a row, online again at the first answer. Between syncs a
 * watch stream stays open to each online gateway, so one that stops or drops off the
 * network is synced at once instead of at the next tick. Changes of status, and a gateway
 * presenting the wrong key, are audit events.
 */
export class GatewayHealth {
  private readonly watched = new Map<string, Watched>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;
  /** When the registry was last read (the tick reads it only when a sync is due or it is stale). */
  private listedAt = -Infinity;
  private readonly opts: Required<GatewayHealthOptions>;

  constructor(options: GatewayHealthOptions) {
    this.opts = {
      intervalMs: 15_000,
      timeoutMs: 5_000,
      offlineAfter: 3,
      registryRefreshMs: 5_000,
      backoffMs: [1_000, 2_000, 4_000, 8_000],
      onCall: () => Promise.reject(new ForbiddenError('This server does not take calls from gateways.')),
      onLinkOpen: () => undefined,
      onOffline: () => Promise.resolve(),
      recordInput: false,
      recordBinaryExec: false,
      ...options,
    };
  }

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => {
      this.ticking ??= this.tick()
        .catch((error: unknown) => this.opts.logger.error({ err: error }, 'gateway status sync failed with an error'))
        .finally(() => (this.ticking = undefined));
    }, 250);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    for (const w of this.watched.values()) w.stopWatch?.();
    await this.ticking;
    await Promise.all([...this.watched.values()].map((w) => w.syncing ?? Promise.resolve(undefined)));
    this.watched.clear();
  }

  /** Syncs one gateway now (an administrator asked, or a connection through it just failed). */
  async syncNow(id: string): Promise<Gateway | undefined> {
    const gateway = await this.opts.gateways.get(id);
    return this.sync(gateway);
  }

  /** The gateway was removed: its link closes now, not at the next read of the registry. */
  forget(id: string): void {
    this.watched.get(id)?.stopWatch?.();
    this.watched.delete(id);
  }

  /** A connection through the gateway failed: sync it at once rather than at the next tick. */
  suspect(id: string): void {
    const w = this.watched.get(id);
    if (w) w.nextSyncAt = 0;
  }

  /**
   * A connection through the gateway timed out or was refused by it (not by the device):
   * the circuit breaker opens. The gateway is offline at once for every replica, so new
   * connections go straight to the others, and it is synced now; the first good sync
   * (this one, the scheduled ones, or an administrator's) makes it online, and chosen,
   * again. Audited as `gateway.offline` with `circuit: "open"`, once per opening.
   */
  async openCircuit(gateway: Gateway, failure: string, device: string): Promise<void> {
    const reason = `${failure.replace(/\.$/, '')} when a connection to ${device} tried it. New connections skip it until a status sync succeeds.`;
    const opened = await this.opts.gateways.markUnreachable(gateway.id, reason);
    this.suspect(gateway.id);
    if (!opened) return;
    await this.opts.onOffline?.(gateway);
    this.opts.logger.warn({ gateway: gateway.name, segment: gateway.segment, reason }, `gateway ${gateway.name} is offline`);
    await this.opts.audit(null, {
      action: 'gateway.offline',
      outcome: 'failure',
      actorName: 'system',
      targetType: 'gateway',
      targetId: gateway.id,
      details: { gateway: gateway.name, segment: gateway.segment, address: gateway.address, reason, circuit: 'open', device },
    });
  }

  /**
   * Every 250 ms: starts the syncs that are due. The registry is read from the database
   * only when one is due (a sync needs the gateway's current address and key) or when the
   * last read is `registryRefreshMs` old, not at every tick.
   */
  private async tick(): Promise<void> {
    if (this.stopped) return;
    const now = Date.now();
    const due = [...this.watched.values()].some((w) => w.syncing === undefined && now >= w.nextSyncAt);
    if (!due && now - this.listedAt < this.opts.registryRefreshMs) return;
    this.listedAt = now;
    const gateways = await this.opts.gateways.list();
    const ids = new Set(gateways.map((g) => g.id));
    for (const id of this.watched.keys()) if (!ids.has(id)) this.forget(id);
    for (const gateway of gateways) {
      const w = this.state(gateway.id);
      if (w.watchFor !== undefined && w.watchFor !== `${gateway.address} ${gateway.publicKey}`) {
        // Re-registered with another address or key: what was watched is not this gateway.
        w.stopWatch?.();
        w.stopWatch = undefined;
        w.watchFor = undefined;
        w.nextSyncAt = 0;
      }
      if (w.syncing === undefined && now >= w.nextSyncAt) void this.sync(gateway);
    }
  }

  private state(id: string): Watched {
    let w = this.watched.get(id);
    if (!w) {
      w = { nextSyncAt: 0, failures: 0, syncing: undefined, stopWatch: undefined, watchFor: undefined, auditedMismatch: undefined };
      this.watched.set(id, w);
    }
    return w;
  }

  private sync(gateway: Gateway): Promise<Gateway | undefined> {
    const w = this.state(gateway.id);
    w.syncing ??= this.runSync(gateway, w).finally(() => (w.syncing = undefined));
    return w.syncing;
  }

  private async runSync(gateway: Gateway, w: Watched): Promise<Gateway | undefined> {
    const { gateways, intervalMs, timeoutMs, offlineAfter, backoffMs, logger } = this.opts;
    const identity = await this.opts.identity();
    const at = () => new Date().toISOString();
    let recorded;
    try {
      const { report, latencyMs } = await fetchGatewayStatus(gateway, identity, timeoutMs);
      w.failures = 0;
      w.auditedMismatch = undefined;
      w.nextSyncAt = Date.now() + intervalMs;
      recorded = await gateways.recordSync(gateway.id, {
        ok: true,
        at: at(),
        latencyMs,
        version: report.version,
        openRelays: report.openRelays,
        agentAddress: report.agentAddress ?? null,
      });
      // A gateway removed meanwhile has no row: no link is kept to it.
      if (recorded && !w.stopWatch && !this.stopped) this.openWatch(gateway, identity, w);
    } catch (error) {
      const link = error instanceof GatewayLinkError ? error : undefined;
      const reason = link?.message ?? `The status sync failed: ${(error as Error).message}`;
      // A wrong key or a gateway that does not trust us will not mend by itself in a second.
      const lasting = link?.kind === 'key-mismatch' || link?.kind === 'not-trusted';
      w.failures++;
      w.nextSyncAt =
        Date.now() + (lasting ? intervalMs : Math.min(intervalMs, backoffMs[Math.min(w.failures - 1, backoffMs.length - 1)] ?? intervalMs));
      w.stopWatch?.();
      w.stopWatch = undefined;
      w.watchFor = undefined;
      recorded = await gateways.recordSync(gateway.id, { ok: false, at: at(), reason, offlineAfter, immediately: lasting });
      if (link?.kind === 'key-mismatch' && w.auditedMismatch !== link.presented) {
        w.auditedMismatch = link.presented;
        logger.warn(
          { gateway: gateway.name, presented: link.presented, registered: gateway.fingerprint },
          'a gateway presented the wrong key',
        );
        await this.opts.audit(null, {
          action: 'gateway.key_mismatch',
          outcome: 'denied',
          actorName: 'system',
          targetType: 'gateway',
          targetId: gateway.id,
          details: { gateway: gateway.name, address: gateway.address, registered: gateway.fingerprint, presented: link.presented ?? null },
        });
      }
    }
    if (!recorded) return undefined;
    const { before, after } = recorded;
    if (before.status !== after.status && after.status !== 'unknown') {
      const online = after.status === 'online';
      if (!online) await this.opts.onOffline?.(after);
      logger[online ? 'info' : 'warn'](
        { gateway: after.name, segment: after.segment, reason: after.statusReason },
        `gateway ${after.name} is ${after.status}`,
      );
      await this.opts.audit(null, {
        action: online ? 'gateway.online' : 'gateway.offline',
        outcome: online ? 'success' : 'failure',
        actorName: 'system',
        targetType: 'gateway',
        targetId: after.id,
        details: {
          gateway: after.name,
          segment: after.segment,
          address: after.address,
          reason: after.statusReason,
          failures: after.failures,
        },
      });
    }
    return after;
  }

  private openWatch(gateway: Gateway, identity: LinkIdentity, w: Watched): void {
    w.watchFor = `${gateway.address} ${gateway.publicKey}`;
    // Keep-alive lines come every 5 s; three missed ones mean the gateway is gone quietly.
    w.stopWatch = linkGateway(gateway, identity, 15_000, {
      hello: {
        name: gateway.name,
        segment: gateway.segment,
        recordInput: this.opts.recordInput,
        recordBinaryExec: this.opts.recordBinaryExec,
      },
      onCall: (procedure, input) => this.opts.onCall(gateway, procedure, input),
      onOpen: (report) => this.opts.onLinkOpen(gateway, report),
      onEnd: (why) => {
        w.stopWatch = undefined;
        w.watchFor = undefined;
        if (this.stopped) return;
        this.opts.logger.info({ gateway: gateway.name, why }, 'gateway link ended; syncing its status now');
        w.nextSyncAt = 0;
      },
    });
  }
}
