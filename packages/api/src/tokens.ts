import { z } from 'zod';
import { listOf, timestamp } from './common.js';

/** API tokens (`/tokens`): each user manages their own; an administrator lists and revokes any. */

/** 'read' sends only GET and HEAD requests; 'full' whatever its user may. */
export const tokenScope = z.enum(['read', 'full'], { error: "must be 'read' (GET and HEAD requests only) or 'full'" });
export type TokenScope = z.infer<typeof tokenScope>;

export const apiTokenCreate = z.strictObject({
  name: z.string().trim().min(1).max(100),
  scope: tokenScope,
  /** 90 unless given; at most the server's apiTokenMaxDays. */
  expiresInDays: z.number().int().min(1).optional(),
});
export type ApiTokenCreate = z.infer<typeof apiTokenCreate>;

/** A token as listed: its first characters (prefix) name it; the token itself is never shown again. */
export const apiToken = z.object({
  id: z.string(),
  userId: z.string(),
  name: z.string(),
  prefix: z.string(),
  scope: tokenScope,
  createdAt: timestamp,
  expiresAt: timestamp.nullable(),
  lastUsedAt: timestamp.nullable(),
});
export type ApiToken = z.infer<typeof apiToken>;

/** `POST /tokens`: the new token with its plaintext, shown in this answer only. */
export const apiTokenCreated = apiToken.extend({ token: z.string().describe('The token (gatehouse_pat_…): shown only in this answer') });
export type ApiTokenCreated = z.infer<typeof apiTokenCreated>;

export const apiTokenList = listOf(apiToken);
export type ApiTokenList = z.infer<typeof apiTokenList>;
