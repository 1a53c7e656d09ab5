import { randomUUID } from 'node:crypto';
import { NotFoundError, type AccountInput, type AccountPatch } from '@gatehouse/core';
import type { Tx } from './connect.js';
import { Devices } from './devices.js';
import { uniquely } from './errors.js';
import type { AccountTable } from './schema.js';
import type { Vault } from './vault.js';

/**
 * An account without its secrets: only whether each is set (reveal() decrypts them). The
 * API's presenter shows a set one as the mask.
 */
export interface Account {
  id: string;
  deviceId: string;
  username: string;
  hasPassword: boolean;
  hasPrivateKey: boolean;
  pemFileName: string | null;
  hasPassphrase: boolean;
  hasExtraCredential: boolean;
  createdAt: string;
  updatedAt: string;
  /** When a secret (password, private key, passphrase, extra credential) last changed. */
  secretChangedAt: string;
}

export interface AccountSecrets {
  password: string | null;
  privateKey: string | null;
  passphrase: string | null;
  extraCredential: Record<string, string> | null;
}

export const accountFromRow = (r: AccountTable): Account => ({
  id: r.id,
  deviceId: r.device_id,
  username: r.username,
  hasPassword: r.password_enc !== null,
  hasPrivateKey: r.private_key_enc !== null,
  pemFileName: r.pem_file_name,
  hasPassphrase: r.passphrase_enc !== null,
  hasExtraCredential: r.extra_credential_enc !== null,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  secretChangedAt: r.secret_changed_at,
});

/**
 * An account with its decrypted secrets, for the break-glass export, built as one object
 * literal: spreading accountFromRow() into a new object per account made V8 keep many of
 * them past young-generation GCs (bench/README.md).
 */
export const accountWithSecretsFromRow = (r: AccountTable, secrets: AccountSecrets): Account & { secrets: AccountSecrets } => ({
  id: r.id,
  deviceId: r.device_id,
  username: r.username,
  hasPassword: r.password_enc !== null,
  hasPrivateKey: r.private_key_enc !== null,
  pemFileName: r.pem_file_name,
  hasPassphrase: r.passphrase_enc !== null,
  hasExtraCredential: r.extra_credential_enc !== null,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  secretChangedAt: r.secret_changed_at,
  secrets,
});

/** A secret field sealed by the vault for this account; null, undefined and '' are no secret. */
export function sealSecret(vault: Vault, id: string, field: string, value: string | null | undefined): string | null {
  if (value === null || value === undefined || value === '') return null;
  return vault.encrypt({ table: 'accounts', id, field }, value);
}

/** The extra credential sealed as JSON; an empty one is none. */
export function sealExtraCredential(vault: Vault, id: string, value: Record<string, string> | null | undefined): string | null {
  return value && Object.keys(value).length > 0 ? sealSecret(vault, id, 'extraCredential', JSON.stringify(value)) : null;
}

const unseal = (vault: Vault, id: string, field: string, value: string | null): string | null =>
  value === null ? null : vault.decrypt({ table: 'accounts', id, field }, value);

/** The decrypted secrets of an account's row. */
export function secretsOf(vault: Vault, row: AccountTable): AccountSecrets {
  const extra = unseal(vault, row.id, 'extraCredential', row.extra_credential_enc);
  return {
    password: unseal(vault, row.id, 'password', row.password_enc),
    privateKey: unseal(vault, row.id, 'privateKey', row.private_key_enc),
    passphrase: unseal(vault, row.id, 'passphrase', row.passphrase_enc),
    extraCredential: extra === null ? null : (JSON.parse(extra) as Record<string, string>),
  };
}

/** Secret fields as an update or an import gives them: undefined keeps the stored one, null or '' clears it. */
export interface SecretFields {
  password?: string | null | undefined;
  privateKey?: string | null | undefined;
  passphrase?: string | null | undefined;
  extraCredential?: Record<string, string> | null | undefined;
}

type SealedFields = Pick<AccountTable, 'id' | 'password_enc' | 'private_key_enc' | 'passphrase_enc' | 'extra_credential_enc'>;

/**
 * Whether writing `given` changes a secret of the stored row: a secret given again as it is
 * (an inventory file imported every night) leaves secret_changed_at alone.
 */
export function changesSecrets(vault: Vault, row: SealedFields, given: SecretFields): boolean {
  const differs = (field: string, value: string | null | undefined, sealed: string | null) => {
    if (value === undefined) return false;
    const next = value === null || value === '' ? null : value;
    return next !== unseal(vault, row.id, field, sealed);
  };
  const extra =
    given.extraCredential === undefined
      ? undefined
      : given.extraCredential && Object.keys(given.extraCredential).length > 0
        ? JSON.stringify(given.extraCredential)
        : null;
  return (
    differs('password', given.password, row.password_enc) ||
    differs('privateKey', given.privateKey, row.private_key_enc) ||
    differs('passphrase', given.passphrase, row.passphrase_enc) ||
    differs('extraCredential', extra, row.extra_credential_enc)
  );
}

/** Accounts on devices, unique by user name on a device, every secret sealed by the vault. */
export class Accounts {
  constructor(
    private readonly vault: Vault,
    private readonly x: Tx,
  ) {}

  async create(input: AccountInput): Promise<Account> {
    await new Devices(this.x).get(input.deviceId);
    const id = randomUUID();
    const now = new Date().toISOString();
    const row: AccountTable = {
      id,
      device_id: input.deviceId,
      username: input.username,
      password_enc: sealSecret(this.vault, id, 'password', input.password),
      private_key_enc: sealSecret(this.vault, id, 'privateKey', input.privateKey),
      pem_file_name: input.pemFileName ?? null,
      passphrase_enc: sealSecret(this.vault, id, 'passphrase', input.passphrase),
      extra_credential_enc: sealExtraCredential(this.vault, id, input.extraCredential),
      created_at: now,
      updated_at: now,
      secret_changed_at: now,
    };
    await uniquely('username', `This device already has an account ${JSON.stringify(input.username)}.`, () =>
      this.x.insertInto('accounts').values(row).execute(),
    );
    return accountFromRow(row);
  }

  async get(id: string): Promise<Account> {
    return accountFromRow(await this.row(id));
  }

  private async row(id: string): Promise<AccountTable> {
    const row = await this.x.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new NotFoundError('Account', id);
    return row;
  }

  /** A device's accounts by user name. */
  async list(deviceId: string): Promise<Account[]> {
    const rows = await this.x.selectFrom('accounts').selectAll().where('device_id', '=', deviceId).orderBy('username').execute();
    return rows.map(accountFromRow);
  }

  /**
   * Accounts whose credential was as it is now at `at` (created then, no secret changed
   * since) and that hold a password or a private key: what an export made at `at` contains
   * that still works, by device then user name.
   */
  async unchangedSince(at: string): Promise<Account[]> {
    const rows = await this.x
      .selectFrom('accounts')
      .selectAll()
      .where('created_at', '<=', at)
      .where('secret_changed_at', '<=', at)
      .where((eb) => eb.or([eb('password_enc', 'is not', null), eb('private_key_enc', 'is not', null)]))
      .orderBy('device_id')
      .orderBy('username')
      .execute();
    return rows.map(accountFromRow);
  }

  /** Writes only the fields given; a secret set to null or '' is cleared. */
  async update(id: string, patch: AccountPatch): Promise<Account> {
    const current = await this.row(id);
    if (patch.deviceId !== undefined && patch.deviceId !== current.device_id) {
      throw new NotFoundError('Account', `${id} on device ${patch.deviceId}`);
    }
    const now = new Date().toISOString();
    const set: Partial<AccountTable> = { updated_at: now };
    if (changesSecrets(this.vault, current, patch)) set.secret_changed_at = now;
    if (patch.username !== undefined) set.username = patch.username;
    if (patch.pemFileName !== undefined) set.pem_file_name = patch.pemFileName;
    if (patch.password !== undefined) set.password_enc = sealSecret(this.vault, id, 'password', patch.password);
    if (patch.privateKey !== undefined) set.private_key_enc = sealSecret(this.vault, id, 'privateKey', patch.privateKey);
    if (patch.passphrase !== undefined) set.passphrase_enc = sealSecret(this.vault, id, 'passphrase', patch.passphrase);
    if (patch.extraCredential !== undefined) {
      set.extra_credential_enc =
        patch.extraCredential && Object.keys(patch.extraCredential).length > 0
          ? sealSecret(this.vault, id, 'extraCredential', JSON.stringify(patch.extraCredential))
          : null;
    }
    await uniquely('username', `This device already has an account ${JSON.stringify(patch.username)}.`, () =>
      this.x.updateTable('accounts').set(set).where('id', '=', id).execute(),
    );
    return this.get(id);
  }

  async delete(id: string): Promise<void> {
    const result = await this.x.deleteFrom('accounts').where('id', '=', id).executeTakeFirst();
    if (Number(result.numDeletedRows) === 0) throw new NotFoundError('Account', id);
  }

  /** The decrypted secrets of one account. Callers check permission and audit first. */
  async reveal(id: string): Promise<AccountSecrets> {
    return secretsOf(this.vault, await this.row(id));
  }
}
