import { idParams, responses, vncToken, vncTokenRequest } from '@gatehouse/api';
import { ConflictError, GatehouseError, NotFoundError } from '@gatehouse/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { DesktopTokenProtocol } from '@gatehouse/db';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { connectors } from '../../access.js';
import { caller } from '../../auth.js';
import { chooseDesktopTarget, type DesktopChoice } from '../../gateway/desktop-broker.js';
import type { GatewayService } from '../../gateway/service.js';
import type { Services } from '../../services.js';

/** Expired tokens are kept a day (redemptions of one within the hour are told it expired), then deleted. */
const KEEP_EXPIRED_MS = 86_400_000;

/** The API's answer for a device or account that cannot be chosen, as the rest of the API answers it. */
function choiceError(choice: Extract<DesktopChoice, { ok: false }>, deviceId: string, accountId: string | undefined): GatehouseError {
  switch (choice.reason) {
    case 'unknown device':
    case 'no grant for the device':
      return new NotFoundError('Device', deviceId);
    case 'unknown account':
      return new NotFoundError('Account', accountId ?? '');
    case 'protocol not listed':
      return new ConflictError(choice.message);
    case 'account not chosen':
      return new GatehouseError('VALIDATION_FAILED', choice.message, [{ path: 'accountId', message: choice.message }]);
  }
}

/** Desktops: one-time tokens for native VNC viewers on the built-in gateway's VNC listener. */
export function desktopRoutes(app: FastifyInstance, services: Services, gateways: GatewayService) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['desktops'];

  r.post(
    '/devices/:id/vnc-token',
    {
      config: { ...connectors, rateLimit: tokenRateLimit },
      schema: {
        tags,
        summary:
          "A one-time VNC password for the device: a native viewer connects to the built-in gateway's VNC listener with it, once, within minutes. The answer holds the token, once",
        params: idParams,
        body: vncTokenRequest,
        response: responses({ 201: vncToken }),
      },
    },
    async (req, reply) => {
      const off =
        "The built-in gateway's VNC listener is off (GATEHOUSE_VNC_PORT=0, or the built-in gateway is off), so a VNC viewer has nowhere to connect. " +
        'Open the desktop in the console, or ask an administrator to turn the listener on (--vnc-port).';
      const asked = { deviceId: req.params.id, ...req.body };
      const { issued, answer } = await issueDesktopToken(req, services, 'vnc', asked, {
        address: gateways.vncAddress,
        off,
      });
      return reply.status(201).send({ ...answer, token: issued.token });
    },
  );
}

/**
 * A new desktop token of `protocol` for the device in the request and the account the
 * caller may use there (or names), for the request's minutes, audited without the token
 * (`desktop.token_issued`). Throws as the API answers: 404 for a device or account the
 * caller may not use, 409 for a device without the protocol or a listener that is off
 * (`listener.address` null: the user is told `listener.off`).
 */
export async function issueDesktopToken(
  req: FastifyRequest,
  services: Services,
  protocol: DesktopTokenProtocol,
  asked: { deviceId: string; accountId?: string | undefined; minutes: number },
  listener: { address: string | null; off: string },
) {
  const auth = caller(req);
  const { deviceId, accountId, minutes } = asked;
  const choice = await chooseDesktopTarget(services.inventory, auth.visibility, { deviceId, accountId: accountId ?? null, protocol });
  if (!choice.ok) throw choiceError(choice, deviceId, accountId);
  const { address } = listener;
  if (address === null) throw new ConflictError(listener.off);
  const { device, account } = choice;
  const now = new Date();
  await services.desktopTokens.purgeExpired(new Date(now.getTime() - KEEP_EXPIRED_MS));
  const issued = await services.withAudit(req, async (tx, audit) => {
    const token = await tx.desktopTokens.issue({
      userId: auth.user.id,
      deviceId: device.id,
      accountId: account.id,
      protocol,
      expiresAt: new Date(now.getTime() + minutes * 60_000),
      now,
    });
    // desktopTokenId: `tokenId` is the API token the request came with.
    audit({
      action: 'desktop.token_issued',
      outcome: 'success',
      targetType: 'device',
      targetId: device.id,
      details: { desktopTokenId: token.id, protocol, device: device.name, account: account.username, expiresAt: token.expiresAt },
    });
    return token;
  });
  // What every desktop token's answer says besides the secret.
  const answer = {
    id: issued.id,
    expiresAt: issued.expiresAt,
    address,
    deviceId: device.id,
    deviceName: device.name,
    accountId: account.id,
    accountUsername: account.username,
  };
  return { issued, answer };
}

/** Per user (the access hook has run): one who scripts tokens cannot fill the table. */
export const tokenRateLimit = { max: 10, timeWindow: '1 minute', keyGenerator: (req: FastifyRequest) => req.auth?.user.id ?? req.ip };
