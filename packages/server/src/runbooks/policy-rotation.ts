import { RUNBOOK_DEFAULT_CONCURRENCY, type RunbookRunView } from '@gatehouse/api';
import { GatehouseError, maintenanceRequiredBy } from '@gatehouse/core';
import type { Account, Device, Project, RotationPolicy, User } from '@gatehouse/db';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import type { RunbookService } from './service.js';

/** What started a policy's rotation. */
export type RotationTrigger = 'schedule' | 'after-session';

/** An account a policy asks to rotate. */
export interface AccountToRotate {
  accountId: string;
  deviceId: string;
}

export interface PolicyRotationOutcome {
  /** The run started, if any, and how many accounts it rotates. */
  run?: RunbookRunView;
  accounts: number;
  /** Accounts whose device another run holds: asked again later. */
  deferred: AccountToRotate[];
}

/** A skip already audited is audited again only after this long (a tick every 10 minutes would flood the log). */
const SKIP_AUDIT_EVERY_MS = 6 * 3_600_000;

/**
 * Starts the rotation a policy asks for (ResetAccess, applied, the policy's credential
 * kind and password policy) as the user who set the policy, over the built-in gateway
 * like any run. Refused, and audited `rotation.schedule_skipped` with the reason, when
 * that user is gone, disabled or no longer an administrator; a device that needs a
 * maintenance window is rotated only inside an open window covering that user, else it
 * is skipped with that reason. Devices another run holds are deferred, not skipped.
 * Scheduled rotation and rotation after a session both start here.
 */
export class PolicyRotations {
  private readonly skipsAudited = new Map<string, number>();

  constructor(
    private readonly services: Services,
    private readonly logger: Logger,
    /** The engine (a fake in tests of the scheduling). */
    private readonly runbooks: Pick<RunbookService, 'startRotation'> = services.runbooks,
  ) {}

  async start(policy: RotationPolicy, accounts: readonly AccountToRotate[], trigger: RotationTrigger, now = new Date()) {
    const outcome: PolicyRotationOutcome = { deferred: [], accounts: 0 };
    if (accounts.length === 0) return outcome;
    const runAs = runnerOf(policy, await this.services.users.get(policy.setBy.id).catch(() => undefined));
    if (!runAs.ok) {
      await this.skipped(policy, trigger, runAs.reason, accounts.length, []);
      return outcome;
    }
    const { user } = runAs;
    const byDevice = new Map<string, string[]>();
    for (const a of accounts) byDevice.set(a.deviceId, [...(byDevice.get(a.deviceId) ?? []), a.accountId]);
    const locked = await this.services.runbookRuns.lockedDevices([...byDevice.keys()]);
    const items: { deviceId: string; accountIds: string[] }[] = [];
    const outside: { device: string; reason: string }[] = [];
    for (const [deviceId, accountIds] of byDevice) {
      if (locked.has(deviceId)) {
        outcome.deferred.push(...accountIds.map((accountId) => ({ accountId, deviceId })));
        continue;
      }
      const allowed = await this.allowedOn(deviceId, accountIds, policy, user, now);
      if (allowed.reason) outside.push({ device: allowed.deviceName, reason: allowed.reason });
      if (allowed.accountIds.length > 0) items.push({ deviceId, accountIds: allowed.accountIds });
    }
    if (outside.length > 0) {
      const summary =
        outside.length === 1 ? (outside[0] as { reason: string }).reason : `${outside.length} devices need a maintenance window`;
      await this.skipped(policy, trigger, summary, accounts.length, outside);
    }
    if (items.length === 0) return outcome;
    try {
      outcome.run = await this.runbooks.startRotation(
        {
          items,
          apply: true,
          privilegedAccount: policy.privilegedAccount,
          concurrency: RUNBOOK_DEFAULT_CONCURRENCY,
          kind: 'runbook',
          breakglassRunId: null,
          policy: { length: policy.passwordLength, classes: policy.passwordClasses },
          credential: policy.credential,
        },
        { id: user.id, username: user.username },
        null,
      );
    } catch (error) {
      // A run took one of the devices since the look at the locks: the next tick asks again.
      if (error instanceof GatehouseError && error.code === 'CONFLICT') {
        outcome.deferred.push(...items.flatMap((i) => i.accountIds.map((accountId) => ({ accountId, deviceId: i.deviceId }))));
        this.logger.info({ policyId: policy.id, problem: error.message }, 'a rotation waits for a device another run holds');
        return outcome;
      }
      throw error;
    }
    outcome.accounts = items.reduce((n, i) => n + i.accountIds.length, 0);
    await this.services.audit(null, {
      action: 'rotation.scheduled_run',
      outcome: 'success',
      actorId: null,
      actorName: 'system',
      targetType: 'runbook_run',
      targetId: outcome.run.id,
      details: {
        runId: outcome.run.id,
        trigger,
        accounts: outcome.accounts,
        devices: items.length,
        policy: { id: policy.id, scope: policy.scope, scopeId: policy.scopeId },
        as: user.username,
        credential: policy.credential,
      },
    });
    return outcome;
  }

  /** The accounts of a device the policy's user may reach now: all, unless it needs a maintenance window none covers. */
  private async allowedOn(
    deviceId: string,
    accountIds: string[],
    policy: RotationPolicy,
    user: User,
    now: Date,
  ): Promise<{ deviceName: string; accountIds: string[]; reason?: string }> {
    const { inventory, maintenance } = this.services;
    const device: Device = await inventory.devices.get(deviceId);
    const project: Project = await inventory.projects.get(device.projectId);
    if (!maintenanceRequiredBy(device, project)) return { deviceName: device.name, accountIds };
    const onDevice: Account[] = await inventory.accounts.list(device.id);
    const privileged = onDevice.find((a) => a.username === policy.privilegedAccount);
    const covered = async (accountId: string | null) =>
      (await maintenance.activeCovering(user.id, device.id, accountId, now)) !== undefined;
    const needed = `${device.name} needs a maintenance window and no open window covers ${user.username}`;
    if (!(await covered(privileged?.id ?? null))) return { deviceName: device.name, accountIds: [], reason: needed };
    const inside: string[] = [];
    for (const id of accountIds) if (await covered(id)) inside.push(id);
    const left = accountIds.length - inside.length;
    return left === 0
      ? { deviceName: device.name, accountIds: inside }
      : { deviceName: device.name, accountIds: inside, reason: `${needed} for ${left} of its accounts` };
  }

  /** Audits a skip, once per policy and reason every few hours. */
  private async skipped(
    policy: RotationPolicy,
    trigger: RotationTrigger,
    reason: string,
    accounts: number,
    devices: { device: string; reason: string }[],
  ): Promise<void> {
    const key = `${policy.id}\n${reason}`;
    const last = this.skipsAudited.get(key);
    this.logger.warn({ policyId: policy.id, trigger, reason }, 'a rotation the policy asks for was not started');
    if (last !== undefined && Date.now() - last < SKIP_AUDIT_EVERY_MS) return;
    this.skipsAudited.set(key, Date.now());
    await this.services.audit(null, {
      action: 'rotation.schedule_skipped',
      outcome: 'failure',
      actorId: null,
      actorName: 'system',
      targetType: policy.scope,
      targetId: policy.scopeId,
      details: {
        reason,
        trigger,
        accounts,
        policy: { id: policy.id, scope: policy.scope, scopeId: policy.scopeId },
        setBy: policy.setBy.username ?? policy.setBy.id,
        ...(devices.length > 0 ? { devices } : {}),
      },
    });
  }
}

/** The policy's user, who runs its rotations, or why they may not now. */
function runnerOf(policy: RotationPolicy, user: User | undefined): { ok: true; user: User } | { ok: false; reason: string } {
  const name = policy.setBy.username ?? policy.setBy.id;
  if (!user) return { ok: false, reason: `${name}, who set the policy, no longer exists: set the policy again as an administrator` };
  if (user.disabled) return { ok: false, reason: `${name}, who set the policy, is disabled: set the policy again as an administrator` };
  if (user.role !== 'admin')
    return { ok: false, reason: `${name}, who set the policy, is no longer an administrator: set the policy again as one` };
  return { ok: true, user };
}
