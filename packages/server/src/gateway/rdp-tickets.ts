import { timingSafeEqual } from 'node:crypto';
import type { RevealedDesktopToken } from '@gatehouse/db';
import type { RdpTicketRedemption, RdpTunnelBroker } from '@gatehouse/gateway';
import { ServerDesktopBroker } from './desktop-broker.js';

const NEW_TICKET = 'Run ./gatehouse rdp <device> again for a new one.';

/** The ticket the CLI holds: the stored token's id and its secret. */
export function rdpTicketOf(token: RevealedDesktopToken): string {
  return `${token.id}.${token.token}`;
}

const sameSecret = (a: string, b: string) => {
  const [x, y] = [Buffer.from(a), Buffer.from(b)];
  return x.length === y.length && timingSafeEqual(x, y);
};

/**
 * The built-in gateway's broker for the `gatehouse rdp` tunnel: the desktop decision of
 * `ServerDesktopBroker`, and tickets. A ticket is a desktop token (protocol `rdp`) used
 * again and again: its first connection marks it used from that address, and later ones
 * (an RDP client reconnects, or opens a second connection) must come from the same address
 * until it expires.
 */
export class ServerRdpTunnelBroker extends ServerDesktopBroker implements RdpTunnelBroker {
  async redeemRdpTicket(ticket: string, remoteAddress: string): Promise<RdpTicketRedemption> {
    const { desktopTokens } = this.services;
    const { throttled, refuse, redeemed } = this.tokenRedemption('rdp', remoteAddress, 'tunnel tickets');
    const stop = await throttled();
    if (stop) return stop;
    const now = new Date();
    const dot = ticket.indexOf('.');
    const [id, secret] = [ticket.slice(0, dot), ticket.slice(dot + 1)];
    const stored = dot > 0 ? await desktopTokens.get(id) : undefined;
    // The secret is sealed: the live and spent lists are the repository's ways to open it.
    const revealed =
      stored?.protocol === 'rdp'
        ? [...(await desktopTokens.live('rdp', now)), ...(await desktopTokens.spent('rdp', new Date(stored.createdAt), now))].find(
            (t) => t.id === id,
          )
        : undefined;
    if (!revealed || !sameSecret(revealed.token, secret))
      return refuse('no such ticket', `The tunnel ticket is not valid. ${NEW_TICKET}`, revealed);
    if (Date.parse(revealed.expiresAt) <= now.getTime())
      return refuse('expired', `The tunnel ticket expired at ${revealed.expiresAt.slice(11, 16)} UTC. ${NEW_TICKET}`, revealed);
    const address = remoteAddress.slice(0, 100);
    const answer = await redeemed(revealed, async (tokens) => {
      // The first connection claims the ticket for its address; of several at once one claims it.
      const first = revealed.usedAt === null && (await tokens.consume('rdp', id, address, now));
      const usedFrom = first ? address : (await tokens.get(id))?.usedFrom;
      return usedFrom === address && { first };
    });
    if (answer === 'taken')
      return refuse('used from another address', `The tunnel ticket is in use from another address. ${NEW_TICKET}`, revealed);
    if (!answer.ok) return answer;
    return { ok: true, user: answer.user, deviceId: revealed.deviceId, accountId: revealed.accountId };
  }
}
