import { idParams, responses, vncToken, vncTokenRequest } from '@gatehouse/api';
import { ConflictError, GatehouseError, NotFoundError } from '@gatehouse/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { connectors } from '../../access.js';
import { caller } from '../../auth.js';
import { chooseDesktopTarget, type DesktopChoice } from '../../gateway/desktop-broker.js';
import type { GatewayService } from '../../gateway/service.js';
import type { Services } from '../../services.js';

/** Expired tokens are kept a day (redemptions of one within the hour are told it expired), then deleted. */
const KEEP_EXPIRED_MS = 86_400_000;

/** The API's answer for a device or account that cannot be chosen, as the rest of the API answers it. */
export function choiceError(
  choice: Extract<DesktopChoice, { ok: false }>,
  deviceId: string,
  accountId: string | undefined,
): GatehouseError {
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
      // Per user (the access hook has run): one who scripts tokens cannot fill the table.
      config: { ...connectors, rateLimit: { max: 10, timeWindow: '1 minute', keyGenerator: (req) => req.auth?.user.id ?? req.ip } },
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
      const auth = caller(req);
      const { id } = req.params;
      const { accountId, minutes } = req.body;
      const choice = await chooseDesktopTarget(services.inventory, auth.visibility, {
        deviceId: id,
        accountId: accountId ?? null,
        protocol: 'vnc',
      });
      if (!choice.ok) throw choiceError(choice, id, accountId);
      const address = gateways.vncAddress;
      if (address === null) {
        throw new ConflictError(
          "The built-in gateway's VNC listener is off (GATEHOUSE_VNC_PORT=0, or the built-in gateway is off), so a VNC viewer has nowhere to connect. " +
            'Open the desktop in the console, or ask an administrator to turn the listener on (--vnc-port).',
        );
      }
      const { device, account } = choice;
      const now = new Date();
      await services.desktopTokens.purgeExpired(new Date(now.getTime() - KEEP_EXPIRED_MS));
      const issued = await services.withAudit(req, async (tx, audit) => {
        const token = await tx.desktopTokens.issue({
          userId: auth.user.id,
          deviceId: device.id,
          accountId: account.id,
          protocol: 'vnc',
          expiresAt: new Date(now.getTime() + minutes * 60_000),
          now,
        });
        // desktopTokenId: `tokenId` is the API token the request came with.
        audit({
          action: 'desktop.token_issued',
          outcome: 'success',
          targetType: 'device',
          targetId: device.id,
          details: {
            desktopTokenId: token.id,
            protocol: 'vnc',
            device: device.name,
            account: account.username,
            expiresAt: token.expiresAt,
          },
        });
        return token;
      });
      return reply.status(201).send({
        id: issued.id,
        token: issued.token,
        expiresAt: issued.expiresAt,
        address,
        deviceId: device.id,
        deviceName: device.name,
        accountId: account.id,
        accountUsername: account.username,
      });
    },
  );
}
