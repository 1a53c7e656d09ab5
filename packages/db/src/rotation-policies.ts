import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { NotFoundError } from '@gatehouse/core';
import { DEFAULT_PASSWORD_POLICY, type PasswordClass } from '@gatehouse/core/runbooks';
import type { Tx } from './connect.js';
import { uniquely } from './errors.js';
import type { RotationPolicyTable } from './schema.js';

export type PolicyScope = 'project' | 'device';

/** Scheduled rotation of a project's or a device's accounts. */
export interface RotationPolicy {
  id: string;
  scope: PolicyScope;
  scopeId: string;
  /** Rotate when the credential is older than this many days; null: no schedule. */
  everyDays: number | null;
  /** Rotate after every session that used the account. */
  afterSession: boolean;
  credential: 'password' | 'key' | 'same';
  passwordLength: number;
  passwordClasses: PasswordClass[];
  privilegedAccount: string;
  /** Who set it (rotations run through the gateway as this user); username null when the user is gone. */
  setBy: { id: string; username: string | null };
  createdAt: string;
  updatedAt: string;
}

/** What a put writes; what it leaves out keeps its value (or the default, for a new policy). */
export type RotationPolicyPatch = Partial<
  Pick<RotationPolicy, 'everyDays' | 'afterSession' | 'credential' | 'passwordLength' | 'passwordClasses' | 'privilegedAccount'>
>;

/** An account whose credential is older than its effective policy allows. */
export interface DueAccount {
  accountId: string;
  deviceId: string;
  username: string;
  secretChangedAt: string;
  policyId: string;
}

/** A new policy's values for what its first put leaves out. */
export const ROTATION_POLICY_DEFAULTS = {
  everyDays: null,
  afterSession: false,
  credential: 'same',
  passwordLength: DEFAULT_PASSWORD_POLICY.length,
  passwordClasses: DEFAULT_PASSWORD_POLICY.classes,
  privilegedAccount: 'root',
} as const satisfies Required<RotationPolicyPatch>;

const DAY_MS = 24 * 60 * 60 * 1000;

const policyFromRow = (r: RotationPolicyTable & { username: string | null }): RotationPolicy => ({
  id: r.id,
  scope: r.device_id !== null ? 'device' : 'project',
  scopeId: (r.device_id ?? r.project_id) as string,
  everyDays: r.every_days,
  afterSession: r.after_session === 1,
  credential: r.credential as RotationPolicy['credential'],
  passwordLength: r.password_length,
  passwordClasses: r.password_classes.split(',') as PasswordClass[],
  privilegedAccount: r.privileged_account,
  setBy: { id: r.user_id, username: r.username },
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const column = (scope: PolicyScope) => (scope === 'device' ? 'device_id' : 'project_id');

/** Rotation policies: at most one per project and one per device; a device's beats its project's. */
export class RotationPolicies {
  constructor(private readonly x: Tx) {}

  private select() {
    return this.x.selectFrom('rotation_policies as p').leftJoin('users as u', 'u.id', 'p.user_id').selectAll('p').select('u.username');
  }

  async get(scope: PolicyScope, scopeId: string): Promise<RotationPolicy | undefined> {
    const row = await this.select()
      .where(`p.${column(scope)}`, '=', scopeId)
      .executeTakeFirst();
    return row && policyFromRow(row);
  }

  /** Creates or changes the policy of a project or device (which must exist), as `userId`. */
  async put(scope: PolicyScope, scopeId: string, patch: RotationPolicyPatch, userId: string): Promise<RotationPolicy> {
    const table = scope === 'device' ? 'devices' : 'projects';
    const target = await this.x.selectFrom(table).select('id').where('id', '=', scopeId).executeTakeFirst();
    if (!target) throw new NotFoundError(scope === 'device' ? 'Device' : 'Project', scopeId);
    const current = await this.get(scope, scopeId);
    const next = { ...ROTATION_POLICY_DEFAULTS, ...current, ...definedOf(patch) };
    const now = new Date().toISOString();
    const values = {
      every_days: next.everyDays,
      after_session: next.afterSession ? 1 : 0,
      credential: next.credential,
      password_length: next.passwordLength,
      password_classes: next.passwordClasses.join(','),
      privileged_account: next.privilegedAccount,
      user_id: userId,
      updated_at: now,
    };
    if (current) {
      await this.x.updateTable('rotation_policies').set(values).where('id', '=', current.id).execute();
    } else {
      const row: RotationPolicyTable = {
        id: randomUUID(),
        project_id: scope === 'project' ? scopeId : null,
        device_id: scope === 'device' ? scopeId : null,
        ...values,
        created_at: now,
      };
      await uniquely(scope, `The ${scope} got a rotation policy meanwhile: send the change again.`, () =>
        this.x.insertInto('rotation_policies').values(row).execute(),
      );
    }
    return (await this.get(scope, scopeId)) as RotationPolicy;
  }

  /** Removes a policy; NOT_FOUND when the project or device has none. */
  async delete(scope: PolicyScope, scopeId: string): Promise<void> {
    const r = await this.x.deleteFrom('rotation_policies').where(column(scope), '=', scopeId).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw new NotFoundError(`Rotation policy of ${scope}`, scopeId);
  }

  /** The policy that applies to a device: its own, else its project's. */
  async effectiveFor(deviceId: string): Promise<RotationPolicy | undefined> {
    // One statement (it runs after every session's end, issue 23): the device's policy and
    // its project's, the device's first. A policy row has one scope, so each matches once.
    const row = await this.select()
      .where((eb) =>
        eb.or([
          eb('p.device_id', '=', deviceId),
          eb('p.project_id', '=', eb.selectFrom('devices').select('project_id').where('id', '=', deviceId)),
        ]),
      )
      .orderBy(sql`case when p.device_id is null then 1 else 0 end`)
      .limit(1)
      .executeTakeFirst();
    return row && policyFromRow(row);
  }

  /**
   * Accounts (with a password or a private key) whose secret changed longer ago than the
   * everyDays of their effective policy, oldest first. A device's policy without everyDays
   * means no schedule for its accounts, even when its project's has one.
   */
  async due(now: Date, limit = 1000): Promise<DueAccount[]> {
    const periods = await this.x
      .selectFrom('rotation_policies')
      .select('every_days')
      .distinct()
      .where('every_days', 'is not', null)
      .execute();
    const due: DueAccount[] = [];
    // One query per distinct period (a handful): the cutoff is computed here, the same way on both databases.
    for (const { every_days: days } of periods) {
      const cutoff = new Date(now.getTime() - (days as number) * DAY_MS).toISOString();
      const rows = await this.accountsWithPolicies()
        .where((eb) =>
          eb.or([
            eb.and([eb('dp.id', 'is not', null), eb('dp.every_days', '=', days)]),
            eb.and([eb('dp.id', 'is', null), eb('pp.every_days', '=', days)]),
          ]),
        )
        .where('a.secret_changed_at', '<', cutoff)
        .orderBy('a.secret_changed_at')
        .orderBy('a.id')
        .limit(limit)
        .execute();
      due.push(...rows.map(dueFromRow));
    }
    return due.sort((a, b) => a.secretChangedAt.localeCompare(b.secretChangedAt) || a.accountId.localeCompare(b.accountId)).slice(0, limit);
  }

  /**
   * Accounts (with a password or a private key) under an effective policy with afterSession
   * that a person's session used since their secret last changed — a session that ended
   * before `endedBefore` — and that no person's session uses now. The backstop of rotation
   * after sessions, whose queue is in one server's memory.
   */
  async dueAfterSessions(endedBefore: Date, limit = 1000): Promise<DueAccount[]> {
    const rows = await this.accountsWithPolicies()
      .where((eb) =>
        eb.or([
          eb.and([eb('dp.id', 'is not', null), eb('dp.after_session', '=', 1)]),
          eb.and([eb('dp.id', 'is', null), eb('pp.after_session', '=', 1)]),
        ]),
      )
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('gateway_sessions as s')
            .select('s.id')
            .whereRef('s.account_id', '=', 'a.id')
            .where('s.runbook_run_id', 'is', null)
            .where('s.kind', 'is not', null)
            .where('s.result', '<>', 'active')
            .whereRef('s.ended_at', '>', 'a.secret_changed_at')
            .where('s.ended_at', '<', endedBefore.toISOString()),
        ),
      )
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('gateway_sessions as l')
              .select('l.id')
              .whereRef('l.account_id', '=', 'a.id')
              .where('l.runbook_run_id', 'is', null)
              .where('l.result', '=', 'active'),
          ),
        ),
      )
      .orderBy('a.secret_changed_at')
      .orderBy('a.id')
      .limit(limit)
      .execute();
    return rows.map(dueFromRow);
  }

  /** Accounts with a password or a private key, beside their device's policy (dp) and their project's (pp). */
  private accountsWithPolicies() {
    return this.x
      .selectFrom('accounts as a')
      .innerJoin('devices as d', 'd.id', 'a.device_id')
      .leftJoin('rotation_policies as dp', 'dp.device_id', 'd.id')
      .leftJoin('rotation_policies as pp', 'pp.project_id', 'd.project_id')
      .select(['a.id', 'a.device_id', 'a.username', 'a.secret_changed_at', 'dp.id as device_policy', 'pp.id as project_policy'])
      .where((eb) => eb.or([eb('a.password_enc', 'is not', null), eb('a.private_key_enc', 'is not', null)]));
  }
}

const dueFromRow = (r: {
  id: string;
  device_id: string;
  username: string;
  secret_changed_at: string;
  device_policy: string | null;
  project_policy: string | null;
}): DueAccount => ({
  accountId: r.id,
  deviceId: r.device_id,
  username: r.username,
  secretChangedAt: r.secret_changed_at,
  policyId: (r.device_policy ?? r.project_policy) as string,
});

const definedOf = <T extends object>(patch: T): Partial<T> =>
  Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as Partial<T>;
