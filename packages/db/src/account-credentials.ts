import { randomUUID } from 'node:crypto';
import { ConflictError, NotFoundError } from '@gatehouse/core';
import { accountFromRow, sealSecret, secretsOf, type Account } from './accounts.js';
import { inTransaction, type Tx } from './connect.js';
import type { AccountCredentialTable } from './schema.js';
import type { Vault } from './vault.js';

/**
 * pending: a new credential stored before it is set on the host, so it is never lost;
 * previous: the one a rotation replaced (only the newest is kept per account);
 * unverified: a new one neither it nor the old one could log in with after a failed rotation.
 */
export type CredentialState = 'pending' | 'previous' | 'unverified';

/** A credential beside an account's current one, without its secrets (reveal() decrypts them). */
export interface AccountCredential {
  id: string;
  accountId: string;
  state: CredentialState;
  hasPassword: boolean;
  hasPrivateKey: boolean;
  hasPassphrase: boolean;
  /** The OpenSSH public key line of a generated key (not secret). */
  publicKey: string | null;
  /** The run that made it. */
  runId: string | null;
  createdAt: string;
}

export interface CredentialSecrets {
  password: string | null;
  privateKey: string | null;
  passphrase: string | null;
}

const TABLE = 'account_credentials';

const credentialFromRow = (r: AccountCredentialTable): AccountCredential => ({
  id: r.id,
  accountId: r.account_id,
  state: r.state as CredentialState,
  hasPassword: r.password_enc !== null,
  hasPrivateKey: r.private_key_enc !== null,
  hasPassphrase: r.passphrase_enc !== null,
  publicKey: r.public_key,
  runId: r.run_id,
  createdAt: r.created_at,
});

const seal = (vault: Vault, id: string, field: string, value: string | null | undefined): string | null =>
  value === null || value === undefined || value === '' ? null : vault.encrypt({ table: TABLE, id, field }, value);

const unseal = (vault: Vault, id: string, field: string, value: string | null): string | null =>
  value === null ? null : vault.decrypt({ table: TABLE, id, field }, value);

async function credentialRow(x: Tx, id: string): Promise<AccountCredentialTable> {
  const row = await x.selectFrom('account_credentials').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new NotFoundError('Credential', id);
  return row;
}

/**
 * Credentials of a rotation beside the account's current one, every secret sealed by the
 * vault (associated data: table account_credentials, the row's id and the field). promote()
 * makes a verified pending credential the account's current one.
 */
export class AccountCredentials {
  constructor(
    private readonly vault: Vault,
    private readonly x: Tx,
  ) {}

  /** Stores a new credential as pending, before it is set on the host. */
  async addPending(
    accountId: string,
    secrets: Partial<CredentialSecrets> & { publicKey?: string | null },
    runId: string | null,
  ): Promise<AccountCredential> {
    const account = await this.x.selectFrom('accounts').select('id').where('id', '=', accountId).executeTakeFirst();
    if (!account) throw new NotFoundError('Account', accountId);
    const id = randomUUID();
    const row: AccountCredentialTable = {
      id,
      account_id: accountId,
      state: 'pending',
      password_enc: seal(this.vault, id, 'password', secrets.password),
      private_key_enc: seal(this.vault, id, 'privateKey', secrets.privateKey),
      passphrase_enc: seal(this.vault, id, 'passphrase', secrets.passphrase),
      public_key: secrets.publicKey ?? null,
      run_id: runId,
      created_at: new Date().toISOString(),
    };
    await this.x.insertInto('account_credentials').values(row).execute();
    return credentialFromRow(row);
  }

  async get(id: string): Promise<AccountCredential> {
    return credentialFromRow(await credentialRow(this.x, id));
  }

  /** The decrypted secrets of one credential. Callers check it belongs to the account they use it for. */
  async reveal(id: string): Promise<CredentialSecrets & { accountId: string }> {
    const row = await credentialRow(this.x, id);
    return {
      accountId: row.account_id,
      password: unseal(this.vault, id, 'password', row.password_enc),
      privateKey: unseal(this.vault, id, 'privateKey', row.private_key_enc),
      passphrase: unseal(this.vault, id, 'passphrase', row.passphrase_enc),
    };
  }

  /** An account's credentials beside its current one, newest first, without secrets. */
  async list(accountId: string): Promise<AccountCredential[]> {
    const rows = await this.x
      .selectFrom('account_credentials')
      .selectAll()
      .where('account_id', '=', accountId)
      .orderBy('created_at', 'desc')
      .orderBy('id')
      .execute();
    return rows.map(credentialFromRow);
  }

  /** The credential the last rotation replaced, if any. */
  async previousOf(accountId: string): Promise<AccountCredential | undefined> {
    const row = await this.x
      .selectFrom('account_credentials')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('state', '=', 'previous')
      .executeTakeFirst();
    return row && credentialFromRow(row);
  }

  /**
   * Makes a verified pending credential the account's current one, in one transaction: the
   * current secrets become the account's previous credential (replacing an older previous
   * one), the pending secrets are written to the account with secret_changed_at, and the
   * pending row is deleted. A password replaces the password; a private key replaces the
   * key and its passphrase; what the pending row does not hold stays as it is.
   */
  async promote(pendingId: string): Promise<{ account: Account; previous: AccountCredential | null }> {
    return inTransaction(this.x, async (trx) => {
      // Claiming the row first makes a second promote of it (another replica) find nothing.
      const claimed = await trx
        .updateTable('account_credentials')
        .set({ state: 'promoting' })
        .where('id', '=', pendingId)
        .where('state', '=', 'pending')
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) !== 1) {
        const found = await trx.selectFrom('account_credentials').select('state').where('id', '=', pendingId).executeTakeFirst();
        if (!found) throw new NotFoundError('Credential', pendingId);
        throw new ConflictError(
          `Credential ${pendingId} is ${found.state}, not pending: only a pending credential becomes the current one.`,
        );
      }
      const pending = await credentialRow(trx, pendingId);
      const now = new Date().toISOString();
      // Writing the account first holds its row (PostgreSQL), so two promotes of one account take turns.
      await trx.updateTable('accounts').set({ updated_at: now, secret_changed_at: now }).where('id', '=', pending.account_id).execute();
      const current = await trx.selectFrom('accounts').selectAll().where('id', '=', pending.account_id).executeTakeFirstOrThrow();
      const old = secretsOf(this.vault, current);
      await trx.deleteFrom('account_credentials').where('account_id', '=', current.id).where('state', '=', 'previous').execute();
      let previous: AccountCredentialTable | null = null;
      if (old.password !== null || old.privateKey !== null) {
        const id = randomUUID();
        previous = {
          id,
          account_id: current.id,
          state: 'previous',
          password_enc: seal(this.vault, id, 'password', old.password),
          private_key_enc: seal(this.vault, id, 'privateKey', old.privateKey),
          passphrase_enc: seal(this.vault, id, 'passphrase', old.passphrase),
          public_key: null,
          run_id: pending.run_id,
          created_at: now,
        };
        await trx.insertInto('account_credentials').values(previous).execute();
      }
      const next = {
        password: unseal(this.vault, pending.id, 'password', pending.password_enc),
        privateKey: unseal(this.vault, pending.id, 'privateKey', pending.private_key_enc),
        passphrase: unseal(this.vault, pending.id, 'passphrase', pending.passphrase_enc),
      };
      await trx
        .updateTable('accounts')
        .set({
          ...(next.password !== null ? { password_enc: sealSecret(this.vault, current.id, 'password', next.password) } : {}),
          ...(next.privateKey !== null
            ? {
                private_key_enc: sealSecret(this.vault, current.id, 'privateKey', next.privateKey),
                passphrase_enc: sealSecret(this.vault, current.id, 'passphrase', next.passphrase),
              }
            : {}),
        })
        .where('id', '=', current.id)
        .execute();
      await trx.deleteFrom('account_credentials').where('id', '=', pendingId).execute();
      const account = await trx.selectFrom('accounts').selectAll().where('id', '=', current.id).executeTakeFirstOrThrow();
      return { account: accountFromRow(account), previous: previous && credentialFromRow(previous) };
    });
  }

  /** Deletes a credential (a pending one the host was put back from). False when it was gone. */
  async discard(id: string): Promise<boolean> {
    const r = await this.x.deleteFrom('account_credentials').where('id', '=', id).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }

  /** Keeps a pending credential as unverified: neither it nor the old one logged in, so it may be the one the host has. */
  async markUnverified(id: string): Promise<AccountCredential> {
    const r = await this.x
      .updateTable('account_credentials')
      .set({ state: 'unverified' })
      .where('id', '=', id)
      .where('state', '=', 'pending')
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) {
      const found = await this.get(id);
      throw new ConflictError(`Credential ${id} is ${found.state}, not pending.`);
    }
    return this.get(id);
  }
}
