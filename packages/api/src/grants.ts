import { z } from 'zod';
import { listOf, timestamp } from './common.js';

/** Grants: which project, or which one device or account in it, an operator may use (`/grants`, administrators). */

export const grantListQuery = z.strictObject({ userId: z.string().optional() });

export const grantCreate = z.strictObject({
  userId: z.string().min(1),
  projectId: z.string().min(1),
  deviceId: z.string().min(1).optional(),
  /** Needs the deviceId it belongs to. */
  accountId: z.string().min(1).optional(),
});
export type GrantCreate = z.infer<typeof grantCreate>;

export const grant = z.object({
  id: z.string(),
  userId: z.string(),
  projectId: z.string(),
  deviceId: z.string().nullable(),
  accountId: z.string().nullable(),
  createdAt: timestamp,
});
export type Grant = z.infer<typeof grant>;

export const grantList = listOf(grant);
export type GrantList = z.infer<typeof grantList>;
