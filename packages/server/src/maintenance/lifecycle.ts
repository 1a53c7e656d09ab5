import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { formatUtc } from '@gatehouse/core';
import type { GatewaySession, GatewaySessions, Leases, MaintenanceWindow } from '@gatehouse/db';
import type { LiveSession } from '../gateway/service.js';
import type { Logger } from '../logger.js';
import type { AuditDraft, Services } from '../services.js';
import { closeRetryDelayMs, hookPayload, runHook, type HookPayload, type HookResult } from './hooks.js';
import { notifyMaintenance, type MaintenanceNotice } from './notify.js';
import { readMaintenanceSettings } from './settings.js';

const LEASE = 'maintenance';

/** The maintenance settings the lifecycle reads (API `GET /maintenance/settings`). */
export interface LifecycleSettings {
  warnMinutes: number;
  hookWebhookUrl: string | null;
  notifyWebhookUrl: string | null;
}

export interface MaintenanceLifecycleOptions {
  services: Services;
  sessions: GatewaySessions;
  leases: Leases;
  /** Live sessions where users entered (GatewayService). */
  gateways: {
    endSession(session: LiveSession, reason: string): Promise<boolean>;
    warnSession(session: LiveSession, text: string): Promise<boolean>;
  };
  logger: Logger;
  /** The maintenance settings now (default: as stored). */
  settings?: () => Promise<LifecycleSettings>;
  /** Tells requesters and approvers (default: the notification webhook, `notifyMaintenance`); never throws. */
  notify?: (event: MaintenanceNotice, window: MaintenanceWindow) => void;
}

/** What a user is shown before their window ends. */
export const warningText = (w: Pick<MaintenanceWindow, 'id' | 'endsAt'>) =>
  `Gatehouse: maintenance window ${w.id} ends at ${formatUtc(new Date(w.endsAt))}; this session will be ended then.`;

/** Why a window's sessions were ended (the user is told, the session row and recording keep it). */
export const endReason = (w: MaintenanceWindow, revokedBy: string | null) =>
  w.state === 'revoked'
    ? `The maintenance window ${w.id} was revoked by ${revokedBy ?? 'an administrator'}.`
    : `The maintenance window ${w.id} ended.`;

/**
 * Runs maintenance windows: every `maintenanceTickMs` the holder of the `maintenance`
 * lease (one replica) opens the windows whose start came (opening hook first), warns the
 * live sessions of windows about to end, ends windows whose end passed, and closes ended
 * or revoked ones: their sessions ended, the closing hook run, retried with backoff (an
 * alert each failure) until it succeeds. A window's end is kept as a monotonic deadline
 * too, so turning the wall clock back does not extend it.
 */
export class MaintenanceLifecycle {
  private readonly holder = `${os.hostname()}:${process.pid}:${randomUUID()}`;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** Per open window seen: when it ends by the monotonic clock. */
  private readonly deadlines = new Map<string, number>();
  /** Per open window in its warning time: the sessions told already (a session that starts later is told at the next tick). */
  private readonly warned = new Map<string, Set<string>>();
  /** Sessions of closed windows a gateway could not end: when last tried (retried after a minute). */
  private readonly endAttempts = new Map<string, number>();

  constructor(private readonly o: MaintenanceLifecycleOptions) {}

  private notify(event: MaintenanceNotice, w: MaintenanceWindow): void {
    if (this.o.notify) this.o.notify(event, w);
    else void notifyMaintenance(this.o.services, event, w);
  }

  private get config() {
    return this.o.services.config;
  }

  private get leaseMs() {
    return Math.max(this.config.maintenanceTickMs * 5, 5_000);
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops ticking (waits for a tick under way) and lets the lease go, so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await this.o.leases.release(LEASE, this.holder).catch(() => undefined);
  }

  /** Asks for a tick now (a window was revoked or approved). */
  runSoon(): void {
    if (this.stopped) return;
    if (this.running) this.again = true;
    else this.schedule(0);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.runTick(), ms);
    this.timer.unref();
  }

  private async runTick(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = this.tick().catch((error: unknown) => this.o.logger.error({ err: error }, 'the maintenance lifecycle tick failed'));
    await this.running;
    this.running = undefined;
    if (this.stopped) return;
    const soon = this.again;
    this.again = false;
    this.schedule(soon ? 0 : this.config.maintenanceTickMs);
  }

  /** One pass, if this replica holds the lease. Exposed for tests. */
  async tick(now = new Date()): Promise<void> {
    if (!(await this.holdLease())) return;
    const settings = await (this.o.settings ?? (() => readMaintenanceSettings(this.o.services.settings)))();
    const windows = await this.o.services.maintenance.inStates(['pending', 'approved', 'open']);
    const open = new Set(windows.filter((w) => w.state === 'open').map((w) => w.id));
    for (const seen of [this.deadlines, this.warned]) for (const id of seen.keys()) if (!open.has(id)) seen.delete(id);
    for (const w of windows) {
      if (this.stopped) return;
      if (w.state === 'open') await this.watchOpen(w, now, settings);
      else if (Date.parse(w.endsAt) <= now.getTime()) await this.expire(w, now);
      else if (w.state === 'approved' && Date.parse(w.startsAt) <= now.getTime()) await this.open(w, now, settings);
    }
    for (const w of await this.o.services.maintenance.closesDue(now)) {
      if (this.stopped) return;
      await this.close(w, settings);
    }
    await this.endStragglers();
  }

  private async holdLease(): Promise<boolean> {
    const { leases } = this.o;
    // Renewed while this replica still holds it (a lapsed lease nobody took is still ours).
    return (await leases.renew(LEASE, this.holder, this.leaseMs)) || leases.acquire(LEASE, this.holder, this.leaseMs);
  }

  // Opening

  private async open(w: MaintenanceWindow, now: Date, settings: LifecycleSettings): Promise<void> {
    const result = await this.runWindowHook(w, 'open', this.config.maintenanceOpenHook, settings, 1);
    const opened = await this.o.services.withAudit(null, async (tx, audit) => {
      const changed = result.ok ? await tx.maintenance.markOpened(w.id) : await tx.maintenance.markFailed(w.id, hookFailure(result));
      if (changed) {
        audit(
          systemEvent(result.ok ? 'maintenance.opened' : 'maintenance.open_failed', result.ok ? 'success' : 'failure', w, {
            ...(result.ok ? {} : { error: result.error, exitCode: result.exitCode }),
          }),
        );
      }
      return changed;
    });
    if (!opened) return;
    if (result.ok) {
      this.deadlines.set(w.id, performance.now() + Date.parse(w.endsAt) - now.getTime());
      this.notify('opened', { ...w, state: 'open' });
    } else {
      this.o.logger.error({ windowId: w.id, error: result.error }, 'a maintenance window did not open: its opening hook failed');
      this.notify('open_failed', { ...w, state: 'failed' });
    }
  }

  // Open windows: warn, then end

  private async watchOpen(w: MaintenanceWindow, now: Date, settings: LifecycleSettings): Promise<void> {
    const remaining = Date.parse(w.endsAt) - now.getTime();
    let deadline = this.deadlines.get(w.id);
    if (deadline === undefined) {
      deadline = performance.now() + remaining;
      this.deadlines.set(w.id, deadline);
    }
    const left = Math.min(remaining, deadline - performance.now());
    if (left <= 0) {
      await this.expire(w, now);
      return;
    }
    if (left <= settings.warnMinutes * 60_000) await this.warn(w);
  }

  /** Tells the window's live sessions not told yet that it ends soon; the first time, records that it warned. */
  private async warn(w: MaintenanceWindow): Promise<void> {
    const told = this.warned.get(w.id) ?? new Set<string>();
    this.warned.set(w.id, told);
    const sessions = (await this.o.sessions.liveInWindow(w.id)).filter((s) => !told.has(s.id));
    const text = warningText(w);
    for (const s of sessions) {
      const ok = await this.o.gateways.warnSession(s, text).catch((error: unknown) => {
        this.o.logger.warn({ err: error, sessionId: s.id, windowId: w.id }, 'could not warn a session of a maintenance window');
        return false;
      });
      // A session its gateway does not hold (yet, or any more) is not asked again and again.
      told.add(s.id);
      if (!ok) this.o.logger.debug({ sessionId: s.id, windowId: w.id }, 'the gateway holds no such session to warn');
    }
    if (w.warnedAt !== null) return;
    await this.o.services.withAudit(null, async (tx, audit) => {
      if (await tx.maintenance.markWarned(w.id)) audit(systemEvent('maintenance.warned', 'success', w, { sessions: sessions.length }));
    });
  }

  private async expire(w: MaintenanceWindow, now: Date): Promise<void> {
    const expired = await this.o.services.withAudit(null, async (tx, audit) => {
      const changed = await tx.maintenance.markEnded(w.id, now);
      if (changed) audit(systemEvent('maintenance.expired', 'success', w, { previous: w.state }));
      return changed;
    });
    if (expired) this.notify('expired', { ...w, state: 'expired' });
  }

  // Closing

  private async close(w: MaintenanceWindow, settings: LifecycleSettings): Promise<void> {
    const revokedBy =
      w.state === 'revoked' && w.endedBy ? (await this.o.services.users.get(w.endedBy).catch(() => undefined))?.username : null;
    const reason = endReason(w, revokedBy ?? null);
    await this.endSessions(w.id, reason);
    const attempt = w.closeAttempts + 1;
    const result = await this.runWindowHook(w, 'close', this.config.maintenanceCloseHook, settings, attempt);
    if (result.ok) {
      await this.o.services.withAudit(null, async (tx, audit) => {
        if (await tx.maintenance.setCloseState(w.id, { state: 'done', attempts: attempt, nextAt: null }))
          audit(systemEvent('maintenance.closed', 'success', w, { reason: w.state, attempts: attempt }));
      });
      return;
    }
    const nextAt = new Date(Date.now() + closeRetryDelayMs(attempt, this.config.maintenanceCloseRetryBaseMs)).toISOString();
    const failed = await this.o.services.withAudit(null, async (tx, audit) => {
      const changed = await tx.maintenance.setCloseState(w.id, { state: 'failed', attempts: attempt, nextAt });
      if (changed) {
        audit(systemEvent('maintenance.close_failed', 'failure', w, { attempt, nextAt, error: result.error, exitCode: result.exitCode }));
      }
      return changed;
    });
    if (!failed) return;
    this.o.logger.error(
      { alert: 'maintenance.close_failed', windowId: w.id, attempt, nextAt, error: result.error },
      `The closing hook of maintenance window ${w.id} failed (attempt ${attempt}); it is retried at ${nextAt}. Access it opened may still be open.`,
    );
    this.notify('close_failed', w);
  }

  /** Ends the window's live sessions where each user entered. */
  private async endSessions(windowId: string, reason: string): Promise<void> {
    for (const s of await this.o.sessions.liveInWindow(windowId)) await this.endOne(s, reason, windowId);
  }

  private async endOne(s: Pick<GatewaySession, 'id' | 'entryGateway'>, reason: string, windowId: string): Promise<void> {
    this.endAttempts.set(s.id, Date.now());
    await this.o.gateways.endSession(s, reason).catch((error: unknown) => {
      this.o.logger.warn({ err: error, sessionId: s.id, windowId }, 'could not end a session of a closed maintenance window');
      return false;
    });
  }

  /**
   * Live sessions whose window no longer gives access: a channel opened on a connection
   * made inside the window (a ControlMaster), or one whose gateway did not answer when the
   * window closed. Each is asked to end at most once a minute.
   */
  private async endStragglers(): Promise<void> {
    const stragglers = await this.o.sessions.liveOutsideOpenWindows();
    const now = Date.now();
    for (const [id, at] of this.endAttempts) if (now - at > 600_000) this.endAttempts.delete(id);
    for (const s of stragglers) {
      const last = this.endAttempts.get(s.id);
      if (last !== undefined && now - last < 60_000) continue;
      await this.endOne(s, `The maintenance window ${s.windowId} is no longer open.`, s.windowId);
    }
  }

  // Hooks

  private async runWindowHook(
    w: MaintenanceWindow,
    phase: HookPayload['phase'],
    executable: string | undefined | null,
    settings: LifecycleSettings,
    attempt: number,
  ): Promise<HookResult> {
    const startedAt = new Date().toISOString();
    const payload = hookPayload(
      phase,
      await this.describe(w),
      phase === 'close' ? (w.state === 'revoked' ? 'revoked' : 'expired') : undefined,
    );
    const result = await runHook(
      { executable: executable ?? null, webhookUrl: settings.hookWebhookUrl, timeoutMs: this.config.maintenanceHookTimeoutSeconds * 1000 },
      payload,
    );
    if (executable || settings.hookWebhookUrl) {
      await this.o.services.maintenance.addHookRun(w.id, {
        phase,
        attempt,
        startedAt,
        finishedAt: new Date().toISOString(),
        ok: result.ok,
        exitCode: result.exitCode,
        output: result.output,
        error: result.error,
      });
    }
    return result;
  }

  /** The window as its hooks see it: names and addresses, no credential. */
  private async describe(w: MaintenanceWindow) {
    const { inventory, users, maintenance } = this.o.services;
    const project = await inventory.projects.get(w.projectId);
    const devices =
      w.deviceIds === null
        ? (await inventory.devices.list({ projectId: w.projectId, limit: 10_000 })).items
        : await Promise.all(w.deviceIds.map((id) => inventory.devices.get(id)));
    const nameOf = async (id: string) => (await users.get(id).catch(() => undefined))?.username ?? id;
    const accounts =
      w.accountIds === null ? [] : await Promise.all(w.accountIds.map(async (id) => (await inventory.accounts.get(id)).username));
    const approvedBy = (await maintenance.decisions([w.id])).filter((d) => d.decision === 'approve').map((d) => d.username);
    return {
      id: w.id,
      project: { id: project.id, name: project.name },
      devices,
      users: await Promise.all(w.userIds.map(nameOf)),
      accounts,
      startsAt: w.startsAt,
      endsAt: w.endsAt,
      reason: w.reason,
      ticket: w.ticket,
      requestedBy: await nameOf(w.requestedBy),
      approvedBy,
    };
  }
}

function hookFailure(result: HookResult): string {
  return `The opening hook failed: ${result.error ?? `exit code ${result.exitCode ?? '?'}`}. Access stays closed.`;
}

function systemEvent(
  action: string,
  outcome: 'success' | 'failure',
  w: Pick<MaintenanceWindow, 'id' | 'projectId'>,
  details: Record<string, unknown>,
): AuditDraft {
  return {
    action,
    outcome,
    actorId: null,
    actorName: 'system',
    targetType: 'maintenance_window',
    targetId: w.id,
    details: { projectId: w.projectId, ...details },
  };
}
