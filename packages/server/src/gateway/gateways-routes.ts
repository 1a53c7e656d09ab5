import { DEFAULT_GATEWAY, gatewayAddress, gatewayName, segmentName, ValidationError } from '@gatehouse/core';
import { parseLinkPublicKey } from '@gatehouse/gateway';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../services.js';
import type { GatewayService } from './service.js';
import { admins, auditors } from '../access.js';

const id = z.strictObject({ id: z.string().min(1).max(100) });

const registration = z.strictObject({
  name: gatewayName,
  segment: segmentName.nullish().transform((s) => s ?? null),
  address: gatewayAddress,
  publicKey: z.string().max(4096),
});

/** The key as pasted, checked; the error names the field and never echoes the value. */
function checkedKey(text: string): { publicKey: string; fingerprint: string } {
  const parsed = parseLinkPublicKey(text);
  if (!parsed.ok) throw new ValidationError(`publicKey ${parsed.message}.`, [{ path: 'publicKey', message: parsed.message }]);
  return parsed;
}

/** Registered gateways, their status, the server's key the gateways pin, and tunnel mode. */
export function gatewayRegistryRoutes(app: FastifyInstance, services: Services, gateways: GatewayService) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/gateways',
    {
      config: auditors,
      schema: {
        tags: ['gateways'],
        summary: 'List the built-in gateway and every registered one, with status, last contact, version and live sessions',
      },
    },
    async () => ({ items: await gateways.list(), tunnelMode: (await gateways.settings()).tunnelMode }),
  );

  r.get(
    '/gateways/server-key',
    {
      config: admins,
      schema: { tags: ['gateways'], summary: "The server's public key, which every gateway must be started with (--server-key)" },
    },
    async () => {
      const identity = await gateways.identity();
      return { publicKey: identity.publicKey, fingerprint: identity.fingerprint };
    },
  );

  r.post(
    '/gateways',
    {
      config: admins,
      schema: {
        tags: ['gateways'],
        summary: 'Register a gateway with the public key it printed at its first start; its status is synced at once',
        body: registration,
      },
    },
    async (req, reply) => {
      const key = checkedKey(req.body.publicKey);
      const created = await gateways.gateways.create({ ...req.body, ...key });
      await services.audit(req, {
        action: 'gateway.register',
        outcome: 'success',
        targetType: 'gateway',
        targetId: created.id,
        details: { name: created.name, segment: created.segment, address: created.address, fingerprint: created.fingerprint },
      });
      await gateways.health.syncNow(created.id);
      return reply.status(201).send(await gateways.show(created.id));
    },
  );

  r.get('/gateways/:id', { config: auditors, schema: { tags: ['gateways'], summary: 'Show a gateway', params: id } }, async (req) =>
    gateways.show(req.params.id),
  );

  r.patch(
    '/gateways/:id',
    {
      config: admins,
      schema: {
        tags: ['gateways'],
        summary: "Change a gateway's name, segment, address or key (a new key after the gateway was re-installed)",
        params: id,
        body: registration.partial(),
      },
    },
    async (req) => {
      if (req.params.id === DEFAULT_GATEWAY) throw new ValidationError("The built-in gateway is set up by the server's configuration.", []);
      const { publicKey, ...rest } = req.body;
      const key = publicKey === undefined ? {} : checkedKey(publicKey);
      const updated = await gateways.gateways.update(req.params.id, { ...rest, ...key });
      await services.audit(req, {
        action: 'gateway.update',
        outcome: 'success',
        targetType: 'gateway',
        targetId: updated.id,
        details: { name: updated.name, fields: Object.keys(req.body), fingerprint: updated.fingerprint },
      });
      await gateways.health.syncNow(updated.id);
      return gateways.show(updated.id);
    },
  );

  r.delete(
    '/gateways/:id',
    { config: admins, schema: { tags: ['gateways'], summary: 'Remove a gateway: it is no longer chosen or synced', params: id } },
    async (req, reply) => {
      if (req.params.id === DEFAULT_GATEWAY) {
        throw new ValidationError('The built-in gateway cannot be removed; turn it off with --gateway-port 0.', []);
      }
      const removed = await gateways.gateways.delete(req.params.id);
      gateways.health.forget(removed.id);
      await services.audit(req, {
        action: 'gateway.delete',
        outcome: 'success',
        targetType: 'gateway',
        targetId: removed.id,
        details: { name: removed.name, segment: removed.segment },
      });
      return reply.status(204).send();
    },
  );

  r.post(
    '/gateways/:id/sync',
    { config: admins, schema: { tags: ['gateways'], summary: "Sync a gateway's status now", params: id } },
    async (req) => {
      if (req.params.id !== DEFAULT_GATEWAY) await gateways.health.syncNow(req.params.id);
      return gateways.show(req.params.id);
    },
  );

  r.get('/gateway-settings', { config: auditors, schema: { tags: ['gateways'], summary: 'Gateway settings: tunnel mode' } }, async () =>
    gateways.settings(),
  );

  r.put(
    '/gateway-settings',
    {
      config: admins,
      schema: {
        tags: ['gateways'],
        summary:
          'Change gateway settings. tunnelMode: every connection goes through the default gateway and no other gateway reaches a device. ' +
          'portForwarding: users may forward TCP connections through the devices they use (ssh -L); off by default',
        body: z.strictObject({ tunnelMode: z.boolean().optional(), portForwarding: z.boolean().optional() }),
      },
    },
    async (req) => {
      const before = await gateways.settings();
      const saved = await gateways.saveSettings({
        tunnelMode: req.body.tunnelMode ?? before.tunnelMode,
        portForwarding: req.body.portForwarding ?? before.portForwarding,
      });
      await services.audit(req, {
        action: 'gateway.settings',
        outcome: 'success',
        targetType: 'settings',
        targetId: 'gateway',
        details: Object.fromEntries(
          (['tunnelMode', 'portForwarding'] as const)
            .filter((k) => req.body[k] !== undefined)
            .map((k) => [k, { from: before[k], to: saved[k] }]),
        ),
      });
      return saved;
    },
  );
}
