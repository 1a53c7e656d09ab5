import { randomInt, randomUUID } from 'node:crypto';
import type { Tx } from './connect.js';
import type { DesktopTokenTable } from './schema.js';
import type { Vault } from './vault.js';

/** The desktop protocol a token is for: `vnc` (the VNC listener), `rdp` (the RDP tunnel, later). */
export type DesktopTokenProtocol = 'vnc' | 'rdp';

/** A one-time desktop token as stored, without the token itself. */
export interface DesktopToken {
  id: string;
  userId: string;
  deviceId: string;
  accountId: string;
  protocol: DesktopTokenProtocol;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
  usedFrom: string | null;
}

/** A token with its clear text: only the answer that issues it, and the redemption's matching, see one. */
export interface RevealedDesktopToken extends DesktopToken {
  token: string;
}

/**
 * The token's characters: letters and digits without the ones people mix up when they
 * type what they read (0 O o, 1 l I). Eight of them (VncAuth uses at most eight) are ~46 bits.
 */
export const DESKTOP_TOKEN_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789';
export const DESKTOP_TOKEN_LENGTH = 8;

/** A new token from the crypto RNG (randomInt draws without modulo bias). */
export function newDesktopToken(): string {
  let token = '';
  for (let i = 0; i < DESKTOP_TOKEN_LENGTH; i++) token += DESKTOP_TOKEN_ALPHABET[randomInt(DESKTOP_TOKEN_ALPHABET.length)];
  return token;
}

const TABLE = 'desktop_tokens';
const scopeOf = (id: string) => ({ table: TABLE, id, field: 'token' });

const tokenFromRow = (r: DesktopTokenTable): DesktopToken => ({
  id: r.id,
  userId: r.user_id,
  deviceId: r.device_id,
  accountId: r.account_id,
  protocol: r.protocol as DesktopTokenProtocol,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  usedAt: r.used_at,
  usedFrom: r.used_from,
});

/**
 * One-time passwords for native desktop clients, bound to a user, device, account and
 * protocol. They are sealed by the vault, not hashed: VncAuth proves the password by
 * encrypting a challenge with it, so the server needs the clear text to check an answer.
 * Using one is a conditional update, so of any number of redemptions at once one wins.
 */
export class DesktopTokens {
  constructor(
    private readonly vault: Vault,
    private readonly x: Tx,
  ) {}

  /** Stores a new token (made here) for `minutes`; the answer is the only place its clear text leaves. */
  async issue(input: {
    userId: string;
    deviceId: string;
    accountId: string;
    protocol: DesktopTokenProtocol;
    expiresAt: Date;
    now?: Date;
  }): Promise<RevealedDesktopToken> {
    const id = randomUUID();
    const token = newDesktopToken();
    const row: DesktopTokenTable = {
      id,
      user_id: input.userId,
      device_id: input.deviceId,
      account_id: input.accountId,
      protocol: input.protocol,
      token_sealed: this.vault.encrypt(scopeOf(id), token),
      created_at: (input.now ?? new Date()).toISOString(),
      expires_at: input.expiresAt.toISOString(),
      used_at: null,
      used_from: null,
    };
    await this.x.insertInto('desktop_tokens').values(row).execute();
    return { ...tokenFromRow(row), token };
  }

  async get(id: string): Promise<DesktopToken | undefined> {
    const row = await this.x.selectFrom('desktop_tokens').selectAll().where('id', '=', id).executeTakeFirst();
    return row && tokenFromRow(row);
  }

  /** The protocol's unused, unexpired tokens, decrypted: what a challenge's answer is matched against. */
  async live(protocol: DesktopTokenProtocol, now = new Date()): Promise<RevealedDesktopToken[]> {
    const rows = await this.x
      .selectFrom('desktop_tokens')
      .selectAll()
      .where('protocol', '=', protocol)
      .where('used_at', 'is', null)
      .where('expires_at', '>', now.toISOString())
      .execute();
    return rows.map((r) => this.reveal(r));
  }

  /**
   * The protocol's tokens that can no longer be used (used, or expired) and were issued
   * since `since`, decrypted: only to tell a refused user why their token was refused.
   */
  async spent(protocol: DesktopTokenProtocol, since: Date, now = new Date()): Promise<RevealedDesktopToken[]> {
    const at = now.toISOString();
    const rows = await this.x
      .selectFrom('desktop_tokens')
      .selectAll()
      .where('protocol', '=', protocol)
      .where('created_at', '>=', since.toISOString())
      .where((eb) => eb.or([eb('used_at', 'is not', null), eb('expires_at', '<=', at)]))
      .execute();
    return rows.map((r) => this.reveal(r));
  }

  /**
   * Uses the token: one conditional update (this protocol, unused, unexpired), true only
   * for the one caller that took it.
   */
  async consume(protocol: DesktopTokenProtocol, id: string, address: string, now = new Date()): Promise<boolean> {
    const at = now.toISOString();
    const r = await this.x
      .updateTable('desktop_tokens')
      .set({ used_at: at, used_from: address.slice(0, 100) })
      .where('id', '=', id)
      .where('protocol', '=', protocol)
      .where('used_at', 'is', null)
      .where('expires_at', '>', at)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Deletes tokens that expired before `before`; the number deleted. */
  async purgeExpired(before = new Date()): Promise<number> {
    const r = await this.x.deleteFrom('desktop_tokens').where('expires_at', '<', before.toISOString()).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  private reveal(r: DesktopTokenTable): RevealedDesktopToken {
    return { ...tokenFromRow(r), token: this.vault.decrypt(scopeOf(r.id), r.token_sealed) };
  }
}
