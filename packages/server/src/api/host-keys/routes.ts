import { deviceHostKeyAnswer, idParams, noContent, responses } from '@gatehouse/api';
import { NotFoundError } from '@gatehouse/core';
import type { GatewaySessions } from '@gatehouse/db';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { admins, auditors } from '../../access.js';
import type { Services } from '../../services.js';

/** The devices' SSH host keys the gateways trust (on first use), and forgetting one. */
export function hostKeyRoutes(app: FastifyInstance, services: Services, sessions: GatewaySessions) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['sessions'];

  r.get(
    '/devices/:id/host-key',
    {
      config: auditors,
      schema: {
        tags,
        summary: "The device's SSH host key the gateways trust (null before the first connection)",
        params: idParams,
        response: responses({ 200: deviceHostKeyAnswer }),
      },
    },
    async (req) => {
      await services.inventory.devices.get(req.params.id);
      return { hostKey: (await sessions.hostKey(req.params.id)) ?? null };
    },
  );

  r.delete(
    '/devices/:id/host-key',
    {
      config: admins,
      schema: {
        tags,
        summary: "Forget the device's trusted SSH host key (after checking a changed key); the next connection trusts the key it sees",
        params: idParams,
        response: responses({ 204: noContent }),
      },
    },
    async (req, reply) => {
      await services.withAudit(req, async (tx, audit) => {
        await tx.inventory.devices.get(req.params.id);
        const before = await tx.gatewaySessions.hostKey(req.params.id);
        if (!before || !(await tx.gatewaySessions.forgetHostKey(req.params.id)))
          throw new NotFoundError('Host key of device', req.params.id);
        audit({
          action: 'device.host_key_forget',
          outcome: 'success',
          targetType: 'device',
          targetId: req.params.id,
          details: { algorithm: before.algorithm, fingerprint: before.fingerprint },
        });
      });
      return reply.status(204).send(null);
    },
  );
}
