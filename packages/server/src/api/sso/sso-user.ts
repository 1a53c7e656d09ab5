import type { User } from '@gatehouse/db';
import type { FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import { OidcSignInError, roleOfGroups, usernameOf, type OidcIdentity } from '../../sso/oidc-client.js';
import type { StoredOidcSettings } from '../../sso/oidc-settings.js';

export interface SsoSignedIn {
  user: User;
  /** The session waits for the local authenticator code (requireLocalMfa). */
  mfaPending: boolean;
}

/**
 * The user an OIDC identity signs in as, in one transaction with its audit events: made
 * just in time with the role its groups map to (an SSO user, no local password), or an
 * existing SSO user's role set again from its groups. In no mapped group, the sign-in is
 * refused, and an SSO user who had signed in before is disabled (their sessions end; API
 * tokens and SSH keys stop working) until a sign-in maps a role again. A local user of
 * the same name is never taken over.
 */
export async function signInSsoUser(
  services: Services,
  req: FastifyRequest,
  s: StoredOidcSettings,
  identity: OidcIdentity,
  opts: { cliLoginId: string | null; session: { token: string; ttlMs: number } | null },
): Promise<SsoSignedIn> {
  const role = roleOfGroups(s, identity.groups);
  const existing = await services.users.rowBySsoSubject(identity.subject);
  const actor = { actorId: existing?.id ?? null, actorName: existing?.username ?? usernameOf(identity.name) };
  if (role === null) {
    if (existing && existing.disabled === 0) {
      await services.withAudit(req, async (tx, audit) => {
        await tx.users.update(existing.id, { disabled: 1, sso_disabled: 1 });
        await tx.users.deleteSessionsOf(existing.id);
        audit({
          action: 'user.update',
          outcome: 'success',
          ...actor,
          targetType: 'user',
          targetId: existing.id,
          details: { disabled: true, reason: 'OIDC sign-in: in no mapped group', method: 'oidc' },
        });
      });
    }
    throw new OidcSignInError(
      'in no mapped group',
      'You are in none of the groups Gatehouse gives a role to. Ask an administrator to add you to one of them at your identity provider.',
      actor,
    );
  }
  if (existing && existing.disabled === 1 && existing.sso_disabled === 0) {
    throw new OidcSignInError('disabled', 'This user is disabled. Ask an administrator.', actor);
  }
  if (!existing) {
    const taken = await services.users.rowByName(usernameOf(identity.name));
    if (taken) {
      throw new OidcSignInError(
        'user name taken by a local user',
        `A user named ${taken.username} exists in Gatehouse already and is not an SSO user. An administrator must rename or delete it before you can sign in with SSO.`,
        actor,
      );
    }
  }
  const mfaPending = s.requireLocalMfa && opts.cliLoginId === null;
  if (s.requireLocalMfa && opts.cliLoginId !== null) {
    throw new OidcSignInError(
      'local MFA required: CLI login refused',
      'Local MFA is required after SSO, which gatehouse login --sso cannot ask for. Sign in to the console and create an API token under Your account.',
      actor,
    );
  }
  const user = await services.withAudit(req, async (tx, audit) => {
    let user: User;
    if (existing) {
      user = await tx.users.update(existing.id, { role, disabled: 0, sso_disabled: 0, last_login_at: new Date().toISOString() });
      const changed = existing.role !== role ? { role: { before: existing.role, after: role } } : {};
      const enabled = existing.disabled === 1 ? { disabled: { before: true, after: false } } : {};
      if (Object.keys(changed).length + Object.keys(enabled).length > 0) {
        audit({
          action: 'user.update',
          outcome: 'success',
          actorId: user.id,
          actorName: user.username,
          targetType: 'user',
          targetId: user.id,
          details: { ...changed, ...enabled, reason: 'OIDC sign-in: groups', method: 'oidc' },
        });
      }
    } else {
      const made = await tx.users.create({ username: usernameOf(identity.name), role, passwordHash: '', ssoSubject: identity.subject });
      user = await tx.users.update(made.id, { last_login_at: new Date().toISOString() });
      audit({
        action: 'user.create',
        outcome: 'success',
        actorId: user.id,
        actorName: user.username,
        targetType: 'user',
        targetId: user.id,
        details: { role, method: 'oidc' },
      });
    }
    if (opts.cliLoginId !== null && !(await tx.sso.approveCliLogin(opts.cliLoginId, user.id))) {
      throw new OidcSignInError(
        'CLI login expired or approved already',
        'This CLI login has expired or was used. Run gatehouse login --sso again.',
        {
          actorId: user.id,
          actorName: user.username,
        },
      );
    }
    if (opts.session) await tx.users.createSession(user.id, opts.session.token, !mfaPending, opts.session.ttlMs);
    audit({
      action: 'auth.login',
      outcome: 'success',
      actorId: user.id,
      actorName: user.username,
      details: { method: 'oidc', role, ...(opts.cliLoginId !== null ? { cli: true } : {}), ...(mfaPending ? { mfaPending: true } : {}) },
    });
    return user;
  });
  return { user, mfaPending };
}
