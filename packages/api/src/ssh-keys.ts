import { z } from 'zod';
import { listOf, timestamp } from './common.js';

/** SSH public keys users sign in to the gateway with (`/ssh-keys`). */

export const sshKeyListQuery = z.strictObject({ userId: z.string().min(1).max(100).optional() });

export const sshKeyCreate = z.strictObject({
  publicKey: z.string().min(1, 'is required').max(16_384),
  name: z.string().trim().min(1).max(100).optional(),
  userId: z.string().min(1).max(100).optional(),
});
export type SshKeyCreate = z.infer<typeof sshKeyCreate>;

export const sshKey = z.object({
  id: z.string(),
  userId: z.string(),
  name: z.string(),
  algorithm: z.string(),
  /** The OpenSSH public key line without a comment: `ssh-ed25519 AAAA…`. */
  publicKey: z.string(),
  fingerprint: z.string(),
  createdAt: timestamp,
  lastUsedAt: timestamp.nullable(),
});
export type SshKey = z.infer<typeof sshKey>;

export const sshKeyList = listOf(sshKey);
export type SshKeyList = z.infer<typeof sshKeyList>;
