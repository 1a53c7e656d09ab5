import type { GatewaySession, GatewaySessions, RotationPolicy } from '@gatehouse/db';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import type { AccountToRotate, PolicyRotations } from './policy-rotation.js';

export interface AfterSessionRotationOptions {
  services: Pick<Services, 'rotationPolicies'>;
  sessions: Pick<GatewaySessions, 'liveOnAccount'>;
  rotations: PolicyRotations;
  logger: Logger;
  /** How long to wait after a session ended before rotating (`rotationAfterSessionDelayMs`). */
  delayMs: number;
}

/** A session's end as the rotation after it sees it. */
export type EndedSession = Pick<GatewaySession, 'accountId' | 'deviceId' | 'runbookRunId'>;

/**
 * Rotation after every session: when a person's session ends on an account whose effective
 * policy has `afterSession` (as the session ends, and still when rotating), the account is queued, and rotated (the same ResetAccess
 * run as scheduled rotation) once `delayMs` passed without another end, so sessions ending
 * together make one run. An account with a session still live is not rotated: the end of
 * its last session queues it again. Runbook sessions (the rotation's own) never queue.
 * An account whose device another run holds waits and is tried again.
 */
export class AfterSessionRotation {
  private readonly queued = new Map<string, string>();
  /** Session ends whose policy is being looked up. */
  private readonly looking = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private firstQueuedAt: number | undefined;
  private flushing: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly o: AfterSessionRotationOptions) {}

  /** Called by the gateway broker for every session end; never throws. */
  sessionEnded(s: EndedSession): void {
    if (this.stopped || s.runbookRunId !== null || s.accountId === null || s.deviceId === null) return;
    const looking: Promise<void> = this.queue(s.accountId, s.deviceId)
      .catch((error: unknown) => this.o.logger.error({ err: error }, 'could not look up the rotation policy after a session'))
      .finally(() => this.looking.delete(looking));
    this.looking.add(looking);
  }

  /** Queues the account when the policy in force as its session ended asks for rotation after sessions. */
  private async queue(accountId: string, deviceId: string): Promise<void> {
    const policy = await this.o.services.rotationPolicies.effectiveFor(deviceId);
    if (!policy?.afterSession || this.stopped) return;
    this.queued.set(accountId, deviceId);
    this.firstQueuedAt ??= Date.now();
    // Each end waits again, but a steady stream of ends does not hold rotation off for ever.
    const waited = Date.now() - this.firstQueuedAt;
    this.arm(Math.max(0, Math.min(this.o.delayMs, this.o.delayMs * 5 - waited)));
  }

  /** Rotates what is queued now (after the ends being looked at), without waiting (tests, and the timer). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.looking]);
    while (this.flushing) await this.flushing;
    this.flushing = this.rotateQueued().finally(() => (this.flushing = undefined));
    await this.flushing;
  }

  /** Stops queuing; a flush under way finishes. What is still queued is dropped. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled([...this.looking]);
    clearTimeout(this.timer);
    await this.flushing;
  }

  private arm(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      void this.flush().catch((error: unknown) => this.o.logger.error({ err: error }, 'rotation after sessions failed'));
    }, ms);
    this.timer.unref();
  }

  private async rotateQueued(): Promise<void> {
    const taken = [...this.queued].map(([accountId, deviceId]) => ({ accountId, deviceId }));
    this.queued.clear();
    this.firstQueuedAt = undefined;
    const byPolicy = new Map<string, { policy: RotationPolicy; accounts: AccountToRotate[] }>();
    const policies = new Map<string, RotationPolicy | undefined>();
    for (const a of taken) {
      if (!policies.has(a.deviceId)) policies.set(a.deviceId, await this.o.services.rotationPolicies.effectiveFor(a.deviceId));
      const policy = policies.get(a.deviceId);
      if (!policy?.afterSession) continue;
      // Another session on the account is still live: the end of the last one queues it again.
      if ((await this.o.sessions.liveOnAccount(a.accountId)) > 0) continue;
      const group = byPolicy.get(policy.id) ?? { policy, accounts: [] };
      group.accounts.push(a);
      byPolicy.set(policy.id, group);
    }
    let deferred = false;
    for (const { policy, accounts } of byPolicy.values()) {
      const outcome = await this.o.rotations.start(policy, accounts, 'after-session').catch((error: unknown) => {
        this.o.logger.error({ err: error, policyId: policy.id }, 'could not start the rotation after a session');
        return undefined;
      });
      for (const a of outcome?.deferred ?? []) {
        if (!this.queued.has(a.accountId)) this.queued.set(a.accountId, a.deviceId);
        deferred = true;
      }
    }
    // Another run holds a device: asked again after a while, until that run has let it go.
    if (deferred && !this.stopped) {
      this.firstQueuedAt ??= Date.now();
      this.arm(Math.max(this.o.delayMs, 5_000));
    }
  }
}
