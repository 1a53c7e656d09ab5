import { idParams, noContent, responses, sshKey, sshKeyCreate, sshKeyList, sshKeyListQuery } from '@gatehouse/api';
import { ForbiddenError, NotFoundError, ValidationError } from '@gatehouse/core';
import { parseUserPublicKey } from '@gatehouse/gateway';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { signedIn } from '../../access.js';
import { caller } from '../../auth.js';
import type { Services } from '../../services.js';

/**
 * SSH public keys users sign in to the gateway with. Each user manages their own; an
 * administrator may list, add and remove anyone's. The key itself is public; it is shown.
 */
export function sshKeyRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { users } = services;
  const tags = ['ssh-keys'];

  r.get(
    '/ssh-keys',
    {
      config: signedIn,
      schema: {
        tags,
        summary: "List SSH public keys for signing in to the gateway (yours; any user's for administrators, with userId)",
        querystring: sshKeyListQuery,
        response: responses({ 200: sshKeyList }),
      },
    },
    async (req) => {
      const auth = caller(req);
      if (auth.user.role !== 'admin') return { items: await users.listSshKeys(auth.user.id) };
      return { items: await users.listSshKeys(req.query.userId) };
    },
  );

  r.post(
    '/ssh-keys',
    {
      config: signedIn,
      schema: {
        tags,
        summary: 'Register an SSH public key (one line of a .pub file) to sign in to the gateway with',
        body: sshKeyCreate,
        response: responses({ 201: sshKey }),
      },
    },
    async (req, reply) => {
      const auth = caller(req);
      const userId = req.body.userId ?? auth.user.id;
      if (userId !== auth.user.id && auth.user.role !== 'admin') throw new ForbiddenError('You may add keys only to your own user.');
      const parsed = parseUserPublicKey(req.body.publicKey);
      if (!parsed.ok) throw new ValidationError(`publicKey ${parsed.message}.`, [{ path: 'publicKey', message: parsed.message }]);
      const key = await services.withAudit(req, async (tx, audit) => {
        const owner = await tx.users.get(userId);
        const added = await tx.users.addSshKey({
          userId: owner.id,
          name: req.body.name ?? (parsed.comment || parsed.fingerprint),
          algorithm: parsed.algorithm,
          publicKey: parsed.blob,
          fingerprint: parsed.fingerprint,
        });
        audit({
          action: 'user.ssh_key_add',
          outcome: 'success',
          targetType: 'user',
          targetId: owner.id,
          details: { keyId: added.id, fingerprint: added.fingerprint, algorithm: added.algorithm, user: owner.username },
        });
        return added;
      });
      return reply.status(201).send(key);
    },
  );

  r.delete(
    '/ssh-keys/:id',
    {
      config: signedIn,
      schema: { tags, summary: 'Remove an SSH public key', params: idParams, response: responses({ 204: noContent }) },
    },
    async (req, reply) => {
      const auth = caller(req);
      await services.withAudit(req, async (tx, audit) => {
        const key = await tx.users.getSshKey(req.params.id);
        // Another user's key answers as one that does not exist: a 403 would confirm the id.
        if (key.userId !== auth.user.id && auth.user.role !== 'admin') throw new NotFoundError('SSH key', req.params.id);
        await tx.users.deleteSshKey(key.id);
        audit({
          action: 'user.ssh_key_delete',
          outcome: 'success',
          targetType: 'user',
          targetId: key.userId,
          details: { keyId: key.id, fingerprint: key.fingerprint },
        });
      });
      return reply.status(204).send(null);
    },
  );
}
