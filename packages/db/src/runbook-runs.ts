import { randomUUID } from 'node:crypto';
import { ConflictError, NotFoundError } from '@gatehouse/core';
import type { ItemVerdict, StepResult } from '@gatehouse/core/runbooks';
import { inTransaction, type Tx } from './connect.js';
import { isUniqueViolation } from './errors.js';
import type { RunbookRunDeviceTable, RunbookRunTable } from './schema.js';

export type RunKind = 'runbook' | 'breakglass-rotation';
export type ItemState = 'queued' | 'running' | 'done';

export interface RunCounts {
  total: number;
  done: number;
  success: number;
  failed: number;
  unverified: number;
  skipped: number;
}

/** One account of a rotation item. */
export interface RotatedAccount {
  accountId: string;
  username: string;
  result: 'rotated' | 'failed' | 'skipped' | 'would-rotate';
  reason: string | null;
  /** After the attempt: does the credential as it was in the export still log in? null: not checked. */
  fileCredentialWorks: boolean | null;
}

export interface RunbookRun {
  id: string;
  kind: RunKind;
  runbook: { name: string; version: number; sha256: string };
  apply: boolean;
  inputs: Record<string, string | number | boolean>;
  privilegedAccount: string;
  concurrency: number;
  user: { id: string; username: string };
  breakglassRunId: string | null;
  state: 'running' | 'finished';
  startedAt: string;
  finishedAt: string | null;
  counts: RunCounts;
}

export interface RunbookRunItem {
  runId: string;
  deviceId: string;
  deviceName: string;
  projectName: string;
  seq: number;
  state: ItemState;
  verdict: ItemVerdict | null;
  error: string | null;
  steps: StepResult[];
  accounts: RotatedAccount[];
  startedAt: string | null;
  finishedAt: string | null;
}

export interface RunCreate {
  kind: RunKind;
  runbook: { name: string; version: number; sha256: string };
  apply: boolean;
  inputs: Record<string, string | number | boolean>;
  privilegedAccount: string;
  concurrency: number;
  user: { id: string; username: string };
  breakglassRunId?: string | null;
  /** In the order they run; each device once. */
  devices: readonly { deviceId: string; deviceName: string; projectName: string }[];
}

/** What an item's update writes; `state: 'done'` releases the device's lock. */
export interface ItemUpdate {
  state?: ItemState;
  verdict?: ItemVerdict | null;
  error?: string | null;
  steps?: StepResult[];
  accounts?: RotatedAccount[];
  startedAt?: string | null;
  finishedAt?: string | null;
}

export interface RunQuery {
  /** Only runs that included this device. */
  deviceId?: string;
  limit?: number;
  offset?: number;
}

/** What an item still queued or running when the server stopped is ended with. */
export const INTERRUPTED_ERROR = 'interrupted by a server stop';

const ACTIVE: ItemState[] = ['queued', 'running'];
/** Item rows per INSERT: 14 columns x 100 stays far under both databases' parameter limits. */
const INSERT_ROWS = 100;

const emptyCounts = (total: number): RunCounts => ({ total, done: 0, success: 0, failed: 0, unverified: 0, skipped: 0 });

const runFromRow = (r: RunbookRunTable): RunbookRun => ({
  id: r.id,
  kind: r.kind as RunKind,
  runbook: { name: r.runbook_name, version: r.runbook_version, sha256: r.runbook_sha256 },
  apply: r.apply === 1,
  inputs: JSON.parse(r.inputs) as RunbookRun['inputs'],
  privilegedAccount: r.privileged_account,
  concurrency: r.concurrency,
  user: { id: r.user_id, username: r.username },
  breakglassRunId: r.breakglass_run_id,
  state: r.state as RunbookRun['state'],
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  counts: JSON.parse(r.counts) as RunCounts,
});

const itemFromRow = (r: RunbookRunDeviceTable): RunbookRunItem => ({
  runId: r.run_id,
  deviceId: r.device_id,
  deviceName: r.device_name,
  projectName: r.project_name,
  seq: r.seq,
  state: r.state as ItemState,
  verdict: r.verdict as ItemVerdict | null,
  error: r.error,
  steps: JSON.parse(r.steps) as StepResult[],
  accounts: JSON.parse(r.accounts) as RotatedAccount[],
  startedAt: r.started_at,
  finishedAt: r.finished_at,
});

/**
 * Runs of runbooks (and rotations after a break-glass export), one item per device. An
 * item queued or running holds its device's lock (`lock_device_id`, unique), so two runs
 * never work on one device at once, across server replicas too.
 */
export class RunbookRuns {
  constructor(private readonly x: Tx) {}

  /**
   * Creates a run and its items in one transaction. A device whose item in another run is
   * queued or running makes it fail with CONFLICT naming the device and that run; then
   * nothing is created.
   */
  async create(input: RunCreate): Promise<RunbookRun & { items: RunbookRunItem[] }> {
    const now = new Date().toISOString();
    const run: RunbookRunTable = {
      id: randomUUID(),
      kind: input.kind,
      runbook_name: input.runbook.name,
      runbook_version: input.runbook.version,
      runbook_sha256: input.runbook.sha256,
      apply: input.apply ? 1 : 0,
      inputs: JSON.stringify(input.inputs),
      privileged_account: input.privilegedAccount,
      concurrency: input.concurrency,
      user_id: input.user.id,
      username: input.user.username,
      breakglass_run_id: input.breakglassRunId ?? null,
      state: 'running',
      started_at: now,
      finished_at: null,
      counts: JSON.stringify(emptyCounts(input.devices.length)),
    };
    const items: RunbookRunDeviceTable[] = input.devices.map((d, seq) => ({
      run_id: run.id,
      device_id: d.deviceId,
      device_name: d.deviceName,
      project_name: d.projectName,
      seq,
      state: 'queued',
      verdict: null,
      error: null,
      steps: '[]',
      accounts: '[]',
      started_at: null,
      finished_at: null,
      lock_device_id: d.deviceId,
    }));
    const deviceIds = input.devices.map((d) => d.deviceId);
    try {
      await inTransaction(this.x, async (trx) => {
        // The usual case, with a clear message before any write; the unique index settles races.
        const held = await this.holder(trx, deviceIds);
        if (held) throw busy(held);
        await trx.insertInto('runbook_runs').values(run).execute();
        for (let i = 0; i < items.length; i += INSERT_ROWS) {
          await trx
            .insertInto('runbook_run_devices')
            .values(items.slice(i, i + INSERT_ROWS))
            .execute();
        }
      });
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      // Another run took a device between the check and the insert. Inside a caller's
      // transaction PostgreSQL allows no further query, so only then is the holder unnamed.
      const held = this.x.isTransaction ? undefined : await this.holder(this.x, deviceIds);
      throw busy(held);
    }
    return { ...runFromRow(run), items: items.map(itemFromRow) };
  }

  /** The first of these devices that an unfinished item holds, with the run holding it. */
  private async holder(x: Tx, deviceIds: readonly string[]): Promise<{ deviceName: string; runId: string; runbook: string } | undefined> {
    for (let i = 0; i < deviceIds.length; i += 1000) {
      const row = await x
        .selectFrom('runbook_run_devices as i')
        .innerJoin('runbook_runs as r', 'r.id', 'i.run_id')
        .select(['i.device_name', 'i.run_id', 'r.runbook_name'])
        .where('i.lock_device_id', 'in', deviceIds.slice(i, i + 1000))
        .orderBy('i.device_name')
        .limit(1)
        .executeTakeFirst();
      if (row) return { deviceName: row.device_name, runId: row.run_id, runbook: row.runbook_name };
    }
    return undefined;
  }

  /** Which of these devices an unfinished item of some run holds now (the device lock). */
  async lockedDevices(deviceIds: readonly string[]): Promise<Set<string>> {
    const locked = new Set<string>();
    for (let i = 0; i < deviceIds.length; i += 1000) {
      const rows = await this.x
        .selectFrom('runbook_run_devices')
        .select('lock_device_id')
        .where('lock_device_id', 'in', deviceIds.slice(i, i + 1000))
        .execute();
      for (const r of rows) if (r.lock_device_id !== null) locked.add(r.lock_device_id);
    }
    return locked;
  }

  /** Writes what is given of one item; `state: 'done'` releases the device and counts it in the run. */
  async updateItem(runId: string, deviceId: string, set: ItemUpdate): Promise<RunbookRunItem> {
    const row: Partial<RunbookRunDeviceTable> = {};
    if (set.state !== undefined) row.state = set.state;
    if (set.verdict !== undefined) row.verdict = set.verdict;
    if (set.error !== undefined) row.error = set.error;
    if (set.steps !== undefined) row.steps = JSON.stringify(set.steps);
    if (set.accounts !== undefined) row.accounts = JSON.stringify(set.accounts);
    if (set.startedAt !== undefined) row.started_at = set.startedAt;
    if (set.finishedAt !== undefined) row.finished_at = set.finishedAt;
    if (set.state === 'done') row.lock_device_id = null;
    return inTransaction(this.x, async (trx) => {
      const r = await trx
        .updateTable('runbook_run_devices')
        .set(row)
        .where('run_id', '=', runId)
        .where('device_id', '=', deviceId)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) throw new NotFoundError('Runbook run item', `${runId}/${deviceId}`);
      if (set.state === 'done') await writeCounts(trx, runId);
      const item = await trx
        .selectFrom('runbook_run_devices')
        .selectAll()
        .where('run_id', '=', runId)
        .where('device_id', '=', deviceId)
        .executeTakeFirstOrThrow();
      return itemFromRow(item);
    });
  }

  /** Ends a run: state finished, its counts from its items. */
  async finish(runId: string): Promise<RunbookRun> {
    await inTransaction(this.x, async (trx) => {
      const r = await trx
        .updateTable('runbook_runs')
        .set({ state: 'finished', finished_at: new Date().toISOString() })
        .where('id', '=', runId)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) throw new NotFoundError('Runbook run', runId);
      await writeCounts(trx, runId);
    });
    return this.get(runId);
  }

  async get(runId: string): Promise<RunbookRun> {
    const row = await this.x.selectFrom('runbook_runs').selectAll().where('id', '=', runId).executeTakeFirst();
    if (!row) throw new NotFoundError('Runbook run', runId);
    return runFromRow(row);
  }

  /** A run with its items in run order. */
  async getWithItems(runId: string): Promise<RunbookRun & { items: RunbookRunItem[] }> {
    const run = await this.get(runId);
    const rows = await this.x.selectFrom('runbook_run_devices').selectAll().where('run_id', '=', runId).orderBy('seq').execute();
    return { ...run, items: rows.map(itemFromRow) };
  }

  /** Runs, newest first, a page at a time, with how many there are in all. */
  async list(query: RunQuery = {}): Promise<{ runs: RunbookRun[]; total: number }> {
    let base = this.x.selectFrom('runbook_runs');
    if (query.deviceId !== undefined) {
      const deviceId = query.deviceId;
      base = base.where((eb) =>
        eb.exists(
          eb
            .selectFrom('runbook_run_devices as i')
            .select('i.run_id')
            .whereRef('i.run_id', '=', 'runbook_runs.id')
            .where('i.device_id', '=', deviceId),
        ),
      );
    }
    const rows = await base
      .selectAll()
      .orderBy('started_at', 'desc')
      .orderBy('id', 'desc')
      .limit(query.limit ?? 50)
      .offset(query.offset ?? 0)
      .execute();
    const total = await base.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow();
    return { runs: rows.map(runFromRow), total: Number(total.n) };
  }

  /**
   * At server start: items a stopped server left queued or running are ended with
   * "interrupted by a server stop" and their devices released — CHANGED-BUT-UNVERIFIED when
   * an applying run had started them (something may have changed), FAILED otherwise — and
   * their runs finished. Answers how many items it ended.
   */
  async interruptActive(): Promise<number> {
    return inTransaction(this.x, async (trx) => {
      const now = new Date().toISOString();
      const active = await trx.selectFrom('runbook_run_devices').select('run_id').distinct().where('state', 'in', ACTIVE).execute();
      const ended = { state: 'done', error: INTERRUPTED_ERROR, finished_at: now, lock_device_id: null };
      const unverified = await trx
        .updateTable('runbook_run_devices')
        .set({ ...ended, verdict: 'CHANGED-BUT-UNVERIFIED' })
        .where('state', 'in', ACTIVE)
        .where('started_at', 'is not', null)
        .where('run_id', 'in', (eb) => eb.selectFrom('runbook_runs').select('id').where('apply', '=', 1))
        .executeTakeFirst();
      const failed = await trx
        .updateTable('runbook_run_devices')
        .set({ ...ended, verdict: 'FAILED' })
        .where('state', 'in', ACTIVE)
        .executeTakeFirst();
      const runs = await trx.selectFrom('runbook_runs').select('id').where('state', '=', 'running').execute();
      for (const runId of new Set([...active.map((r) => r.run_id), ...runs.map((r) => r.id)])) {
        await trx
          .updateTable('runbook_runs')
          .set({ state: 'finished', finished_at: now })
          .where('id', '=', runId)
          .where('state', '=', 'running')
          .execute();
        await writeCounts(trx, runId);
      }
      return Number(unverified.numUpdatedRows) + Number(failed.numUpdatedRows);
    });
  }
}

/** A run's counts, from its items. */
async function writeCounts(x: Tx, runId: string): Promise<RunCounts> {
  const rows = await x
    .selectFrom('runbook_run_devices')
    .select(['state', 'verdict', (eb) => eb.fn.countAll<number | string>().as('n')])
    .where('run_id', '=', runId)
    .groupBy(['state', 'verdict'])
    .execute();
  const counts = emptyCounts(0);
  for (const r of rows) {
    const n = Number(r.n);
    counts.total += n;
    if (r.state !== 'done') continue;
    counts.done += n;
    if (r.verdict === 'SUCCESS') counts.success += n;
    else if (r.verdict === 'FAILED') counts.failed += n;
    else if (r.verdict === 'CHANGED-BUT-UNVERIFIED') counts.unverified += n;
    else if (r.verdict === 'SKIPPED') counts.skipped += n;
  }
  await x
    .updateTable('runbook_runs')
    .set({ counts: JSON.stringify(counts) })
    .where('id', '=', runId)
    .execute();
  return counts;
}

function busy(held: { deviceName: string; runId: string; runbook: string } | undefined): ConflictError {
  const message = held
    ? `Device ${held.deviceName} is busy: run ${held.runId} (${held.runbook}) is working on it. Wait until that run finishes, or leave the device out.`
    : 'A device of this run is busy: another run took it just now. Wait until that run finishes, or leave the device out.';
  return new ConflictError(message, [{ path: 'deviceIds', message: 'includes a device another run is working on' }]);
}
