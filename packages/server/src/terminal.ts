import { canSeeDevice, canUseAccount, GatehouseError, NotFoundError } from '@gatehouse/core';
import {
  generateWebTerminalKey,
  openGatewayShell,
  openGatewaySftp,
  type GatewayShell,
  type GatewaySftp,
  type WebTerminalKey,
} from '@gatehouse/gateway';
import type { Device } from '@gatehouse/db';
import type { FastifyRequest } from 'fastify';
import type { AuthContext, Services } from './services.js';

/** How long a user let in by the browser terminal has to sign in to the gateway. */
const ALLOWANCE_MS = 30_000;
const MAX_ALLOWANCES = 1000;

interface Allowance {
  userId: string;
  username: string;
  ip: string;
  expires: number;
}

/** Where the built-in gateway listens, once it does. */
export interface BuiltInGatewayTarget {
  host: string;
  port: number;
  hostKeyFingerprint: string;
}

/**
 * The browser terminal: a WebSocket on the API's port (GET /api/v1/terminal) that opens an
 * SSH shell through the server's own built-in gateway, signed in with a key only this
 * process holds and only for the user of that web session, just let in. Policy, gateway
 * choice, credential injection, recording and audit are therefore exactly those of a
 * native `ssh` (the same gateway does them), and so are its refusals.
 */
export class WebTerminal {
  readonly key: WebTerminalKey = generateWebTerminalKey();
  gateway: BuiltInGatewayTarget | null = null;
  private readonly allowances: Allowance[] = [];

  /** The built-in gateway's sign-in asks this for its own key: a user just let in, or nobody. */
  admit(fingerprint: string, username: string, consume: boolean): Allowance | undefined {
    if (!this.isOwnKey(fingerprint)) return undefined;
    const now = Date.now();
    for (let i = this.allowances.length - 1; i >= 0; i--) if ((this.allowances[i] as Allowance).expires < now) this.allowances.splice(i, 1);
    const at = this.allowances.findIndex((a) => a.username === username);
    if (at < 0) return undefined;
    const found = this.allowances[at] as Allowance;
    if (consume) this.allowances.splice(at, 1);
    return found;
  }

  isOwnKey(fingerprint: string): boolean {
    return fingerprint === this.key.fingerprint;
  }

  private allow(a: Omit<Allowance, 'expires'>): void {
    if (this.allowances.length >= MAX_ALLOWANCES) this.allowances.shift();
    this.allowances.push({ ...a, expires: Date.now() + ALLOWANCE_MS });
  }

  /** Where and how to sign in to the built-in gateway as this user, who is let in for the next 30 s. */
  private signIn(user: { id: string; username: string }, target: string, ip: string) {
    const gateway = this.gateway;
    if (!gateway) {
      throw new GatehouseError(
        'CONFLICT',
        'The browser terminal and file browser need the built-in gateway, which is off (gatewayPort 0). Connect with ssh or sftp through a remote gateway instead.',
      );
    }
    this.allow({ userId: user.id, username: user.username, ip });
    const host = gateway.host === '0.0.0.0' || gateway.host === '::' ? '127.0.0.1' : gateway.host;
    return {
      host,
      port: gateway.port,
      hostKeyFingerprint: gateway.hostKeyFingerprint,
      username: `${user.username}:${target}`,
      key: this.key,
    };
  }

  /** Opens the shell for `target` (`<device>[:<account>]` or `<project>/<device>[:<account>]`) as this user. */
  async open(user: { id: string; username: string }, target: string, ip: string, cols: number, rows: number): Promise<GatewayShell> {
    return openGatewayShell({ ...this.signIn(user, target, ip), cols, rows });
  }

  /** Opens an SFTP session for `target` as this user. */
  async files(user: { id: string; username: string }, target: string, ip: string): Promise<GatewaySftp> {
    return openGatewaySftp(this.signIn(user, target, ip));
  }
}

/**
 * The gateway user-name target of a device (and account) the caller may see:
 * `<project>/<device>[:<account>]`. What they may not see does not exist, as in the API.
 */
export async function gatewayTargetOf(
  services: Services,
  auth: AuthContext,
  deviceId: string,
  accountId?: string,
): Promise<{ target: string; device: Device }> {
  const device = await services.inventory.devices.get(deviceId);
  if (!canSeeDevice(auth.visibility, device).allow) throw new NotFoundError('Device', deviceId);
  const project = await services.inventory.projects.get(device.projectId);
  const account = accountId === undefined ? undefined : await services.inventory.accounts.get(accountId);
  // An account on another device, or one the caller may not use, answers as one that does
  // not exist: a different answer would tell which ids name accounts.
  const usable = (a: { id: string }) =>
    canUseAccount(auth.visibility, { projectId: device.projectId, deviceId: device.id, accountId: a.id });
  if (account && (account.deviceId !== device.id || !usable(account).allow)) throw new NotFoundError('Account', account.id);
  const target = `${addressable(project.name, 'project')}/${addressable(device.name, 'device')}${account ? `:${addressable(account.username, 'account')}` : ''}`;
  return { target, device };
}

/**
 * What the page is told when a terminal or file session cannot open: our own sentences
 * (the API's errors, the gateway client's), never an unexpected error's text, which is logged.
 */
export function openFailure(error: unknown, req: FastifyRequest): string {
  if (error instanceof GatehouseError) return error.message;
  req.log.error({ err: error }, 'browser terminal or file session failed');
  return `The session could not be opened (request ${req.id}).`;
}

/** A name as the gateway's user-name syntax can carry it, or why not. */
function addressable(name: string, what: string): string {
  if (name.includes(':') || name !== name.trim()) {
    throw new GatehouseError(
      'BAD_REQUEST',
      `The ${what} name "${name.slice(0, 60)}" has a ":" or surrounding spaces, which an SSH user name cannot carry. Rename it to connect.`,
    );
  }
  return name;
}
