import { randomUUID } from 'node:crypto';
import {
  ALREADY_DECIDED,
  ConflictError,
  decisionStateRefusal,
  revokeStateRefusal,
  NotFoundError,
  liveWindowStates,
  phaseOf,
  windowCovers,
  windowsOverlap,
  type CloseState,
  type WindowPhase,
  type WindowState,
} from '@gatehouse/core';
import type { ExpressionBuilder } from 'kysely';
import { inTransaction, type Db, type Tx } from './connect.js';
import type { Database, MaintenanceHookRunTable, MaintenanceWindowTable } from './schema.js';

/** A maintenance window (and the request for it): the record, ids only; the API presents names. */
export interface MaintenanceWindow {
  id: string;
  projectId: string;
  /** null: the whole project. */
  deviceIds: string[] | null;
  /** null: every account the named users may use. */
  accountIds: string[] | null;
  userIds: string[];
  requestedBy: string;
  reason: string;
  ticket: string | null;
  startsAt: string;
  endsAt: string;
  requiredApprovals: number;
  state: WindowState;
  openedAt: string | null;
  /** When it stopped giving access (or was denied, revoked or expired before it gave any). */
  endedAt: string | null;
  endedBy: string | null;
  endComment: string | null;
  closeState: CloseState | null;
  closeAttempts: number;
  nextCloseAt: string | null;
  warnedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface WindowDecision {
  windowId: string;
  userId: string;
  username: string;
  decision: 'approve' | 'deny';
  comment: string | null;
  at: string;
}

export interface HookRun {
  id: string;
  windowId: string;
  phase: 'open' | 'close';
  attempt: number;
  startedAt: string;
  finishedAt: string;
  ok: boolean;
  exitCode: number | null;
  output: string;
  error: string | null;
}

export type HookRunInput = Omit<HookRun, 'id' | 'windowId'>;

export type WindowCreate = Pick<
  MaintenanceWindow,
  'projectId' | 'deviceIds' | 'accountIds' | 'userIds' | 'requestedBy' | 'reason' | 'ticket' | 'startsAt' | 'endsAt' | 'requiredApprovals'
>;

/** Who sees which windows: administrators all; others the projects they approve, and the windows they requested or are named in. */
export type WindowVisibility = { all: true } | { all: false; userId: string; projectIds: readonly string[] };

export interface WindowQuery {
  visibility: WindowVisibility;
  phase?: WindowPhase | undefined;
  projectId?: string | undefined;
  limit?: number | undefined;
  offset?: number | undefined;
}

export interface DecideResult {
  window: MaintenanceWindow;
  approvals: number;
  /** This decision moved the window out of pending (the approval that completed the count, or the deny). */
  decided: boolean;
}

/** The names a window's ids stand for, and its decisions and hook runs (`MaintenanceWindows.related`). */
export interface WindowRelated {
  projects: Map<string, string>;
  devices: Map<string, string>;
  accounts: Map<string, { username: string; deviceId: string }>;
  users: Map<string, string>;
  decisions: WindowDecision[];
  hookRuns: HookRun[];
}

/** Most a hook's output keeps. */
export const HOOK_OUTPUT_MAX = 64 * 1024;

const ids = (s: string | null): string[] | null => (s === null ? null : (JSON.parse(s) as string[]));

export const windowFromRow = (r: MaintenanceWindowTable): MaintenanceWindow => ({
  id: r.id,
  projectId: r.project_id,
  deviceIds: ids(r.device_ids),
  accountIds: ids(r.account_ids),
  userIds: JSON.parse(r.user_ids) as string[],
  requestedBy: r.requested_by,
  reason: r.reason,
  ticket: r.ticket,
  startsAt: r.starts_at,
  endsAt: r.ends_at,
  requiredApprovals: r.required_approvals,
  state: r.state as WindowState,
  openedAt: r.opened_at,
  endedAt: r.ended_at,
  endedBy: r.ended_by,
  endComment: r.end_comment,
  closeState: r.close_state as CloseState | null,
  closeAttempts: r.close_attempts,
  nextCloseAt: r.next_close_at,
  warnedAt: r.warned_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const hookRunFromRow = (r: MaintenanceHookRunTable): HookRun => ({
  id: r.id,
  windowId: r.window_id,
  phase: r.phase as HookRun['phase'],
  attempt: r.attempt,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  ok: r.ok === 1,
  exitCode: r.exit_code,
  output: r.output,
  error: r.error,
});

/** `"<id>"` inside a JSON array of ids, for LIKE: ids are UUIDs, which hold none of LIKE's wildcards. */
const quotedId = (id: string) => `%${JSON.stringify(id)}%`;

type WindowsEb = ExpressionBuilder<Database, 'maintenance_windows'>;

/** The SQL form of `phaseOf`. */
function phaseWhere(eb: WindowsEb, phase: WindowPhase, now: string) {
  switch (phase) {
    case 'pending':
      return eb.and([eb('state', '=', 'pending'), eb('ends_at', '>', now)]);
    case 'scheduled':
      return eb.and([eb('state', '=', 'approved'), eb('ends_at', '>', now)]);
    case 'active':
      return eb('state', '=', 'open');
    case 'past':
      return eb.or([
        eb('state', 'in', ['denied', 'revoked', 'expired', 'failed']),
        eb.and([eb('state', 'in', ['pending', 'approved']), eb('ends_at', '<=', now)]),
      ]);
  }
}

/** Windows the user requested or is named in. */
const mine = (eb: WindowsEb, userId: string) => eb.or([eb('requested_by', '=', userId), eb('user_ids', 'like', quotedId(userId))]);

/**
 * Maintenance windows, their decisions and hook runs, and who approves each project's.
 * Every transition is a conditional update on the state it leaves, so concurrent
 * approvals, denials, revocations and lifecycle ticks change a window at most once.
 */
export class MaintenanceWindows {
  constructor(
    readonly db: Db,
    private readonly x: Tx = db.kysely,
  ) {}

  /**
   * Stores a new pending request, unless a live window of the same project overlaps it
   * (a device and a user in common, intersecting times): ConflictError naming that window.
   * Requests of one project are serialised (a write to the project's row first), so two
   * overlapping requests made at once cannot both be stored.
   */
  async create(input: WindowCreate, now = new Date()): Promise<MaintenanceWindow> {
    return inTransaction(this.x, async (trx) => {
      const locked = await trx
        .updateTable('projects')
        .set((eb) => ({ updated_at: eb.ref('updated_at') }))
        .where('id', '=', input.projectId)
        .executeTakeFirst();
      if (Number(locked.numUpdatedRows) === 0) throw new NotFoundError('Project', input.projectId);
      const candidates = await trx
        .selectFrom('maintenance_windows')
        .selectAll()
        .where('project_id', '=', input.projectId)
        .where('state', 'in', [...liveWindowStates])
        .where('starts_at', '<', input.endsAt)
        .where('ends_at', '>', input.startsAt)
        .orderBy('starts_at')
        .execute();
      const other = candidates.map(windowFromRow).find((w) => phaseOf(w, now) !== 'past' && windowsOverlap(w, input));
      if (other) {
        throw new ConflictError(
          `This request overlaps maintenance window ${other.id} (${other.state}, ${other.startsAt} to ${other.endsAt}) on the same devices and users. ` +
            'Change the time, the devices or the users, or ask for that window to be revoked.',
          [{ path: 'startsAt', message: `overlaps maintenance window ${other.id}` }],
        );
      }
      const at = now.toISOString();
      const row: MaintenanceWindowTable = {
        id: randomUUID(),
        project_id: input.projectId,
        device_ids: input.deviceIds === null ? null : JSON.stringify(input.deviceIds),
        account_ids: input.accountIds === null ? null : JSON.stringify(input.accountIds),
        user_ids: JSON.stringify(input.userIds),
        requested_by: input.requestedBy,
        reason: input.reason,
        ticket: input.ticket,
        starts_at: input.startsAt,
        ends_at: input.endsAt,
        required_approvals: input.requiredApprovals,
        state: 'pending',
        opened_at: null,
        ended_at: null,
        ended_by: null,
        end_comment: null,
        close_state: null,
        close_attempts: 0,
        next_close_at: null,
        warned_at: null,
        created_at: at,
        updated_at: at,
      };
      await trx.insertInto('maintenance_windows').values(row).execute();
      return windowFromRow(row);
    });
  }

  async find(id: string): Promise<MaintenanceWindow | undefined> {
    const row = await this.x.selectFrom('maintenance_windows').selectAll().where('id', '=', id).executeTakeFirst();
    return row && windowFromRow(row);
  }

  async get(id: string): Promise<MaintenanceWindow> {
    const w = await this.find(id);
    if (!w) throw new NotFoundError('Maintenance window', id);
    return w;
  }

  /** A page of the windows the caller may see, newest start first (pending and scheduled: soonest first). */
  async list(q: WindowQuery, now = new Date()): Promise<{ items: MaintenanceWindow[]; total: number }> {
    const at = now.toISOString();
    let base = this.x.selectFrom('maintenance_windows');
    const v = q.visibility;
    if (!v.all) {
      base = base.where((eb) =>
        eb.or([...(v.projectIds.length > 0 ? [eb('project_id', 'in', [...v.projectIds])] : []), mine(eb, v.userId)]),
      );
    }
    if (q.projectId) base = base.where('project_id', '=', q.projectId);
    const phase = q.phase;
    if (phase) base = base.where((eb) => phaseWhere(eb, phase, at));
    const soonestFirst = phase === 'pending' || phase === 'scheduled';
    const [rows, count] = await Promise.all([
      base
        .selectAll()
        .orderBy('starts_at', soonestFirst ? 'asc' : 'desc')
        .orderBy('id')
        .limit(q.limit ?? 50)
        .offset(q.offset ?? 0)
        .execute(),
      base.select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items: rows.map(windowFromRow), total: Number(count.n) };
  }

  /** Windows in any of these states, oldest start first (the lifecycle's work lists). */
  async inStates(states: readonly WindowState[]): Promise<MaintenanceWindow[]> {
    if (states.length === 0) return [];
    const rows = await this.x
      .selectFrom('maintenance_windows')
      .selectAll()
      .where('state', 'in', [...states])
      .orderBy('starts_at')
      .orderBy('id')
      .execute();
    return rows.map(windowFromRow);
  }

  /** Windows whose closing is still to do: pending, or failed with its retry due by `now`. */
  async closesDue(now = new Date()): Promise<MaintenanceWindow[]> {
    const at = now.toISOString();
    const rows = await this.x
      .selectFrom('maintenance_windows')
      .selectAll()
      .where((eb) =>
        eb.or([
          eb('close_state', '=', 'pending'),
          eb.and([eb('close_state', '=', 'failed'), eb.or([eb('next_close_at', 'is', null), eb('next_close_at', '<=', at)])]),
        ]),
      )
      .orderBy('ends_at')
      .execute();
    return rows.map(windowFromRow);
  }

  /** The open window that lets this user reach this device (and account) now, if any. */
  async activeCovering(
    userId: string,
    deviceId: string,
    accountId: string | null,
    now = new Date(),
  ): Promise<MaintenanceWindow | undefined> {
    const device = await this.x.selectFrom('devices').select('project_id').where('id', '=', deviceId).executeTakeFirst();
    if (!device) return undefined;
    const rows = await this.x
      .selectFrom('maintenance_windows')
      .selectAll()
      .where('project_id', '=', device.project_id)
      .where('state', '=', 'open')
      .where('user_ids', 'like', quotedId(userId))
      .orderBy('ends_at', 'desc')
      .execute();
    return rows.map(windowFromRow).find((w) => windowCovers(w, { userId, projectId: device.project_id, deviceId, accountId }, now));
  }

  /** The live (pending, approved or open) windows that include this device, soonest first. */
  async windowsForDevice(deviceId: string, now = new Date()): Promise<MaintenanceWindow[]> {
    const device = await this.x.selectFrom('devices').select('project_id').where('id', '=', deviceId).executeTakeFirst();
    if (!device) return [];
    const rows = await this.x
      .selectFrom('maintenance_windows')
      .selectAll()
      .where('project_id', '=', device.project_id)
      .where('state', 'in', [...liveWindowStates])
      .where('ends_at', '>', now.toISOString())
      .orderBy('starts_at')
      .execute();
    return rows.map(windowFromRow).filter((w) => w.deviceIds === null || w.deviceIds.includes(deviceId));
  }

  /**
   * Records an approval or a denial, once per user, only while the window is pending and
   * its end has not passed (else ConflictError saying its state). The window's row is
   * written first, which serialises deciders on it: the approval that brings the count to
   * `required_approvals` flips it to approved, exactly once; a deny denies it.
   */
  async decide(
    id: string,
    d: { userId: string; username: string; decision: 'approve' | 'deny'; comment: string | null },
    now = new Date(),
  ): Promise<DecideResult> {
    return inTransaction(this.x, async (trx) => {
      const at = now.toISOString();
      const locked = await trx
        .updateTable('maintenance_windows')
        .set({ updated_at: at })
        .where('id', '=', id)
        .where('state', '=', 'pending')
        .where('ends_at', '>', at)
        .executeTakeFirst();
      if (Number(locked.numUpdatedRows) === 0) throw await this.notPending(id, now, trx);
      const inserted = await trx
        .insertInto('maintenance_window_decisions')
        .values({ window_id: id, user_id: d.userId, username: d.username, decision: d.decision, comment: d.comment, at })
        .onConflict((oc) => oc.columns(['window_id', 'user_id']).doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) {
        throw new ConflictError(ALREADY_DECIDED);
      }
      const count = await trx
        .selectFrom('maintenance_window_decisions')
        .select((eb) => eb.fn.countAll<string | number>().as('n'))
        .where('window_id', '=', id)
        .where('decision', '=', 'approve')
        .executeTakeFirstOrThrow();
      const approvals = Number(count.n);
      let decided = false;
      if (d.decision === 'deny') {
        const r = await trx
          .updateTable('maintenance_windows')
          .set({ state: 'denied', ended_at: at, ended_by: d.userId, end_comment: d.comment })
          .where('id', '=', id)
          .where('state', '=', 'pending')
          .executeTakeFirst();
        decided = Number(r.numUpdatedRows) === 1;
      } else {
        const r = await trx
          .updateTable('maintenance_windows')
          .set({ state: 'approved' })
          .where('id', '=', id)
          .where('state', '=', 'pending')
          .where('required_approvals', '<=', approvals)
          .executeTakeFirst();
        decided = Number(r.numUpdatedRows) === 1;
      }
      return { window: await new MaintenanceWindows(this.db, trx).get(id), approvals, decided };
    });
  }

  /** Why a window cannot be decided on: it does not exist, or its state (an expired pending one says expired). */
  private async notPending(id: string, now: Date, x: Tx): Promise<Error> {
    const w = await new MaintenanceWindows(this.db, x).find(id);
    if (!w) return new NotFoundError('Maintenance window', id);
    return new ConflictError(decisionStateRefusal(w, now) ?? `Maintenance window ${id} changed meanwhile; look at it again and retry.`);
  }

  /**
   * Revokes a pending, approved or open window (an administrator; or its requester
   * withdrawing it while pending). An open one gets `close_state = pending`: the lifecycle
   * ends its sessions and runs the closing hook. Answers the state it left, or
   * ConflictError when it was no longer in a state it may be revoked from. The window's
   * row is written first, which serialises the revocation with decisions, other
   * revocations and the lifecycle on it: a window approved or opened meanwhile is still
   * revoked (from that state), and two revocations at once revoke it once.
   */
  async revoke(
    id: string,
    by: { userId: string; comment: string | null; onlyIfPending?: boolean },
    now = new Date(),
  ): Promise<{ window: MaintenanceWindow; previous: WindowState }> {
    return inTransaction(this.x, async (trx) => {
      const repo = new MaintenanceWindows(this.db, trx);
      const admin = !by.onlyIfPending;
      const at = now.toISOString();
      const locked = await trx
        .updateTable('maintenance_windows')
        .set({ updated_at: at })
        .where('id', '=', id)
        .where('state', 'in', admin ? [...liveWindowStates] : ['pending'])
        .executeTakeFirst();
      // Read after the write: with the row held, this is the state the update below leaves.
      const current = await repo.get(id);
      if (Number(locked.numUpdatedRows) === 0) {
        throw new ConflictError(
          revokeStateRefusal(current, admin) ?? `Maintenance window ${id} changed meanwhile; look at it again and retry.`,
        );
      }
      await trx
        .updateTable('maintenance_windows')
        .set({
          state: 'revoked',
          ended_at: at,
          ended_by: by.userId,
          end_comment: by.comment,
          close_state: current.state === 'open' ? 'pending' : null,
        })
        .where('id', '=', id)
        .execute();
      return { window: await repo.get(id), previous: current.state };
    });
  }

  /** approved → open (the opening hook succeeded); false when it was no longer approved. */
  async markOpened(id: string, now = new Date()): Promise<boolean> {
    const at = now.toISOString();
    const r = await this.x
      .updateTable('maintenance_windows')
      .set({ state: 'open', opened_at: at, updated_at: at })
      .where('id', '=', id)
      .where('state', '=', 'approved')
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** approved → failed (the opening hook failed: access stays closed). */
  async markFailed(id: string, comment: string | null, now = new Date()): Promise<boolean> {
    const at = now.toISOString();
    const r = await this.x
      .updateTable('maintenance_windows')
      .set({ state: 'failed', ended_at: at, end_comment: comment, updated_at: at })
      .where('id', '=', id)
      .where('state', '=', 'approved')
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /**
   * The end time passed: pending, approved or open → expired. An open one gets
   * `close_state = pending` (its sessions to end, its closing hook to run). False when
   * it had left those states already (revoked, or another replica got there first).
   */
  async markEnded(id: string, now = new Date()): Promise<boolean> {
    const at = now.toISOString();
    const r = await this.x
      .updateTable('maintenance_windows')
      .set((eb) => ({
        state: 'expired',
        ended_at: at,
        updated_at: at,
        close_state: eb.case().when('state', '=', 'open').then('pending').else(null).end(),
      }))
      .where('id', '=', id)
      .where('state', 'in', [...liveWindowStates])
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Sets the warning time once; true for the caller that set it. */
  async markWarned(id: string, now = new Date()): Promise<boolean> {
    const r = await this.x
      .updateTable('maintenance_windows')
      .set({ warned_at: now.toISOString() })
      .where('id', '=', id)
      .where('state', '=', 'open')
      .where('warned_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /**
   * Records how closing went: `done`, or `failed` with the attempts so far and when to
   * retry. Only a window whose closing is not done yet changes; false otherwise.
   */
  async setCloseState(
    id: string,
    close: { state: CloseState; attempts?: number | undefined; nextAt?: string | null | undefined },
    now = new Date(),
  ): Promise<boolean> {
    const r = await this.x
      .updateTable('maintenance_windows')
      .set({
        close_state: close.state,
        ...(close.attempts !== undefined ? { close_attempts: close.attempts } : {}),
        ...(close.nextAt !== undefined ? { next_close_at: close.nextAt } : {}),
        updated_at: now.toISOString(),
      })
      .where('id', '=', id)
      .where('close_state', 'in', ['pending', 'failed'])
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async addHookRun(windowId: string, run: HookRunInput): Promise<HookRun> {
    const row: MaintenanceHookRunTable = {
      id: randomUUID(),
      window_id: windowId,
      phase: run.phase,
      attempt: run.attempt,
      started_at: run.startedAt,
      finished_at: run.finishedAt,
      ok: run.ok ? 1 : 0,
      exit_code: run.exitCode,
      output: run.output.length > HOOK_OUTPUT_MAX ? run.output.slice(0, HOOK_OUTPUT_MAX) : run.output,
      error: run.error,
    };
    await this.x.insertInto('maintenance_hook_runs').values(row).execute();
    return hookRunFromRow(row);
  }

  /** The hook runs of these windows, in the order they ran. */
  async hookRuns(windowIds: readonly string[]): Promise<HookRun[]> {
    if (windowIds.length === 0) return [];
    const rows = await this.x
      .selectFrom('maintenance_hook_runs')
      .selectAll()
      .where('window_id', 'in', [...windowIds])
      .orderBy('started_at')
      .orderBy('id')
      .execute();
    return rows.map(hookRunFromRow);
  }

  /** The approvals and denials of these windows, in the order they were made. */
  async decisions(windowIds: readonly string[]): Promise<WindowDecision[]> {
    if (windowIds.length === 0) return [];
    const rows = await this.x
      .selectFrom('maintenance_window_decisions')
      .selectAll()
      .where('window_id', 'in', [...windowIds])
      .orderBy('at')
      .orderBy('user_id')
      .execute();
    return rows.map((r) => ({
      windowId: r.window_id,
      userId: r.user_id,
      username: r.username,
      decision: r.decision as WindowDecision['decision'],
      comment: r.comment,
      at: r.at,
    }));
  }

  /** What the windows' ids name (ids since deleted are left out), with their decisions and hook runs: one query each. */
  async related(windows: readonly MaintenanceWindow[]): Promise<WindowRelated> {
    const unique = (xs: Iterable<string>) => [...new Set(xs)];
    const projectIds = unique(windows.map((w) => w.projectId));
    const deviceIds = unique(windows.flatMap((w) => w.deviceIds ?? []));
    const accountIds = unique(windows.flatMap((w) => w.accountIds ?? []));
    const userIds = unique(windows.flatMap((w) => [w.requestedBy, ...w.userIds, ...(w.endedBy ? [w.endedBy] : [])]));
    const windowIds = windows.map((w) => w.id);
    const [projects, devices, accounts, users, decisions, hookRuns] = await Promise.all([
      projectIds.length === 0 ? [] : this.x.selectFrom('projects').select(['id', 'name']).where('id', 'in', projectIds).execute(),
      deviceIds.length === 0 ? [] : this.x.selectFrom('devices').select(['id', 'name']).where('id', 'in', deviceIds).execute(),
      accountIds.length === 0
        ? []
        : this.x.selectFrom('accounts').select(['id', 'username', 'device_id']).where('id', 'in', accountIds).execute(),
      userIds.length === 0 ? [] : this.x.selectFrom('users').select(['id', 'username']).where('id', 'in', userIds).execute(),
      this.decisions(windowIds),
      this.hookRuns(windowIds),
    ]);
    return {
      projects: new Map(projects.map((p) => [p.id, p.name])),
      devices: new Map(devices.map((d) => [d.id, d.name])),
      accounts: new Map(accounts.map((a) => [a.id, { username: a.username, deviceId: a.device_id }])),
      users: new Map(users.map((u) => [u.id, u.username])),
      decisions,
      hookRuns,
    };
  }

  /** The navigation count: pending requests this user may decide on and has not, their own pending and active windows. */
  async summary(userId: string, approverProjectIds: readonly string[], now = new Date()) {
    const at = now.toISOString();
    const count = async (q: ReturnType<typeof this.base>) =>
      Number((await q.select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow()).n);
    const awaitingMyApproval =
      approverProjectIds.length === 0
        ? 0
        : await count(
            this.base()
              .where((eb) => phaseWhere(eb, 'pending', at))
              .where('project_id', 'in', [...approverProjectIds])
              .where('requested_by', '!=', userId)
              .where((eb) =>
                eb.not(
                  eb.exists(
                    eb
                      .selectFrom('maintenance_window_decisions as d')
                      .select('d.user_id')
                      .whereRef('d.window_id', '=', 'maintenance_windows.id')
                      .where('d.user_id', '=', userId),
                  ),
                ),
              ),
          );
    const mineActive = await count(this.base().where((eb) => eb.and([phaseWhere(eb, 'active', at), mine(eb, userId)])));
    const minePending = await count(this.base().where((eb) => eb.and([phaseWhere(eb, 'pending', at), mine(eb, userId)])));
    return { awaitingMyApproval, mineActive, minePending };
  }

  private base() {
    return this.x.selectFrom('maintenance_windows');
  }

  /** The users who approve this project's windows. */
  async approvers(projectId: string): Promise<{ id: string; username: string }[]> {
    return this.x
      .selectFrom('project_approvers as a')
      .innerJoin('users as u', 'u.id', 'a.user_id')
      .select(['u.id', 'u.username'])
      .where('a.project_id', '=', projectId)
      .orderBy('u.username')
      .execute();
  }

  /** Replaces the project's approvers; answers who was added and who removed. */
  async setApprovers(
    projectId: string,
    userIds: readonly string[],
    grantedBy: string | null,
    now = new Date(),
  ): Promise<{ added: string[]; removed: string[] }> {
    return inTransaction(this.x, async (trx) => {
      const current = (await trx.selectFrom('project_approvers').select('user_id').where('project_id', '=', projectId).execute()).map(
        (r) => r.user_id,
      );
      const wanted = [...new Set(userIds)];
      const added = wanted.filter((u) => !current.includes(u));
      const removed = current.filter((u) => !wanted.includes(u));
      if (removed.length > 0) {
        await trx.deleteFrom('project_approvers').where('project_id', '=', projectId).where('user_id', 'in', removed).execute();
      }
      if (added.length > 0) {
        const at = now.toISOString();
        await trx
          .insertInto('project_approvers')
          .values(added.map((user_id) => ({ project_id: projectId, user_id, granted_by: grantedBy, granted_at: at })))
          .onConflict((oc) => oc.columns(['project_id', 'user_id']).doNothing())
          .execute();
      }
      return { added, removed };
    });
  }

  async isApprover(projectId: string, userId: string): Promise<boolean> {
    const row = await this.x
      .selectFrom('project_approvers')
      .select('user_id')
      .where('project_id', '=', projectId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** The projects whose windows this user approves. */
  async approvedProjects(userId: string): Promise<string[]> {
    const rows = await this.x.selectFrom('project_approvers').select('project_id').where('user_id', '=', userId).execute();
    return rows.map((r) => r.project_id);
  }
}
