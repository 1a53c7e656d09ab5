import { idParams, noContent, responses, rotationPolicyAnswer, rotationPolicyPut } from '@gatehouse/api';
import { GatehouseError } from '@gatehouse/core';
import type { Inventory, PolicyScope, RotationPolicy } from '@gatehouse/db';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { admins } from '../../access.js';
import { caller } from '../../auth.js';
import type { Services } from '../../services.js';
import { presentRotationPolicy } from './presenter.js';

const plural = { project: 'projects', device: 'devices' } as const;

/**
 * Scheduled rotation of a project's or a device's accounts (the ResetAccess runbook).
 * A device's GET answers the policy that applies to it: its own, else its project's.
 */
export function rotationPolicyRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['rotation'];

  for (const scope of ['project', 'device'] as const) {
    const url = `/${plural[scope]}/:id/rotation-policy`;
    const what = scope === 'project' ? 'Project' : 'Device';
    /** The project or device, so a wrong id is NOT_FOUND naming it rather than "no policy". */
    const nameOf = async (inventory: Inventory, id: string): Promise<string> =>
      scope === 'project' ? (await inventory.projects.get(id)).name : (await inventory.devices.get(id)).name;

    r.get(
      url,
      {
        config: admins,
        schema: {
          tags,
          summary:
            scope === 'project'
              ? "The project's rotation policy"
              : "The rotation policy that applies to the device: its own, else its project's (scope says which)",
          params: idParams,
          response: responses({ 200: rotationPolicyAnswer }),
        },
      },
      async (req) => {
        const name = await nameOf(services.inventory, req.params.id);
        const policy: RotationPolicy | undefined =
          scope === 'project'
            ? await services.rotationPolicies.get('project', req.params.id)
            : await services.rotationPolicies.effectiveFor(req.params.id);
        if (!policy) throw noPolicy(what, name);
        return presentRotationPolicy(policy);
      },
    );

    r.put(
      url,
      {
        config: admins,
        schema: {
          tags,
          summary: `Set or change the ${scope}'s rotation policy; fields left out keep their values (a new policy takes the defaults)`,
          params: idParams,
          body: rotationPolicyPut,
          response: responses({ 200: rotationPolicyAnswer }),
        },
      },
      async (req) => {
        const policy = await services.withAudit(req, async (tx, audit) => {
          const set = await tx.rotationPolicies.put(scope, req.params.id, req.body, caller(req).user.id);
          audit(policyEvent('rotation_policy.set', scope, req.params.id, { ...req.body }));
          return set;
        });
        return presentRotationPolicy(policy);
      },
    );

    r.delete(
      url,
      {
        config: admins,
        schema: {
          tags,
          summary:
            scope === 'project'
              ? "Remove the project's rotation policy"
              : "Remove the device's own rotation policy (it then follows its project's)",
          params: idParams,
          response: responses({ 204: noContent }),
        },
      },
      async (req, reply) => {
        await services.withAudit(req, async (tx, audit) => {
          const name = await nameOf(tx.inventory, req.params.id);
          if (!(await tx.rotationPolicies.get(scope, req.params.id))) throw noPolicy(what, name);
          await tx.rotationPolicies.delete(scope, req.params.id);
          audit(policyEvent('rotation_policy.delete', scope, req.params.id, {}));
        });
        return reply.status(204).send(null);
      },
    );
  }
}

const noPolicy = (what: string, name: string) =>
  new GatehouseError('NOT_FOUND', `${what} ${name} has no rotation policy: set one with PUT (./gatehouse rotation set).`);

const policyEvent = (action: string, scope: PolicyScope, id: string, details: Record<string, unknown>) => ({
  action,
  outcome: 'success' as const,
  targetType: scope,
  targetId: id,
  details,
});
