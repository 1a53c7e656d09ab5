import { idParams, noContent, responses, user, userCreate, userList, userUpdate, userUpdated } from '@gatehouse/api';
import { ConflictError, ValidationError } from '@gatehouse/core';
import { SignInThrottle } from '@gatehouse/db';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { admins } from '../../access.js';
import { caller } from '../../auth.js';
import { hashPassword, passwordProblem } from '../../passwords.js';
import type { Services } from '../../services.js';
import { presentUser } from './presenter.js';

function checkPassword(value: string) {
  const problem = passwordProblem(value);
  if (problem) throw new ValidationError(`password ${problem}.`, [{ path: 'password', message: problem }]);
}

const lastAdmin = () => new ConflictError('This is the last active administrator. Make another user an administrator first.');

/** Users and their roles (administrators): create, change, unlock, delete. */
export function userRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { users } = services;
  const tags = ['users'];

  r.get('/users', { config: admins, schema: { tags, summary: 'List users', response: responses({ 200: userList }) } }, async () => ({
    items: (await users.list()).map(presentUser),
  }));

  r.post(
    '/users',
    { config: admins, schema: { tags, summary: 'Create a user', body: userCreate, response: responses({ 201: user }) } },
    async (req, reply) => {
      checkPassword(req.body.password);
      const passwordHash = await hashPassword(req.body.password);
      const created = await services.withAudit(req, async (tx, audit) => {
        const u = await tx.users.create({ username: req.body.username, role: req.body.role, passwordHash });
        audit({
          action: 'user.create',
          outcome: 'success',
          targetType: 'user',
          targetId: u.id,
          details: { username: u.username, role: u.role },
        });
        return u;
      });
      return reply.status(201).send(presentUser(created));
    },
  );

  r.get(
    '/users/:id',
    { config: admins, schema: { tags, summary: 'Show a user', params: idParams, response: responses({ 200: user }) } },
    async (req) => presentUser(await users.get(req.params.id)),
  );

  r.patch(
    '/users/:id',
    {
      config: admins,
      schema: {
        tags,
        summary: 'Change a user: role, disabled, password (which revokes their API tokens), or reset TOTP',
        params: idParams,
        body: userUpdate,
        response: responses({ 200: userUpdated }),
      },
    },
    async (req) => {
      const target = await users.get(req.params.id);
      const demoting = (req.body.role !== undefined && req.body.role !== 'admin') || req.body.disabled === true;
      // countAdmins counts active administrators: a disabled one is never the last.
      if (target.role === 'admin' && !target.disabled && demoting && (await users.countAdmins()) <= 1) throw lastAdmin();
      const set: Parameters<typeof users.update>[1] = {};
      if (req.body.role !== undefined) set.role = req.body.role;
      // An administrator's choice: an OIDC sign-in no longer enables the user on its own.
      if (req.body.disabled !== undefined) Object.assign(set, { disabled: req.body.disabled ? 1 : 0, sso_disabled: 0 });
      if (req.body.password !== undefined && target.sso) {
        throw new ValidationError('password cannot be set for an SSO user: they sign in at the identity provider.', [
          { path: 'password', message: 'SSO users have no local password' },
        ]);
      }
      if (req.body.password !== undefined) {
        checkPassword(req.body.password);
        // Hashed before the transaction: argon2 takes a while, and the transaction should not.
        set.password_hash = await hashPassword(req.body.password);
      }
      if (req.body.resetTotp) Object.assign(set, { totp_enabled: 0, totp_secret_enc: null, totp_last_step: null });
      const { updated, revokedTokens } = await services.withAudit(req, async (tx, audit) => {
        const updated = await tx.users.update(target.id, set);
        if (req.body.disabled === true || req.body.password !== undefined) await tx.users.deleteSessionsOf(target.id);
        // A reset password: whatever was made with the old one (tokens) goes with it.
        const revokedTokens = req.body.password !== undefined ? await tx.users.deleteTokensOf(target.id) : undefined;
        audit({
          action: 'user.update',
          outcome: 'success',
          targetType: 'user',
          targetId: updated.id,
          details: { fields: Object.keys(req.body), role: updated.role, ...(revokedTokens !== undefined ? { revokedTokens } : {}) },
        });
        return { updated, revokedTokens };
      });
      return revokedTokens !== undefined ? { ...presentUser(updated), revokedTokens } : presentUser(updated);
    },
  );

  r.post(
    '/users/:id/unlock',
    {
      config: admins,
      schema: {
        tags,
        summary: 'Lift every sign-in throttle of a user (after failed sign-ins)',
        params: idParams,
        response: responses({ 200: user }),
      },
    },
    async (req) => {
      const unlocked = await services.withAudit(req, async (tx, audit) => {
        await new SignInThrottle(services.db, tx.trx).forget(await tx.users.get(req.params.id));
        const u = await tx.users.get(req.params.id);
        audit({ action: 'user.unlock', outcome: 'success', targetType: 'user', targetId: u.id });
        return u;
      });
      return presentUser(unlocked);
    },
  );

  r.delete(
    '/users/:id',
    { config: admins, schema: { tags, summary: 'Delete a user', params: idParams, response: responses({ 204: noContent }) } },
    async (req, reply) => {
      const target = await users.get(req.params.id);
      if (target.id === caller(req).user.id) throw new ConflictError('You cannot delete yourself. Ask another administrator.');
      if (target.role === 'admin' && !target.disabled && (await users.countAdmins()) <= 1) throw lastAdmin();
      await services.withAudit(req, async (tx, audit) => {
        await tx.users.delete(target.id);
        audit({
          action: 'user.delete',
          outcome: 'success',
          targetType: 'user',
          targetId: target.id,
          details: { username: target.username, targetName: target.username },
        });
      });
      return reply.status(204).send(null);
    },
  );
}
