import { apiTokenCreate, apiTokenCreated, apiTokenList, idParams, noContent, responses } from '@gatehouse/api';
import { API_TOKEN_PREFIX, ForbiddenError, NotFoundError, ValidationError } from '@gatehouse/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { signedIn } from '../../access.js';
import { deletedTarget } from '../../audit-details.js';
import { caller } from '../../auth.js';
import { newToken } from '../../passwords.js';
import type { Services } from '../../services.js';

/** How long a token lives when it does not say (at most the server's apiTokenMaxDays). */
const DEFAULT_TOKEN_DAYS = 90;

/** API tokens: each user manages their own; an administrator can list and revoke any. */
export function tokenRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['tokens'];

  r.get(
    '/tokens',
    {
      config: signedIn,
      schema: { tags, summary: 'List API tokens (yours; all for administrators)', response: responses({ 200: apiTokenList }) },
    },
    async (req) => {
      const auth = caller(req);
      return { items: await services.users.listTokens(auth.user.role === 'admin' ? undefined : auth.user.id) };
    },
  );

  r.post(
    '/tokens',
    {
      config: signedIn,
      schema: {
        tags,
        summary: 'Create an API token for yourself (from a web session only); the token is shown only in this response',
        body: apiTokenCreate,
        response: responses({ 201: apiTokenCreated }),
      },
    },
    async (req, reply) => {
      const auth = caller(req);
      // A token must not outlive or outgrow what made it: only a person signed in with their password makes one.
      if (auth.via !== 'session')
        throw new ForbiddenError(
          'An API token cannot create API tokens. Create one in the console (Your account) or with ./gatehouse login.',
        );
      const maxDays = services.config.apiTokenMaxDays;
      const days = req.body.expiresInDays ?? Math.min(DEFAULT_TOKEN_DAYS, maxDays);
      if (days > maxDays) {
        throw new ValidationError(`expiresInDays must be at most ${maxDays} (the server's apiTokenMaxDays).`, [
          { path: 'expiresInDays', message: `must be at most ${maxDays}` },
        ]);
      }
      const token = newToken(API_TOKEN_PREFIX);
      const expiresAt = new Date(Date.now() + days * 86_400_000).toISOString();
      const created = await services.withAudit(req, async (tx, audit) => {
        const t = await tx.users.createToken({ userId: auth.user.id, name: req.body.name, token, expiresAt, scope: req.body.scope });
        audit({
          action: 'token.create',
          outcome: 'success',
          targetType: 'token',
          targetId: t.id,
          details: { name: t.name, scope: t.scope, expiresAt },
        });
        return t;
      });
      return reply.status(201).send({ ...created, token });
    },
  );

  r.delete(
    '/tokens/:id',
    { config: signedIn, schema: { tags, summary: 'Revoke an API token', params: idParams, response: responses({ 204: noContent }) } },
    async (req, reply) => {
      const auth = caller(req);
      await services.withAudit(req, async (tx, audit) => {
        const token = await tx.users.getToken(req.params.id);
        // Another user's token is, to everyone but an administrator, one that does not exist.
        if (token.userId !== auth.user.id && auth.user.role !== 'admin') throw new NotFoundError('API token', req.params.id);
        const target = await deletedTarget(tx.trx, 'token', token.id);
        await tx.users.deleteToken(token.id);
        audit({ action: 'token.delete', outcome: 'success', ...target });
      });
      return reply.status(204).send(null);
    },
  );
}
