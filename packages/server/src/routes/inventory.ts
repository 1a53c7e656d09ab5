import {
  accountInput,
  accountPatch,
  canSeeDevice,
  canUseAccount,
  deviceInput,
  devicePatch,
  NotFoundError,
  type Visibility,
} from '@gatehouse/core';
import type { Device } from '@gatehouse/db';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { caller } from '../auth.js';
import type { Services } from '../services.js';
import { admins, staff } from '../access.js';

const id = z.strictObject({ id: z.string().min(1) });

/** Hides what the caller has no grant for as if it did not exist. */
function visibleDevice(v: Visibility, device: Device): Device {
  if (!canSeeDevice(v, device).allow) throw new NotFoundError('Device', device.id);
  return device;
}

/** Devices and accounts. Reads are scoped to an operator's grants; writes are for administrators. */
export function inventoryRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { inventory } = services;

  // Devices

  r.get(
    '/devices',
    {
      config: staff,
      schema: {
        tags: ['inventory'],
        summary: 'List devices with search, sort and paging',
        querystring: z.strictObject({
          projectId: z.string().optional(),
          search: z.string().max(200).optional(),
          tag: z.string().max(63).optional(),
          sort: z.enum(['name', '-name', 'provider', 'createdAt', '-createdAt']).default('name'),
          limit: z.coerce.number().int().min(1).max(500).default(50),
          offset: z.coerce.number().int().min(0).default(0),
        }),
      },
    },
    async (req) => {
      const result = await inventory.listDevices({ ...req.query, visibility: caller(req).visibility });
      return { ...result, limit: req.query.limit, offset: req.query.offset };
    },
  );

  r.post(
    '/devices',
    { config: admins, schema: { tags: ['inventory'], summary: 'Create a device', body: deviceInput } },
    async (req, reply) => {
      const device = await inventory.createDevice(req.body);
      await services.audit(req, {
        action: 'device.create',
        outcome: 'success',
        targetType: 'device',
        targetId: device.id,
        details: { name: device.name, projectId: device.projectId },
      });
      return reply.status(201).send(device);
    },
  );

  r.get('/devices/:id', { config: staff, schema: { tags: ['inventory'], summary: 'Show a device', params: id } }, async (req) =>
    visibleDevice(caller(req).visibility, await inventory.getDevice(req.params.id)),
  );

  r.patch(
    '/devices/:id',
    { config: admins, schema: { tags: ['inventory'], summary: 'Change a device', params: id, body: devicePatch } },
    async (req) => {
      const device = await inventory.updateDevice(req.params.id, req.body);
      await services.audit(req, {
        action: 'device.update',
        outcome: 'success',
        targetType: 'device',
        targetId: device.id,
        details: { fields: Object.keys(req.body) },
      });
      return device;
    },
  );

  r.delete(
    '/devices/:id',
    { config: admins, schema: { tags: ['inventory'], summary: 'Delete a device with its accounts', params: id } },
    async (req, reply) => {
      await inventory.deleteDevice(req.params.id);
      await services.audit(req, { action: 'device.delete', outcome: 'success', targetType: 'device', targetId: req.params.id });
      return reply.status(204).send();
    },
  );

  // Accounts

  r.get(
    '/devices/:id/accounts',
    { config: staff, schema: { tags: ['inventory'], summary: "List a device's accounts (secrets masked)", params: id } },
    async (req) => {
      const v = caller(req).visibility;
      const device = visibleDevice(v, await inventory.getDevice(req.params.id));
      const accounts = await inventory.listAccounts(device.id);
      return {
        items: accounts.filter((a) => canUseAccount(v, { projectId: device.projectId, deviceId: device.id, accountId: a.id }).allow),
      };
    },
  );

  r.post(
    '/accounts',
    { config: admins, schema: { tags: ['inventory'], summary: 'Create an account on a device', body: accountInput } },
    async (req, reply) => {
      const account = await inventory.createAccount(req.body);
      await services.audit(req, {
        action: 'account.create',
        outcome: 'success',
        targetType: 'account',
        targetId: account.id,
        details: { deviceId: account.deviceId, username: account.username },
      });
      return reply.status(201).send(account);
    },
  );

  r.get(
    '/accounts/:id',
    { config: staff, schema: { tags: ['inventory'], summary: 'Show an account (secrets masked)', params: id } },
    async (req) => {
      const v = caller(req).visibility;
      const account = await inventory.getAccount(req.params.id);
      const device = await inventory.getDevice(account.deviceId);
      if (!canUseAccount(v, { projectId: device.projectId, deviceId: device.id, accountId: account.id }).allow)
        throw new NotFoundError('Account', account.id);
      return account;
    },
  );

  r.patch(
    '/accounts/:id',
    {
      config: admins,
      schema: { tags: ['inventory'], summary: 'Change an account; a secret sent as null or "" is cleared', params: id, body: accountPatch },
    },
    async (req) => {
      const account = await inventory.updateAccount(req.params.id, req.body);
      await services.audit(req, {
        action: 'account.update',
        outcome: 'success',
        targetType: 'account',
        targetId: account.id,
        details: { fields: Object.keys(req.body) },
      });
      return account;
    },
  );

  r.delete(
    '/accounts/:id',
    { config: admins, schema: { tags: ['inventory'], summary: 'Delete an account', params: id } },
    async (req, reply) => {
      await inventory.deleteAccount(req.params.id);
      await services.audit(req, { action: 'account.delete', outcome: 'success', targetType: 'account', targetId: req.params.id });
      return reply.status(204).send();
    },
  );

  r.post(
    '/accounts/:id/reveal',
    {
      config: admins,
      schema: {
        tags: ['inventory'],
        summary: "Reveal an account's secrets (audited)",
        params: id,
        body: z.strictObject({ reason: z.string().trim().min(1, 'is required: say why you need the secret').max(500) }),
      },
    },
    async (req) => {
      const account = await inventory.getAccount(req.params.id).catch(async (error: unknown) => {
        await services.audit(req, {
          action: 'account.reveal',
          outcome: 'failure',
          targetType: 'account',
          targetId: req.params.id,
          details: { reason: 'not found' },
        });
        throw error;
      });
      const secrets = await inventory.revealAccountSecrets(account.id);
      await services.audit(req, {
        action: 'account.reveal',
        outcome: 'success',
        targetType: 'account',
        targetId: account.id,
        details: { deviceId: account.deviceId, username: account.username, reason: req.body.reason },
      });
      return { id: account.id, ...secrets };
    },
  );
}
