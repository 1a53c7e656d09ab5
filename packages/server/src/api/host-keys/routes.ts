import { deviceHostKeyAnswer, hostKeyForgetQuery, hostKeyPin, hostKeyPinAnswer, idParams, noContent, responses } from '@gatehouse/api';
import { NotFoundError } from '@gatehouse/core';
import type { GatewaySessions } from '@gatehouse/db';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { admins, auditors } from '../../access.js';
import type { Services } from '../../services.js';

/**
 * The keys the gateways trust for a device, one per protocol (the SSH host key, the RDP and
 * VNC TLS certificates): shown, forgotten after a checked change, or pinned ahead of one.
 */
export function hostKeyRoutes(app: FastifyInstance, services: Services, sessions: GatewaySessions) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['sessions'];

  r.get(
    '/devices/:id/host-key',
    {
      config: auditors,
      schema: {
        tags,
        summary: "The device's trusted keys, one per protocol (ssh, rdp, vnc); none before the first connection",
        params: idParams,
        response: responses({ 200: deviceHostKeyAnswer }),
      },
    },
    async (req) => {
      await services.inventory.devices.get(req.params.id);
      const hostKeys = await sessions.hostKeys(req.params.id);
      return { hostKey: hostKeys.find((k) => k.protocol === 'ssh') ?? null, hostKeys };
    },
  );

  r.delete(
    '/devices/:id/host-key',
    {
      config: admins,
      schema: {
        tags,
        summary:
          "Forget the device's trusted key for ?protocol= (every protocol's without it), after checking a changed key; the next connection trusts the key it sees",
        params: idParams,
        querystring: hostKeyForgetQuery,
        response: responses({ 204: noContent }),
      },
    },
    async (req, reply) => {
      const { protocol } = req.query;
      await services.withAudit(req, async (tx, audit) => {
        await tx.inventory.devices.get(req.params.id);
        const forgotten = await tx.gatewaySessions.forgetHostKeys(req.params.id, protocol);
        if (forgotten.length === 0)
          throw new NotFoundError(protocol ? `The ${protocol} key of device` : 'Host key of device', req.params.id);
        for (const key of forgotten)
          audit({
            action: 'device.host_key_forget',
            outcome: 'success',
            targetType: 'device',
            targetId: req.params.id,
            details: { protocol: key.protocol, algorithm: key.algorithm, fingerprint: key.fingerprint, pinned: key.pinned },
          });
      });
      return reply.status(204).send(null);
    },
  );

  r.put(
    '/devices/:id/host-key',
    {
      config: admins,
      schema: {
        tags,
        summary:
          'Pin the key the device will present for a protocol, ahead of a planned key change or instead of trusting the first one seen: on a device with a trusted key it is the next key (both are accepted until the device presents it, then the old one is dropped); else it is trusted at once',
        params: idParams,
        body: hostKeyPin,
        response: responses({ 200: hostKeyPinAnswer }),
      },
    },
    async (req) => {
      const { protocol, fingerprint } = req.body;
      return services.withAudit(req, async (tx, audit) => {
        await tx.inventory.devices.get(req.params.id);
        const { pinned, replaced } = await tx.gatewaySessions.pinHostKey(req.params.id, protocol, fingerprint);
        audit({
          action: 'device.host_key_pin',
          outcome: 'success',
          targetType: 'device',
          targetId: req.params.id,
          details: {
            protocol,
            fingerprint,
            // next: accepted alongside `current` until the device presents it.
            as: pinned.next ? 'next' : 'trusted',
            current: pinned.next ? `${pinned.algorithm ?? 'pinned'} ${pinned.fingerprint}` : null,
            replaced: replaced ? `${replaced.algorithm ?? 'pinned'} ${replaced.fingerprint}` : null,
          },
        });
        return { hostKey: pinned, replaced: replaced ?? null };
      });
    },
  );
}
