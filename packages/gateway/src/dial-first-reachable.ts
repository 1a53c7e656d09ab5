import type { Duplex } from 'node:stream';
import type { AuthorizedTarget } from './broker.js';
import { connectSocket, describeSocketError, whereOf } from './dial.js';
import type { LinkIdentity } from './identity.js';
import { GatewayLinkError, openRelay, type GatewayEndpoint } from './management-client.js';

/** A gateway to try: this process itself (no `relay`), or a remote gateway asked over its management endpoint. */
export interface DialCandidate {
  name: string;
  relay?: GatewayEndpoint | undefined;
}

/** One candidate that did not reach the device, and why (as the audit log keeps it). */
export interface FailedTry {
  gateway: string;
  reason: string;
}

export type FailoverOutcome =
  | { ok: true; socket: Duplex & { setNoDelay?(noDelay?: boolean): unknown }; gateway: string; failedOver: FailedTry[] }
  | { ok: false; reason: string; failedOver: FailedTry[] };

export interface FailoverOptions<C extends DialCandidate> {
  /** The key this process presents to remote gateways; asked for only when one is tried. */
  identity: () => Promise<LinkIdentity>;
  /** How long the device (and a gateway relaying to it) may take to accept. */
  timeoutMs: number;
  /**
   * A try failed, awaited before the next one. `linkError` is set when the remote gateway
   * itself failed (it did not answer, or refused the caller), not the device behind it:
   * the caller records that (a circuit breaker), so the very next connection skips it.
   */
  onFailedTry?: (candidate: C, failed: FailedTry, linkError: GatewayLinkError | undefined) => Promise<void>;
}

/**
 * Opens a TCP path to the device through the first candidate that reaches it, in the
 * order given: directly for this process, through a relay for a remote gateway. Every
 * failed try is kept in `failedOver`; when none reaches the device, `reason` says, for the
 * user, what each answered.
 */
export async function dialFirstReachable<C extends DialCandidate>(
  target: AuthorizedTarget,
  candidates: readonly C[],
  options: FailoverOptions<C>,
): Promise<FailoverOutcome> {
  const { timeoutMs } = options;
  const where = whereOf(target);
  const failedOver: FailedTry[] = [];
  /** Each try as the user reads it: the gateway named once. */
  const told: string[] = [];
  for (const candidate of candidates) {
    try {
      const socket = candidate.relay
        ? await openRelay(candidate.relay, await options.identity(), target, timeoutMs)
        : await connectSocket(target.host, target.port, timeoutMs);
      return { ok: true, socket, gateway: candidate.name, failedOver };
    } catch (error) {
      const linkError = error instanceof GatewayLinkError ? error : undefined;
      let reason: string;
      if (linkError) {
        // Its message names the gateway already ("Gateway a1 did not answer …").
        reason = linkError.message;
        told.push(reason);
      } else {
        reason = describeSocketError(error as NodeJS.ErrnoException, target, timeoutMs);
        told.push(`${candidate.name}: ${reason}`);
      }
      const failed = { gateway: candidate.name, reason };
      failedOver.push(failed);
      await options.onFailedTry?.(candidate, failed, linkError);
    }
  }
  const scope = target.segment === null ? '' : ` of segment ${target.segment}`;
  const reason = told.length === 1 ? (told[0] as string) : `No gateway${scope} could reach ${where}. ${told.join(' ')}`;
  return { ok: false, reason, failedOver };
}
