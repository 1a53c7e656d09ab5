import { grant, grantCreate, grantList, grantListQuery, idParams, noContent, responses } from '@gatehouse/api';
import { ValidationError } from '@gatehouse/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { admins } from '../../access.js';
import { deletedTarget } from '../../audit-details.js';
import type { Services } from '../../services.js';

/** Grants: which projects, devices or accounts an operator may use (administrators). */
export function grantRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['grants'];

  r.get(
    '/grants',
    { config: admins, schema: { tags, summary: 'List grants', querystring: grantListQuery, response: responses({ 200: grantList }) } },
    async (req) => ({ items: await services.users.listGrants(req.query.userId) }),
  );

  r.post(
    '/grants',
    {
      config: admins,
      schema: {
        tags,
        summary: 'Grant an operator a project, or one device or account in it',
        body: grantCreate,
        response: responses({ 201: grant }),
      },
    },
    async (req, reply) => {
      const { userId, projectId, deviceId, accountId } = req.body;
      const created = await services.withAudit(req, async (tx, audit) => {
        await tx.users.get(userId);
        await tx.inventory.projects.get(projectId);
        if (deviceId !== undefined) {
          const device = await tx.inventory.devices.get(deviceId);
          if (device.projectId !== projectId)
            throw new ValidationError('deviceId is not in that project.', [{ path: 'deviceId', message: 'is not in projectId' }]);
        }
        if (accountId !== undefined) {
          const account = await tx.inventory.accounts.get(accountId);
          if (deviceId === undefined || account.deviceId !== deviceId) {
            throw new ValidationError('accountId must come with the deviceId it belongs to.', [
              { path: 'accountId', message: 'is not on deviceId' },
            ]);
          }
        }
        const g = await tx.users.createGrant({ userId, projectId, deviceId: deviceId ?? null, accountId: accountId ?? null });
        audit({
          action: 'grant.create',
          outcome: 'success',
          targetType: 'grant',
          targetId: g.id,
          details: { userId, projectId, deviceId, accountId },
        });
        return g;
      });
      return reply.status(201).send(created);
    },
  );

  r.delete(
    '/grants/:id',
    { config: admins, schema: { tags, summary: 'Revoke a grant', params: idParams, response: responses({ 204: noContent }) } },
    async (req, reply) => {
      await services.withAudit(req, async (tx, audit) => {
        const target = await deletedTarget(tx.trx, 'grant', req.params.id);
        await tx.users.deleteGrant(req.params.id);
        audit({ action: 'grant.delete', outcome: 'success', ...target });
      });
      return reply.status(204).send(null);
    },
  );
}
