import { randomUUID } from 'node:crypto';
import { ConflictError, NotFoundError } from '@gatehouse/core';
import type { Db, Tx } from './connect.js';
import { uniquely } from './errors.js';
import type { GatewayTable } from './schema.js';

export type GatewayStatus = 'unknown' | 'online' | 'offline';

/** A registered remote gateway and what its last status sync found. */
export interface Gateway {
  id: string;
  name: string;
  segment: string | null;
  address: string;
  publicKey: string;
  fingerprint: string;
  status: GatewayStatus;
  statusReason: string | null;
  /** Status syncs failed in a row. */
  failures: number;
  lastContactAt: string | null;
  lastSyncAt: string | null;
  latencyMs: number | null;
  version: string | null;
  openRelays: number | null;
  /** Where it takes host agents' links (`*:port`: at its management address's host); null when it has no agent listener. */
  agentAddress: string | null;
  createdAt: string;
  updatedAt: string;
}

/** Since when a gateway is drained, and by whom. */
export interface GatewayDrain {
  since: string;
  by: string | null;
}

export interface GatewayInput {
  name: string;
  segment: string | null;
  address: string;
  publicKey: string;
  fingerprint: string;
}

/** What one status sync found. */
export type GatewaySync =
  | { ok: true; at: string; latencyMs: number; version: string; openRelays: number; agentAddress?: string | null }
  | { ok: false; at: string; reason: string; offlineAfter: number; immediately?: boolean };

const gatewayFromRow = (r: GatewayTable): Gateway => ({
  id: r.id,
  name: r.name,
  segment: r.segment,
  address: r.address,
  publicKey: r.public_key,
  fingerprint: r.fingerprint,
  status: r.status as GatewayStatus,
  statusReason: r.status_reason,
  failures: r.failures,
  lastContactAt: r.last_contact_at,
  lastSyncAt: r.last_sync_at,
  latencyMs: r.latency_ms,
  version: r.version,
  openRelays: r.open_relays,
  agentAddress: r.agent_address,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** Registered remote gateways. */
export class Gateways {
  constructor(
    readonly db: Db,
    private readonly x: Tx = db.kysely,
  ) {}

  async list(): Promise<Gateway[]> {
    return (await this.x.selectFrom('gateways').selectAll().orderBy('name').execute()).map(gatewayFromRow);
  }

  async get(id: string): Promise<Gateway> {
    const row = await this.x.selectFrom('gateways').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new NotFoundError('Gateway', id);
    return gatewayFromRow(row);
  }

  async create(input: GatewayInput): Promise<Gateway> {
    const now = new Date().toISOString();
    const row: GatewayTable = {
      id: randomUUID(),
      name: input.name,
      segment: input.segment,
      address: input.address,
      public_key: input.publicKey,
      fingerprint: input.fingerprint,
      status: 'unknown',
      status_reason: 'Not synced yet.',
      failures: 0,
      last_contact_at: null,
      last_sync_at: null,
      latency_ms: null,
      version: null,
      open_relays: null,
      agent_address: null,
      created_at: now,
      updated_at: now,
    };
    await uniquely('name', `A gateway named ${JSON.stringify(input.name)} is already registered.`, () =>
      this.x.insertInto('gateways').values(row).execute(),
    );
    return gatewayFromRow(row);
  }

  /** Changes what an administrator set; a new address or key starts the status over. */
  async update(id: string, patch: Partial<GatewayInput>): Promise<Gateway> {
    const before = await this.get(id);
    const set: Partial<GatewayTable> = { updated_at: new Date().toISOString() };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.segment !== undefined) set.segment = patch.segment;
    if (patch.address !== undefined) set.address = patch.address;
    if (patch.publicKey !== undefined) {
      set.public_key = patch.publicKey;
      set.fingerprint = patch.fingerprint ?? before.fingerprint;
    }
    if (
      (patch.address !== undefined && patch.address !== before.address) ||
      (patch.publicKey !== undefined && patch.publicKey !== before.publicKey)
    ) {
      Object.assign(set, { status: 'unknown', status_reason: 'Changed; not synced yet.', failures: 0 });
    }
    await uniquely('name', `A gateway named ${JSON.stringify(patch.name)} is already registered.`, () =>
      this.x.updateTable('gateways').set(set).where('id', '=', id).execute(),
    );
    return this.get(id);
  }

  async delete(id: string): Promise<Gateway> {
    const before = await this.get(id);
    await this.x.deleteFrom('gateway_drains').where('gateway_id', '=', id).execute();
    await this.x.deleteFrom('gateways').where('id', '=', id).execute();
    return before;
  }

  /** The drained gateways (by id, 'default' for the built-in one) and since when. */
  async drains(): Promise<Map<string, GatewayDrain>> {
    const rows = await this.x.selectFrom('gateway_drains').selectAll().execute();
    return new Map(rows.map((r) => [r.gateway_id, { since: r.drained_at, by: r.drained_by }]));
  }

  /**
   * Drains a gateway: it carries no new connection until resumed. True only for the call
   * that drained it (the insert finds the row there when it already was), so concurrent
   * calls change the state, and are audited as a change, once.
   */
  async drain(id: string, by: string | null): Promise<boolean> {
    const { numInsertedOrUpdatedRows } = await this.x
      .insertInto('gateway_drains')
      .values({ gateway_id: id, drained_at: new Date().toISOString(), drained_by: by })
      .onConflict((oc) => oc.column('gateway_id').doNothing())
      .executeTakeFirstOrThrow();
    return (numInsertedOrUpdatedRows ?? 0n) > 0n;
  }

  /** Lets a drained gateway carry new connections again; true only for the call that resumed it. */
  async resume(id: string): Promise<boolean> {
    const { numDeletedRows } = await this.x.deleteFrom('gateway_drains').where('gateway_id', '=', id).executeTakeFirstOrThrow();
    return numDeletedRows > 0n;
  }

  /**
   * A connection through the gateway found it not answering: it is offline at once, not
   * after `offlineAfter` failed syncs (the circuit breaker), so new connections skip it
   * until a status sync succeeds. The row is shared by every server replica, so all of
   * them skip it. True only for the call that took it offline (one event per opening,
   * however many connections fail at once); false when it was not online.
   */
  async markUnreachable(id: string, reason: string): Promise<boolean> {
    const { numUpdatedRows } = await this.x
      .updateTable('gateways')
      .set({ status: 'offline', status_reason: reason })
      .where('id', '=', id)
      .where('status', '=', 'online')
      .executeTakeFirstOrThrow();
    return numUpdatedRows > 0n;
  }

  /**
   * Stores a sync's outcome and answers the gateway before and after, so the caller can
   * tell a change of status (online → offline) from more of the same. A failure marks the
   * gateway offline once `offlineAfter` syncs in a row failed (or at once when `immediately`).
   *
   * Server replicas each sync every gateway into the same row: the row changes only if its
   * status and failure count are still what this sync read (else it is read again), so a
   * change of status is seen, and audited, by one replica, and no failure is counted twice.
   */
  async recordSync(id: string, sync: GatewaySync): Promise<{ before: Gateway; after: Gateway } | undefined> {
    // Each round one of the replicas writing the row gets through, so few rounds are needed.
    for (let attempt = 1; ; attempt++) {
      const row = await this.x.selectFrom('gateways').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) return undefined;
      const before = gatewayFromRow(row);
      const set: Partial<GatewayTable> = sync.ok
        ? {
            status: 'online',
            status_reason: null,
            failures: 0,
            last_contact_at: sync.at,
            last_sync_at: sync.at,
            latency_ms: sync.latencyMs,
            version: sync.version,
            open_relays: sync.openRelays,
            agent_address: sync.agentAddress ?? null,
          }
        : {
            failures: before.failures + 1,
            last_sync_at: sync.at,
            status_reason: sync.reason,
            status: sync.immediately || before.failures + 1 >= sync.offlineAfter ? 'offline' : before.status,
          };
      const { numUpdatedRows } = await this.x
        .updateTable('gateways')
        .set(set)
        .where('id', '=', id)
        .where('status', '=', row.status)
        .where('failures', '=', row.failures)
        .executeTakeFirstOrThrow();
      if (numUpdatedRows > 0n) return { before, after: { ...before, ...gatewayFromRow({ ...row, ...set }) } };
      if (attempt === 50) throw new ConflictError(`The status of gateway ${row.name} kept changing while this sync stored its result.`);
    }
  }
}
