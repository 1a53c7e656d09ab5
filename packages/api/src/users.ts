import { roles } from '@gatehouse/core/roles';
import { z } from 'zod';
import { listOf, timestamp } from './common.js';

/** Users and their roles (`/users`, administrators). */

export const role = z.enum(roles);
export type Role = z.infer<typeof role>;

/** A user name as the API takes it (sign-in takes any name up to 256 characters, to answer as a wrong password does). */
export const username = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'must be 1-64 letters, digits or . _ @ - and start with a letter or digit');

/** A new password as sent; the server says what makes it too weak. */
export const newPassword = z.string().max(1024);

export const userCreate = z.strictObject({ username, role, password: newPassword });
export type UserCreate = z.infer<typeof userCreate>;

export const userUpdate = z.strictObject({
  role: role.optional(),
  disabled: z.boolean().optional(),
  /** A new password: it revokes the user's API tokens and ends their web sessions. */
  password: newPassword.optional(),
  resetTotp: z.literal(true).optional(),
});
export type UserUpdate = z.infer<typeof userUpdate>;

/** A user as the client sees it: never its password hash or TOTP secret. */
export const user = z.object({
  id: z.string(),
  username: z.string(),
  role,
  totpEnabled: z.boolean(),
  disabled: z.boolean(),
  /** Until when the account-wide sign-in throttle holds (an administrator can unlock it). */
  lockedUntil: timestamp.nullable(),
  createdAt: timestamp,
  lastLoginAt: timestamp.nullable(),
  /** Made by OIDC sign-in: no local password; the role follows the identity provider's groups at each sign-in. */
  sso: z.boolean(),
});
export type User = z.infer<typeof user>;

/** `PATCH /users/:id`: the user, and how many API tokens a new password revoked. */
export const userUpdated = user.extend({ revokedTokens: z.number().int().optional() });
export type UserUpdated = z.infer<typeof userUpdated>;

export const userList = listOf(user);
export type UserList = z.infer<typeof userList>;
