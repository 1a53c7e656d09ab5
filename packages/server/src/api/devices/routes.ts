import { device, deviceCreate, deviceList, deviceListQuery, devicePatch, idParams, noContent, responses } from '@gatehouse/api';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { admins, staff } from '../../access.js';
import { deletedTarget } from '../../audit-details.js';
import { caller } from '../../auth.js';
import type { Services } from '../../services.js';
import { visibleDevice } from './visible-device.js';

/** Devices. Reads are scoped to an operator's grants; writes are for administrators. */
export function deviceRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { inventory } = services;
  const tags = ['inventory'];

  r.get(
    '/devices',
    {
      config: staff,
      schema: {
        tags,
        summary: 'List devices with search, sort and paging',
        querystring: deviceListQuery,
        response: responses({ 200: deviceList }),
      },
    },
    async (req) => {
      const result = await inventory.devices.list({ ...req.query, visibility: caller(req).visibility });
      return { ...result, limit: req.query.limit, offset: req.query.offset };
    },
  );

  r.post(
    '/devices',
    { config: admins, schema: { tags, summary: 'Create a device', body: deviceCreate, response: responses({ 201: device }) } },
    async (req, reply) => {
      const created = await services.withAudit(req, async (tx, audit) => {
        const d = await tx.inventory.devices.create(req.body);
        audit({
          action: 'device.create',
          outcome: 'success',
          targetType: 'device',
          targetId: d.id,
          details: { name: d.name, projectId: d.projectId },
        });
        return d;
      });
      return reply.status(201).send(created);
    },
  );

  r.get(
    '/devices/:id',
    { config: staff, schema: { tags, summary: 'Show a device', params: idParams, response: responses({ 200: device }) } },
    async (req) => visibleDevice(caller(req).visibility, await inventory.devices.get(req.params.id)),
  );

  r.patch(
    '/devices/:id',
    {
      config: admins,
      schema: { tags, summary: 'Change a device', params: idParams, body: devicePatch, response: responses({ 200: device }) },
    },
    async (req) =>
      services.withAudit(req, async (tx, audit) => {
        const d = await tx.inventory.devices.update(req.params.id, req.body);
        audit({
          action: 'device.update',
          outcome: 'success',
          targetType: 'device',
          targetId: d.id,
          details: {
            fields: Object.keys(req.body),
            ...(req.body.maintenanceRequired !== undefined ? { maintenanceRequired: req.body.maintenanceRequired } : {}),
          },
        });
        return d;
      }),
  );

  r.delete(
    '/devices/:id',
    {
      config: admins,
      schema: { tags, summary: 'Delete a device with its accounts', params: idParams, response: responses({ 204: noContent }) },
    },
    async (req, reply) => {
      await services.withAudit(req, async (tx, audit) => {
        const target = await deletedTarget(tx.trx, 'device', req.params.id);
        await tx.inventory.devices.delete(req.params.id);
        audit({ action: 'device.delete', outcome: 'success', ...target });
      });
      return reply.status(204).send(null);
    },
  );
}
