import { ForbiddenError, GatehouseError, NotFoundError, ValidationError, roles } from '@gatehouse/core';
import { SignInThrottle, tokenScopes } from '@gatehouse/db';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { caller } from '../auth.js';
import { hashPassword, newToken, passwordProblem } from '../passwords.js';
import type { Services } from '../services.js';
import { admins, signedIn } from '../access.js';

const id = z.strictObject({ id: z.string().min(1) });
/** How long a token lives when it does not say (at most the server's apiTokenMaxDays). */
const DEFAULT_TOKEN_DAYS = 90;
const username = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'must be 1-64 letters, digits or . _ @ - and start with a letter or digit');

function checkPassword(value: string) {
  const problem = passwordProblem(value);
  if (problem) throw new ValidationError(`password ${problem}.`, [{ path: 'password', message: problem }]);
}

/** Users and roles, operators' grants, and API tokens. */
export function userRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { users, inventory } = services;

  r.get('/users', { config: admins, schema: { tags: ['users'], summary: 'List users' } }, async () => ({ items: await users.list() }));

  r.post(
    '/users',
    {
      config: admins,
      schema: {
        tags: ['users'],
        summary: 'Create a user',
        body: z.strictObject({ username, role: z.enum(roles), password: z.string().max(1024) }),
      },
    },
    async (req, reply) => {
      checkPassword(req.body.password);
      const user = await users.create({
        username: req.body.username,
        role: req.body.role,
        passwordHash: await hashPassword(req.body.password),
      });
      await services.audit(req, {
        action: 'user.create',
        outcome: 'success',
        targetType: 'user',
        targetId: user.id,
        details: { username: user.username, role: user.role },
      });
      return reply.status(201).send(user);
    },
  );

  r.get('/users/:id', { config: admins, schema: { tags: ['users'], summary: 'Show a user', params: id } }, async (req) =>
    users.get(req.params.id),
  );

  r.patch(
    '/users/:id',
    {
      config: admins,
      schema: {
        tags: ['users'],
        summary: 'Change a user: role, disabled, password (which revokes their API tokens), or reset TOTP',
        params: id,
        body: z.strictObject({
          role: z.enum(roles).optional(),
          disabled: z.boolean().optional(),
          password: z.string().max(1024).optional(),
          resetTotp: z.literal(true).optional(),
        }),
      },
    },
    async (req) => {
      const target = await users.get(req.params.id);
      const demoting = (req.body.role !== undefined && req.body.role !== 'admin') || req.body.disabled === true;
      // countAdmins counts active administrators: a disabled one is never the last.
      if (target.role === 'admin' && !target.disabled && demoting && (await users.countAdmins()) <= 1) {
        throw new GatehouseError('CONFLICT', 'This is the last active administrator. Make another user an administrator first.');
      }
      const set: Parameters<typeof users.update>[1] = {};
      if (req.body.role !== undefined) set.role = req.body.role;
      if (req.body.disabled !== undefined) set.disabled = req.body.disabled ? 1 : 0;
      if (req.body.password !== undefined) {
        checkPassword(req.body.password);
        set.password_hash = await hashPassword(req.body.password);
      }
      if (req.body.resetTotp) Object.assign(set, { totp_enabled: 0, totp_secret_enc: null, totp_last_step: null });
      const user = await users.update(target.id, set);
      if (req.body.disabled === true || req.body.password !== undefined) await users.deleteSessionsOf(target.id);
      // A reset password: whatever was made with the old one (tokens) goes with it.
      const revokedTokens = req.body.password !== undefined ? await users.deleteTokensOf(target.id) : undefined;
      await services.audit(req, {
        action: 'user.update',
        outcome: 'success',
        targetType: 'user',
        targetId: user.id,
        details: { fields: Object.keys(req.body), role: user.role, ...(revokedTokens !== undefined ? { revokedTokens } : {}) },
      });
      return revokedTokens !== undefined ? { ...user, revokedTokens } : user;
    },
  );

  r.post(
    '/users/:id/unlock',
    { config: admins, schema: { tags: ['users'], summary: 'Lift every sign-in throttle of a user (after failed sign-ins)', params: id } },
    async (req) => {
      await new SignInThrottle(services.db).forget(await users.get(req.params.id));
      const user = await users.get(req.params.id);
      await services.audit(req, { action: 'user.unlock', outcome: 'success', targetType: 'user', targetId: user.id });
      return user;
    },
  );

  r.delete('/users/:id', { config: admins, schema: { tags: ['users'], summary: 'Delete a user', params: id } }, async (req, reply) => {
    const target = await users.get(req.params.id);
    if (target.id === caller(req).user.id) throw new GatehouseError('CONFLICT', 'You cannot delete yourself. Ask another administrator.');
    if (target.role === 'admin' && !target.disabled && (await users.countAdmins()) <= 1) {
      throw new GatehouseError('CONFLICT', 'This is the last active administrator. Make another user an administrator first.');
    }
    await users.delete(target.id);
    await services.audit(req, {
      action: 'user.delete',
      outcome: 'success',
      targetType: 'user',
      targetId: target.id,
      details: { username: target.username },
    });
    return reply.status(204).send();
  });

  // Grants: which projects, devices or accounts an operator may use.

  r.get(
    '/grants',
    {
      config: admins,
      schema: { tags: ['grants'], summary: 'List grants', querystring: z.strictObject({ userId: z.string().optional() }) },
    },
    async (req) => ({ items: await users.listGrants(req.query.userId) }),
  );

  r.post(
    '/grants',
    {
      config: admins,
      schema: {
        tags: ['grants'],
        summary: 'Grant an operator a project, or one device or account in it',
        body: z.strictObject({
          userId: z.string().min(1),
          projectId: z.string().min(1),
          deviceId: z.string().min(1).optional(),
          accountId: z.string().min(1).optional(),
        }),
      },
    },
    async (req, reply) => {
      const { userId, projectId, deviceId, accountId } = req.body;
      await users.get(userId);
      await inventory.getProject(projectId);
      if (deviceId !== undefined) {
        const device = await inventory.getDevice(deviceId);
        if (device.projectId !== projectId)
          throw new ValidationError('deviceId is not in that project.', [{ path: 'deviceId', message: 'is not in projectId' }]);
      }
      if (accountId !== undefined) {
        const account = await inventory.getAccount(accountId);
        if (deviceId === undefined || account.deviceId !== deviceId) {
          throw new ValidationError('accountId must come with the deviceId it belongs to.', [
            { path: 'accountId', message: 'is not on deviceId' },
          ]);
        }
      }
      const grant = await users.createGrant({ userId, projectId, deviceId: deviceId ?? null, accountId: accountId ?? null });
      await services.audit(req, {
        action: 'grant.create',
        outcome: 'success',
        targetType: 'grant',
        targetId: grant.id,
        details: { userId, projectId, deviceId, accountId },
      });
      return reply.status(201).send(grant);
    },
  );

  r.delete('/grants/:id', { config: admins, schema: { tags: ['grants'], summary: 'Revoke a grant', params: id } }, async (req, reply) => {
    await users.deleteGrant(req.params.id);
    await services.audit(req, { action: 'grant.delete', outcome: 'success', targetType: 'grant', targetId: req.params.id });
    return reply.status(204).send();
  });

  // API tokens: each user manages their own; an administrator can list and revoke any.

  r.get(
    '/tokens',
    { config: signedIn, schema: { tags: ['tokens'], summary: 'List API tokens (yours; all for administrators)' } },
    async (req) => {
      const auth = caller(req);
      return { items: await users.listTokens(auth.user.role === 'admin' ? undefined : auth.user.id) };
    },
  );

  r.post(
    '/tokens',
    {
      config: signedIn,
      schema: {
        tags: ['tokens'],
        summary: 'Create an API token for yourself (from a web session only); the token is shown only in this response',
        body: z.strictObject({
          name: z.string().trim().min(1).max(100),
          scope: z.enum(tokenScopes, { error: "must be 'read' (GET and HEAD requests only) or 'full'" }),
          expiresInDays: z.number().int().min(1).optional(),
        }),
      },
    },
    async (req, reply) => {
      const auth = caller(req);
      // A token must not outlive or outgrow what made it: only a person signed in with their password makes one.
      if (auth.via !== 'session')
        throw new ForbiddenError(
          'An API token cannot create API tokens. Create one in the console (Your account) or with gatehouse login.',
        );
      const maxDays = services.config.apiTokenMaxDays;
      const days = req.body.expiresInDays ?? Math.min(DEFAULT_TOKEN_DAYS, maxDays);
      if (days > maxDays) {
        throw new ValidationError(`expiresInDays must be at most ${maxDays} (the server's apiTokenMaxDays).`, [
          { path: 'expiresInDays', message: `must be at most ${maxDays}` },
        ]);
      }
      const token = newToken('ghp');
      const expiresAt = new Date(Date.now() + days * 86_400_000).toISOString();
      const created = await users.createToken({ userId: auth.user.id, name: req.body.name, token, expiresAt, scope: req.body.scope });
      await services.audit(req, {
        action: 'token.create',
        outcome: 'success',
        targetType: 'token',
        targetId: created.id,
        details: { name: created.name, scope: created.scope, expiresAt },
      });
      return reply.status(201).send({ ...created, token });
    },
  );

  r.delete(
    '/tokens/:id',
    { config: signedIn, schema: { tags: ['tokens'], summary: 'Revoke an API token', params: id } },
    async (req, reply) => {
      const auth = caller(req);
      const token = await users.getToken(req.params.id);
      // Another user's token is, to everyone but an administrator, one that does not exist.
      if (token.userId !== auth.user.id && auth.user.role !== 'admin') throw new NotFoundError('API token', req.params.id);
      await users.deleteToken(token.id);
      await services.audit(req, { action: 'token.delete', outcome: 'success', targetType: 'token', targetId: token.id });
      return reply.status(204).send();
    },
  );
}
