/** The roles a user can hold. Admins manage everything; operators use the devices they
 * are granted; auditors read the audit log and the inventory, never a secret. */
export const roles = ['admin', 'operator', 'auditor'] as const;
export type Role = (typeof roles)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (roles as readonly string[]).includes(value);
}
