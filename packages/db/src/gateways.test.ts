import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, dialects, type TestDatabase } from '../../../test/support/db.js';
import { Gateways, type Gateway } from './gateways.js';

const failed = (offlineAfter: number) => ({ ok: false as const, at: new Date().toISOString(), reason: 'no answer', offlineAfter });
const answered = () => ({ ok: true as const, at: new Date().toISOString(), latencyMs: 3, version: '0.1.0', openRelays: 0 });

describe.each(dialects)('gateway status syncs on %s', (dialect) => {
  let t: TestDatabase;
  let gateways: Gateways;
  let gateway: Gateway;

  beforeEach(async () => {
    t = await createTestDatabase(dialect);
    gateways = new Gateways(t.db);
    gateway = await gateways.create({
      name: 'office1-a',
      segment: 'gateway-office1',
      address: '127.0.0.1:9443',
      publicKey: 'ssh-ed25519 AAAA',
      fingerprint: 'SHA256:x',
    });
  });

  afterEach(async () => {
    await t.cleanup();
  });

  it('goes offline after the failures in a row, and online at the first answer', async () => {
    expect((await gateways.recordSync(gateway.id, failed(3)))?.after).toMatchObject({ status: 'unknown', failures: 1 });
    expect((await gateways.recordSync(gateway.id, failed(3)))?.after).toMatchObject({ status: 'unknown', failures: 2 });
    const third = await gateways.recordSync(gateway.id, failed(3));
    expect([third?.before.status, third?.after.status]).toEqual(['unknown', 'offline']);
    const back = await gateways.recordSync(gateway.id, answered());
    expect([back?.before.status, back?.after.status]).toEqual(['offline', 'online']);
    expect(await gateways.get(gateway.id)).toMatchObject({ status: 'online', failures: 0, statusReason: null, latencyMs: 3 });
  });

  it('counts every failure once and reports a change of status once when replicas sync at the same time', async () => {
    // Five replicas each find the gateway gone at once.
    const results = await Promise.all(Array.from({ length: 5 }, () => gateways.recordSync(gateway.id, failed(3))));
    expect(await gateways.get(gateway.id)).toMatchObject({ status: 'offline', failures: 5 });
    const changes = results.filter((r) => r && r.before.status !== r.after.status);
    expect(changes).toHaveLength(1);
    expect(changes[0]?.after.failures).toBe(3);
    // And all of them see it answer again: one change back.
    const again = await Promise.all(Array.from({ length: 5 }, () => gateways.recordSync(gateway.id, answered())));
    expect(again.filter((r) => r && r.before.status !== r.after.status)).toHaveLength(1);
  });

  it('takes an online gateway offline at once when a connection finds it not answering, once for many at once', async () => {
    await gateways.recordSync(gateway.id, answered());
    // Ten connections time out on it at the same moment: one of them opens the breaker.
    const opened = await Promise.all(Array.from({ length: 10 }, () => gateways.markUnreachable(gateway.id, 'did not answer')));
    expect(opened.filter(Boolean)).toHaveLength(1);
    expect(await gateways.get(gateway.id)).toMatchObject({ status: 'offline', statusReason: 'did not answer', failures: 0 });
    // Failed syncs keep it offline; the first good one brings it back.
    expect((await gateways.recordSync(gateway.id, failed(3)))?.after.status).toBe('offline');
    const back = await gateways.recordSync(gateway.id, answered());
    expect([back?.before.status, back?.after.status]).toEqual(['offline', 'online']);
    // Only an online gateway is taken offline (an unknown one is never chosen).
    const fresh = await gateways.create({ ...gateway, name: 'office1-b' });
    expect(await gateways.markUnreachable(fresh.id, 'x')).toBe(false);
    expect((await gateways.get(fresh.id)).status).toBe('unknown');
  });

  it('answers nothing for a gateway removed meanwhile', async () => {
    await gateways.delete(gateway.id);
    expect(await gateways.recordSync(gateway.id, failed(3))).toBeUndefined();
  });
});
