import type { Role, Visibility } from '@gatehouse/core';
import {
  appendAuditEvent,
  type AuditEventInput,
  type Db,
  type Inventory,
  type Settings,
  type TokenScope,
  type User,
  type Users,
  type Vault,
} from '@gatehouse/db';
import type { FastifyRequest } from 'fastify';
import type { ServerConfig } from './config.js';
import type { Logger } from './logger.js';
import type { RefusalAudit } from './refusal-audit.js';

/** Everything a route needs, built once at start. */
export interface Services {
  config: ServerConfig;
  db: Db;
  vault: Vault;
  inventory: Inventory;
  users: Users;
  settings: Settings;
  logger: Logger;
  /**
   * Appends an audit event, attributed to the request's user and address when given, and
   * to how the user signed in: `details.via` is "session" or "token" (with `details.tokenId`).
   */
  audit(req: FastifyRequest | null, event: Omit<AuditEventInput, 'actorName'> & { actorName?: string }): Promise<void>;
  /** Audits refused requests (bad credentials, CSRF, probes, rate limits) at a bounded rate. */
  refusals: RefusalAudit;
}

/** Who is calling, and how they proved it. */
export interface AuthContext {
  user: User;
  via: 'session' | 'token';
  sessionToken?: string;
  tokenId?: string;
  /** What the API token may do, when one was sent. */
  tokenScope?: TokenScope;
  visibility: Visibility;
}

/** What a route declares about who may call it. */
export type Access = 'public' | 'authenticated' | readonly Role[];

declare module 'fastify' {
  interface FastifyRequest {
    auth: AuthContext | null;
  }
  interface FastifyContextConfig {
    access?: Access;
  }
}

export function createAudit(db: Db, logger: Logger): Services['audit'] {
  return async (req, event) => {
    const auth = req?.auth ?? null;
    try {
      // Which credential acted: a stolen token and a hijacked session are investigated differently.
      const via = auth ? { via: auth.via, ...(auth.tokenId !== undefined ? { tokenId: auth.tokenId } : {}) } : {};
      await appendAuditEvent(db, {
        ...event,
        actorId: event.actorId !== undefined ? event.actorId : (auth?.user.id ?? null),
        actorName: event.actorName ?? auth?.user.username ?? 'anonymous',
        ip: event.ip ?? req?.ip ?? null,
        ...(auth ? { details: { ...event.details, ...via } } : {}),
      });
    } catch (error) {
      // An audit write that fails must be loud: the caller's action still fails.
      logger.error({ err: error, action: event.action }, 'audit event could not be written');
      throw error;
    }
  };
}
