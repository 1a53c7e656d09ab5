import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, dialects, migrationTestDatabase, type TestDatabase } from '../../../test/support/db.js';
import { GatewaySessions } from './gateway-sessions.js';
import { migrationProvider } from './migrations.js';

const at = '2025-01-02T03:04:05.000Z';

describe.each(dialects)('migration 0016_host_keys_per_protocol on %s', (dialect) => {
  it("keeps each device's trusted key, under the protocol its algorithm names", async () => {
    const { kysely, migrator, cleanup } = await migrationTestDatabase(dialect, migrationProvider(dialect));
    try {
      expect((await migrator.migrateTo('0015_desktop_tokens')).error).toBeUndefined();
      await sql`insert into projects (id, name, created_at, updated_at) values ('p1', 'Payments', ${at}, ${at})`.execute(kysely);
      for (const [device, algorithm] of [
        ['d-ssh', 'ssh-ed25519'],
        ['d-rdp', 'rdp-x509'],
        ['d-vnc', 'x509'],
      ] as const) {
        await sql`insert into devices (id, project_id, name, provider, protocols, access_type, tags, created_at, updated_at)
          values (${device}, 'p1', ${device}, 'aws', '["ssh"]', 'public', '[]', ${at}, ${at})`.execute(kysely);
        await sql`insert into device_host_keys (device_id, algorithm, fingerprint, first_seen)
          values (${device}, ${algorithm}, ${`SHA256:${device}`}, ${at})`.execute(kysely);
      }

      expect((await migrator.migrateToLatest()).error).toBeUndefined();

      const { rows } = await sql<Record<string, unknown>>`select * from device_host_keys order by device_id`.execute(kysely);
      expect(rows.map((r) => ({ ...r, pinned: Number(r['pinned']) }))).toEqual([
        {
          device_id: 'd-rdp',
          protocol: 'rdp',
          algorithm: 'rdp-x509',
          fingerprint: 'SHA256:d-rdp',
          first_seen: at,
          pinned: 0,
          next_fingerprint: null,
          next_pinned_at: null,
        },
        {
          device_id: 'd-ssh',
          protocol: 'ssh',
          algorithm: 'ssh-ed25519',
          fingerprint: 'SHA256:d-ssh',
          first_seen: at,
          pinned: 0,
          next_fingerprint: null,
          next_pinned_at: null,
        },
        {
          device_id: 'd-vnc',
          protocol: 'vnc',
          algorithm: 'x509',
          fingerprint: 'SHA256:d-vnc',
          first_seen: at,
          pinned: 0,
          next_fingerprint: null,
          next_pinned_at: null,
        },
      ]);
      // The SSH device's RDP certificate is a key of its own now, not a change of its host key.
      await sql`insert into device_host_keys (device_id, protocol, algorithm, fingerprint, first_seen)
        values ('d-ssh', 'rdp', 'rdp-x509', 'SHA256:cert', ${at})`.execute(kysely);
      await expect(
        sql`insert into device_host_keys (device_id, protocol, algorithm, fingerprint, first_seen)
          values ('d-ssh', 'ssh', 'ssh-rsa', 'SHA256:other', ${at})`.execute(kysely),
      ).rejects.toThrow();
      // The keys still go with their device.
      if (dialect === 'sqlite') await sql`pragma foreign_keys = on`.execute(kysely);
      await sql`delete from devices where id = 'd-ssh'`.execute(kysely);
      const { rows: left } = await sql<{ device_id: string }>`select device_id from device_host_keys order by device_id`.execute(kysely);
      expect(left.map((r) => r.device_id)).toEqual(['d-rdp', 'd-vnc']);
    } finally {
      await cleanup();
    }
  });
});

describe.each(dialects)('host keys per protocol on %s', (dialect) => {
  let t: TestDatabase;
  let sessions: GatewaySessions;
  const newDevice = async () => {
    const id = randomUUID();
    await sql`insert into devices (id, project_id, name, provider, protocols, access_type, tags, created_at, updated_at)
      values (${id}, 'p1', ${id}, 'aws', '["ssh","rdp","vnc"]', 'public', '[]', ${at}, ${at})`.execute(t.db.kysely);
    return id;
  };
  const key = (fingerprint: string, algorithm = 'ssh-ed25519') => ({ algorithm, fingerprint });

  beforeAll(async () => {
    t = await createTestDatabase(dialect);
    sessions = new GatewaySessions(t.db);
    await sql`insert into projects (id, name, created_at, updated_at) values ('p1', 'Payments', ${at}, ${at})`.execute(t.db.kysely);
  });
  afterAll(() => t.cleanup());

  it("trusts each protocol's first key at once, and one of two same-protocol first keys, however they race", async () => {
    // Several rounds: on PostgreSQL the pool runs them on separate connections, so some
    // rounds take the insert-conflict path.
    for (let round = 0; round < 8; round++) {
      const device = await newDevice();
      const [sshA, sshB, rdp, vnc] = await Promise.all([
        sessions.trustOnFirstUse(device, 'ssh', key('SHA256:a')),
        sessions.trustOnFirstUse(device, 'ssh', key('SHA256:b')),
        sessions.trustOnFirstUse(device, 'rdp', key('SHA256:cert', 'rdp-x509')),
        sessions.trustOnFirstUse(device, 'vnc', key('SHA256:vnc', 'x509')),
      ]);
      expect([sshA.firstUse, sshB.firstUse].filter(Boolean)).toHaveLength(1);
      expect(sshA.fingerprint).toBe(sshB.fingerprint);
      expect(rdp).toMatchObject({ protocol: 'rdp', fingerprint: 'SHA256:cert', firstUse: true });
      expect(vnc).toMatchObject({ protocol: 'vnc', fingerprint: 'SHA256:vnc', firstUse: true });
      const stored = await sessions.hostKeys(device);
      expect(stored.map((k) => `${k.protocol} ${k.fingerprint}`)).toEqual(['rdp SHA256:cert', `ssh ${sshA.fingerprint}`, 'vnc SHA256:vnc']);
    }
  });

  it('pins a key in place of a pin never presented, which takes its algorithm when the device presents it', async () => {
    const device = await newDevice();
    await sessions.pinHostKey(device, 'ssh', 'SHA256:old');
    const { pinned, replaced } = await sessions.pinHostKey(device, 'ssh', 'SHA256:new');
    expect(replaced).toMatchObject({ fingerprint: 'SHA256:old', algorithm: null, pinned: true });
    expect(pinned).toMatchObject({ protocol: 'ssh', algorithm: null, fingerprint: 'SHA256:new', pinned: true, next: null });
    expect(await sessions.trustOnFirstUse(device, 'ssh', key('SHA256:old'))).toMatchObject({ fingerprint: 'SHA256:new', firstUse: false });
    expect(await sessions.hostKey(device, 'ssh')).toMatchObject({ algorithm: null });
    expect(await sessions.trustOnFirstUse(device, 'ssh', key('SHA256:new', 'ssh-rsa'))).toMatchObject({
      algorithm: 'ssh-rsa',
      firstUse: false,
    });
    expect(await sessions.hostKey(device, 'ssh')).toMatchObject({ algorithm: 'ssh-rsa', fingerprint: 'SHA256:new', pinned: true });
    // Pinned before any connection: no trust on first use for that protocol.
    expect((await sessions.pinHostKey(device, 'rdp', 'SHA256:cert')).replaced).toBeUndefined();
    expect(await sessions.trustOnFirstUse(device, 'rdp', key('SHA256:mitm', 'rdp-x509'))).toMatchObject({
      fingerprint: 'SHA256:cert',
      firstUse: false,
    });
  });

  it('keeps a presented key trusted next to a pinned next key, until the device presents that one', async () => {
    const device = await newDevice();
    await sessions.trustOnFirstUse(device, 'ssh', key('SHA256:old'));
    const { pinned, replaced } = await sessions.pinHostKey(device, 'ssh', 'SHA256:new');
    expect(replaced).toBeUndefined();
    expect(pinned).toMatchObject({
      fingerprint: 'SHA256:old',
      algorithm: 'ssh-ed25519',
      pinned: false,
      next: { fingerprint: 'SHA256:new' },
    });
    expect(await sessions.hostKey(device, 'ssh')).toEqual(pinned);
    // The old key is still the trusted one.
    const old = await sessions.trustOnFirstUse(device, 'ssh', key('SHA256:old'));
    expect(old).toMatchObject({ fingerprint: 'SHA256:old', firstUse: false });
    expect(old.rotated).toBeUndefined();
    // A key that is neither is not trusted.
    expect(await sessions.trustOnFirstUse(device, 'ssh', key('SHA256:mitm'))).toMatchObject({ fingerprint: 'SHA256:old' });
    // Pinned again: the newer pin is the next key.
    await sessions.pinHostKey(device, 'ssh', 'SHA256:newer');
    expect((await sessions.hostKey(device, 'ssh'))?.next?.fingerprint).toBe('SHA256:newer');
    expect(await sessions.trustOnFirstUse(device, 'ssh', key('SHA256:new'))).toMatchObject({ fingerprint: 'SHA256:old' });

    const rotated = await sessions.trustOnFirstUse(device, 'ssh', key('SHA256:newer', 'ssh-rsa'));
    expect(rotated).toMatchObject({ fingerprint: 'SHA256:newer', algorithm: 'ssh-rsa', pinned: true, next: null, firstUse: false });
    expect(rotated.rotated).toMatchObject({ fingerprint: 'SHA256:old', algorithm: 'ssh-ed25519' });
    expect(await sessions.hostKey(device, 'ssh')).toMatchObject({ fingerprint: 'SHA256:newer', algorithm: 'ssh-rsa', next: null });
    expect(await sessions.trustOnFirstUse(device, 'ssh', key('SHA256:old'))).toMatchObject({ fingerprint: 'SHA256:newer' });

    // Pinning the trusted key itself marks it pinned and drops an expected next key.
    await sessions.pinHostKey(device, 'ssh', 'SHA256:later');
    const same = await sessions.pinHostKey(device, 'ssh', 'SHA256:newer');
    expect(same.pinned).toMatchObject({ fingerprint: 'SHA256:newer', pinned: true, next: null });
    expect(await sessions.hostKey(device, 'ssh')).toMatchObject({ fingerprint: 'SHA256:newer', next: null });
  });

  it('rotates to the pinned next key once when connections present it at the same time, and the old key is refused after', async () => {
    // Several rounds: on PostgreSQL the pool runs them on separate connections.
    for (let round = 0; round < 8; round++) {
      const device = await newDevice();
      await sessions.trustOnFirstUse(device, 'ssh', key('SHA256:old'));
      await sessions.pinHostKey(device, 'ssh', 'SHA256:new');
      const [a, b, c, old] = await Promise.all([
        sessions.trustOnFirstUse(device, 'ssh', key('SHA256:new')),
        sessions.trustOnFirstUse(device, 'ssh', key('SHA256:new')),
        sessions.trustOnFirstUse(device, 'ssh', key('SHA256:new')),
        sessions.trustOnFirstUse(device, 'ssh', key('SHA256:old')),
      ]);
      for (const presented of [a, b, c]) expect(presented).toMatchObject({ fingerprint: 'SHA256:new', next: null, firstUse: false });
      expect([a, b, c].filter((k) => k.rotated)).toHaveLength(1);
      // Checked before or after the rotation: trusted, or the new key (never a third state).
      expect(['SHA256:old', 'SHA256:new']).toContain(old.fingerprint);
      expect(await sessions.hostKey(device, 'ssh')).toMatchObject({ fingerprint: 'SHA256:new', algorithm: 'ssh-ed25519', next: null });
      expect(await sessions.trustOnFirstUse(device, 'ssh', key('SHA256:old'))).toMatchObject({ fingerprint: 'SHA256:new' });
    }
  });

  it("forgets one protocol's key, or every key", async () => {
    const device = await newDevice();
    await sessions.trustOnFirstUse(device, 'ssh', key('SHA256:a'));
    await sessions.trustOnFirstUse(device, 'rdp', key('SHA256:cert', 'rdp-x509'));
    await sessions.trustOnFirstUse(device, 'vnc', key('SHA256:vnc', 'x509'));
    expect((await sessions.forgetHostKeys(device, 'rdp')).map((k) => k.protocol)).toEqual(['rdp']);
    expect((await sessions.hostKeys(device)).map((k) => k.protocol)).toEqual(['ssh', 'vnc']);
    expect(await sessions.forgetHostKeys(device, 'rdp')).toEqual([]);
    expect((await sessions.forgetHostKeys(device)).map((k) => k.protocol)).toEqual(['ssh', 'vnc']);
    expect(await sessions.hostKeys(device)).toEqual([]);
  });
});
