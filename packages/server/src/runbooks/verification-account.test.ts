import type { Account } from '@gatehouse/db';
import { describe, expect, it } from 'vitest';
import { verificationAccountOf } from './service.js';

const account = (username: string, secrets: { password?: boolean; key?: boolean } = {}): Account => ({
  id: username,
  deviceId: 'd',
  username,
  hasPassword: secrets.password ?? false,
  hasPrivateKey: secrets.key ?? false,
  pemFileName: null,
  hasPassphrase: false,
  hasExtraCredential: false,
  secretChangedAt: '2026-12-06T00:00:00Z',
  createdAt: '2026-12-06T00:00:00Z',
  updatedAt: '2026-12-06T00:00:00Z',
});

describe('the account a new login proves sshd with', () => {
  it('is the first other account with a vaulted password or key, else the privileged one', () => {
    expect(
      verificationAccountOf(
        [account('root'), account('bob'), account('carol', { key: true }), account('dave', { password: true })],
        'root',
      ),
    ).toBe('carol');
    expect(verificationAccountOf([account('root', { password: true }), account('bob')], 'root')).toBe('root');
    expect(verificationAccountOf([account('root')], 'root')).toBe('root');
  });
});
