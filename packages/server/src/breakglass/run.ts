import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  exportBreakGlass,
  exportNames,
  inventorySource,
  partialExport,
  TargetError,
  type BreakGlassSettings,
  type Sealing,
  type AddressPolicy,
  type StorageTarget,
} from '@gatehouse/breakglass';
import { ConflictError, GatehouseError, type AuditCheckpoint } from '@gatehouse/core';
import { INTERRUPTED_STAGE, type BreakGlassRun, type BreakGlassRuns, type Inventory, type Leases } from '@gatehouse/db';
import type { Logger } from '../logger.js';
import type { AuditDraft, Services, TxRepositories } from '../services.js';

import type { Alert } from './alerts.js';
import { checkBucket, describeBucket, type BucketCheck } from './bucket-check.js';
import type { BreakGlassRestrictions } from './restrictions.js';
import type { BreakGlassStore } from './store.js';

const LEASE = 'breakglass';
const LEASE_MS = 5 * 60_000;
/** Runs cut off in a row after which an interrupted run is no longer redone by itself. */
const MAX_INTERRUPTED = 3;

/** A run a stopped server left unfinished, and what its bucket was found to hold. */
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

type S3Fields =
  'credentials' | 'accessKeyId' | 'secretAccessKey' | 'bucket' | 'protocol' | 'url' | 'region' | 'pathStyle' | 'acl' | 'caBundle';
type BlobFields = 'accountName' | 'accountKey' | 'sasToken' | 'container' | 'protocol' | 'endpointSuffix' | 'blobEndpoint' | 'caBundle';
/** What a target is made from: the connection fields of break glass's settings (the recordings' store has the same). */
export type TargetSettings =
  | ({ provider: 's3' } & Pick<Extract<BreakGlassSettings, { provider: 's3' }>, S3Fields>)
  | ({ provider: 'blob' } & Pick<Extract<BreakGlassSettings, { provider: 'blob' }>, BlobFields>);

/** The storage target of the settings; each cloud SDK is loaded only when its target is used. */
export async function targetFor(s: TargetSettings, timeoutSeconds?: number, addressPolicy?: AddressPolicy): Promise<StorageTarget> {
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

/** A run's history row and its `breakglass.run_start` event, in the caller's transaction. */
async function begin(
  tx: TxRepositories,
  audit: (event: AuditDraft) => void,
  trigger: BreakGlassRun['trigger'],
  target: StorageTarget,
  redoes?: string,
): Promise<BreakGlassRun> {
  const started = await tx.breakGlassRuns.start(trigger, target.location);
  audit({
    action: 'breakglass.run_start',
    outcome: 'success',
    targetType: 'breakglass_run',
    targetId: started.id,
    details: { trigger, target: target.location, ...(redoes ? { redoes } : {}) },
  });
  return started;
}

/** The audit event of a run a stopped server left unfinished, closed now, and the run that follows it. */
function interruptedEvent(i: Interrupted, next: BreakGlassRun | undefined): AuditDraft {
  return {
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
  };
}

export interface RunnerOptions {
  inventory: Inventory;
  logger: Logger;
  /** A run's row and its audit events are written in one transaction. */
  withAudit: Services['withAudit'];
  store: BreakGlassStore;
  runs: BreakGlassRuns;
  leases: Leases;
  restrictions: BreakGlassRestrictions;
  alert: Alert;
  /** The settings now, or why there can be no run. */
  current: () => Promise<{ settings: BreakGlassSettings | undefined; error?: string }>;
  retryDelaysMs: readonly number[];
  timeoutSeconds?: number | undefined;
  stagingDir: string;
  auditCheckpoint?: (() => Promise<AuditCheckpoint | undefined>) | undefined;
}

/**
 * Break-glass runs: the lease that keeps one run at a time across every replica, one run
 * with its retries, its history row and audit events, and the runs a stopped server left
 * unfinished.
 */
export class BreakGlassRunner {
  private readonly holder = `${hostname()}/${process.pid}/${randomUUID()}`;
  private active: Promise<unknown> | undefined;
  /** Whether a run of this process holds the lease. */
  private running = false;
  /** The runs of this process: sealed bytes staged so far, and bytes sent to the storage so far. */
  readonly progress = new Map<string, { staged: number; uploaded: number }>();

  constructor(private readonly o: RunnerOptions) {
    holdersHere.add(this.holder);
  }

  /** Takes the run lease: free, lapsed, or left by a dead process of this machine. */
  private async acquireLease(): Promise<boolean> {
    if (await this.o.leases.acquire(LEASE, this.holder, LEASE_MS)) return true;
    const other = await this.o.leases.holderOf(LEASE);
    if (other === undefined || !isDeadLocalHolder(other)) return false;
    if (!(await this.o.leases.takeOver(LEASE, other, this.holder, LEASE_MS))) return false;
    this.o.logger.warn({ holder: other }, 'took over the break-glass run lease left by a server process that is gone');
    return true;
  }

  /**
   * Starts a run of these settings in the background and returns its history row.
   * Refuses when a run is already going on anywhere.
   */
  async start(
    trigger: BreakGlassRun['trigger'],
    actor: Parameters<Services['audit']>[0],
    settings: BreakGlassSettings,
  ): Promise<BreakGlassRun> {
    if (!(await this.acquireLease())) {
      throw new ConflictError('A break-glass run is already in progress (on this or another server). Wait for it to finish.');
    }
    let run: BreakGlassRun | undefined;
    try {
      // With the lease held nothing else runs: a run still "running" was left by a server that stopped.
      const unfinished = await this.findUnfinished(settings);
      const started = (run = await this.launch(trigger, actor, settings));
      if (unfinished.length > 0) {
        await this.closeInterrupted(unfinished, async () => started)
          .then((closed) => this.alertInterrupted(closed, `Run ${started.id} (${trigger}) was started after it.`, settings))
          // The run goes on: the runs it follows stay unfinished, for the next recovery.
          .catch((error: unknown) => this.o.logger.error({ err: error }, 'could not close the break-glass runs a stopped server left'));
      }
      return run;
    } finally {
      if (!run) await this.o.leases.release(LEASE, this.holder).catch(() => undefined);
    }
  }

  /** Starts a run with the lease held; the run releases it when it ends. */
  private async launch(
    trigger: BreakGlassRun['trigger'],
    actor: Parameters<Services['audit']>[0],
    settings: BreakGlassSettings,
    redoes?: string,
  ): Promise<BreakGlassRun> {
    const target = await targetFor(settings, this.o.timeoutSeconds, this.o.restrictions);
    const run = await this.o.withAudit(actor, (tx, audit) => begin(tx, audit, trigger, target, redoes));
    return this.go(run, settings, target, actor);
  }

  /** Runs the export of a run whose row was written (begin()), with the lease held; the run releases it when it ends. */
  private go(
    run: BreakGlassRun,
    settings: BreakGlassSettings,
    target: StorageTarget,
    actor: Parameters<Services['audit']>[0],
  ): BreakGlassRun {
    this.running = true;
    const renew = setInterval(() => void this.o.leases.renew(LEASE, this.holder, LEASE_MS).catch(() => undefined), LEASE_MS / 5);
    const work = this.attempt(run, settings, target, actor).finally(async () => {
      clearInterval(renew);
      this.progress.delete(run.id);
      this.running = false;
      await this.o.leases.release(LEASE, this.holder).catch(() => undefined);
    });
    this.active = work.catch(() => undefined);
    return run;
  }

  /**
   * With the lease held: each run a stopped server left unfinished, with the error its close
   * will record: what the bucket holds, read back and checked (the manifest against the
   * workbook). Nothing is written yet.
   */
  private async findUnfinished(settings: BreakGlassSettings | undefined): Promise<Interrupted[]> {
    const unfinished = await this.o.runs.unfinished();
    if (unfinished.length === 0) return [];
    const bucket = await this.bucketNow(settings, unfinished[0]?.startedAt ?? '');
    return unfinished.map((run) => {
      const moved = run.target !== null && bucket.location !== null && run.target !== bucket.location;
      const sentence = moved ? bucket.elsewhere(run.target ?? '') : bucket.sentence;
      const error = `The server stopped during this run (found unfinished at ${new Date().toISOString()}). ${sentence}`;
      return { run: { ...run, result: 'failure', error, errorStage: INTERRUPTED_STAGE }, bucket: bucket.check };
    });
  }

  /**
   * Closes the unfinished runs as interrupted, each with its audit event, in one
   * transaction; `next` (in that transaction, after the closes) gives the run that follows
   * them, named in the events. The claim is atomic, so of several servers only one closes
   * and reports a run; the closed ones are returned.
   */
  private async closeInterrupted(
    unfinished: Interrupted[],
    next: (tx: TxRepositories, audit: (event: AuditDraft) => void, closed: Interrupted[]) => Promise<BreakGlassRun | undefined>,
  ): Promise<{ closed: Interrupted[]; next: BreakGlassRun | undefined }> {
    const result = await this.o.withAudit(null, async (tx, audit) => {
      const closed: Interrupted[] = [];
      for (const i of unfinished) if (await tx.breakGlassRuns.claimInterrupted(i.run.id, i.run.error ?? '')) closed.push(i);
      const following = closed.length > 0 ? await next(tx, audit, closed) : undefined;
      for (const i of closed) audit(interruptedEvent(i, following));
      return { closed, next: following };
    });
    for (const i of result.closed) {
      this.o.logger.warn(
        { run: i.run.id, bucket: i.bucket?.state ?? null },
        'closed a break-glass run left unfinished by a stopped server',
      );
    }
    return result;
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
      const target = await targetFor(settings, this.o.timeoutSeconds, this.o.restrictions);
      const check = await checkBucket(target, names, (await this.o.store.signingKey()).publicKeyPem, runStartedAt);
      return { location: target.location, check, sentence: describeBucket(check, names), elsewhere };
    } catch (error) {
      const check: BucketCheck = { state: 'unchecked', reason: (error as Error).message.replace(/\.$/, '') };
      return { location: null, check, sentence: describeBucket(check, names), elsewhere };
    }
  }

  /** The alert for each run a stopped server left unfinished, saying what follows it. */
  private async alertInterrupted(
    { closed }: { closed: Interrupted[] },
    nextSentence: string,
    settings: BreakGlassSettings | undefined,
  ): Promise<void> {
    for (const i of closed) {
      await this.o.alert(
        'breakglass.run_interrupted',
        `Break-glass run ${i.run.id} (${i.run.trigger}, started ${i.run.startedAt}) was cut off: ${i.run.error ?? ''} ${nextSentence}`,
        i.run,
        settings,
      );
    }
  }

  /**
   * Finds runs a stopped server left unfinished, reports each (audit event and alert),
   * and runs the export again at once — unless the last MAX_INTERRUPTED runs were all cut
   * off, when running it again would likely stop the server once more. At start, and every
   * minute (a replica on another machine can only take over once the dead one's lease lapses).
   */
  async recoverInterrupted(): Promise<BreakGlassRun | undefined> {
    if (this.running || (await this.o.runs.unfinished()).length === 0) return undefined;
    if (!(await this.acquireLease())) return undefined;
    let redo: BreakGlassRun | undefined;
    try {
      const { settings, error } = await this.o.current();
      const unfinished = await this.findUnfinished(settings);
      if (unfinished.length === 0) return undefined;
      const target = settings && error === undefined ? await targetFor(settings, this.o.timeoutSeconds, this.o.restrictions) : undefined;
      let nextSentence = '';
      // The closes, their events and the redo's row: one transaction.
      const closed = await this.closeInterrupted(unfinished, async (tx, audit, closed) => {
        const inARow = await tx.breakGlassRuns.interruptedInARow(MAX_INTERRUPTED);
        if (!settings || !target) {
          nextSentence = `It is not run again: ${error ?? 'break glass is not configured'}.`;
        } else if (inARow >= MAX_INTERRUPTED) {
          nextSentence = `It is not run again automatically: the last ${inARow} runs were all cut off by the server stopping. Find out why (the service manager's log, a memory limit), then run it by hand.`;
        } else {
          const started = await begin(tx, audit, 'catch-up', target, closed.at(-1)?.run.id);
          nextSentence = `It is being run again now (run ${started.id}).`;
          return started;
        }
        return undefined;
      });
      if (settings && target && closed.next) redo = this.go(closed.next, settings, target, null);
      await this.alertInterrupted(closed, nextSentence, settings);
      return redo;
    } finally {
      if (!redo) await this.o.leases.release(LEASE, this.holder).catch(() => undefined);
    }
  }

  /** Settles when the run of this process, if any, has ended. */
  async idle(): Promise<void> {
    await this.active;
  }

  /** Removes sealed exports a crash left in the staging directory. */
  async clearStaging(): Promise<void> {
    await mkdir(this.o.stagingDir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.o.stagingDir)) {
      if (name.startsWith('gatehouse-breakglass-')) await rm(path.join(this.o.stagingDir, name), { recursive: true, force: true });
    }
  }

  /** This process stops: its lease holder is no longer one of ours. */
  retire(): void {
    holdersHere.delete(this.holder);
  }

  private async attempt(
    run: BreakGlassRun,
    settings: BreakGlassSettings,
    target: StorageTarget,
    actor: Parameters<Services['audit']>[0],
  ): Promise<void> {
    const names = exportNames(settings.prefix, sealingFor(settings).kind === 'none' ? 'none' : 'age');
    const signing = await this.o.store.signingKey();
    const delays = this.o.retryDelaysMs;
    /** What failed attempts wrote (the new workbook when only its manifest failed): recorded, not guessed. */
    let wrote: Pick<BreakGlassRun, 'objects' | 'bytes' | 'sha256' | 'counts'> | undefined;
    for (let attempt = 1; ; attempt += 1) {
      await this.o.runs.update(run.id, { attempts: attempt });
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
          await this.o.runs.update(run.id, { error: message, errorStage: stage, ...wrote });
          await new Promise((resolve) => setTimeout(resolve, delay));
          continue;
        }
        // Alert first, then close the row: whoever watches the run sees it end after the alert went out.
        const failed = { ...run, attempts: attempt, error: message, errorStage: stage };
        await this.o.alert(
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
}
