import {
  gateway,
  gatewayCreate,
  gatewayList,
  gatewayReach,
  gatewayReachQuery,
  gatewayServerKey,
  gatewaySettings,
  gatewaySettingsUpdate,
  gatewayUpdate,
  idParams,
  noContent,
  responses,
} from '@gatehouse/api';
import { canSeeDevice, DEFAULT_GATEWAY, GatehouseError, ValidationError } from '@gatehouse/core';
import { parseLinkPublicKey } from '@gatehouse/gateway';
import type { Gateway } from '@gatehouse/db';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { admins, auditors, staff } from '../../access.js';
import { fieldChanges } from '../../audit-details.js';
import type { GatewayService } from '../../gateway/service.js';
import type { Services } from '../../services.js';

/** The key as pasted, checked; the error names the field and never echoes the value. */
function checkedKey(text: string): { publicKey: string; fingerprint: string } {
  const parsed = parseLinkPublicKey(text);
  if (!parsed.ok) throw new ValidationError(`publicKey ${parsed.message}.`, [{ path: 'publicKey', message: parsed.message }]);
  return parsed;
}

/** Registered gateways, their status, the server's key the gateways pin, and tunnel mode. */
export function gatewayRoutes(app: FastifyInstance, services: Services, gateways: GatewayService) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['gateways'];

  r.get(
    '/gateways',
    {
      config: auditors,
      schema: {
        tags,
        summary: 'List the built-in gateway and every registered one, with status, last contact, version and live sessions',
        response: responses({ 200: gatewayList }),
      },
    },
    async (req) => ({ items: await gateways.list(req.hostname), tunnelMode: (await gateways.settings()).tunnelMode }),
  );

  r.get(
    '/gateway-reach',
    {
      config: staff,
      schema: {
        tags,
        summary:
          'Whether a new connection to each device would find a gateway now (segment, status, draining, tunnel mode), and if not the refusal a user would get. Devices the caller may not see are left out',
        querystring: gatewayReachQuery,
        response: responses({ 200: gatewayReach }),
      },
    },
    async (req) => {
      const visibility = req.auth?.visibility;
      const devices = await Promise.all(
        [...new Set(req.query.deviceIds)].map((id) =>
          services.inventory.devices.get(id).catch((error: unknown) => {
            if (error instanceof GatehouseError && error.code === 'NOT_FOUND') return undefined;
            throw error;
          }),
        ),
      );
      // What the caller may not see is left out, as if it did not exist.
      const visible = devices.flatMap((d) => (d && visibility && canSeeDevice(visibility, d).allow ? [d] : []));
      return { items: await gateways.reach(visible) };
    },
  );

  r.get(
    '/gateways/server-key',
    {
      config: admins,
      schema: {
        tags,
        summary: "The server's public key, which every gateway must be started with (--server-key)",
        response: responses({ 200: gatewayServerKey }),
      },
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
        tags,
        summary: 'Register a gateway with the public key it printed at its first start; its status is synced at once',
        body: gatewayCreate,
        response: responses({ 201: gateway }),
      },
    },
    async (req, reply) => {
      const key = checkedKey(req.body.publicKey);
      const created = await services.withAudit(req, async (tx, audit) => {
        const created = await tx.gateways.create({ ...req.body, ...key });
        audit({
          action: 'gateway.register',
          outcome: 'success',
          targetType: 'gateway',
          targetId: created.id,
          details: { name: created.name, segment: created.segment, address: created.address, fingerprint: created.fingerprint },
        });
        return created;
      });
      await gateways.health.syncNow(created.id);
      return reply.status(201).send(await gateways.show(created.id));
    },
  );

  r.get(
    '/gateways/:id',
    { config: auditors, schema: { tags, summary: 'Show a gateway', params: idParams, response: responses({ 200: gateway }) } },
    async (req) => gateways.show(req.params.id, req.hostname),
  );

  r.patch(
    '/gateways/:id',
    {
      config: admins,
      schema: {
        tags,
        summary: "Change a gateway's name, segment, address or key (a new key after the gateway was re-installed)",
        params: idParams,
        body: gatewayUpdate,
        response: responses({ 200: gateway }),
      },
    },
    async (req) => {
      if (req.params.id === DEFAULT_GATEWAY) throw new ValidationError("The built-in gateway is set up by the server's configuration.", []);
      const { publicKey, ...rest } = req.body;
      const key = publicKey === undefined ? {} : checkedKey(publicKey);
      const updated = await services.withAudit(req, async (tx, audit) => {
        const before = await tx.gateways.get(req.params.id);
        const updated = await tx.gateways.update(req.params.id, { ...rest, ...key });
        // Only what changed, before → after; a new key by its fingerprint.
        const edited = (g: Gateway) => ({ name: g.name, segment: g.segment, address: g.address, fingerprint: g.fingerprint });
        audit({
          action: 'gateway.update',
          outcome: 'success',
          targetType: 'gateway',
          targetId: updated.id,
          details: { name: updated.name, ...fieldChanges(edited(before), edited(updated)), fingerprint: updated.fingerprint },
        });
        return updated;
      });
      await gateways.health.syncNow(updated.id);
      return gateways.show(updated.id);
    },
  );

  r.delete(
    '/gateways/:id',
    {
      config: admins,
      schema: {
        tags,
        summary: 'Remove a gateway: it is no longer chosen or synced',
        params: idParams,
        response: responses({ 204: noContent }),
      },
    },
    async (req, reply) => {
      if (req.params.id === DEFAULT_GATEWAY) {
        throw new ValidationError('The built-in gateway cannot be removed; turn it off with --gateway-port 0.', []);
      }
      const removed = await services.withAudit(req, async (tx, audit) => {
        const removed = await tx.gateways.delete(req.params.id);
        audit({
          action: 'gateway.delete',
          outcome: 'success',
          targetType: 'gateway',
          targetId: removed.id,
          details: { name: removed.name, segment: removed.segment, targetName: removed.name },
        });
        return removed;
      });
      gateways.health.forget(removed.id);
      return reply.status(204).send(null);
    },
  );

  r.post(
    '/gateways/:id/sync',
    {
      config: admins,
      schema: { tags, summary: "Sync a gateway's status now", params: idParams, response: responses({ 200: gateway }) },
    },
    async (req) => {
      if (req.params.id !== DEFAULT_GATEWAY) await gateways.health.syncNow(req.params.id);
      return gateways.show(req.params.id, req.hostname);
    },
  );

  for (const [verb, draining] of [
    ['drain', true],
    ['resume', false],
  ] as const) {
    r.post(
      `/gateways/:id/${verb}`,
      {
        config: admins,
        schema: {
          tags,
          summary: draining
            ? 'Drain a gateway (the built-in one too): it carries no new session, live ones go on, until it is resumed'
            : 'Resume a drained gateway: it carries new sessions again',
          params: idParams,
          response: responses({ 200: gateway }),
        },
      },
      async (req) => {
        const { id } = req.params;
        // The built-in gateway has no row; a registered one must exist (404 otherwise).
        const name = id === DEFAULT_GATEWAY ? DEFAULT_GATEWAY : (await gateways.gateways.get(id)).name;
        await services.withAudit(req, async (tx, audit) => {
          const changed = draining ? await tx.gateways.drain(id, req.auth?.user.username ?? null) : await tx.gateways.resume(id);
          audit({
            action: `gateway.${verb}`,
            outcome: 'success',
            targetType: 'gateway',
            targetId: id,
            details: { name, changed },
          });
        });
        return gateways.show(id, req.hostname);
      },
    );
  }

  r.get(
    '/gateway-settings',
    {
      config: auditors,
      schema: {
        tags,
        summary: 'Gateway settings: tunnel mode, port forwarding, and whether a post-quantum key exchange is required',
        response: responses({ 200: gatewaySettings }),
      },
    },
    async () => gateways.settings(),
  );

  r.put(
    '/gateway-settings',
    {
      config: admins,
      schema: {
        tags,
        summary:
          'Change gateway settings. tunnelMode: every connection goes through the default gateway and no other gateway reaches a device. ' +
          'portForwarding: users may forward TCP connections through the devices they use (ssh -L); off by default. ' +
          'requirePostQuantumKex: SSH clients must negotiate mlkem768x25519-sha256 with the built-in and remote gateways; ' +
          'older clients are refused with what to upgrade to (audited as gateway.auth, denied); off by default',
        body: gatewaySettingsUpdate,
        response: responses({ 200: gatewaySettings }),
      },
    },
    async (req) => {
      const before = await gateways.settings();
      const saved = await services.withAudit(req, async (tx, audit) => {
        const saved = await gateways.saveSettings(
          {
            tunnelMode: req.body.tunnelMode ?? before.tunnelMode,
            portForwarding: req.body.portForwarding ?? before.portForwarding,
            requirePostQuantumKex: req.body.requirePostQuantumKex ?? before.requirePostQuantumKex,
          },
          tx.settings,
        );
        audit({
          action: 'gateway.settings',
          outcome: 'success',
          targetType: 'settings',
          targetId: 'gateway',
          // Only what changed, before → after: not every field sent.
          details: fieldChanges(before, saved),
        });
        return saved;
      });
      return saved;
    },
  );
}
