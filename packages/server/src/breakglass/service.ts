import {
  fingerprintValues,
  parseMountedConfig,
  plainHttpWarning,
  readMountedValues,
  MountedConfigError,
  type BreakGlassSettings,
  type StageResult,
  type TestReport,
} from '@gatehouse/breakglass';
import { GatehouseError, ValidationError, type AuditCheckpoint } from '@gatehouse/core';
import { BreakGlassRuns, Leases, type BreakGlassRun, type Db, type Inventory, type Settings, type Vault } from '@gatehouse/db';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';

import { alertVia, type Alert } from './alerts.js';
import { restrictionIssues, type BreakGlassRestrictions } from './restrictions.js';
import { BreakGlassRunner, targetFor } from './run.js';
import { BreakGlassSchedule } from './schedule.js';
import { BreakGlassStore } from './store.js';

export type SettingsOrigin = 'mounted' | 'database' | 'none';

export interface BreakGlassOptions {
  db: Db;
  inventory: Inventory;
  settings: Settings;
  vault: Vault;
  logger: Logger;
  audit: Services['audit'];
  /** A run's row and its audit events are written in one transaction. */
  withAudit: Services['withAudit'];
  /** GATEHOUSE_BREAKGLASS_CONFIG: a mounted secret (directory or key: value file). */
  mountedConfig?: string | undefined;
  /** Waits between attempts of a failing run; its length + 1 is the number of attempts. */
  retryDelaysMs: readonly number[];
  staleHours: number;
  /** GATEHOUSE_BREAKGLASS_TIMEOUT_SECONDS: how long a request to the bucket or container may take (default 30). */
  timeoutSeconds?: number | undefined;
  /** Where sealed exports are staged before upload (ciphertext only); leftovers of a crash are removed at start. */
  stagingDir: string;
  /** What only the server's configuration allows (plain exports, link-local addresses); default: neither. */
  restrictions?: BreakGlassRestrictions | undefined;
  /** Signs the audit chain's head for the manifest, which anchors the chain outside the database. */
  auditCheckpoint?: (() => Promise<AuditCheckpoint | undefined>) | undefined;
  /** Whether this replica runs the schedule (the leader); always, when not given. */
  isLeader?: () => boolean;
}

/** The probe object the Test button writes. */
export const probeName = (prefix: string) => `${prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`}.gatehouse-probe`;

/**
 * Break glass on the server: settings (stored or mounted), the Test button, and the
 * composition of runs (`run.ts`: the lease, retries, history), alerts (`alerts.ts`) and
 * what runs by itself (`schedule.ts`: the daily run with catch-up, the staleness alarm).
 */
export class BreakGlassService {
  readonly store: BreakGlassStore;
  readonly runs: BreakGlassRuns;
  readonly restrictions: BreakGlassRestrictions;
  /** The runs of this process: sealed bytes staged so far, and bytes sent to the storage so far. */
  readonly progress: Map<string, { staged: number; uploaded: number }>;
  /** An alert: an error log line, an audit event, and the webhook when one is set. */
  readonly alert: Alert;
  private readonly runner: BreakGlassRunner;
  private readonly schedule: BreakGlassSchedule;
  private mounted: { settings?: BreakGlassSettings; error?: string; fingerprint?: string } = {};

  constructor(private readonly o: BreakGlassOptions) {
    this.restrictions = o.restrictions ?? { allowPlaintext: false, allowLinkLocal: false };
    this.store = new BreakGlassStore(o.settings, o.vault);
    this.runs = new BreakGlassRuns(o.db);
    this.alert = alertVia({ logger: o.logger, audit: o.audit, restrictions: this.restrictions });
    this.runner = new BreakGlassRunner({
      ...o,
      store: this.store,
      runs: this.runs,
      leases: new Leases(o.db),
      restrictions: this.restrictions,
      alert: this.alert,
      current: () => this.current(),
    });
    this.progress = this.runner.progress;
    this.schedule = new BreakGlassSchedule({
      runs: this.runs,
      logger: o.logger,
      staleHours: o.staleHours,
      mountedConfig: o.mountedConfig,
      alert: this.alert,
      current: () => this.current(),
      start: (trigger) => this.start(trigger, null),
      recoverInterrupted: () => this.recoverInterrupted(),
      reloadMounted: () => this.reloadMounted(),
      isLeader: o.isLeader ?? (() => true),
    });
    if (o.mountedConfig) this.reloadMounted();
  }

  /** Re-reads the mounted secret; an invalid one is reported by key and blocks runs. */
  reloadMounted(): boolean {
    const source = this.o.mountedConfig;
    if (!source) return false;
    try {
      const values = readMountedValues(source);
      const fingerprint = fingerprintValues(values);
      if (fingerprint === this.mounted.fingerprint) return false;
      try {
        const settings = parseMountedConfig(values, source);
        // The mounted secret is bound by the server's restrictions like the API.
        const refused = restrictionIssues(settings, this.restrictions);
        if (refused.length > 0)
          throw new MountedConfigError(
            source,
            refused.map((i) => ({ key: i.path, message: i.message })),
          );
        this.mounted = { settings, fingerprint };
        this.o.logger.info({ source }, 'break-glass settings loaded from the mounted secret');
      } catch (error) {
        this.mounted = { error: (error as Error).message, fingerprint };
        this.o.logger.error({ source, problem: (error as Error).message }, 'the mounted break-glass configuration is invalid');
      }
    } catch (error) {
      this.mounted = { error: (error as Error).message };
      this.o.logger.error({ source, problem: (error as Error).message }, 'the mounted break-glass configuration cannot be read');
    }
    this.schedule.reschedule();
    return true;
  }

  async current(): Promise<{ settings: BreakGlassSettings | undefined; origin: SettingsOrigin; error?: string }> {
    if (this.o.mountedConfig) {
      return this.mounted.error !== undefined
        ? { settings: undefined, origin: 'mounted', error: this.mounted.error }
        : { settings: this.mounted.settings, origin: 'mounted' };
    }
    let settings: BreakGlassSettings | undefined;
    try {
      settings = await this.store.load();
    } catch (error) {
      if (error instanceof ValidationError) return { settings: undefined, origin: 'database', error: error.message };
      throw error;
    }
    if (!settings) return { settings, origin: 'none' };
    // Saved before the server's configuration changed: shown, but not run until it is fixed.
    const refused = restrictionIssues(settings, this.restrictions);
    if (refused.length > 0) {
      return { settings, origin: 'database', error: `${refused.map((i) => `${i.path} ${i.message}`).join('; ')}.` };
    }
    return { settings, origin: 'database' };
  }

  /** Validates an update from the API against the schema, the stored secrets and this server's restrictions. */
  async merge(input: Record<string, unknown>): Promise<BreakGlassSettings> {
    const settings = await this.store.merge(input);
    const issues = restrictionIssues(settings, this.restrictions);
    if (issues.length > 0) {
      throw new ValidationError(`The break-glass settings are invalid: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}.`, issues);
    }
    return settings;
  }

  /** The Test button: three stages and the privilege check, audited. */
  async test(
    settings: BreakGlassSettings,
    actor: Parameters<Services['audit']>[0],
    onStage?: (s: StageResult) => void,
  ): Promise<TestReport> {
    const target = await targetFor(settings, this.o.timeoutSeconds, this.restrictions);
    const plainHttp = plainHttpWarning(settings);
    const report = { ...(await target.test(probeName(settings.prefix), onStage)), warnings: plainHttp ? [plainHttp] : [] };
    // Kept for every administrator's page and the CLI, not only the tab that ran it; the row
    // and its audit event commit together, so neither is ever there without the other.
    await this.o.withAudit(actor, async (tx, audit) => {
      await tx.breakGlassRuns.recordTest({
        at: new Date().toISOString(),
        by: actor?.auth?.user.username ?? null,
        target: target.location,
        ok: report.ok,
        stages: report.stages,
        privilegeWarnings: report.privilegeWarnings,
        warnings: report.warnings,
      });
      audit({
        action: 'breakglass.test',
        outcome: report.ok ? 'success' : 'failure',
        details: {
          target: target.location,
          stages: report.stages.map((s) => ({ stage: s.stage, ok: s.ok })),
          privilegeWarnings: report.privilegeWarnings.length,
          warnings: report.warnings,
        },
      });
    });
    return report;
  }

  /**
   * Starts a run in the background and returns its history row. Refuses when a run is
   * already going on anywhere.
   */
  async start(trigger: BreakGlassRun['trigger'], actor: Parameters<Services['audit']>[0]): Promise<BreakGlassRun> {
    return this.runner.start(trigger, actor, await this.runnable());
  }

  /** The settings a run uses, or why there can be no run. */
  private async runnable(): Promise<BreakGlassSettings> {
    const { settings, error } = await this.current();
    if (!settings || error !== undefined) {
      throw new GatehouseError(
        'CONFLICT',
        error ? `Break glass cannot run: ${error}` : 'Break glass is not configured yet. Save the settings first.',
      );
    }
    return settings;
  }

  /**
   * Finds runs a stopped server left unfinished, reports each, and runs the export again
   * at once unless the last runs were all cut off (`run.ts`).
   */
  recoverInterrupted(): Promise<BreakGlassRun | undefined> {
    return this.runner.recoverInterrupted();
  }

  /** Starts a run and waits for it to finish. */
  async runAndWait(trigger: BreakGlassRun['trigger'], actor: Parameters<Services['audit']>[0]): Promise<BreakGlassRun> {
    const run = await this.start(trigger, actor);
    await this.runner.idle();
    return this.runs.get(run.id);
  }

  /** Fires the staleness alarm when the newest successful export is older than staleHours. */
  checkStaleness(now = new Date()): Promise<boolean> {
    return this.schedule.checkStaleness(now);
  }

  /** Schedules the daily run and watches the mounted secret; the leader's recovery and catch-up start with `lead`. */
  async startBackground(): Promise<void> {
    await this.runner.clearStaging();
    this.schedule.start();
  }

  /** This replica became the leader: runs left unfinished are recovered, a missed scheduled run caught up. */
  lead(): void {
    this.schedule.lead();
  }

  /** After the stored settings changed. */
  reloadSchedule(): void {
    this.schedule.reschedule();
  }

  /** A run missed while the server was down runs now. */
  catchUp(now = new Date()): Promise<BreakGlassRun | undefined> {
    return this.schedule.catchUp(now);
  }

  async stop(): Promise<void> {
    this.runner.retire();
    await this.schedule.stop();
    await this.runner.idle();
  }

  /** The scheduled time of the next run, if any. */
  nextRun(): Date | null {
    return this.schedule.nextRun();
  }
}
