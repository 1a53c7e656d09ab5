import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { DueAccount, Leases, RotationPolicy } from '@gatehouse/db';
import { Cron } from 'croner';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import type { PolicyRotations } from './policy-rotation.js';

const LEASE = 'rotation-schedule';

export interface RotationScheduleOptions {
  services: Pick<Services, 'rotationPolicies'>;
  rotations: PolicyRotations;
  leases: Leases;
  logger: Logger;
  /** Minutes between ticks (`rotationScheduleMinutes`). */
  everyMinutes: number;
  /** Rotation after sessions' wait (`rotationAfterSessionDelayMs`): sessions that ended within five times it (and a minute) are left to it. */
  afterSessionDelayMs: number;
}

/** What one tick did: the runs it started, per policy. */
export interface RotationTick {
  runs: { policyId: string; runId: string; accounts: number }[];
  /** Accounts left for the next tick because another run holds their device. */
  deferred: number;
}

/**
 * Scheduled rotation: every `everyMinutes` (croner) the holder of the `rotation-schedule`
 * lease (one replica) asks the rotation policies which credentials are older than they
 * allow (or were used by a session under an after-session policy and are not rotated yet),
 * and starts one rotation run per policy over them. Accounts on a device another
 * run holds wait for the next tick; a rotation that fails leaves the credential due, so
 * it is tried again at the next tick too.
 */
export class RotationSchedule {
  private readonly holder = `${os.hostname()}:${process.pid}:${randomUUID()}`;
  private cron: Cron | undefined;
  private running: Promise<RotationTick | undefined> | undefined;

  constructor(private readonly o: RotationScheduleOptions) {}

  /** A lease outlives a few missed ticks, so a replica that stopped is taken over soon after. */
  private get leaseMs() {
    return this.o.everyMinutes * 60_000 * 3;
  }

  start(): void {
    const m = this.o.everyMinutes;
    // Every m minutes on the clock when m divides an hour (10: :00, :10, …), else m minutes apart.
    const pattern = 60 % m === 0 ? `*/${m} * * * *` : '* * * * *';
    this.cron = new Cron(pattern, { protect: true, ...(60 % m === 0 ? {} : { interval: m * 60 }) }, () => {
      void this.tick().catch((error: unknown) => this.o.logger.error({ err: error }, 'the rotation schedule tick failed'));
    });
  }

  /** Stops ticking (waits for a tick under way) and lets the lease go, so another replica takes over at once. */
  async stop(): Promise<void> {
    this.cron?.stop();
    await this.running?.catch(() => undefined);
    await this.o.leases.release(LEASE, this.holder).catch(() => undefined);
  }

  /** The scheduled time of the next tick, if any. */
  nextRun(): Date | null {
    return this.cron?.nextRun() ?? null;
  }

  /** One pass, if this replica holds the lease (undefined when it does not, or a pass is under way). Exposed for tests. */
  async tick(now = new Date()): Promise<RotationTick | undefined> {
    if (this.running) return undefined;
    this.running = this.pass(now);
    try {
      return await this.running;
    } finally {
      this.running = undefined;
    }
  }

  private async pass(now: Date): Promise<RotationTick | undefined> {
    const { leases } = this.o;
    // Renewed while this replica still holds it (a lapsed lease nobody took is still ours).
    const held = (await leases.renew(LEASE, this.holder, this.leaseMs)) || (await leases.acquire(LEASE, this.holder, this.leaseMs));
    if (!held) return undefined;
    const due = await this.dueAt(now);
    const tick: RotationTick = { runs: [], deferred: 0 };
    for (const [policy, accounts] of await this.byPolicy(due)) {
      const outcome = await this.o.rotations.start(policy, accounts, 'schedule', now).catch((error: unknown) => {
        this.o.logger.error({ err: error, policyId: policy.id }, 'could not start the rotation a policy asks for');
        return undefined;
      });
      if (!outcome) continue;
      tick.deferred += outcome.deferred.length;
      if (outcome.run) tick.runs.push({ policyId: policy.id, runId: outcome.run.id, accounts: outcome.accounts });
    }
    if (due.length > 0) this.o.logger.info({ due: due.length, runs: tick.runs.length, deferred: tick.deferred }, 'scheduled rotation');
    return tick;
  }

  /**
   * Credentials older than their policy allows, and those a person's session used under an
   * after-session policy that are not rotated yet: rotation after sessions keeps its queue in
   * one server's memory, which a stop loses, so the schedule picks up what it left.
   */
  private async dueAt(now: Date): Promise<DueAccount[]> {
    const { rotationPolicies } = this.o.services;
    const byAge = await rotationPolicies.due(now);
    const settled = new Date(now.getTime() - this.o.afterSessionDelayMs * 5 - 60_000);
    const seen = new Set(byAge.map((a) => a.accountId));
    return [...byAge, ...(await rotationPolicies.dueAfterSessions(settled)).filter((a) => !seen.has(a.accountId))];
  }

  /** Due accounts grouped under the policy that makes them due. */
  private async byPolicy(due: DueAccount[]): Promise<Map<RotationPolicy, DueAccount[]>> {
    const policies = new Map<string, RotationPolicy | undefined>();
    const grouped = new Map<RotationPolicy, DueAccount[]>();
    for (const a of due) {
      if (!policies.has(a.policyId)) policies.set(a.policyId, await this.o.services.rotationPolicies.effectiveFor(a.deviceId));
      const policy = policies.get(a.policyId);
      // Changed or removed since the look at what is due: the next tick sees it as it is.
      if (policy?.id !== a.policyId) continue;
      grouped.set(policy, [...(grouped.get(policy) ?? []), a]);
    }
    return grouped;
  }
}
