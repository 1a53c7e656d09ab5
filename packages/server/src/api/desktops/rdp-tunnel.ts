import { idParams, rdpTunnel, rdpTunnelRequest, responses } from '@gatehouse/api';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { connectors } from '../../access.js';
import { rdpTicketOf } from '../../gateway/rdp-tickets.js';
import type { GatewayService } from '../../gateway/service.js';
import type { Services } from '../../services.js';
import { issueDesktopToken, tokenRateLimit } from './routes.js';

/** `gatehouse rdp`: a ticket for tunnelling native RDP clients through the built-in gateway. */
export function rdpTunnelRoutes(app: FastifyInstance, services: Services, gateways: GatewayService) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post(
    '/devices/:id/rdp-tunnel',
    {
      config: { ...connectors, rateLimit: tokenRateLimit },
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
      const off =
        "The built-in gateway's RDP tunnel listener is off (GATEHOUSE_RDP_PORT=0, or the built-in gateway is off), so ./gatehouse rdp has nowhere to connect. " +
        'Ask an administrator to turn the listener on (--rdp-port).';
      const asked = { deviceId: req.params.id, ...req.body };
      const { issued, answer } = await issueDesktopToken(req, services, 'rdp', asked, {
        address: gateways.rdpAddress,
        off,
      });
      return reply.status(201).send({ ...answer, ticket: rdpTicketOf(issued) });
    },
  );
}
