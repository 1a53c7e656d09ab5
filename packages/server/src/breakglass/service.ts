import { randomUUID } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { hostname } from 'node:os';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  exportBreakGlass,
  exportNames,
  inventorySource,
  partialExport,
  fingerprintValues,
  parseMountedConfig,
  plainHttpWarning,
  readMountedValues,
  MountedConfigError,
  TargetError,
  type BreakGlassSettings,
  type Sealing,
  type StageResult,
  type AddressPolicy,
  type StorageTarget,
  type TestReport,
} from '@gatehouse/breakglass';
import { ConflictError, GatehouseError, ValidationError, type AuditCheckpoint } from '@gatehouse/core';
import {
  BreakGlassRuns,
  INTERRUPTED_STAGE,
  Leases,
  type BreakGlassRun,
  type Db,
  type Inventory,
  type Settings,
  type Vault,
} from '@gatehouse/db';
import { Cron } from 'croner';
import type { Logger } from '../logger.js';
import type { AuditDraft, Services } from '../services.js';

import { restrictionIssues, type BreakGlassRestrictions } from './restrictions.js';
import { checkBucket, describeBucket, type BucketCheck } from './bucket-check.js';
import { BreakGlassStore } from './store.js';
import { postWebhook } from './webhook.js';

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
}

const LEASE = 'breakglass';
const LEASE_MS = 5 * 60_000;
/** How often a server looks for runs another one left unfinished. */
const RECOVER_EVERY_MS = 60_000;
/** Runs cut off in a row after which an interrupted run is no longer redone by itself. */
const MAX_INTERRUPTED = 3;

/** A run a stopped server left unfinished, now closed, and what its bucket was found to hold. */
interface Interrupted {
  run: BreakGlassRun;
  bucket: BucketCheck | null;
}

/** Lease holders of this process, so that one is never mistaken for a holder that died. */
const holdersHere = new Set<string>();

/**
 * Whether a lease holder (`host/pid/uuid`) is a process of this machine that is gone: a
 * server killed mid-run (kill -9, OOM, power loss) leaves its lease behind, and without
 * this the restarted server would refuse runs, and leave the dead run "running", until
 * the lease lapsed. A holder on another machine can only lapse.
 */
function isDeadLocalHolder(holder: string): boolean {
  const [host, pidText] = holder.split('/');
  const pid = Number(pidText);
  if (host !== hostname() || !Number.isInteger(pid) || pid <= 0 || holdersHere.has(holder)) return false;
  // The same PID as ours but not one of our holders: an earlier incarnation (PID 1 in a restarted container).
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** The probe object the Test button writes. */
export const probeName = (prefix: string) => `${prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`}.gatehouse-probe`;

/** The storage target of the settings; each cloud SDK is loaded only when its target is used. */
export async function targetFor(s: BreakGlassSettings, timeoutSeconds?: number, addressPolicy?: AddressPolicy): Promise<StorageTarget> {
  if (s.provider === 's3') {
    const { S3Target } = await import('@gatehouse/breakglass/s3');
    return new S3Target({
      credentials: s.credentials,
      accessKeyId: s.accessKeyId,
      secretAccessKey: s.secretAccessKey,
      bucket: s.bucket,
      protocol: s.protocol,
      url: s.url,
      region: s.region,
      pathStyle: s.pathStyle,
      acl: s.acl,
      caBundle: s.caBundle,
      timeoutSeconds,
      addressPolicy,
    });
  }
  const { BlobTarget } = await import('@gatehouse/breakglass/blob');
  return new BlobTarget({
    accountName: s.accountName,
    accountKey: s.accountKey,
    sasToken: s.sasToken,
    container: s.container,
    protocol: s.protocol,
    endpointSuffix: s.endpointSuffix,
    blobEndpoint: s.blobEndpoint,
    caBundle: s.caBundle,
    timeoutSeconds,
    addressPolicy,
  });
}

export function sealingFor(s: BreakGlassSettings): Sealing {
  if (s.encryption === 'none') return { kind: 'none' };
  if (s.encryption === 'passphrase') return { kind: 'passphrase', passphrase: s.passphrase ?? '' };
  return { kind: 'age', recipients: s.ageRecipients };
}

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

/**
 * A plain export hands every credential to whoever can read the bucket: each plain run is
 * a bulk reveal, audited with how many credentials it held (unknown when the run failed
 * part-way: some plain bytes may have left all the same).
 */
function plainExportEvent(
  run: BreakGlassRun,
  target: StorageTarget,
  counts: { devices: number; accounts: number; privateKeys: number } | null,
): AuditDraft {
  return {
    action: 'account.bulk_reveal',
    outcome: counts ? 'success' : 'failure',
    targetType: 'breakglass_run',
    targetId: run.id,
    details: {
      via: 'breakglass plain export (encryption none)',
      target: target.location,
      credentials: counts ? counts.accounts + counts.privateKeys : null,
      accounts: counts?.accounts ?? null,
      privateKeys: counts?.privateKeys ?? null,
      devices: counts?.devices ?? null,
    },
  };
}

/**
 * Break glass on the server: settings (stored or mounted), the Test button, runs with
 * history, retries and alerts, the daily schedule with catch-up, and the staleness alarm.
 * One run at a time across every replica (a lease in the shared database).
 */
export class BreakGlassService {
  readonly store: BreakGlassStore;
  readonly runs: BreakGlassRuns;
  private readonly leases: Leases;
  private readonly holder = `${hostname()}/${process.pid}/${randomUUID()}`;
  private mounted: { settings?: BreakGlassSettings; error?: string; fingerprint?: string } = {};
  private cron: Cron | undefined;
  private timers: NodeJS.Timeout[] = [];
  private watcher: FSWatcher | undefined;
  private active: Promise<unknown> | undefined;
  /** Whether a run of this process holds the lease. */
  private running = false;
  private recovering: Promise<unknown> | undefined;
  private lastStaleAlert = 0;
  /** The runs of this process: sealed bytes staged so far, and bytes sent to the storage so far. */
  readonly progress = new Map<string, { staged: number; uploaded: number }>();
  readonly restrictions: BreakGlassRestrictions;

  constructor(private readonly o: BreakGlassOptions) {
    this.restrictions = o.restrictions ?? { allowPlaintext: false, allowLinkLocal: false };
    this.store = new BreakGlassStore(o.settings, o.vault);
    this.runs = new BreakGlassRuns(o.db);
    this.leases = new Leases(o.db);
    holdersHere.add(this.holder);
    if (o.mountedConfig) this.reloadMounted();
  }

  /** Takes the run lease: free, lapsed, or left by a dead process of this machine. */
  private async acquireLease(): Promise<boolean> {
    if (await this.leases.acquire(LEASE, this.holder, LEASE_MS)) return true;
    const other = await this.leases.holderOf(LEASE);
    if (other === undefined || !isDeadLocalHolder(other)) return false;
    if (!(await this.leases.takeOver(LEASE, other, this.holder, LEASE_MS))) return false;
    this.o.logger.warn({ holder: other }, 'took over the break-glass run lease left by a server process that is gone');
    return true;
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
    this.reschedule();
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
    await this.o.audit(actor, {
      action: 'breakglass.test',
      outcome: report.ok ? 'success' : 'failure',
      details: {
        target: target.location,
        stages: report.stages.map((s) => ({ stage: s.stage, ok: s.ok })),
        privilegeWarnings: report.privilegeWarnings.length,
        warnings: report.warnings,
      },
    });
    return report;
  }

  /**
   * Starts a run in the background and returns its history row. Refuses when a run is
   * already going on anywhere.
   */
  async start(trigger: BreakGlassRun['trigger'], actor: Parameters<Services['audit']>[0]): Promise<BreakGlassRun> {
    const settings = await this.runnable();
    if (!(await this.acquireLease())) {
      throw new ConflictError('A break-glass run is already in progress (on this or another server). Wait for it to finish.');
    }
    let run: BreakGlassRun | undefined;
    try {
      // With the lease held nothing else runs: a run still "running" was left by a server that stopped.
      const interrupted = await this.claimInterrupted(settings);
      run = await this.launch(trigger, actor, settings);
      for (const i of interrupted) await this.reportInterrupted(i, run, `Run ${run.id} (${trigger}) was started after it.`, settings);
      return run;
    } finally {
      if (!run) await this.leases.release(LEASE, this.holder).catch(() => undefined);
    }
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

  /** Starts a run with the lease held; the run releases it when it ends. */
  private async launch(
    trigger: BreakGlassRun['trigger'],
    actor: Parameters<Services['audit']>[0],
    settings: BreakGlassSettings,
    redoes?: string,
  ): Promise<BreakGlassRun> {
    const target = await targetFor(settings, this.o.timeoutSeconds, this.restrictions);
    const run = await this.o.withAudit(actor, async (tx, audit) => {
      const started = await tx.breakGlassRuns.start(trigger, target.location);
      audit({
        action: 'breakglass.run_start',
        outcome: 'success',
        targetType: 'breakglass_run',
        targetId: started.id,
        details: { trigger, target: target.location, ...(redoes ? { redoes } : {}) },
      });
      return started;
    });
    this.running = true;
    const renew = setInterval(() => void this.leases.renew(LEASE, this.holder, LEASE_MS).catch(() => undefined), LEASE_MS / 5);
    const work = this.attempt(run, settings, target, actor).finally(async () => {
      clearInterval(renew);
      this.progress.delete(run.id);
      this.running = false;
      await this.leases.release(LEASE, this.holder).catch(() => undefined);
    });
    this.active = work.catch(() => undefined);
    return run;
  }

  /**
   * With the lease held: closes each run a stopped server left unfinished as interrupted,
   * with what the bucket holds, read back and checked (the manifest against the
   * workbook). The claim is atomic, so of several servers only one reports a run.
   */
  private async claimInterrupted(settings: BreakGlassSettings | undefined): Promise<Interrupted[]> {
    const unfinished = await this.runs.unfinished();
    if (unfinished.length === 0) return [];
    const bucket = await this.bucketNow(settings, unfinished[0]?.startedAt ?? '');
    const claimed: Interrupted[] = [];
    for (const run of unfinished) {
      const moved = run.target !== null && bucket.location !== null && run.target !== bucket.location;
      const sentence = moved ? bucket.elsewhere(run.target ?? '') : bucket.sentence;
      const error = `The server stopped during this run (found unfinished at ${new Date().toISOString()}). ${sentence}`;
      if (!(await this.runs.claimInterrupted(run.id, error))) continue;
      this.o.logger.warn(
        { run: run.id, bucket: bucket.check?.state ?? null },
        'closed a break-glass run left unfinished by a stopped server',
      );
      claimed.push({ run: { ...run, result: 'failure', error, errorStage: INTERRUPTED_STAGE }, bucket: bucket.check });
    }
    return claimed;
  }

  /** What the bucket of the current settings holds, as a sentence for the runs that were cut off. */
  private async bucketNow(
    settings: BreakGlassSettings | undefined,
    runStartedAt: string,
  ): Promise<{ location: string | null; check: BucketCheck | null; sentence: string; elsewhere: (where: string) => string }> {
    const elsewhere = (where: string) =>
      `What ${where} holds was not checked: the settings now point ${settings ? 'elsewhere' : 'nowhere'}.`;
    if (!settings)
      return { location: null, check: null, sentence: 'What the bucket holds was not checked: break glass is not configured.', elsewhere };
    const names = exportNames(settings.prefix, sealingFor(settings).kind === 'none' ? 'none' : 'age');
    try {
      const target = await targetFor(settings, this.o.timeoutSeconds, this.restrictions);
      const check = await checkBucket(target, names, (await this.store.signingKey()).publicKeyPem, runStartedAt);
      return { location: target.location, check, sentence: describeBucket(check, names), elsewhere };
    } catch (error) {
      const check: BucketCheck = { state: 'unchecked', reason: (error as Error).message.replace(/\.$/, '') };
      return { location: null, check, sentence: describeBucket(check, names), elsewhere };
    }
  }

  /** The audit event and the alert for a run a stopped server left unfinished, saying what follows it. */
  private async reportInterrupted(
    i: Interrupted,
    next: BreakGlassRun | undefined,
    nextSentence: string,
    settings: BreakGlassSettings | undefined,
  ): Promise<void> {
    await this.o.audit(null, {
      action: 'breakglass.run',
      actorName: 'system',
      outcome: 'failure',
      targetType: 'breakglass_run',
      targetId: i.run.id,
      details: {
        interrupted: true,
        trigger: i.run.trigger,
        startedAt: i.run.startedAt,
        attempts: i.run.attempts,
        stage: INTERRUPTED_STAGE,
        error: i.run.error,
        bucket: i.bucket?.state ?? null,
        redoneBy: next?.id ?? null,
      },
    });
    await this.alert(
      'breakglass.run_interrupted',
      `Break-glass run ${i.run.id} (${i.run.trigger}, started ${i.run.startedAt}) was cut off: ${i.run.error ?? ''} ${nextSentence}`,
      i.run,
      settings,
    );
  }

  /**
   * Finds runs a stopped server left unfinished, reports each (audit event and alert),
   * and runs the export again at once — unless the last MAX_INTERRUPTED runs were all cut
   * off, when running it again would likely stop the server once more. At start, and every
   * minute (a replica on another machine can only take over once the dead one's lease lapses).
   */
  async recoverInterrupted(): Promise<BreakGlassRun | undefined> {
    if (this.running || (await this.runs.unfinished()).length === 0) return undefined;
    if (!(await this.acquireLease())) return undefined;
    let redo: BreakGlassRun | undefined;
    try {
      const { settings, error } = await this.current();
      const interrupted = await this.claimInterrupted(settings);
      const last = interrupted.at(-1);
      if (!last) return undefined;
      const inARow = await this.runs.interruptedInARow(MAX_INTERRUPTED);
      let nextSentence: string;
      if (!settings || error !== undefined) {
        nextSentence = `It is not run again: ${error ?? 'break glass is not configured'}.`;
      } else if (inARow >= MAX_INTERRUPTED) {
        nextSentence = `It is not run again automatically: the last ${inARow} runs were all cut off by the server stopping. Find out why (the service manager's log, a memory limit), then run it by hand.`;
      } else {
        redo = await this.launch('catch-up', null, settings, last.run.id);
        nextSentence = `It is being run again now (run ${redo.id}).`;
      }
      for (const i of interrupted) await this.reportInterrupted(i, redo, nextSentence, settings);
      return redo;
    } finally {
      if (!redo) await this.leases.release(LEASE, this.holder).catch(() => undefined);
    }
  }

  /** Starts a run and waits for it to finish. */
  async runAndWait(trigger: BreakGlassRun['trigger'], actor: Parameters<Services['audit']>[0]): Promise<BreakGlassRun> {
    const run = await this.start(trigger, actor);
    await this.active;
    return this.runs.get(run.id);
  }

  private async attempt(
    run: BreakGlassRun,
    settings: BreakGlassSettings,
    target: StorageTarget,
    actor: Parameters<Services['audit']>[0],
  ): Promise<void> {
    const names = exportNames(settings.prefix, sealingFor(settings).kind === 'none' ? 'none' : 'age');
    const signing = await this.store.signingKey();
    const delays = this.o.retryDelaysMs;
    /** What failed attempts wrote (the new workbook when only its manifest failed): recorded, not guessed. */
    let wrote: Pick<BreakGlassRun, 'objects' | 'bytes' | 'sha256' | 'counts'> | undefined;
    for (let attempt = 1; ; attempt += 1) {
      await this.runs.update(run.id, { attempts: attempt });
      try {
        if (settings.encryption === 'none') {
          this.o.logger.warn({ run: run.id }, 'break-glass encryption is OFF: the export holds every credential in plain text');
        }
        const result = await exportBreakGlass({
          source: inventorySource(this.o.inventory),
          sealing: sealingFor(settings),
          target,
          names,
          signingKeyPem: signing.privateKeyPem,
          auditCheckpoint: await this.o.auditCheckpoint?.(),
          onProgress: (bytes) => this.progress.set(run.id, { staged: bytes, uploaded: 0 }),
          onUpload: (bytes) => this.progress.set(run.id, { staged: this.progress.get(run.id)?.staged ?? bytes, uploaded: bytes }),
          stagingDir: this.o.stagingDir,
        });
        // The row says success only together with its audit events: whoever sees it finished finds them.
        await this.o.withAudit(actor, async (tx, audit) => {
          await tx.breakGlassRuns.update(run.id, {
            result: 'success',
            finishedAt: new Date().toISOString(),
            counts: result.counts,
            bytes: result.bytes,
            sha256: result.sha256,
            objects: names,
            error: null,
            errorStage: null,
          });
          audit({
            action: 'breakglass.run',
            outcome: 'success',
            targetType: 'breakglass_run',
            targetId: run.id,
            details: { attempts: attempt, bytes: result.bytes, sha256: result.sha256, ...result.counts, objects: names },
          });
          if (settings.encryption === 'none') audit(plainExportEvent(run, target, result.counts));
        });
        return;
      } catch (error) {
        const stage = error instanceof TargetError ? error.stage : null;
        const message =
          error instanceof TargetError || error instanceof GatehouseError
            ? error.message
            : `The export failed: ${(error as Error).message}`;
        const partial = partialExport(error);
        if (partial) wrote = { objects: partial.objects, bytes: partial.bytes, sha256: partial.sha256, counts: partial.counts };
        const delay = delays[attempt - 1];
        if (delay !== undefined) {
          this.o.logger.warn({ run: run.id, attempt, stage, problem: message, retryInMs: delay }, 'break-glass run failed; retrying');
          await this.runs.update(run.id, { error: message, errorStage: stage, ...wrote });
          await new Promise((resolve) => setTimeout(resolve, delay));
          continue;
        }
        // Alert first, then close the row: whoever watches the run sees it end after the alert went out.
        const failed = { ...run, attempts: attempt, error: message, errorStage: stage };
        await this.alert(
          'breakglass.run_failed',
          `Break-glass run ${run.id} failed after ${attempt} attempt(s): ${message} ${
            wrote
              ? `The new workbook ${wrote.objects.data ?? ''} was written (${wrote.bytes ?? 0} bytes, SHA-256 ${wrote.sha256 ?? ''}) but not its manifest: the manifest in the bucket is the previous one, so the reader reports a mismatch until a run succeeds.`
              : 'The previous export was left as it was.'
          }`,
          failed,
          settings,
        );
        await this.o.withAudit(actor, async (tx, audit) => {
          await tx.breakGlassRuns.update(run.id, {
            result: 'failure',
            finishedAt: new Date().toISOString(),
            error: message,
            errorStage: stage,
            ...wrote,
          });
          audit({
            action: 'breakglass.run',
            outcome: 'failure',
            targetType: 'breakglass_run',
            targetId: run.id,
            details: { attempts: attempt, stage, error: message, ...(wrote ? { objects: wrote.objects, sha256: wrote.sha256 } : {}) },
          });
          if (settings.encryption === 'none') audit(plainExportEvent(run, target, null));
        });
        return;
      }
    }
  }

  /** An alert: an error log line, an audit event, and the webhook when one is set. */
  async alert(event: string, message: string, run: BreakGlassRun | undefined, settings: BreakGlassSettings | undefined): Promise<void> {
    this.o.logger.error({ alert: event, run: run?.id }, message);
    let delivered: boolean | null = null;
    if (settings?.alertWebhookUrl) {
      const payload = {
        event,
        message,
        at: new Date().toISOString(),
        run: run ? { id: run.id, startedAt: run.startedAt, error: run.error, stage: run.errorStage } : null,
      };
      const outcome = await postWebhook(settings.alertWebhookUrl, payload, this.restrictions);
      delivered = outcome.delivered;
      if (!outcome.delivered) this.o.logger.error({ alert: event, problem: outcome.problem }, 'the alert webhook did not take the alert');
    }
    await this.o.audit(null, {
      action: 'breakglass.alert',
      actorName: 'system',
      outcome: 'failure',
      details: { event, run: run?.id ?? null, webhookDelivered: delivered },
    });
  }

  /** Fires the staleness alarm when the newest successful export is older than staleHours. */
  async checkStaleness(now = new Date()): Promise<boolean> {
    const { settings } = await this.current();
    if (!settings) return false;
    const last = await this.runs.lastSuccess();
    const age = last ? now.getTime() - Date.parse(last.startedAt) : Number.POSITIVE_INFINITY;
    const first = await this.runs.last();
    // A fresh installation gets a day to make its first export before it is stale.
    const since = last ? age : first ? now.getTime() - Date.parse(first.startedAt) : 0;
    if (since <= this.o.staleHours * 3_600_000) return false;
    if (now.getTime() - this.lastStaleAlert < 6 * 3_600_000) return true;
    this.lastStaleAlert = now.getTime();
    await this.alert(
      'breakglass.stale',
      last
        ? `The newest break-glass export is from ${last.startedAt}, older than ${this.o.staleHours} hours. Check the run history and the storage settings.`
        : `No break-glass export has succeeded yet, and the first run was more than ${this.o.staleHours} hours ago. Check the run history and the storage settings.`,
      last,
      settings,
    );
    return true;
  }

  /** Schedules the daily run, catches up a run missed while the server was down, and watches the mounted secret. */
  async startBackground(): Promise<void> {
    await mkdir(this.o.stagingDir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.o.stagingDir)) {
      if (name.startsWith('gatehouse-breakglass-')) await rm(path.join(this.o.stagingDir, name), { recursive: true, force: true });
    }
    if (this.o.mountedConfig) {
      try {
        this.watcher = watch(this.o.mountedConfig, () => this.reloadMounted());
      } catch {
        // Polling below still notices changes.
      }
      const poll = setInterval(() => this.reloadMounted(), 5000);
      poll.unref();
      this.timers.push(poll);
    }
    this.reschedule();
    const stale = setInterval(
      () => void this.checkStaleness().catch((e: unknown) => this.o.logger.error({ err: e }, 'staleness check failed')),
      3_600_000,
    );
    stale.unref();
    this.timers.push(stale);
    const recover = () =>
      this.recoverInterrupted().catch((e: unknown) => {
        this.o.logger.error({ err: e }, 'could not recover the break-glass runs left unfinished by a stopped server');
        return undefined;
      });
    const poll = setInterval(() => void recover(), RECOVER_EVERY_MS);
    poll.unref();
    this.timers.push(poll);
    // In the background: reading the bucket back must not hold up the server's start.
    this.recovering = recover().then(() => this.catchUp());
  }

  /** After the stored settings changed. */
  reloadSchedule(): void {
    this.reschedule();
  }

  private reschedule(): void {
    this.cron?.stop();
    this.cron = undefined;
    void this.current().then(({ settings }) => {
      if (!settings) return;
      const [h, m] = settings.executeTime.split(':');
      this.cron = new Cron(`${Number(m)} ${Number(h)} * * *`, { timezone: settings.timeZone, protect: true }, () => {
        void this.start('schedule', null).catch((e: unknown) =>
          this.o.logger.warn({ problem: (e as Error).message }, 'scheduled break-glass run not started'),
        );
      });
    });
  }

  /** A run missed while the server was down runs now. */
  async catchUp(now = new Date()): Promise<BreakGlassRun | undefined> {
    const { settings } = await this.current();
    if (!settings) return undefined;
    const slot = lastScheduledSlot(settings.executeTime, settings.timeZone, now);
    const last = await this.runs.last();
    if (!slot || (last && Date.parse(last.startedAt) >= slot.getTime())) return undefined;
    this.o.logger.info({ slot: slot.toISOString() }, 'running the break-glass export missed while the server was down');
    return this.start('catch-up', null).catch((e: unknown) => {
      this.o.logger.warn({ problem: (e as Error).message }, 'catch-up break-glass run not started');
      return undefined;
    });
  }

  async stop(): Promise<void> {
    holdersHere.delete(this.holder);
    this.cron?.stop();
    this.watcher?.close();
    for (const t of this.timers) clearInterval(t);
    await this.recovering;
    await this.active;
  }

  /** The scheduled time of the next run, if any. */
  nextRun(): Date | null {
    return this.cron?.nextRun() ?? null;
  }
}
