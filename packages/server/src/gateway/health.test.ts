import type { Gateway, Gateways } from '@gatehouse/db';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayHealth } from './health.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A gateway on a port nothing listens on: every sync fails at once. */
const unreachable: Gateway = {
  id: 'g1',
  name: 'office1-a',
  segment: 'gateway-office1',
  address: '127.0.0.1:1',
  publicKey: 'ssh-ed25519 AAAA',
  fingerprint: 'SHA256:x',
  status: 'unknown',
  statusReason: null,
  failures: 0,
  lastContactAt: null,
  lastSyncAt: null,
  latencyMs: null,
  version: null,
  openRelays: null,
  createdAt: '2026-12-03T00:00:00.000Z',
  updatedAt: '2026-12-03T00:00:00.000Z',
};

describe('gateway status sync: reading the registry', () => {
  let health: GatewayHealth | undefined;

  afterEach(async () => {
    await health?.stop();
  });

  function watch(registry: Gateway[], options: { registryRefreshMs?: number; backoffMs?: number[] } = {}) {
    const calls = { list: 0, sync: 0 };
    const gateways = {
      list: async () => {
        calls.list++;
        return registry;
      },
      recordSync: async (_id: string) => {
        calls.sync++;
        return undefined;
      },
    } as unknown as Gateways;
    health = new GatewayHealth({
      gateways,
      identity: async () => ({ privateKey: '', certificate: '', publicKey: '', fingerprint: '' }),
      audit: async () => undefined,
      logger: pino({ level: 'silent' }),
      timeoutMs: 500,
      ...options,
    });
    health.start();
    return calls;
  }

  it('reads it once per refresh interval while no sync is due, not at every 250 ms tick', async () => {
    const calls = watch([], { registryRefreshMs: 1_000 });
    await sleep(2_400);
    // Ticks at 0.25 s, then reads at ~0.25, ~1.25 and ~2.25 s: about 3 reads in 9 ticks.
    expect(calls.list).toBeGreaterThanOrEqual(2);
    expect(calls.list).toBeLessThanOrEqual(3);
  });

  it('reads it again when a sync is due, and syncs the gateway', async () => {
    const calls = watch([unreachable], { registryRefreshMs: 60_000, backoffMs: [300] });
    await sleep(1_600);
    // The first read, then one per retry (every 300 ms after each failure).
    expect(calls.sync).toBeGreaterThanOrEqual(2);
    expect(calls.list).toBeGreaterThanOrEqual(2);
    expect(calls.list).toBeLessThanOrEqual(calls.sync + 1);
  });
});
