import { GatehouseError } from '@gatehouse/core';
import {
  generateWebTerminalKey,
  openGatewayExec,
  GatewayConnectError,
  type GatewayExecClient,
  type GatewayExecOptions,
  type GatewayExecResult,
  type RunbookGatewayContext,
} from '@gatehouse/gateway';
import type { BuiltInGatewayTarget } from '../terminal.js';

/** How long a runbook connection's one-time key may be used to sign in. */
const KEY_LIFETIME_MS = 30_000;
const MAX_PENDING_KEYS = 1000;

export type ExecResult = GatewayExecResult;
export type ExecOptions = GatewayExecOptions;

/** A runbook connection could not be opened or was refused by the gateway; the message is the gateway's text. */
export class RunbookConnectError extends GatehouseError {
  constructor(message: string) {
    super('BAD_GATEWAY', message);
    this.name = 'RunbookConnectError';
  }
}

/** Commands on one device as one account, each a recorded gateway session. */
export interface RunbookConnection {
  /** Runs `command`; a gateway refusal or a lost connection throws RunbookConnectError. */
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  close(): void;
}

/** Who a pending one-time key signs in, and for what. */
export interface RunbookAdmission {
  userId: string;
  username: string;
  context: RunbookGatewayContext;
}

interface PendingKey extends RunbookAdmission {
  expires: number;
}

/** An `account_credentials` row opened by the vault: what the gateway signs in with when a runbook names it. */
export interface RevealedCredential {
  accountId: string;
  password: string | null;
  privateKey: string | null;
  passphrase: string | null;
}

/**
 * The runbook engine's way into the server's own built-in gateway: like the browser
 * terminal it signs in with a key only this process holds, but a fresh Ed25519 key per
 * connection, admitted once, within 30 s, for the user who started the run. The gateway
 * then does what it does for any session: policy, maintenance windows, gateway choice,
 * host agent or not, credential injection, recording and audit.
 */
export class RunbookGateway {
  gateway: BuiltInGatewayTarget | null = null;
  private readonly pending = new Map<string, PendingKey>();

  constructor(
    /** Opens a stored pending or previous credential by its id (undefined: no such row). */
    readonly revealCredential: (credentialId: string) => Promise<RevealedCredential | undefined>,
  ) {}

  /** The built-in gateway's sign-in asks this first: a runbook key still pending, or nothing. */
  admit(fingerprint: string, username: string, consume: boolean): RunbookAdmission | undefined {
    const now = Date.now();
    for (const [k, p] of this.pending) if (p.expires < now) this.pending.delete(k);
    const found = this.pending.get(fingerprint);
    if (!found || found.username !== username) return undefined;
    if (consume) this.pending.delete(fingerprint);
    return { userId: found.userId, username: found.username, context: found.context };
  }

  /** Whether `fingerprint` is a runbook key this process made and has not yet seen used (or expire). */
  isOwnKey(fingerprint: string): boolean {
    return this.pending.has(fingerprint);
  }

  /**
   * Opens a connection to `target` (`<project>/<device>:<account>`) as `user`, for `context`.
   * Throws RunbookConnectError with the gateway's reason when it cannot.
   */
  async open(user: { id: string; username: string }, target: string, context: RunbookGatewayContext): Promise<RunbookConnection> {
    const gateway = this.gateway;
    if (!gateway) {
      throw new RunbookConnectError('Runbooks run through the built-in gateway, which is off (gatewayPort 0). Turn it on to run runbooks.');
    }
    const key = generateWebTerminalKey();
    if (this.pending.size >= MAX_PENDING_KEYS) this.pending.delete(this.pending.keys().next().value as string);
    this.pending.set(key.fingerprint, { userId: user.id, username: user.username, context, expires: Date.now() + KEY_LIFETIME_MS });
    const host = gateway.host === '0.0.0.0' || gateway.host === '::' ? '127.0.0.1' : gateway.host;
    let client: GatewayExecClient;
    try {
      client = await openGatewayExec({
        host,
        port: gateway.port,
        hostKeyFingerprint: gateway.hostKeyFingerprint,
        username: `${user.username}:${target}`,
        key,
      });
    } catch (error) {
      throw new RunbookConnectError(error instanceof GatewayConnectError ? error.message : 'The built-in gateway could not be reached.');
    } finally {
      this.pending.delete(key.fingerprint);
    }
    return new GatewayRunbookConnection(client);
  }
}

/** The gateway prefixes what it tells a user on a channel with this, exit status 255. */
const GATEWAY_SAYS = /^gatehouse: (.+?)\r?\n?$/s;

class GatewayRunbookConnection implements RunbookConnection {
  constructor(private readonly client: GatewayExecClient) {}

  async exec(command: string, options?: ExecOptions): Promise<ExecResult> {
    if (!this.client.open) throw new RunbookConnectError('The connection through the gateway was lost.');
    let result: ExecResult;
    try {
      result = await this.client.exec(command, options);
    } catch (error) {
      throw new RunbookConnectError(error instanceof GatewayConnectError ? error.message : 'The connection through the gateway was lost.');
    }
    // The gateway's own refusal (no device connection, a maintenance window needed): not the command's.
    const said = result.exitCode === 255 && result.stdout === '' ? GATEWAY_SAYS.exec(result.stderr) : null;
    if (said?.[1]) throw new RunbookConnectError(said[1].trim());
    if (result.exitCode === null && result.signal === null && !result.timedOut && !this.client.open) {
      throw new RunbookConnectError('The connection through the gateway was lost during the command.');
    }
    return result;
  }

  close(): void {
    this.client.close();
  }
}
