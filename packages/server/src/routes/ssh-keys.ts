import { ForbiddenError, NotFoundError, ValidationError } from '@gatehouse/core';
import { parseUserPublicKey } from '@gatehouse/gateway';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { caller } from '../auth.js';
import type { Services } from '../services.js';
import { signedIn } from '../access.js';

const id = z.strictObject({ id: z.string().min(1).max(100) });

/**
 * SSH public keys users sign in to the gateway with. Each user manages their own; an
 * administrator may list, add and remove anyone's. The key itself is public; it is shown.
 */
export function sshKeyRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { users } = services;

  r.get(
    '/ssh-keys',
    {
      config: signedIn,
      schema: {
        tags: ['ssh-keys'],
        summary: "List SSH public keys for signing in to the gateway (yours; any user's for administrators, with userId)",
        querystring: z.strictObject({ userId: z.string().min(1).max(100).optional() }),
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
        tags: ['ssh-keys'],
        summary: 'Register an SSH public key (one line of a .pub file) to sign in to the gateway with',
        body: z.strictObject({
          publicKey: z.string().min(1, 'is required').max(16_384),
          name: z.string().trim().min(1).max(100).optional(),
          userId: z.string().min(1).max(100).optional(),
        }),
      },
    },
    async (req, reply) => {
      const auth = caller(req);
      const userId = req.body.userId ?? auth.user.id;
      if (userId !== auth.user.id && auth.user.role !== 'admin') throw new ForbiddenError('You may add keys only to your own user.');
      const owner = await users.get(userId);
      const parsed = parseUserPublicKey(req.body.publicKey);
      if (!parsed.ok) throw new ValidationError(`publicKey ${parsed.message}.`, [{ path: 'publicKey', message: parsed.message }]);
      const key = await users.addSshKey({
        userId: owner.id,
        name: req.body.name ?? (parsed.comment || parsed.fingerprint),
        algorithm: parsed.algorithm,
        publicKey: parsed.blob,
        fingerprint: parsed.fingerprint,
      });
      await services.audit(req, {
        action: 'user.ssh_key_add',
        outcome: 'success',
        targetType: 'user',
        targetId: owner.id,
        details: { keyId: key.id, fingerprint: key.fingerprint, algorithm: key.algorithm, user: owner.username },
      });
      return reply.status(201).send(key);
    },
  );

  r.delete(
    '/ssh-keys/:id',
    { config: signedIn, schema: { tags: ['ssh-keys'], summary: 'Remove an SSH public key', params: id } },
    async (req, reply) => {
      const auth = caller(req);
      const key = await users.getSshKey(req.params.id);
      // Another user's key answers as one that does not exist: a 403 would confirm the id.
      if (key.userId !== auth.user.id && auth.user.role !== 'admin') throw new NotFoundError('SSH key', req.params.id);
      await users.deleteSshKey(key.id);
      await services.audit(req, {
        action: 'user.ssh_key_delete',
        outcome: 'success',
        targetType: 'user',
        targetId: key.userId,
        details: { keyId: key.id, fingerprint: key.fingerprint },
      });
      return reply.status(204).send();
    },
  );
}
