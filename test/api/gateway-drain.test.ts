import { Gateways } from '@gatehouse/db';
import { generateLinkIdentity, ManagementServer, type AuthorizedTarget } from '@gatehouse/gateway';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

const SEGMENT = 'gateway-drain';
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

interface Presented {
  id: string;
  name: string;
  status: string;
  address: string | null;
  draining: boolean;
  drainingSince: string | null;
}
interface AuditEvent {
  action: string;
  actorName: string;
  targetId: string | null;
  details: { name?: string; changed?: boolean; reason?: string };
}

describe.each(dialects)('draining gateways on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  let auditor: string;
  let gateway: ManagementServer;
  let registered: Presented;
  const identity = generateLinkIdentity('gatehouse-gateway');

  const post = (route: string, token = admin) => t.request('POST', `/api/v1${route}`, { token });
  const list = async () => (await t.request('GET', '/api/v1/gateways', { token: auditor })).json<{ items: Presented[] }>().items;
  const events = async (action: string) =>
    (await t.request('GET', `/api/v1/audit/events?action=${action}&limit=500`, { token: admin })).json<{ items: AuditEvent[] }>().items;
  /** What the built-in gateway's dialer answers for a device of `segment` (no network is reached: every refusal comes first). */
  const dial = (segment: string | null, accessType = 'gateway') =>
    t.gateways.dialer()(
      {
        deviceId: `dev-${segment ?? 'none'}`,
        deviceName: 'db-1',
        segment,
        accessType,
        host: '127.0.0.1',
        port: 1,
      } as AuthorizedTarget,
      { user: { id: 'u', username: 'alice' }, remoteAddress: '127.0.0.1' },
    );

  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = (await t.userWithToken('admin')).token;
    auditor = (await t.userWithToken('auditor')).token;
    const serverKey = (await t.request('GET', '/api/v1/gateways/server-key', { token: admin })).json<{ publicKey: string }>().publicKey;
    gateway = await ManagementServer.start({ identity, serverKey, host: '127.0.0.1', port: 0, version: '9.9.9', logger: quiet });
    const created = await t.request('POST', '/api/v1/gateways', {
      token: admin,
      body: { name: 'drain-a', segment: 'gateway-drain', address: `127.0.0.1:${gateway.port}`, publicKey: identity.publicKey },
    });
    expect(created.statusCode, created.body).toBe(201);
    registered = created.json<Presented>();
    expect(registered).toMatchObject({ status: 'online', draining: false, drainingSince: null });
  });
  afterAll(async () => {
    t.gateways.builtIn = null;
    // Removed first: a registered gateway keeps its link to the server open.
    await t.request('DELETE', `/api/v1/gateways/${registered.id}`, { token: admin });
    await t.close();
    await gateway.stop();
  });

  it('drains and resumes a registered gateway: shown, audited, and only an administrator may', async () => {
    expect((await post(`/gateways/${registered.id}/drain`, auditor)).statusCode).toBe(403);
    const drained = await post(`/gateways/${registered.id}/drain`);
    expect(drained.statusCode, drained.body).toBe(200);
    expect(drained.json()).toMatchObject({ name: 'drain-a', status: 'online', draining: true });
    expect(Date.parse(drained.json<Presented>().drainingSince ?? '')).toBeGreaterThan(Date.now() - 60_000);
    expect((await list()).find((g) => g.name === 'drain-a')).toMatchObject({ draining: true });

    // Its segment has no other gateway: the refusal says it is draining, not that it is down.
    const refused = await dial('gateway-drain');
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.reason).toContain('Every online gateway in segment gateway-drain is draining (drain-a)');
    const [selection] = await events('gateway.select');
    expect(selection?.details.reason).toBe('every gateway in segment draining');

    const resumed = await post(`/gateways/${registered.id}/resume`);
    expect(resumed.json()).toMatchObject({ draining: false, drainingSince: null });

    const [resume] = await events('gateway.resume');
    const [drain] = await events('gateway.drain');
    expect(drain).toMatchObject({ targetId: registered.id, details: { name: 'drain-a', changed: true } });
    expect(resume).toMatchObject({ targetId: registered.id, details: { name: 'drain-a', changed: true } });
    expect((await post('/gateways/00000000-0000-4000-8000-000000000000/drain')).statusCode).toBe(404);
  });

  it('changes the state once however many drains and resumes race, on either database', async () => {
    const before = (await events('gateway.drain')).length + (await events('gateway.resume')).length;
    const answers = await Promise.all(Array.from({ length: 8 }, () => post(`/gateways/${registered.id}/drain`)));
    for (const a of answers) expect(a.statusCode, a.body).toBe(200);
    const drains = (await events('gateway.drain')).slice(0, 8);
    expect(drains.filter((e) => e.details.changed)).toHaveLength(1);

    // Drains and resumes at once: the stored state is what the last change made it.
    const mixed = await Promise.all(
      Array.from({ length: 12 }, (_, i) => post(`/gateways/${registered.id}/${i % 2 === 0 ? 'resume' : 'drain'}`)),
    );
    for (const a of mixed) expect(a.statusCode, a.body).toBe(200);
    const all = [...(await events('gateway.drain')), ...(await events('gateway.resume'))];
    expect(all).toHaveLength(before + 8 + 12);
    const changes = [...(await events('gateway.drain')), ...(await events('gateway.resume'))].filter((e) => e.details.changed);
    const drainsChanged = changes.filter((e) => e.action === 'gateway.drain').length;
    const resumesChanged = changes.filter((e) => e.action === 'gateway.resume').length;
    // Starting drained (from the eight above): each change flips it, so drains and resumes alternate.
    const drainedNow = (await list()).find((g) => g.name === 'drain-a')?.draining;
    expect(drainsChanged - resumesChanged).toBe(drainedNow ? 1 : 0);
    await post(`/gateways/${registered.id}/resume`);
  });

  it('drains the built-in gateway in the database: tunnel mode refuses saying so, and its address is one users can dial', async () => {
    t.gateways.builtIn = { address: '0.0.0.0:7993', hostKeyFingerprint: 'SHA256:test', hostKey: 'ssh-ed25519 AAAAtest' };
    const shown = await t.request('GET', '/api/v1/gateways', { token: auditor, headers: { host: 'gatehouse.example.com:8443' } });
    const builtIn = shown.json<{ items: Presented[] }>().items[0];
    expect(builtIn).toMatchObject({ name: 'default', status: 'online', address: 'gatehouse.example.com:7993', draining: false });

    expect((await post('/gateways/default/drain')).json()).toMatchObject({ name: 'default', draining: true });
    // Stored in the database, not in this process: a restarted server or another replica sees it drained.
    expect((await new Gateways(t.database.db).drains()).has('default')).toBe(true);

    const tunnel = await dial(null, 'tunnel');
    expect(!tunnel.ok && tunnel.reason).toContain('default gateway (tunnel access type), and it is draining');
    expect(!tunnel.ok && tunnel.reason).toContain('./gatehouse gateways resume default');
    expect((await post('/gateways/default/resume')).json()).toMatchObject({ draining: false });
    const [event] = await events('gateway.resume');
    expect(event).toMatchObject({ targetId: 'default', details: { name: 'default', changed: true } });
  });

  it('tells the console which devices no gateway can reach now, only of those the caller may see', async () => {
    const project = (await t.request('POST', '/api/v1/projects', { token: admin, body: { name: 'Reach' } })).json<{ id: string }>();
    const device = async (name: string, tags: string[]) =>
      (
        await t.request('POST', '/api/v1/devices', {
          token: admin,
          body: { projectId: project.id, name, provider: 'on-prem', protocols: ['ssh'], privateIp: '10.0.0.1', tags },
        })
      ).json<{ id: string }>().id;
    const inSegment = await device('in-drain', [SEGMENT]);
    const lonely = await device('lonely', ['gateway-nobody']);
    const reach = async (token: string) =>
      (await t.request('GET', `/api/v1/gateway-reach?deviceIds=${inSegment},${lonely},no-such-id`, { token })).json<{
        items: { deviceId: string; ok: boolean; reason: string | null; message: string | null }[];
      }>().items;

    expect(await reach(admin)).toEqual([
      { deviceId: inSegment, ok: true, reason: null, message: null },
      {
        deviceId: lonely,
        ok: false,
        reason: 'no gateway online in segment',
        message: expect.stringContaining('No gateway is registered in gateway-nobody') as unknown as string,
      },
    ]);
    await post(`/gateways/${registered.id}/drain`);
    expect((await reach(admin))[0]).toMatchObject({ ok: false, reason: 'every gateway in segment draining' });
    await post(`/gateways/${registered.id}/resume`);
    // An operator with no grant sees neither device, and is told nothing about them.
    expect(await reach((await t.userWithToken('operator')).token)).toEqual([]);
  });

  it('forgets the drain of a gateway that is removed', async () => {
    const other = generateLinkIdentity('other');
    const created = await t.request('POST', '/api/v1/gateways', {
      token: admin,
      body: { name: 'drain-gone', address: '127.0.0.1:1', publicKey: other.publicKey },
    });
    const id = created.json<Presented>().id;
    await post(`/gateways/${id}/drain`);
    expect((await t.request('DELETE', `/api/v1/gateways/${id}`, { token: admin })).statusCode).toBe(204);
    expect((await new Gateways(t.database.db).drains()).has(id)).toBe(false);
  });
});
