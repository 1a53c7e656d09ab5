import { timingSafeEqual } from 'node:crypto';
import { GatehouseError } from '@gatehouse/core';
import { SignInThrottle, type DesktopToken, type RevealedDesktopToken } from '@gatehouse/db';
import type { RdpTicketRedemption, RdpTunnelBroker } from '@gatehouse/gateway';
import { sourceOf, throttleRules } from '../sign-in.js';
import { ServerDesktopBroker } from './desktop-broker.js';

/** The throttle counter of wrong tunnel tickets from one address (no user name has ':'). */
const RDP_TICKET_COUNTER = ':rdp-ticket';
const NEW_TICKET = 'Run gatehouse rdp <device> again for a new one.';

/** The ticket the CLI holds: the stored token's id and its secret. */
export function rdpTicketOf(token: RevealedDesktopToken): string {
  return `${token.id}.${token.token}`;
}

const sameSecret = (a: string, b: string) => {
  const [x, y] = [Buffer.from(a), Buffer.from(b)];
  return x.length === y.length && timingSafeEqual(x, y);
};

const utcTime = (iso: string) => `${iso.slice(11, 16)} UTC`;

/**
 * The built-in gateway's broker for the `gatehouse rdp` tunnel: the desktop decision of
 * `ServerDesktopBroker`, and tickets. A ticket is a desktop token (protocol `rdp`) used
 * again and again: its first connection marks it used from that address, and later ones
 * (an RDP client reconnects, or opens a second connection) must come from the same address
 * until it expires.
 */
export class ServerRdpTunnelBroker extends ServerDesktopBroker implements RdpTunnelBroker {
  async redeemRdpTicket(ticket: string, remoteAddress: string): Promise<RdpTicketRedemption> {
    const { desktopTokens, db, config } = this.services;
    const throttle = new SignInThrottle(db);
    const counter = { username: RDP_TICKET_COUNTER, source: sourceOf(remoteAddress) };
    const base = { action: 'desktop.token_redeemed', outcome: 'failure', ip: remoteAddress } as const;
    const refuse = async (reason: string, message: string, token?: DesktopToken): Promise<RdpTicketRedemption> => {
      await throttle.claim(counter, throttleRules(config).nameFromAddress);
      const details = { gateway: this.entry, protocol: 'rdp', reason };
      if (token) {
        const user = await this.userRow(token.userId);
        await this.services.audit(null, {
          ...base,
          actorId: token.userId,
          actorName: user?.username ?? 'unknown',
          targetType: 'device',
          targetId: token.deviceId,
          details: { ...details, tokenId: token.id, accountId: token.accountId },
        });
      } else {
        await this.services.refusals.recordFrom(remoteAddress, { ...base, actorId: null, actorName: 'anonymous', details });
      }
      return { ok: false, message };
    };

    const until = await throttle.throttledUntil(counter);
    if (until !== null) {
      await this.services.refusals.recordFrom(remoteAddress, {
        ...base,
        actorId: null,
        actorName: 'anonymous',
        details: { gateway: this.entry, protocol: 'rdp', reason: 'throttled', until },
      });
      return { ok: false, message: `Too many wrong tunnel tickets from your address: wait until ${utcTime(until)}, then try again.` };
    }
    const now = new Date();
    const dot = ticket.indexOf('.');
    const [id, secret] = [ticket.slice(0, dot), ticket.slice(dot + 1)];
    const stored = dot > 0 ? await desktopTokens.get(id) : undefined;
    const revealed =
      stored?.protocol === 'rdp'
        ? [...(await desktopTokens.live('rdp', now)), ...(await desktopTokens.spent('rdp', new Date(stored.createdAt), now))].find(
            (t) => t.id === id,
          )
        : undefined;
    if (!revealed || !sameSecret(revealed.token, secret))
      return refuse('no such ticket', `The tunnel ticket is not valid. ${NEW_TICKET}`, revealed);
    if (Date.parse(revealed.expiresAt) <= now.getTime())
      return refuse('expired', `The tunnel ticket expired at ${utcTime(revealed.expiresAt)}. ${NEW_TICKET}`, revealed);
    const address = remoteAddress.slice(0, 100);
    // The first connection claims the ticket for its address; of several at once one claims it.
    const first = revealed.usedAt === null && (await desktopTokens.consume('rdp', id, address, now));
    const usedFrom = first ? address : (await desktopTokens.get(id))?.usedFrom;
    if (usedFrom !== address)
      return refuse('used from another address', `The tunnel ticket is in use from another address. ${NEW_TICKET}`, revealed);
    const user = await this.userRow(revealed.userId);
    if (!user || user.disabled === 1) return refuse('disabled', 'Your Gatehouse user is disabled or gone. Ask an administrator.', revealed);
    await this.services.audit(null, {
      ...base,
      outcome: 'success',
      actorId: user.id,
      actorName: user.username,
      targetType: 'device',
      targetId: revealed.deviceId,
      details: { gateway: this.entry, protocol: 'rdp', tokenId: id, accountId: revealed.accountId, first },
    });
    return { ok: true, user: { id: user.id, username: user.username }, deviceId: revealed.deviceId, accountId: revealed.accountId };
  }

  /** The user a ticket was issued to; undefined once deleted. */
  private userRow(id: string) {
    return this.services.users.row(id).catch((error: unknown) => {
      if (error instanceof GatehouseError && error.code === 'NOT_FOUND') return undefined;
      throw error;
    });
  }
}
