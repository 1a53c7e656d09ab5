import { accountInput, accountPatch, canUseAccount, NotFoundError } from '@gatehouse/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { caller } from '../auth.js';
import type { Services } from '../services.js';
import { admins, staff } from '../access.js';
import { visibleDevice } from '../api/devices/visible-device.js';

const id = z.strictObject({ id: z.string().min(1) });

/** Accounts. Reads are scoped to an operator's grants; writes are for administrators. */
export function inventoryRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { inventory } = services;

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
