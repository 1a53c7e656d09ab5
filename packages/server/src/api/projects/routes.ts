import { idParams, noContent, project, projectCreate, projectList, projectPatch, responses } from '@gatehouse/api';
import { NotFoundError } from '@gatehouse/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { admins, staff } from '../../access.js';
import { deletedTarget } from '../../audit-details.js';
import { caller } from '../../auth.js';
import type { Services } from '../../services.js';

/** Projects. Reads are scoped to an operator's grants; writes are for administrators. */
export function projectRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { inventory } = services;
  const tags = ['inventory'];

  r.get(
    '/projects',
    { config: staff, schema: { tags, summary: 'List projects', response: responses({ 200: projectList }) } },
    async (req) => {
      const v = caller(req).visibility;
      return { items: await inventory.projects.list(v.all ? undefined : v.projectIds) };
    },
  );

  r.post(
    '/projects',
    { config: admins, schema: { tags, summary: 'Create a project', body: projectCreate, response: responses({ 201: project }) } },
    async (req, reply) => {
      const created = await services.withAudit(req, async (tx, audit) => {
        const p = await tx.inventory.projects.create(req.body);
        audit({ action: 'project.create', outcome: 'success', targetType: 'project', targetId: p.id, details: { name: p.name } });
        return p;
      });
      return reply.status(201).send(created);
    },
  );

  r.get(
    '/projects/:id',
    { config: staff, schema: { tags, summary: 'Show a project', params: idParams, response: responses({ 200: project }) } },
    async (req) => {
      const v = caller(req).visibility;
      if (!v.all && !v.projectIds.includes(req.params.id)) throw new NotFoundError('Project', req.params.id);
      return inventory.projects.get(req.params.id);
    },
  );

  r.patch(
    '/projects/:id',
    {
      config: admins,
      schema: { tags, summary: 'Change a project', params: idParams, body: projectPatch, response: responses({ 200: project }) },
    },
    async (req) =>
      services.withAudit(req, async (tx, audit) => {
        const p = await tx.inventory.projects.update(req.params.id, req.body);
        audit({
          action: 'project.update',
          outcome: 'success',
          targetType: 'project',
          targetId: p.id,
          details: {
            fields: Object.keys(req.body),
            ...(req.body.maintenanceRequired !== undefined ? { maintenanceRequired: req.body.maintenanceRequired } : {}),
          },
        });
        return p;
      }),
  );

  r.delete(
    '/projects/:id',
    {
      config: admins,
      schema: {
        tags,
        summary: 'Delete a project with its devices and accounts',
        params: idParams,
        response: responses({ 204: noContent }),
      },
    },
    async (req, reply) => {
      await services.withAudit(req, async (tx, audit) => {
        const target = await deletedTarget(tx.trx, 'project', req.params.id);
        await tx.inventory.projects.delete(req.params.id);
        audit({ action: 'project.delete', outcome: 'success', ...target });
      });
      return reply.status(204).send(null);
    },
  );
}
