import type { Account } from '@gatehouse/api';
import { SECRET_MASK } from '@gatehouse/core';
import type { Account as AccountRecord } from '@gatehouse/db';

const mask = (set: boolean) => (set ? SECRET_MASK : null);

/**
 * An account as the API shows it: each secret is the fixed mask when set, null when not.
 * The record holds no secret (reveal() decrypts them); the inventory export shows the same.
 */
export function presentAccount(a: AccountRecord): Account {
  return {
    id: a.id,
    deviceId: a.deviceId,
    username: a.username,
    password: mask(a.hasPassword),
    privateKey: mask(a.hasPrivateKey),
    pemFileName: a.pemFileName,
    passphrase: mask(a.hasPassphrase),
    extraCredential: mask(a.hasExtraCredential),
    createdAt: a.createdAt,
    updatedAt: a.updatedAt,
  };
}
