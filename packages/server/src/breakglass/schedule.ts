import { watch, type FSWatcher } from 'node:fs';
import type { BreakGlassSettings } from '@gatehouse/breakglass';
import type { BreakGlassRun, BreakGlassRuns } from '@gatehouse/db';
import { Cron } from 'croner';
import type { Logger } from '../logger.js';

import type { Alert } from './alerts.js';

/** How often a server looks for runs another one left unfinished. */
const RECOVER_EVERY_MS = 60_000;

/** The latest scheduled time at or before `now` (daily at HH:mm in the zone). */
export function lastScheduledSlot(executeTime: string, timeZone: string, now = new Date()): Date | undefined {
  const [h, m] = executeTime.split(':');
  const cron = new Cron(`${Number(m)} ${Number(h)} * * *`, { timezone: timeZone, paused: true });
  let slot: Date | undefined;
  let from = new Date(now.getTime() - 49 * 3_600_000);
  for (;;) {
    const next = cron.nextRun(from);
    if (!next || next > now) return slot;
    slot = next;
    from = next;
  }
}

export interface ScheduleOptions {
  runs: BreakGlassRuns;
  logger: Logger;
  staleHours: number;
  /** GATEHOUSE_BREAKGLASS_CONFIG: watched, and polled, for changes. */
  mountedConfig?: string | undefined;
  alert: Alert;
  /** The settings now. */
  current: () => Promise<{ settings: BreakGlassSettings | undefined }>;
  /** Starts a run in the background (refused when one is going on anywhere). */
  start: (trigger: BreakGlassRun['trigger']) => Promise<BreakGlassRun>;
  recoverInterrupted: () => Promise<BreakGlassRun | undefined>;
  reloadMounted: () => void;
  /** Whether this replica runs the scheduled jobs (the leader; always on SQLite). */
  isLeader: () => boolean;
}

/**
 * When break glass runs by itself: the daily run (croner, in the configured time zone),
 * the catch-up of a slot missed while down, the staleness alarm, the look for runs a
 * stopped server left unfinished, and the watch on the mounted secret. Of several
 * replicas only the leader runs them (`isLeader`); each watches its own mounted secret,
 * and a replica that becomes the leader first recovers what a dead one left (`lead`).
 */
export class BreakGlassSchedule {
  private cron: Cron | undefined;
  private timers: NodeJS.Timeout[] = [];
  private watcher: FSWatcher | undefined;
  private recovering: Promise<unknown> | undefined;
  private lastStaleAlert = 0;

  constructor(private readonly o: ScheduleOptions) {}

  /** Fires the staleness alarm when the newest successful export is older than staleHours. */
  async checkStaleness(now = new Date()): Promise<boolean> {
    const { settings } = await this.o.current();
    if (!settings) return false;
    const last = await this.o.runs.lastSuccess();
    const age = last ? now.getTime() - Date.parse(last.startedAt) : Number.POSITIVE_INFINITY;
    const first = await this.o.runs.last();
    // A fresh installation gets a day to make its first export before it is stale.
    const since = last ? age : first ? now.getTime() - Date.parse(first.startedAt) : 0;
    if (since <= this.o.staleHours * 3_600_000) return false;
    if (now.getTime() - this.lastStaleAlert < 6 * 3_600_000) return true;
    this.lastStaleAlert = now.getTime();
    await this.o.alert(
      'breakglass.stale',
      last
        ? `The newest break-glass export is from ${last.startedAt}, older than ${this.o.staleHours} hours. Check the run history and the storage settings.`
        : `No break-glass export has succeeded yet, and the first run was more than ${this.o.staleHours} hours ago. Check the run history and the storage settings.`,
      last,
      settings,
    );
    return true;
  }

  /** Schedules the daily run and watches the mounted secret; the leader's catch-up and recovery start with `lead`. */
  start(): void {
    if (this.o.mountedConfig) {
      try {
        this.watcher = watch(this.o.mountedConfig, () => this.o.reloadMounted());
      } catch {
        // Polling below still notices changes.
      }
      const poll = setInterval(() => this.o.reloadMounted(), 5000);
      poll.unref();
      this.timers.push(poll);
    }
    this.reschedule();
    const stale = setInterval(() => {
      if (this.o.isLeader()) void this.checkStaleness().catch((e: unknown) => this.o.logger.error({ err: e }, 'staleness check failed'));
    }, 3_600_000);
    stale.unref();
    this.timers.push(stale);
    const poll = setInterval(() => {
      if (this.o.isLeader()) void this.recover();
    }, RECOVER_EVERY_MS);
    poll.unref();
    this.timers.push(poll);
  }

  private recover(): Promise<BreakGlassRun | undefined> {
    return this.o.recoverInterrupted().catch((e: unknown) => {
      this.o.logger.error({ err: e }, 'could not recover the break-glass runs left unfinished by a stopped server');
      return undefined;
    });
  }

  /**
   * This replica became the leader (at start on SQLite): the runs a stopped leader left
   * unfinished are closed and run again once (the run lease keeps it to one at a time),
   * then a scheduled run missed while no leader ran is caught up.
   */
  lead(): void {
    // In the background: reading the bucket back must not hold up the server's start.
    const previous = this.recovering ?? Promise.resolve();
    this.recovering = previous
      .then(() => this.recover())
      .then(() => this.catchUp())
      .catch((e: unknown) => this.o.logger.error({ err: e }, 'could not catch up the scheduled break-glass run'));
  }

  /** After the settings changed. */
  reschedule(): void {
    this.cron?.stop();
    this.cron = undefined;
    void this.o.current().then(({ settings }) => {
      if (!settings) return;
      const [h, m] = settings.executeTime.split(':');
      this.cron = new Cron(`${Number(m)} ${Number(h)} * * *`, { timezone: settings.timeZone, protect: true }, () => {
        if (!this.o.isLeader()) return;
        void this.o
          .start('schedule')
          .catch((e: unknown) => this.o.logger.warn({ problem: (e as Error).message }, 'scheduled break-glass run not started'));
      });
    });
  }

  /** A run missed while the server was down runs now. */
  async catchUp(now = new Date()): Promise<BreakGlassRun | undefined> {
    const { settings } = await this.o.current();
    if (!settings) return undefined;
    const slot = lastScheduledSlot(settings.executeTime, settings.timeZone, now);
    const last = await this.o.runs.last();
    if (!slot || (last && Date.parse(last.startedAt) >= slot.getTime())) return undefined;
    this.o.logger.info({ slot: slot.toISOString() }, 'running the break-glass export missed while the server was down');
    return this.o.start('catch-up').catch((e: unknown) => {
      this.o.logger.warn({ problem: (e as Error).message }, 'catch-up break-glass run not started');
      return undefined;
    });
  }

  /** Stops the timers and waits for the start-up recovery. */
  async stop(): Promise<void> {
    this.cron?.stop();
    this.watcher?.close();
    for (const t of this.timers) clearInterval(t);
    await this.recovering;
  }

  /** The scheduled time of the next run, if any. */
  nextRun(): Date | null {
    return this.cron?.nextRun() ?? null;
  }
}
