import { randomUUID } from 'node:crypto';
import type { Db, Tx } from './connect.js';
import type { AgentJoinTokenTable, AgentTable } from './schema.js';

export type AgentLinkState = 'never' | 'up' | 'down';

/** A host agent enrolled for a device. */
export interface Agent {
  id: string;
  deviceId: string;
  /** Ed25519 public key, SPKI PEM. */
  publicKey: string;
  fingerprint: string;
  version: string;
  hostname: string;
  enrolledAt: string;
  lastContactAt: string | null;
  linkState: AgentLinkState;
  /** The gateway the link is (or was last) up to; null before the first link. */
  linkGateway: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
}

/** A join token as stored: its hash, never the token. */
export interface AgentJoinToken {
  id: string;
  deviceId: string;
  createdBy: string | null;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
  usedByAgent: string | null;
}

export interface AgentInput {
  id: string;
  deviceId: string;
  publicKey: string;
  fingerprint: string;
  version: string;
  hostname: string;
}

const agentFromRow = (r: AgentTable): Agent => ({
  id: r.id,
  deviceId: r.device_id,
  publicKey: r.public_key,
  fingerprint: r.fingerprint,
  version: r.version,
  hostname: r.hostname,
  enrolledAt: r.enrolled_at,
  lastContactAt: r.last_contact_at,
  linkState: r.link_state as AgentLinkState,
  linkGateway: r.link_gateway,
  revokedAt: r.revoked_at,
  revokedBy: r.revoked_by,
});

const tokenFromRow = (r: AgentJoinTokenTable): AgentJoinToken => ({
  id: r.id,
  deviceId: r.device_id,
  createdBy: r.created_by,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  usedAt: r.used_at,
  usedByAgent: r.used_by_agent,
});

/** Host agents and the join tokens they enroll with (records only; the routes decide). */
export class Agents {
  constructor(
    readonly db: Db,
    private readonly x: Tx = db.kysely,
  ) {}

  /** Stores a join token by its hash (the caller hashes; the token is never stored). */
  async createToken(input: { deviceId: string; tokenHash: string; createdBy: string | null; expiresAt: string }): Promise<AgentJoinToken> {
    const row: AgentJoinTokenTable = {
      id: randomUUID(),
      device_id: input.deviceId,
      token_hash: input.tokenHash,
      created_by: input.createdBy,
      created_at: new Date().toISOString(),
      expires_at: input.expiresAt,
      used_at: null,
      used_by_agent: null,
    };
    await this.x.insertInto('agent_join_tokens').values(row).execute();
    return tokenFromRow(row);
  }

  async tokenByHash(tokenHash: string): Promise<AgentJoinToken | undefined> {
    const row = await this.x.selectFrom('agent_join_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
    return row && tokenFromRow(row);
  }

  /**
   * Uses a token for `agentId`: one conditional update (unused and not expired), so of
   * any number of enrollments with one token at once exactly one gets it.
   */
  async useToken(tokenHash: string, agentId: string, now = new Date()): Promise<AgentJoinToken | undefined> {
    const at = now.toISOString();
    const r = await this.x
      .updateTable('agent_join_tokens')
      .set({ used_at: at, used_by_agent: agentId })
      .where('token_hash', '=', tokenHash)
      .where('used_at', 'is', null)
      .where('expires_at', '>', at)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) return undefined;
    return this.tokenByHash(tokenHash);
  }

  /** Unused, unexpired tokens of a device. */
  async pendingTokens(deviceId: string, now = new Date()): Promise<number> {
    const row = await this.x
      .selectFrom('agent_join_tokens')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('device_id', '=', deviceId)
      .where('used_at', 'is', null)
      .where('expires_at', '>', now.toISOString())
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Inserts an enrolled agent; a second active agent of the device is a unique violation. */
  async enroll(input: AgentInput): Promise<Agent> {
    const row: AgentTable = {
      id: input.id,
      device_id: input.deviceId,
      public_key: input.publicKey,
      fingerprint: input.fingerprint,
      version: input.version,
      hostname: input.hostname,
      enrolled_at: new Date().toISOString(),
      last_contact_at: null,
      link_state: 'never',
      link_gateway: null,
      revoked_at: null,
      revoked_by: null,
    };
    await this.x.insertInto('agents').values(row).execute();
    return agentFromRow(row);
  }

  async get(id: string): Promise<Agent | undefined> {
    const row = await this.x.selectFrom('agents').selectAll().where('id', '=', id).executeTakeFirst();
    return row && agentFromRow(row);
  }

  /** The device's agent: the active one, else the latest revoked one, else none. */
  async ofDevice(deviceId: string): Promise<Agent | undefined> {
    const rows = await this.x
      .selectFrom('agents')
      .selectAll()
      .where('device_id', '=', deviceId)
      .orderBy('enrolled_at', 'desc')
      .orderBy('id')
      .execute();
    const row = rows.find((r) => r.revoked_at === null) ?? rows[0];
    return row && agentFromRow(row);
  }

  /** The agent's link came up through `gateway`, with the version its hello gave. */
  async linkUp(id: string, gateway: string, version: string, now = new Date()): Promise<void> {
    await this.x
      .updateTable('agents')
      .set({ link_state: 'up', link_gateway: gateway, version, last_contact_at: now.toISOString() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .execute();
  }

  /**
   * The agent's link to `gateway` went down (the gateway stays, as the last one). A down
   * from a gateway the agent has since left (it linked to another) changes nothing.
   */
  async linkDown(id: string, gateway: string, now = new Date()): Promise<void> {
    await this.x
      .updateTable('agents')
      .set({ link_state: 'down', last_contact_at: now.toISOString() })
      .where('id', '=', id)
      .where('link_gateway', '=', gateway)
      .execute();
  }

  /** Every agent linked to `gateway` is down: the gateway itself went offline. */
  async linksDownVia(gateway: string): Promise<void> {
    await this.x
      .updateTable('agents')
      .set({ link_state: 'down' })
      .where('link_gateway', '=', gateway)
      .where('link_state', '=', 'up')
      .execute();
  }

  /** The agent was heard from (a pong on its link). */
  async contact(id: string, now = new Date()): Promise<void> {
    await this.x.updateTable('agents').set({ last_contact_at: now.toISOString() }).where('id', '=', id).execute();
  }

  /** Revokes an active agent; false when it was revoked already (or meanwhile). */
  async revoke(id: string, by: string | null, now = new Date()): Promise<boolean> {
    const r = await this.x
      .updateTable('agents')
      .set({ revoked_at: now.toISOString(), revoked_by: by, link_state: 'down' })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
}
