import { Gateways } from '@gatehouse/db';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, dialects, type TestDatabase } from '../../../../test/support/db.js';
import { GatewayHealth } from './health.js';

describe.each(dialects)('gateway status sync: reading the registry on %s', (dialect) => {
  let t: TestDatabase;
  let gateways: Gateways;
  let health: GatewayHealth | undefined;

  beforeEach(async () => {
    t = await createTestDatabase(dialect);
    gateways = new Gateways(t.db);
  });

  afterEach(async () => {
    await health?.stop();
    health = undefined;
    await t.cleanup();
  });

  /** Starts the health loop on the real registry; counts its reads (with their times) and syncs. */
  function watch(options: { registryRefreshMs?: number; backoffMs?: number[] } = {}) {
    const reads: number[] = [];
    const list = gateways.list.bind(gateways);
    vi.spyOn(gateways, 'list').mockImplementation(() => {
      reads.push(Date.now());
      return list();
    });
    const recordSync = vi.spyOn(gateways, 'recordSync');
    health = new GatewayHealth({
      gateways,
      identity: async () => ({ privateKey: '', certificate: '', publicKey: '', fingerprint: '' }),
      audit: async () => undefined,
      logger: pino({ level: 'silent' }),
      timeoutMs: 500,
      ...options,
    });
    health.start();
    return { reads, syncs: () => recordSync.mock.calls.length };
  }

  it('reads it once per refresh interval while no sync is due, not at every 250 ms tick', async () => {
    const { reads } = watch({ registryRefreshMs: 1_000 });
    await expect.poll(() => reads.length, { timeout: 20_000, interval: 50 }).toBeGreaterThanOrEqual(3);
    // Ticks come every 250 ms; reads only once the last one is 1 s old (a slow machine only spaces them more).
    const gaps = reads.slice(1).map((at, i) => at - reads[i]!);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(900);
  });

  it('reads it again when a sync is due, and syncs the gateway', async () => {
    // A gateway on a port nothing listens on: every sync fails at once.
    const gateway = await gateways.create({
      name: 'office1-a',
      segment: 'gateway-office1',
      address: '127.0.0.1:1',
      publicKey: 'ssh-ed25519 AAAA',
      fingerprint: 'SHA256:x',
    });
    const { reads, syncs } = watch({ registryRefreshMs: 60_000, backoffMs: [300] });
    await expect.poll(syncs, { timeout: 20_000, interval: 50 }).toBeGreaterThanOrEqual(2);
    await health?.stop();
    // The first read, then one per retry (300 ms after each failure): no read without a sync due.
    expect(reads.length).toBeGreaterThanOrEqual(2);
    expect(reads.length).toBeLessThanOrEqual(syncs() + 1);
    expect(await gateways.get(gateway.id)).toMatchObject({ failures: syncs(), statusReason: expect.any(String) as unknown });
  });
});
