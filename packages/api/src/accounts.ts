import { accountInput, accountPatch as corePatch } from '@gatehouse/core/inventory';
import { SECRET_MASK } from '@gatehouse/core/secrets';
import { z } from 'zod';
import { listOf, timestamp } from './common.js';

/** Accounts on devices (`/accounts`, `/devices/:id/accounts`), with their secrets sealed by the vault. */

export const accountCreate = accountInput;
export type AccountCreate = z.input<typeof accountCreate>;

/** Only the fields sent change; a secret sent as null or "" is cleared. */
export const accountPatch = corePatch;
export type AccountPatch = z.input<typeof accountPatch>;

/**
 * A secret as an account's answer shows it: the fixed mask when one is set, null when not.
 * Nothing else passes the response schema, so a stored secret cannot leave by mistake.
 */
export const maskedSecret = z.literal(SECRET_MASK).nullable();

export const account = z.object({
  id: z.string(),
  deviceId: z.string(),
  username: z.string(),
  password: maskedSecret,
  privateKey: maskedSecret,
  pemFileName: z.string().nullable(),
  passphrase: maskedSecret,
  extraCredential: maskedSecret,
  createdAt: timestamp,
  updatedAt: timestamp,
});
export type Account = z.infer<typeof account>;

export const accountList = listOf(account);
export type AccountList = z.infer<typeof accountList>;

export const accountRevealBody = z.strictObject({ reason: z.string().trim().min(1, 'is required: say why you need the secret').max(500) });
export type AccountRevealBody = z.input<typeof accountRevealBody>;

/** `POST /accounts/:id/reveal`: the decrypted secrets, audited. */
export const revealedAccount = z.object({
  id: z.string(),
  password: z.string().nullable(),
  privateKey: z.string().nullable(),
  passphrase: z.string().nullable(),
  extraCredential: z.record(z.string(), z.string()).nullable(),
});
export type RevealedAccount = z.infer<typeof revealedAccount>;
