import { timingSafeEqual } from 'node:crypto';
import { GatehouseError, type Visibility } from '@gatehouse/core';
import {
  SignInThrottle,
  type Account,
  type DesktopToken,
  type DesktopTokenProtocol,
  type DesktopTokens,
  type Device,
  type Inventory,
} from '@gatehouse/db';
import {
  vncAuthResponse,
  type AuthorizationResult,
  type DesktopBroker,
  type DesktopRequest,
  type GatewayUser,
  type VncTokenRedemption,
} from '@gatehouse/gateway';
import type { AuditDraft } from '../services.js';
import { sourceOf, throttleRules } from '../sign-in.js';
import { ServerAccessBroker, usableAccounts, type Resolved } from './broker.js';

/** How messages name each desktop protocol. */
export const DESKTOP_PROTOCOL_NAMES = { vnc: 'VNC', rdp: 'RDP' } as const;

/** The device and account a desktop opens on, or why not (`reason` for the audit, `message` for the user). */
export type DesktopChoice =
  | { ok: true; device: Device; account: Account }
  | {
      ok: false;
      reason: 'unknown device' | 'no grant for the device' | 'protocol not listed' | 'unknown account' | 'account not chosen';
      message: string;
    };

/**
 * The device (by id) and account a desktop protocol opens on, for a user who may see
 * `visibility`: the one choice the token route and `authorizeDesktop` share. A device
 * the user may use no account of answers as one that does not exist, as in the API.
 */
export async function chooseDesktopTarget(inventory: Inventory, visibility: Visibility, request: DesktopRequest): Promise<DesktopChoice> {
  const device = await unlessNotFound(inventory.devices.get(request.deviceId));
  const unknown = {
    ok: false,
    reason: 'unknown device',
    message: `There is no device ${JSON.stringify(request.deviceId)} you may use. Check the id (./gatehouse devices list), or ask an administrator for access.`,
  } as const;
  if (!device) return unknown;
  const accounts = await usableAccounts(inventory, visibility, device);
  if (accounts.length === 0) return { ...unknown, reason: 'no grant for the device' };
  if (!device.protocols.includes(request.protocol)) {
    const name = DESKTOP_PROTOCOL_NAMES[request.protocol];
    return {
      ok: false,
      reason: 'protocol not listed',
      message: `${device.name} does not list ${name} among its protocols. An administrator can add ${request.protocol} to the device's protocols.`,
    };
  }
  const names = accounts.map((a) => a.username).join(', ');
  if (request.accountId !== null) {
    const account = accounts.find((a) => a.id === request.accountId);
    if (account) return { ok: true, device, account };
    return {
      ok: false,
      reason: 'unknown account',
      message: `${device.name} has no account ${JSON.stringify(request.accountId)} you may use. Yours: ${names}.`,
    };
  }
  if (accounts.length === 1) return { ok: true, device, account: accounts[0] as Account };
  return { ok: false, reason: 'account not chosen', message: `${device.name} has several accounts you may use: choose one (${names}).` };
}

/** What `lookup` finds, or undefined when it names nothing (any other failure still throws). */
async function unlessNotFound<T>(lookup: Promise<T>): Promise<T | undefined> {
  try {
    return await lookup;
  } catch (error) {
    if (error instanceof GatehouseError && error.code === 'NOT_FOUND') return undefined;
    throw error;
  }
}

/** How far back a refused answer is matched against used and expired tokens, to say which it was. */
const SPENT_LOOKBACK_MS = 60 * 60_000;
const NEW_TOKEN = 'Get a new one: ./gatehouse vnc <device> (or Connect in the console).';

const answers = (proof: { challenge: Buffer; response: Buffer }, token: string) => {
  const expected = vncAuthResponse(proof.challenge, token);
  return expected.length === proof.response.length && timingSafeEqual(expected, proof.response);
};

const utcTime = (iso: string) => `${iso.slice(11, 16)} UTC`;

/**
 * The built-in gateway's broker with the desktop parts: one-time VNC tokens, and desktops
 * authorized by device id. The decisions are `ServerAccessBroker`'s (visibility, account,
 * maintenance window, segment); a desktop's port is its protocol's and never goes through
 * a host agent.
 */
export class ServerDesktopBroker extends ServerAccessBroker implements DesktopBroker {
  async redeemVncToken(proof: { challenge: Buffer; response: Buffer }, remoteAddress: string): Promise<VncTokenRedemption> {
    const { desktopTokens } = this.services;
    const { throttled, refuse, redeemed } = this.tokenRedemption('vnc', remoteAddress, 'VNC passwords');
    const stop = await throttled();
    if (stop) return stop;
    const now = new Date();
    const live = (await desktopTokens.live('vnc', now)).find((t) => answers(proof, t.token));
    if (!live) {
      const spent = (await desktopTokens.spent('vnc', new Date(now.getTime() - SPENT_LOOKBACK_MS), now)).find((t) =>
        answers(proof, t.token),
      );
      if (!spent) return refuse('no live token matches', `The one-time password is wrong, used or expired. ${NEW_TOKEN}`);
      return spent.usedAt !== null
        ? refuse('already used', `This one-time password was used already: each is good once. ${NEW_TOKEN}`, spent)
        : refuse('expired', `This one-time password expired at ${utcTime(spent.expiresAt)}. ${NEW_TOKEN}`, spent);
    }
    const answer = await redeemed(live, async (tokens) => (await tokens.consume('vnc', live.id, remoteAddress, now)) && {});
    if (answer === 'taken') return refuse('already used', `This one-time password was used already: each is good once. ${NEW_TOKEN}`, live);
    if (!answer.ok) return answer;
    return { ok: true, user: answer.user, tokenId: live.id, deviceId: live.deviceId, accountId: live.accountId };
  }

  /**
   * One redemption of a desktop token of `protocol` from `remoteAddress`: the address's
   * throttle of wrong tokens (`wrong` names them for the user), and the
   * `desktop.token_redeemed` event of its answer: with the token's user when a token was
   * found, else bounded per address as other refusals before a sign-in. `redeemed` takes
   * the token and audits it in one transaction, so a used token always has its event.
   */
  protected tokenRedemption(protocol: DesktopTokenProtocol, remoteAddress: string, wrong: string) {
    const throttle = new SignInThrottle(this.services.db);
    const counter = { username: `:${protocol}-token`, source: sourceOf(remoteAddress) };
    const claimThrottle = () => throttle.claim(counter, throttleRules(this.services.config).nameFromAddress);
    const base = { action: 'desktop.token_redeemed', outcome: 'failure', ip: remoteAddress } as const;
    /** The event of an answer about a token that was found, with its user's name (when still there). */
    const tokenEvent = (token: DesktopToken, actorName: string | undefined, details: Record<string, unknown>): AuditDraft => ({
      ...base,
      actorId: token.userId,
      actorName: actorName ?? 'unknown',
      targetType: 'device',
      targetId: token.deviceId,
      details: { gateway: this.entry, protocol, desktopTokenId: token.id, accountId: token.accountId, ...details },
    });
    const refuse = async (reason: string, message: string, token?: DesktopToken): Promise<{ ok: false; message: string }> => {
      await claimThrottle();
      if (token) {
        const user = await unlessNotFound(this.services.users.row(token.userId));
        await this.services.audit(null, tokenEvent(token, user?.username, { reason }));
      } else {
        await this.services.refusals.recordFrom(remoteAddress, {
          ...base,
          actorId: null,
          actorName: 'anonymous',
          details: { gateway: this.entry, protocol, reason },
        });
      }
      return { ok: false, message };
    };
    const throttled = async (): Promise<{ ok: false; message: string } | undefined> => {
      const until = await throttle.throttledUntil(counter);
      if (until === null) return undefined;
      await this.services.refusals.recordFrom(remoteAddress, {
        ...base,
        actorId: null,
        actorName: 'anonymous',
        details: { gateway: this.entry, protocol, reason: 'throttled', until },
      });
      return { ok: false, message: `Too many wrong ${wrong} from your address: wait until ${utcTime(until)}, then try again.` };
    };
    /**
     * Takes `token` and audits the answer in one transaction: `claim` (the token's
     * conditional update, on the transaction's repository) answers the success event's
     * details, or false when the token is not the caller's to take ('taken': nothing is
     * written, the caller refuses). A token whose user is disabled or gone stays taken,
     * with its refusal.
     */
    const redeemed = async (
      token: DesktopToken,
      claim: (tokens: DesktopTokens) => Promise<Record<string, unknown> | false>,
    ): Promise<{ ok: true; user: GatewayUser } | { ok: false; message: string } | 'taken'> => {
      const answer = await this.services.withAudit(null, async (tx, audit) => {
        const details = await claim(tx.desktopTokens);
        if (!details) return 'taken';
        const user = await unlessNotFound(tx.users.row(token.userId));
        if (!user || user.disabled === 1) {
          audit(tokenEvent(token, user?.username, { reason: 'disabled' }));
          return 'disabled';
        }
        audit({ ...tokenEvent(token, user.username, details), outcome: 'success' });
        return { id: user.id, username: user.username };
      });
      if (answer === 'taken') return answer;
      if (answer !== 'disabled') return { ok: true, user: answer };
      await claimThrottle();
      return { ok: false, message: 'Your Gatehouse user is disabled or gone. Ask an administrator.' };
    };
    return { throttled, refuse, redeemed };
  }

  async authorizeDesktop(user: GatewayUser, request: DesktopRequest, socketAddress: string): Promise<AuthorizationResult> {
    const allowed = await this.connectingVisibility(user);
    let resolved: Resolved = allowed.ok ? { ok: false, reason: '', message: '' } : allowed;
    if (allowed.ok) {
      const choice = await chooseDesktopTarget(this.services.inventory, allowed.visibility, request);
      resolved = choice.ok ? await this.resolvedTarget(user, choice.device, choice.account, request.protocol) : choice;
    }
    if (resolved.ok) return { allow: true, target: resolved.target };
    const asked = {
      deviceId: request.deviceId.slice(0, 100),
      accountId: request.accountId?.slice(0, 100) ?? null,
      protocol: request.protocol,
    };
    await this.auditDenial(user, user.browserAddress ?? socketAddress, asked, resolved.reason);
    return { allow: false, message: resolved.message };
  }
}
