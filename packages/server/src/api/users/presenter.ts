import type { User } from '@gatehouse/api';
import type { User as UserRecord } from '@gatehouse/db';

/**
 * A user as the API shows it. The record never holds the password hash or the TOTP
 * secret; the fields are named here one by one, so a field added to the record is not
 * shown until someone decides it may be.
 */
export function presentUser(u: UserRecord): User {
  return {
    id: u.id,
    username: u.username,
    role: u.role,
    totpEnabled: u.totpEnabled,
    disabled: u.disabled,
    lockedUntil: u.lockedUntil,
    createdAt: u.createdAt,
    lastLoginAt: u.lastLoginAt,
    sso: u.sso,
  };
}
