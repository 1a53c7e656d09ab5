import {
  account,
  accountCreate,
  accountList,
  accountPatch,
  accountRevealBody,
  idParams,
  noContent,
  responses,
  revealedAccount,
} from '@gatehouse/api';
import { canUseAccount, NotFoundError } from '@gatehouse/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { admins, staff } from '../../access.js';
import { deletedTarget } from '../../audit-details.js';
import { caller } from '../../auth.js';
import type { Services } from '../../services.js';
import { visibleDevice } from '../devices/visible-device.js';
import { presentAccount } from './presenter.js';

/**
 * Accounts on devices. Reads are scoped to an operator's grants and show each secret only
 * as the mask; writes are for administrators; a reveal is audited with its reason.
 */
export function accountRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { inventory } = services;
  const tags = ['inventory'];

  r.get(
    '/devices/:id/accounts',
    {
      config: staff,
      schema: { tags, summary: "List a device's accounts (secrets masked)", params: idParams, response: responses({ 200: accountList }) },
    },
    async (req) => {
      const v = caller(req).visibility;
      const device = visibleDevice(v, await inventory.devices.get(req.params.id));
      const accounts = await inventory.accounts.list(device.id);
      return {
        items: accounts
          .filter((a) => canUseAccount(v, { projectId: device.projectId, deviceId: device.id, accountId: a.id }).allow)
          .map(presentAccount),
      };
    },
  );

  r.post(
    '/accounts',
    {
      config: admins,
      schema: { tags, summary: 'Create an account on a device', body: accountCreate, response: responses({ 201: account }) },
    },
    async (req, reply) => {
      const created = await services.withAudit(req, async (tx, audit) => {
        const a = await tx.inventory.accounts.create(req.body);
        audit({
          action: 'account.create',
          outcome: 'success',
          targetType: 'account',
          targetId: a.id,
          details: { deviceId: a.deviceId, username: a.username },
        });
        return a;
      });
      return reply.status(201).send(presentAccount(created));
    },
  );

  r.get(
    '/accounts/:id',
    {
      config: staff,
      schema: { tags, summary: 'Show an account (secrets masked)', params: idParams, response: responses({ 200: account }) },
    },
    async (req) => {
      const v = caller(req).visibility;
      const found = await inventory.accounts.get(req.params.id);
      const device = await inventory.devices.get(found.deviceId);
      if (!canUseAccount(v, { projectId: device.projectId, deviceId: device.id, accountId: found.id }).allow)
        throw new NotFoundError('Account', found.id);
      return presentAccount(found);
    },
  );

  r.patch(
    '/accounts/:id',
    {
      config: admins,
      schema: {
        tags,
        summary: 'Change an account; a secret sent as null or "" is cleared',
        params: idParams,
        body: accountPatch,
        response: responses({ 200: account }),
      },
    },
    async (req) =>
      services.withAudit(req, async (tx, audit) => {
        const a = await tx.inventory.accounts.update(req.params.id, req.body);
        audit({
          action: 'account.update',
          outcome: 'success',
          targetType: 'account',
          targetId: a.id,
          details: { fields: Object.keys(req.body) },
        });
        return presentAccount(a);
      }),
  );

  r.delete(
    '/accounts/:id',
    { config: admins, schema: { tags, summary: 'Delete an account', params: idParams, response: responses({ 204: noContent }) } },
    async (req, reply) => {
      await services.withAudit(req, async (tx, audit) => {
        const target = await deletedTarget(tx.trx, 'account', req.params.id);
        await tx.inventory.accounts.delete(req.params.id);
        audit({ action: 'account.delete', outcome: 'success', ...target });
      });
      return reply.status(204).send(null);
    },
  );

  // A reveal changes nothing: its event is appended on its own (services.audit).
  r.post(
    '/accounts/:id/reveal',
    {
      config: admins,
      schema: {
        tags,
        summary: "Reveal an account's secrets (audited)",
        params: idParams,
        body: accountRevealBody,
        response: responses({ 200: revealedAccount }),
      },
    },
    async (req) => {
      const found = await inventory.accounts.get(req.params.id).catch(async (error: unknown) => {
        await services.audit(req, {
          action: 'account.reveal',
          outcome: 'failure',
          targetType: 'account',
          targetId: req.params.id,
          details: { reason: 'not found' },
        });
        throw error;
      });
      const secrets = await inventory.accounts.reveal(found.id);
      await services.audit(req, {
        action: 'account.reveal',
        outcome: 'success',
        targetType: 'account',
        targetId: found.id,
        details: { deviceId: found.deviceId, username: found.username, reason: req.body.reason },
      });
      return { id: found.id, ...secrets };
    },
  );
}
