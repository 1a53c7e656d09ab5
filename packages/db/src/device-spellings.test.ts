import { deviceInput, devicePatch } from '@gatehouse/core';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { dialects, migrationTestDatabase } from '../../../test/support/db.js';
import type { Tx } from './connect.js';
import { Devices } from './devices.js';
import { migrationProvider } from './migrations.js';

const at = '2025-01-02T03:04:05.000Z';

describe.each(dialects)('migration 0017_device_spellings on %s', (dialect) => {
  it('reads devices from before it as written the way they are stored, and keeps new spellings beside the values', async () => {
    const { kysely, migrator, cleanup } = await migrationTestDatabase(dialect, migrationProvider(dialect));
    try {
      expect((await migrator.migrateTo('0016_host_keys_per_protocol')).error).toBeUndefined();
      await sql`insert into projects (id, name, created_at, updated_at) values ('p1', 'Payments', ${at}, ${at})`.execute(kysely);
      await sql`insert into devices (id, project_id, name, provider, protocols, access_type, tags, created_at, updated_at)
        values ('d1', 'p1', 'old', 'aws', '["ssh","rdp"]', 'gateway', '[]', ${at}, ${at})`.execute(kysely);

      expect((await migrator.migrateToLatest()).error).toBeUndefined();

      const devices = new Devices(kysely as unknown as Tx);
      expect(await devices.get('d1')).toMatchObject({
        provider: 'aws',
        providerAsWritten: 'aws',
        protocols: ['ssh', 'rdp'],
        protocolsAsWritten: ['ssh', 'rdp'],
      });
      const created = await devices.create(
        deviceInput.parse({ projectId: 'p1', name: 'new', provider: 'AWS', protocols: ['MySQL', 'ssh'] }),
      );
      expect(created).toMatchObject({
        provider: 'aws',
        providerAsWritten: 'AWS',
        protocols: ['mysql', 'ssh'],
        protocolsAsWritten: ['MySQL', 'ssh'],
      });
      // Only a spelling that differs from the value is stored.
      const { rows } = await sql<{ name: string; provider_as_written: string | null; protocols_as_written: string | null }>`
        select name, provider_as_written, protocols_as_written from devices order by name`.execute(kysely);
      expect(rows).toEqual([
        { name: 'new', provider_as_written: 'AWS', protocols_as_written: '["MySQL","ssh"]' },
        { name: 'old', provider_as_written: null, protocols_as_written: null },
      ]);
      const patched = await devices.update(created.id, devicePatch.parse({ provider: 'gcp' }));
      expect(patched).toMatchObject({ provider: 'gcp', providerAsWritten: 'gcp', protocolsAsWritten: ['MySQL', 'ssh'] });
    } finally {
      await cleanup();
    }
  });
});
