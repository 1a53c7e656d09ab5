import { randomUUID } from 'node:crypto';
import type { Db, Tx } from './connect.js';
import type { BreakGlassLastTestTable, BreakGlassRunTable } from './schema.js';

/** The error stage of a run the server stopped in the middle of (kill -9, OOM, power loss). */
export const INTERRUPTED_STAGE = 'interrupted';

export interface BreakGlassRun {
  id: string;
  trigger: 'schedule' | 'manual' | 'catch-up';
  startedAt: string;
  finishedAt: string | null;
  result: 'running' | 'success' | 'failure';
  attempts: number;
  target: string | null;
  objects: { data?: string; manifest?: string };
  counts: { projects?: number; devices?: number; accounts?: number; privateKeys?: number };
  bytes: number | null;
  sha256: string | null;
  error: string | null;
  errorStage: string | null;
}

const present = (r: BreakGlassRunTable): BreakGlassRun => ({
  id: r.id,
  trigger: r.trigger as BreakGlassRun['trigger'],
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  result: r.result as BreakGlassRun['result'],
  attempts: r.attempts,
  target: r.target,
  objects: JSON.parse(r.objects) as BreakGlassRun['objects'],
  counts: JSON.parse(r.counts) as BreakGlassRun['counts'],
  bytes: r.bytes === null ? null : Number(r.bytes),
  sha256: r.sha256,
  error: r.error,
  errorStage: r.error_stage,
});

/** A break-glass Test as kept for every administrator: when, who, where, and each stage's outcome (no secret). */
export interface BreakGlassTestRecord {
  at: string;
  /** The user name of who ran it; null for the server itself. */
  by: string | null;
  /** Where it tested (bucket or container, endpoint): no secret in it. */
  target: string;
  ok: boolean;
  stages: { stage: 'container' | 'authentication' | 'connection'; ok: boolean | null; message: string }[];
  privilegeWarnings: string[];
  warnings: string[];
}

const presentTest = (r: BreakGlassLastTestTable): BreakGlassTestRecord => {
  const report = JSON.parse(r.report) as Pick<BreakGlassTestRecord, 'stages' | 'privilegeWarnings' | 'warnings'>;
  return { at: r.tested_at, by: r.tested_by, target: r.target, ok: r.ok === 1, ...report };
};

/** The history of break-glass runs, and the last Test. */
export class BreakGlassRuns {
  constructor(
    readonly db: Db,
    private readonly x: Tx = db.kysely,
  ) {}

  async start(trigger: BreakGlassRun['trigger'], target: string | null): Promise<BreakGlassRun> {
    const row: BreakGlassRunTable = {
      id: randomUUID(),
      trigger,
      started_at: new Date().toISOString(),
      finished_at: null,
      result: 'running',
      attempts: 0,
      target,
      objects: '{}',
      counts: '{}',
      bytes: null,
      sha256: null,
      error: null,
      error_stage: null,
    };
    await this.x.insertInto('breakglass_runs').values(row).execute();
    return present(row);
  }

  async update(
    id: string,
    set: Partial<
      Pick<BreakGlassRun, 'result' | 'attempts' | 'objects' | 'counts' | 'bytes' | 'sha256' | 'error' | 'errorStage' | 'finishedAt'>
    >,
  ): Promise<BreakGlassRun> {
    const row: Partial<BreakGlassRunTable> = {};
    if (set.result !== undefined) row.result = set.result;
    if (set.attempts !== undefined) row.attempts = set.attempts;
    if (set.objects !== undefined) row.objects = JSON.stringify(set.objects);
    if (set.counts !== undefined) row.counts = JSON.stringify(set.counts);
    if (set.bytes !== undefined) row.bytes = set.bytes;
    if (set.sha256 !== undefined) row.sha256 = set.sha256;
    if (set.error !== undefined) row.error = set.error;
    if (set.errorStage !== undefined) row.error_stage = set.errorStage;
    if (set.finishedAt !== undefined) row.finished_at = set.finishedAt;
    await this.x.updateTable('breakglass_runs').set(row).where('id', '=', id).execute();
    return this.get(id);
  }

  async get(id: string): Promise<BreakGlassRun> {
    return present(await this.x.selectFrom('breakglass_runs').selectAll().where('id', '=', id).executeTakeFirstOrThrow());
  }

  async list(limit = 50): Promise<BreakGlassRun[]> {
    const rows = await this.x.selectFrom('breakglass_runs').selectAll().orderBy('started_at', 'desc').limit(limit).execute();
    return rows.map(present);
  }

  async lastSuccess(): Promise<BreakGlassRun | undefined> {
    const row = await this.x
      .selectFrom('breakglass_runs')
      .selectAll()
      .where('result', '=', 'success')
      .orderBy('started_at', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row && present(row);
  }

  async last(): Promise<BreakGlassRun | undefined> {
    const row = await this.x.selectFrom('breakglass_runs').selectAll().orderBy('started_at', 'desc').limit(1).executeTakeFirst();
    return row && present(row);
  }

  /** Runs still marked `running`: with the run lease held, the ones a stopped server left unfinished. */
  async unfinished(): Promise<BreakGlassRun[]> {
    const rows = await this.x
      .selectFrom('breakglass_runs')
      .selectAll()
      .where('result', '=', 'running')
      .orderBy('started_at', 'asc')
      .execute();
    return rows.map(present);
  }

  /**
   * Closes an unfinished run as interrupted (error stage `interrupted`), once: when
   * several servers find the same run, only the one whose update changes the row gets
   * true, and only that one reports and redoes it.
   */
  async claimInterrupted(id: string, error: string): Promise<boolean> {
    const r = await this.x
      .updateTable('breakglass_runs')
      .set({ result: 'failure', finished_at: new Date().toISOString(), error, error_stage: INTERRUPTED_STAGE })
      .where('id', '=', id)
      .where('result', '=', 'running')
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** How many of the newest runs, in a row, were interrupted by a server that stopped (at most `limit`). */
  async interruptedInARow(limit: number): Promise<number> {
    const rows = await this.x.selectFrom('breakglass_runs').select('error_stage').orderBy('started_at', 'desc').limit(limit).execute();
    const other = rows.findIndex((r) => r.error_stage !== INTERRUPTED_STAGE);
    return other === -1 ? rows.length : other;
  }

  /**
   * Keeps a Test as the last one: one statement replaces the whole row, and only with a
   * Test that finished no earlier than the kept one, so Tests that end together leave the
   * later one, whole.
   */
  async recordTest(t: BreakGlassTestRecord): Promise<void> {
    const fields = {
      tested_at: t.at,
      tested_by: t.by,
      target: t.target,
      ok: t.ok ? 1 : 0,
      report: JSON.stringify({ stages: t.stages, privilegeWarnings: t.privilegeWarnings, warnings: t.warnings }),
    };
    await this.x
      .insertInto('breakglass_last_test')
      .values({ id: 1, ...fields } satisfies BreakGlassLastTestTable)
      .onConflict((oc) => oc.column('id').doUpdateSet(fields).where('breakglass_last_test.tested_at', '<=', t.at))
      .execute();
  }

  /** The last Test, or null before the first. */
  async lastTest(): Promise<BreakGlassTestRecord | null> {
    const row = await this.x.selectFrom('breakglass_last_test').selectAll().where('id', '=', 1).executeTakeFirst();
    return row ? presentTest(row) : null;
  }
}
