// The cookie plugin's types add req.cookies (the plugin is registered in app.ts).
import type {} from '@fastify/cookie';
import { GatehouseError } from '@gatehouse/core';
import type { AuditEventInput } from '@gatehouse/db';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { SESSION_COOKIE } from './auth.js';
import type { Services } from './services.js';

/** The refused requests that are audited, and the action each is recorded as. */
export const refusalActions = {
  /** A forged, revoked or expired API token or session cookie (401). */
  unauthenticated: 'access.unauthenticated',
  /** A write with a session cookie but without its CSRF token (403). */
  csrf: 'access.csrf_failed',
  /** A non-administrator asked for something that does not exist or that they may not see (404). */
  notFound: 'access.not_found',
  /** A request over a rate limit (429). */
  rateLimited: 'access.rate_limited',
} as const;

export type Refusal = keyof typeof refusalActions;

/** The event that reports how many refusals of one kind from one address were not written. */
export const SUPPRESSED_ACTION = 'audit.suppressed';

/** Sources tracked at once; past it, new sources share one window per kind (so memory stays bounded). */
const MAX_SOURCES = 10_000;
const OVERFLOW_SOURCE = '*';

interface Window {
  action: string;
  ip: string | null;
  from: string;
  written: number;
  suppressed: number;
  timer: NodeJS.Timeout;
}

/**
 * Audits refused requests without letting a flood fill the log: per source address and
 * kind, at most `limit` events per window; the rest are only counted (a flood past the
 * limit waits on no database write), and one `audit.suppressed` event with the count is
 * written when the window ends (or the server stops). Each server process counts on its own.
 */
export class RefusalAudit {
  private readonly windows = new Map<string, Window>();
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly audit: Services['audit'],
    private readonly opts: { limit: number; windowMs: number },
  ) {}

  /**
   * Audits one refused request (resolved once written, so the event is in the log before
   * the answer), or only counts it when its source used up its window (resolved at once).
   */
  record(req: FastifyRequest, kind: Refusal, event: Pick<AuditEventInput, 'targetType' | 'targetId' | 'details'> = {}): Promise<void> {
    const action = refusalActions[kind];
    if (!this.admit(req.ip, action)) return Promise.resolve();
    return this.write(req, {
      action,
      outcome: 'denied',
      ...event,
      details: { method: req.method, route: req.routeOptions.url ?? null, ...event.details },
    });
  }

  /**
   * A refusal outside HTTP (the SSH gateway's malformed user names), from `ip`, under the
   * same limit per address and action.
   */
  recordFrom(ip: string, event: Parameters<Services['audit']>[1]): Promise<void> {
    if (!this.admit(ip, event.action)) return Promise.resolve();
    return this.write(null, { ...event, ip });
  }

  /** Counts one refusal in its window: true when it is to be written, false when only counted. */
  private admit(ip: string, action: string): boolean {
    const window = this.windowOf(ip, action);
    if (window.written >= this.opts.limit) {
      window.suppressed++;
      return false;
    }
    window.written++;
    return true;
  }

  /** Writes the counts of every open window now and waits for every write: on close. */
  async flush(): Promise<void> {
    for (const key of [...this.windows.keys()]) this.end(key);
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  private windowOf(ip: string, action: string): Window {
    let source: string | null = ip;
    let key = `${ip} ${action}`;
    if (!this.windows.has(key) && this.windows.size >= MAX_SOURCES) {
      source = null;
      key = `${OVERFLOW_SOURCE} ${action}`;
    }
    let window = this.windows.get(key);
    if (!window) {
      const timer = setTimeout(() => this.end(key), this.opts.windowMs);
      timer.unref();
      window = { action, ip: source, from: new Date().toISOString(), written: 0, suppressed: 0, timer };
      this.windows.set(key, window);
    }
    return window;
  }

  private end(key: string): void {
    const window = this.windows.get(key);
    if (!window) return;
    clearTimeout(window.timer);
    this.windows.delete(key);
    if (window.suppressed === 0) return;
    void this.write(null, {
      action: SUPPRESSED_ACTION,
      outcome: 'denied',
      actorId: null,
      actorName: 'system',
      ip: window.ip,
      details: {
        action: window.action,
        suppressed: window.suppressed,
        written: window.written,
        from: window.from,
        until: new Date().toISOString(),
        ...(window.ip === null ? { sources: `more than ${MAX_SOURCES} addresses` } : {}),
      },
    });
  }

  private write(req: FastifyRequest | null, event: Parameters<Services['audit']>[1]): Promise<void> {
    // createAudit logs a failed write; the refusal stands either way.
    const done: Promise<void> = this.audit(req, event)
      .catch(() => undefined)
      .finally(() => this.pending.delete(done));
    this.pending.add(done);
    return done;
  }
}

/** The ids a request named (path parameters, and query parameters called id or …Id): what was probed. */
function idsOf(req: FastifyRequest): Record<string, string> {
  const ids: Record<string, string> = {};
  for (const source of [req.params, req.query]) {
    if (source === null || typeof source !== 'object') continue;
    for (const [name, value] of Object.entries(source as Record<string, unknown>)) {
      if ((name === 'id' || name.endsWith('Id')) && typeof value === 'string') ids[name] = value.slice(0, 100);
    }
  }
  return ids;
}

/**
 * The onError hook that audits refusals: a credential that was sent but is not valid, a
 * CSRF failure, a 404 answered to a non-administrator (an operator probing other projects'
 * ids gets the same 404 as for an id that does not exist), and a rate limit. Sign-in
 * failures on public routes are audited by their routes, and role denials by the access hook.
 */
export function refusalAuditHook(refusals: RefusalAudit) {
  return async (req: FastifyRequest, _reply: FastifyReply, error: FastifyError) => {
    const code = error instanceof GatehouseError ? error.code : undefined;
    const status = error instanceof GatehouseError ? error.httpStatus : error.statusCode;
    if (code === 'UNAUTHENTICATED' && req.auth === null && req.routeOptions.config.access !== 'public') {
      const credential =
        req.headers.authorization !== undefined ? 'token' : req.cookies[SESSION_COOKIE] !== undefined ? 'session' : undefined;
      if (credential) await refusals.record(req, 'unauthenticated', { details: { credential } });
    } else if (code === 'CSRF_FAILED') {
      await refusals.record(req, 'csrf');
    } else if (code === 'NOT_FOUND' && req.auth && req.auth.user.role !== 'admin') {
      const ids = idsOf(req);
      await refusals.record(req, 'notFound', { targetId: ids.id ?? null, details: { ids } });
    } else if (status === 429) {
      await refusals.record(req, 'rateLimited');
    }
  };
}
