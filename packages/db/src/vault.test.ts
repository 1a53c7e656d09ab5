import { randomBytes, randomUUID } from 'node:crypto';
import { GatehouseError } from '@gatehouse/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestDatabase, dialects, type TestDatabase } from '../../../test/support/db.js';
import { masterKeyIdOf, openVault, rewrapDataKeys, type FieldScope } from './vault.js';

const SECRET = 'correct horse battery staple';

/** The error `fn` throws; fails the test when it does not throw. */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

/** Flips one bit in the middle of the sealed body, keeping the envelope's framing intact. */
function tamper(ciphertext: string, byteIndex: number): string {
  const [format, keyId, body] = ciphertext.split('.');
  const raw = Buffer.from(body ?? '', 'base64url');
  raw[byteIndex] = (raw[byteIndex] ?? 0) ^ 0x01;
  return `${format}.${keyId}.${raw.toString('base64url')}`;
}

describe.each(dialects)('vault on %s', (dialect) => {
  let t: TestDatabase;
  afterEach(async () => {
    await t.cleanup();
  });

  const scope = (over: Partial<FieldScope> = {}): FieldScope => ({ table: 'accounts', id: randomUUID(), field: 'password', ...over });

  it('decrypts what it encrypted, and the ciphertext does not show the plaintext', async () => {
    t = await createTestDatabase(dialect);
    const vault = await openVault(t.db, randomBytes(32));
    const s = scope();
    const sealed = vault.encrypt(s, SECRET);
    expect(sealed).not.toContain(SECRET);
    expect(sealed).not.toContain(Buffer.from(SECRET).toString('base64url'));
    expect(vault.decrypt(s, sealed)).toBe(SECRET);
    // Unicode and the empty string survive too.
    expect(vault.decrypt(s, vault.encrypt(s, 'pässwörd ✓ 密码'))).toBe('pässwörd ✓ 密码');
    expect(vault.decrypt(s, vault.encrypt(s, ''))).toBe('');
    // Each encryption uses a fresh IV.
    expect(vault.encrypt(s, SECRET)).not.toBe(sealed);
  });

  it('reads its secrets back after the database is reopened with the same master key', async () => {
    t = await createTestDatabase(dialect);
    const key = randomBytes(32);
    const s = scope();
    const sealed = (await openVault(t.db, key)).encrypt(s, SECRET);
    const again = await openVault(t.db, key);
    expect(again.masterKeyId).toBe(masterKeyIdOf(key));
    expect(again.decrypt(s, sealed)).toBe(SECRET);
    const rows = await t.db.kysely.selectFrom('vault_keys').selectAll().execute();
    expect(rows).toHaveLength(1);
  });

  it.each([
    ['another record id', { id: randomUUID() }],
    ['another field', { field: 'passphrase' }],
    ['another table', { table: 'users' }],
  ])('refuses a ciphertext copied to %s without revealing the plaintext', async (_what, moved) => {
    t = await createTestDatabase(dialect);
    const vault = await openVault(t.db, randomBytes(32));
    const from = scope();
    const sealed = vault.encrypt(from, SECRET);
    const error = thrownBy(() => vault.decrypt({ ...from, ...moved }, sealed));
    expect(error).toBeInstanceOf(GatehouseError);
    expect((error as GatehouseError).code).toBe('VAULT_UNAVAILABLE');
    expect((error as GatehouseError).message).toMatch(/does not decrypt/);
    expect((error as GatehouseError).message).not.toContain(SECRET);
    // The original scope still decrypts it: only the move is refused.
    expect(vault.decrypt(from, sealed)).toBe(SECRET);
  });

  it('refuses a stored ciphertext with any byte changed', async () => {
    t = await createTestDatabase(dialect);
    const vault = await openVault(t.db, randomBytes(32));
    const s = scope();
    const sealed = vault.encrypt(s, SECRET);
    const bodyLength = Buffer.from(sealed.split('.')[2] ?? '', 'base64url').length;
    // IV (0), auth tag (12), first and last ciphertext byte.
    for (const index of [0, 12, 28, bodyLength - 1]) {
      const error = thrownBy(() => vault.decrypt(s, tamper(sealed, index)));
      expect(error, `byte ${index}`).toBeInstanceOf(GatehouseError);
      expect((error as GatehouseError).code).toBe('VAULT_UNAVAILABLE');
      expect((error as GatehouseError).message).not.toContain(SECRET);
    }
  });

  it('refuses a value that is not a Gatehouse ciphertext', async () => {
    t = await createTestDatabase(dialect);
    const vault = await openVault(t.db, randomBytes(32));
    const s = scope();
    for (const bad of [SECRET, '', 'gh1', `gh1.${randomUUID()}.AAAA`, vault.encrypt(s, SECRET).replace(/^gh1/, 'gh0')]) {
      const error = thrownBy(() => vault.decrypt(s, bad));
      expect((error as GatehouseError).code, JSON.stringify(bad)).toBe('VAULT_UNAVAILABLE');
      expect((error as GatehouseError).message).not.toContain(SECRET);
    }
  });

  it('refuses a different master key with a message naming both key ids', async () => {
    t = await createTestDatabase(dialect);
    const right = randomBytes(32);
    const wrong = randomBytes(32);
    await openVault(t.db, right);
    const error = await rejectionOf(openVault(t.db, wrong));
    expect(error).toBeInstanceOf(GatehouseError);
    expect((error as GatehouseError).code).toBe('VAULT_UNAVAILABLE');
    const message = (error as GatehouseError).message;
    expect(message).toContain(masterKeyIdOf(wrong));
    expect(message).toContain(masterKeyIdOf(right));
    expect(message).not.toContain(right.toString('hex'));
    expect(message).not.toContain(wrong.toString('hex'));
  });

  it('refuses a master key that is not 32 bytes', async () => {
    t = await createTestDatabase(dialect);
    for (const length of [0, 16, 31, 33, 64]) {
      const error = await rejectionOf(openVault(t.db, randomBytes(length)));
      expect((error as GatehouseError).code, `${length} bytes`).toBe('VAULT_UNAVAILABLE');
      expect((error as GatehouseError).message).toContain('32 bytes');
    }
    // Nothing was written by the refused attempts.
    expect(await t.db.kysely.selectFrom('vault_keys').selectAll().execute()).toEqual([]);
    const error = await rejectionOf(rewrapDataKeys(t.db, randomBytes(32), randomBytes(16)));
    expect((error as GatehouseError).code).toBe('VAULT_UNAVAILABLE');
  });

  it('rewraps the data keys: the new master key reads every secret, the old one is refused', async () => {
    t = await createTestDatabase(dialect);
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const vault = await openVault(t.db, oldKey);
    const secrets = Array.from({ length: 5 }, (_, i) => ({ scope: scope({ field: `f${i}` }), plaintext: `secret-${i}-${randomUUID()}` }));
    const sealed = secrets.map((s) => vault.encrypt(s.scope, s.plaintext));

    const result = await rewrapDataKeys(t.db, oldKey, newKey);
    expect(result).toEqual({ dataKeys: 1, masterKeyId: masterKeyIdOf(newKey) });

    const reopened = await openVault(t.db, newKey);
    expect(reopened.masterKeyId).toBe(masterKeyIdOf(newKey));
    secrets.forEach((s, i) => expect(reopened.decrypt(s.scope, sealed[i] ?? '')).toBe(s.plaintext));

    const error = await rejectionOf(openVault(t.db, oldKey));
    expect((error as GatehouseError).code).toBe('VAULT_UNAVAILABLE');
    expect((error as GatehouseError).message).toContain(masterKeyIdOf(oldKey));
    expect((error as GatehouseError).message).toContain(masterKeyIdOf(newKey));

    // Rewrapping again with the new key as the target changes nothing.
    await rewrapDataKeys(t.db, oldKey, newKey);
    expect(reopened.decrypt(secrets[0]!.scope, sealed[0]!)).toBe(secrets[0]!.plaintext);
  });

  it('refuses to rewrap with a wrong old key and changes nothing', async () => {
    t = await createTestDatabase(dialect);
    const key = randomBytes(32);
    const vault = await openVault(t.db, key);
    const s = scope();
    const sealed = vault.encrypt(s, SECRET);
    const before = await t.db.kysely.selectFrom('vault_keys').selectAll().execute();

    const error = await rejectionOf(rewrapDataKeys(t.db, randomBytes(32), randomBytes(32)));
    expect((error as GatehouseError).code).toBe('VAULT_UNAVAILABLE');
    expect(await t.db.kysely.selectFrom('vault_keys').selectAll().execute()).toEqual(before);
    expect((await openVault(t.db, key)).decrypt(s, sealed)).toBe(SECRET);
  });

  it('refuses a vault table whose wrapped data key was altered', async () => {
    t = await createTestDatabase(dialect);
    const key = randomBytes(32);
    await openVault(t.db, key);
    const row = await t.db.kysely.selectFrom('vault_keys').selectAll().executeTakeFirstOrThrow();
    const raw = Buffer.from(row.wrapped_key, 'base64url');
    raw[20] = (raw[20] ?? 0) ^ 0xff;
    await t.db.kysely
      .updateTable('vault_keys')
      .set({ wrapped_key: raw.toString('base64url') })
      .where('id', '=', row.id)
      .execute();
    const error = await rejectionOf(openVault(t.db, key));
    expect((error as GatehouseError).code).toBe('VAULT_UNAVAILABLE');
    expect((error as GatehouseError).message).toContain(row.id);
  });
});
