import { randomUUID } from 'node:crypto';
import type { Db, Tx } from './connect.js';
import type { SsoLoginTable } from './schema.js';
import { hashToken } from './users.js';

/** An OIDC sign-in under way, as the callback gets it back. */
export interface PendingSsoLogin {
  bindingHash: string;
  nonce: string;
  codeVerifierEnc: string;
  cliLoginId: string | null;
}

/** A CLI login as the CLI's claim sees it. */
export type CliLoginClaim = { ok: true; userId: string } | { ok: false; reason: 'unknown' | 'expired' | 'pending' | 'claimed' };

/**
 * OIDC sign-ins between their start and their callback, and `gatehouse login --sso`
 * requests. Each is used once: the callback deletes its sign-in with one conditional
 * statement, and a CLI claims its approved request with one conditional update, so two
 * racing requests (two replicas, a replay) get it once between them.
 */
export class SsoLogins {
  constructor(
    readonly db: Db,
    private readonly x: Tx = db.kysely,
  ) {}

  async start(input: {
    state: string;
    bindingHash: string;
    nonce: string;
    codeVerifierEnc: string;
    cliLoginId: string | null;
    ttlMs: number;
  }) {
    const now = Date.now();
    await this.deleteExpired(now);
    const row: SsoLoginTable = {
      id: hashToken(input.state),
      binding_hash: input.bindingHash,
      nonce: input.nonce,
      code_verifier_enc: input.codeVerifierEnc,
      cli_login_id: input.cliLoginId,
      created_at: new Date(now).toISOString(),
      expires_at: new Date(now + input.ttlMs).toISOString(),
    };
    await this.x.insertInto('sso_logins').values(row).execute();
  }

  /** Takes the sign-in of this state: deleted whatever the caller does next, so a state works once; undefined if unknown or expired. */
  async take(state: string): Promise<PendingSsoLogin | undefined> {
    const row = await this.x
      .deleteFrom('sso_logins')
      .where('id', '=', hashToken(state))
      .where('expires_at', '>', new Date().toISOString())
      .returningAll()
      .executeTakeFirst();
    return row && { bindingHash: row.binding_hash, nonce: row.nonce, codeVerifierEnc: row.code_verifier_enc, cliLoginId: row.cli_login_id };
  }

  /** A new CLI login request; the CLI keeps `secret` and claims with it. */
  async createCliLogin(secret: string, ttlMs: number): Promise<{ id: string; expiresAt: string }> {
    const now = Date.now();
    await this.deleteExpired(now);
    const id = randomUUID();
    const expiresAt = new Date(now + ttlMs).toISOString();
    await this.x
      .insertInto('sso_cli_logins')
      .values({
        id,
        secret_hash: hashToken(secret),
        user_id: null,
        claimed_at: null,
        created_at: new Date(now).toISOString(),
        expires_at: expiresAt,
      })
      .execute();
    return { id, expiresAt };
  }

  /** Whether a CLI login can still be approved (exists, unexpired, not yet approved). */
  async cliLoginOpen(id: string): Promise<boolean> {
    const row = await this.x
      .selectFrom('sso_cli_logins')
      .select('id')
      .where('id', '=', id)
      .where('user_id', 'is', null)
      .where('expires_at', '>', new Date().toISOString())
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Records who signed in for a CLI login; false if it was approved already or has expired. */
  async approveCliLogin(id: string, userId: string): Promise<boolean> {
    const r = await this.x
      .updateTable('sso_cli_logins')
      .set({ user_id: userId })
      .where('id', '=', id)
      .where('user_id', 'is', null)
      .where('expires_at', '>', new Date().toISOString())
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** The CLI's claim: once approved, the first claim with the right secret wins; every other is refused. */
  async claimCliLogin(id: string, secret: string): Promise<CliLoginClaim> {
    const row = await this.x
      .selectFrom('sso_cli_logins')
      .selectAll()
      .where('id', '=', id)
      .where('secret_hash', '=', hashToken(secret))
      .executeTakeFirst();
    if (!row) return { ok: false, reason: 'unknown' };
    if (row.claimed_at !== null) return { ok: false, reason: 'claimed' };
    if (row.expires_at <= new Date().toISOString()) return { ok: false, reason: 'expired' };
    if (row.user_id === null) return { ok: false, reason: 'pending' };
    const r = await this.x
      .updateTable('sso_cli_logins')
      .set({ claimed_at: new Date().toISOString() })
      .where('id', '=', id)
      .where('claimed_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1 ? { ok: true, userId: row.user_id } : { ok: false, reason: 'claimed' };
  }

  private async deleteExpired(now: number) {
    // Kept an hour past expiry so a late claim hears "expired" rather than "unknown".
    const before = new Date(now - 3_600_000).toISOString();
    await this.x.deleteFrom('sso_logins').where('expires_at', '<', new Date(now).toISOString()).execute();
    await this.x.deleteFrom('sso_cli_logins').where('expires_at', '<', before).execute();
  }
}
