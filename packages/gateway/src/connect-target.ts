import ssh2 from 'ssh2';
import type { ClientErrorExtensions } from 'ssh2';
import type { AuthorizedTarget, GatewayUser, SessionKex } from './broker.js';
import { agentLinkClosedReason } from './agent-links.js';
import { batchWrites } from './batch-writes.js';
import { whereOf } from './dial.js';
import type { SshGatewayOptions } from './gateway.js';
import { forgetKeyAdvice } from './host-key-advice.js';
import { fingerprintOf, keyTypeOf } from './host-key.js';

/** The device's SSH connection, and the gateway and segment it went through. */
export type TargetConnection =
  | {
      ok: true;
      client: ssh2.Client;
      gateway: string;
      segment: string | null;
      /** The SSH key exchange of each leg: the device's set here, the user's by the connection that asked. */
      kex: SessionKex;
      /** Why the connection was closed under the session, when the gateway knows (an agent's link was lost). */
      closedReason(): string | undefined;
    }
  | { ok: false; reason: string; gateway: string; segment: string | null };

/**
 * Connects a signed-in, authorized user's connection to the device: the dialer's TCP path
 * (direct, or relayed by the gateway the selection chose), then SSH with the vaulted
 * credential, the device's host key checked by trust on first use. A failure is a value
 * with the reason the user is told, and is reported to the broker (a failed session row).
 */
export async function connectTarget(
  options: Pick<Required<SshGatewayOptions>, 'broker' | 'dial' | 'logger' | 'name' | 'targetTimeoutMs'>,
  user: GatewayUser,
  target: AuthorizedTarget,
  remoteAddress: string,
): Promise<TargetConnection> {
  const { broker, targetTimeoutMs } = options;
  const where = whereOf(target);
  const started = performance.now();
  let hostKeyProblem: string | undefined;
  let via: { gateway: string; segment: string | null } = { gateway: options.name, segment: target.segment };
  const outcome = await (async (): Promise<TargetConnection> => {
    const dialed = await options.dial(target, { user, remoteAddress });
    via = { gateway: dialed.gateway, segment: dialed.segment };
    if (!dialed.ok) return dialed;
    const { socket } = dialed;
    socket.setNoDelay?.(true);
    batchWrites(socket);
    const released = await broker.fetchCredential(user, target);
    if (!released.allow) {
      socket.destroy();
      return { ok: false, reason: released.message, ...via };
    }
    const { credential } = released;
    const client = new ssh2.Client();
    let deviceKex: string | null = null;
    client.once('handshake', (negotiated) => (deviceKex = negotiated.kex));
    return new Promise<TargetConnection>((resolve) => {
      client.on('error', (error: Error & ClientErrorExtensions) => {
        resolve({ ok: false, reason: hostKeyProblem ?? clientProblem(error, target), ...via });
        client.end();
      });
      client.once('ready', () =>
        resolve({ ok: true, client, ...via, kex: { user: null, device: deviceKex }, closedReason: () => agentLinkClosedReason(socket) }),
      );
      client.once('close', () =>
        resolve({ ok: false, reason: hostKeyProblem ?? `The connection to ${where} closed during sign-in.`, ...via }),
      );
      client.on('keyboard-interactive', (_name, _instructions, _lang, prompts, finish) =>
        finish(prompts.map(() => credential.password ?? '')),
      );
      client.connect({
        sock: socket,
        username: credential.username,
        ...(credential.password !== undefined ? { password: credential.password } : {}),
        ...(credential.privateKey !== undefined ? { privateKey: credential.privateKey } : {}),
        ...(credential.passphrase !== undefined ? { passphrase: credential.passphrase } : {}),
        tryKeyboard: credential.password !== undefined,
        readyTimeout: targetTimeoutMs,
        hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
          const presented = { algorithm: keyTypeOf(key), fingerprint: fingerprintOf(key) };
          broker.checkHostKey(target, presented).then(
            (check) => {
              if (!check.ok) {
                hostKeyProblem =
                  `The host key of ${target.deviceName} has changed: Gatehouse trusts ${check.stored.algorithm} ${check.stored.fingerprint}, ` +
                  `the device presented ${presented.algorithm} ${presented.fingerprint}. This can be an attack. ` +
                  `An administrator must check the device and, if the new key is right, forget the stored one: ` +
                  `${forgetKeyAdvice(target, 'ssh')}; the next connection then trusts the new one.`;
              }
              verify(check.ok);
            },
            (error: unknown) => {
              options.logger.error({ err: error, deviceId: target.deviceId }, 'host key check failed');
              hostKeyProblem = 'Gatehouse could not check the host key of the device. Try again, or ask an administrator.';
              verify(false);
            },
          );
        },
      });
    });
  })().catch((error: unknown): TargetConnection => {
    options.logger.error({ err: error, deviceId: target.deviceId }, 'target connection failed with an error');
    return { ok: false, reason: 'Gatehouse could not connect to the device because of an internal error. Try again.', ...via };
  });
  const ms = Math.round(performance.now() - started);
  if (outcome.ok) {
    options.logger.info({ deviceId: target.deviceId, gateway: outcome.gateway, ms }, 'connected to the device');
  } else {
    await broker
      .connectionFailed({
        user,
        target,
        gateway: outcome.gateway,
        segment: outcome.segment,
        remoteAddress,
        at: new Date().toISOString(),
        reason: outcome.reason,
      })
      .catch((error: unknown) => options.logger.error({ err: error }, 'could not record a failed connection'));
  }
  return outcome;
}

function clientProblem(error: Error & ClientErrorExtensions, target: AuthorizedTarget): string {
  if (error.level === 'client-authentication') {
    return `${target.deviceName} refused the vaulted credential of account ${target.accountUsername}. Ask an administrator to check the account's password or key.`;
  }
  if (error.level === 'client-timeout') return `${target.deviceName} did not finish the SSH handshake in time.`;
  return `The SSH connection to ${target.deviceName} failed (${error.level ?? 'protocol'}): ${error.message}`;
}
