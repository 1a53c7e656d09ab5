import { idParams, rdpTunnel, rdpTunnelRequest, responses } from '@gatehouse/api';
import { ConflictError } from '@gatehouse/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { connectors } from '../../access.js';
import { caller } from '../../auth.js';
import { chooseDesktopTarget } from '../../gateway/desktop-broker.js';
import { rdpTicketOf } from '../../gateway/rdp-tickets.js';
import type { GatewayService } from '../../gateway/service.js';
import type { Services } from '../../services.js';
import { choiceError } from './routes.js';

/** `gatehouse rdp`: a ticket for tunnelling native RDP clients through the built-in gateway. */
export function rdpTunnelRoutes(app: FastifyInstance, services: Services, gateways: GatewayService) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post(
    '/devices/:id/rdp-tunnel',
    {
      config: { ...connectors, rateLimit: { max: 10, timeWindow: '1 minute', keyGenerator: (req) => req.auth?.user.id ?? req.ip } },
      schema: {
        tags: ['desktops'],
        summary:
          "A ticket for gatehouse rdp: the CLI tunnels a native RDP client's connections through the built-in gateway's RDP listener with it, for minutes. The answer holds the ticket, once",
        params: idParams,
        body: rdpTunnelRequest,
        response: responses({ 201: rdpTunnel }),
      },
    },
    async (req, reply) => {
      const auth = caller(req);
      const { id } = req.params;
      const { accountId, minutes } = req.body;
      const choice = await chooseDesktopTarget(services.inventory, auth.visibility, {
        deviceId: id,
        accountId: accountId ?? null,
        protocol: 'rdp',
      });
      if (!choice.ok) throw choiceError(choice, id, accountId);
      const address = gateways.rdpAddress;
      if (address === null) {
        throw new ConflictError(
          "The built-in gateway's RDP tunnel listener is off (GATEHOUSE_RDP_PORT=0, or the built-in gateway is off), so gatehouse rdp has nowhere to connect. " +
            'Open the desktop in the console, or ask an administrator to turn the listener on (--rdp-port).',
        );
      }
      const { device, account } = choice;
      const now = new Date();
      const issued = await services.withAudit(req, async (tx, audit) => {
        const token = await tx.desktopTokens.issue({
          userId: auth.user.id,
          deviceId: device.id,
          accountId: account.id,
          protocol: 'rdp',
          expiresAt: new Date(now.getTime() + minutes * 60_000),
          now,
        });
        audit({
          action: 'desktop.token_issued',
          outcome: 'success',
          targetType: 'device',
          targetId: device.id,
          details: { tokenId: token.id, protocol: 'rdp', device: device.name, account: account.username, expiresAt: token.expiresAt },
        });
        return token;
      });
      return reply.status(201).send({
        id: issued.id,
        ticket: rdpTicketOf(issued),
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
