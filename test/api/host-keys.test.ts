import { createHash } from 'node:crypto';
import type { DeviceHostKeyAnswer, HostKeyPinAnswer } from '@gatehouse/api';
import { listAuditEvents } from '@gatehouse/db';
import type { AuthorizedTarget } from '@gatehouse/gateway';
import { ServerAccessBroker } from '@gatehouse/server';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { API, errorOf } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { cliAgainst, type CliRun } from '../support/cli-in-process.js';
import { dialects } from '../support/db.js';

/** A `SHA256:<base64>` fingerprint, as OpenSSH prints one, of `seed`. */
const fingerprint = (seed: string) => `SHA256:${createHash('sha256').update(seed).digest('base64').replace(/=+$/, '')}`;

async function newDevice(t: TestApp, token: string, project: string, name: string) {
  const p = await t.request('POST', `${API}/projects`, { token, body: { name: project } });
  const projectId = p.json<{ id: string }>().id;
  const d = await t.request('POST', `${API}/devices`, {
    token,
    body: { projectId, name, provider: 'on-prem', protocols: ['ssh', 'rdp', 'vnc'], privateIp: '10.0.0.7' },
  });
  expect(d.statusCode, d.body).toBe(201);
  return { projectId, deviceId: d.json<{ id: string }>().id };
}

/** The keys per protocol: shown, checked by the gateway broker, forgotten, pinned. */
describe.each(dialects)('device host keys on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  let auditor: string;
  let operator: string;
  let broker: ServerAccessBroker;
  let device: { projectId: string; deviceId: string };
  const target = (protocol?: 'ssh' | 'rdp' | 'vnc'): AuthorizedTarget => ({
    projectId: device.projectId,
    projectName: 'Lab',
    deviceId: device.deviceId,
    deviceName: 'twin',
    accountId: 'a',
    accountUsername: 'root',
    host: '10.0.0.7',
    port: 22,
    segment: null,
    accessType: 'public',
    ...(protocol ? { protocol } : {}),
  });
  const keys = async () =>
    (await t.request('GET', `${API}/devices/${device.deviceId}/host-key`, { token: auditor })).json<DeviceHostKeyAnswer>();
  const events = async (action: string) => listAuditEvents(t.database.db, { action, limit: 100 });

  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = (await t.userWithToken('admin')).token;
    auditor = (await t.userWithToken('auditor')).token;
    operator = (await t.userWithToken('operator')).token;
    broker = new ServerAccessBroker(t.services, t.gatewaySessions, () => t.gateways.settings());
    device = await newDevice(t, admin, 'Lab', 'twin');
  });
  afterAll(() => t.close());

  it("keeps the device's SSH key and its RDP and VNC certificates apart, and refuses a changed one of each", async () => {
    expect(await keys()).toEqual({ hostKey: null, hostKeys: [] });
    const ssh = { algorithm: 'ssh-ed25519', fingerprint: fingerprint('ssh') };
    const rdp = { algorithm: 'rdp-x509', fingerprint: fingerprint('rdp') };
    const vnc = { algorithm: 'x509', fingerprint: fingerprint('vnc') };
    expect(await broker.checkHostKey(target(), ssh)).toEqual({ ok: true, firstUse: true });
    // Before keys were kept per protocol, this was a mismatch with the SSH key.
    expect(await broker.checkHostKey(target('rdp'), rdp)).toEqual({ ok: true, firstUse: true });
    expect(await broker.checkHostKey(target('vnc'), vnc)).toEqual({ ok: true, firstUse: true });
    for (const [protocol, key] of [
      ['ssh', ssh],
      ['rdp', rdp],
      ['vnc', vnc],
    ] as const)
      expect(await broker.checkHostKey(target(protocol), key)).toEqual({ ok: true, firstUse: false });
    expect(await broker.checkHostKey(target('rdp'), { algorithm: 'rdp-x509', fingerprint: fingerprint('other') })).toEqual({
      ok: false,
      stored: rdp,
    });
    const mismatch = (await events('device.host_key_mismatch')).at(-1);
    expect(mismatch?.details).toMatchObject({ protocol: 'rdp', stored: `rdp-x509 ${rdp.fingerprint}` });
    expect((await events('device.host_key_trusted')).map((e) => e.details['protocol']).sort()).toEqual(['rdp', 'ssh', 'vnc']);

    const shown = await keys();
    expect(shown.hostKey).toMatchObject({ protocol: 'ssh', ...ssh, pinned: false });
    expect(shown.hostKeys.map((k) => [k.protocol, k.algorithm, k.fingerprint])).toEqual([
      ['rdp', 'rdp-x509', rdp.fingerprint],
      ['ssh', 'ssh-ed25519', ssh.fingerprint],
      ['vnc', 'x509', vnc.fingerprint],
    ]);
    expect((await t.request('GET', `${API}/devices/${device.deviceId}/host-key`, { token: operator })).statusCode).toBe(403);
  });

  it('trusts one of the first keys that connections present at once, with one audit event', async () => {
    const fresh = await newDevice(t, admin, 'Race', 'first');
    const at = { ...target(), projectId: fresh.projectId, deviceId: fresh.deviceId };
    // Four keys, the first of them presented three times.
    const presented = ['a', 'b', 'c', 'd', 'a', 'a'].map((seed) => ({
      algorithm: 'ssh-ed25519',
      fingerprint: fingerprint(`race-${seed}`),
    }));
    const checks = await Promise.all(presented.map((key) => broker.checkHostKey(at, key)));
    const trusted = (await events('device.host_key_trusted')).filter((e) => e.targetId === fresh.deviceId);
    expect(trusted).toHaveLength(1);
    const kept = (await t.gatewaySessions.hostKey(fresh.deviceId, 'ssh'))?.fingerprint;
    expect(trusted[0]?.details).toMatchObject({ fingerprint: kept });
    expect(checks.filter((c) => c.ok && c.firstUse)).toHaveLength(1);
    // Every other check agrees on the kept key: let in with it, refused with another.
    checks.forEach((c, i) => expect(c.ok).toBe(presented[i]?.fingerprint === kept));
  });

  it("forgets one protocol's key for an administrator, then every key, auditing each", async () => {
    const forget = (token: string, q = '') => t.request('DELETE', `${API}/devices/${device.deviceId}/host-key${q}`, { token });
    expect((await forget(auditor, '?protocol=ssh')).statusCode).toBe(403);
    const bad = await forget(admin, '?protocol=telnet');
    expect(bad.statusCode).toBe(400);
    expect(errorOf(bad).issues?.[0]?.path).toBe('querystring.protocol');
    expect((await forget(admin, '?protocol=ssh')).statusCode).toBe(204);
    expect((await keys()).hostKeys.map((k) => k.protocol)).toEqual(['rdp', 'vnc']);
    expect((await keys()).hostKey).toBeNull();
    const again = await forget(admin, '?protocol=ssh');
    expect(again.statusCode).toBe(404);
    expect(errorOf(again).message).toContain('The ssh key of device');
    expect((await forget(admin)).statusCode).toBe(204);
    expect((await keys()).hostKeys).toEqual([]);
    expect((await forget(admin)).statusCode).toBe(404);
    const forgotten = (await events('device.host_key_forget')).map((e) => e.details['protocol']);
    expect(forgotten).toEqual(['ssh', 'rdp', 'vnc']);
  });

  it('pins a checked fingerprint as the next key, for administrators, in the forms ssh-keygen and openssl print', async () => {
    const old = { algorithm: 'ssh-ed25519', fingerprint: fingerprint('old') };
    expect(await broker.checkHostKey(target(), old)).toEqual({ ok: true, firstUse: true });
    const next = fingerprint('next');
    const pin = (token: string, body: unknown) => t.request('PUT', `${API}/devices/${device.deviceId}/host-key`, { token, body });

    expect((await pin(operator, { protocol: 'ssh', fingerprint: next })).statusCode).toBe(403);
    for (const typed of ['SHA256:short', 'MD5:aa:bb', `${next}x`, 'ab'.repeat(31)]) {
      const refused = await pin(admin, { protocol: 'ssh', fingerprint: typed });
      expect(refused.statusCode, typed).toBe(400);
      expect(errorOf(refused).issues).toEqual([
        { path: 'fingerprint', message: expect.stringContaining('must be SHA256:<base64>') as unknown },
      ]);
    }
    expect((await pin(admin, { protocol: 'ftp', fingerprint: next })).statusCode).toBe(400);

    const res = await pin(admin, { protocol: 'ssh', fingerprint: next });
    expect(res.statusCode, res.body).toBe(200);
    const answer = res.json<HostKeyPinAnswer>();
    expect(answer.hostKey).toMatchObject({ protocol: 'ssh', ...old, pinned: false, next: { fingerprint: next } });
    expect(answer.replaced).toBeNull();
    expect((await events('device.host_key_pin')).at(-1)?.details).toMatchObject({
      protocol: 'ssh',
      fingerprint: next,
      as: 'next',
      current: `ssh-ed25519 ${old.fingerprint}`,
      replaced: null,
    });
    expect((await keys()).hostKey).toMatchObject({ fingerprint: old.fingerprint, next: { fingerprint: next } });

    // Both keys are accepted until the device presents the pinned one; any other is refused.
    expect(await broker.checkHostKey(target(), old)).toEqual({ ok: true, firstUse: false });
    expect(await broker.checkHostKey(target(), { algorithm: 'ssh-ed25519', fingerprint: fingerprint('mitm') })).toEqual({
      ok: false,
      stored: old,
    });
    expect((await events('device.host_key_mismatch')).at(-1)?.details).toMatchObject({ protocol: 'ssh', next });

    // Two connections present the pinned key at once: both are let in, the old key is dropped once.
    const presented = { algorithm: 'ssh-ed25519', fingerprint: next };
    const rotationsBefore = (await events('device.host_key_rotated')).length;
    expect(await Promise.all([broker.checkHostKey(target(), presented), broker.checkHostKey(target(), presented)])).toEqual([
      { ok: true, firstUse: false },
      { ok: true, firstUse: false },
    ]);
    const rotations = await events('device.host_key_rotated');
    expect(rotations).toHaveLength(rotationsBefore + 1);
    expect(rotations.at(-1)).toMatchObject({
      actorName: 'gateway:default',
      targetId: device.deviceId,
      details: { protocol: 'ssh', algorithm: 'ssh-ed25519', fingerprint: next, dropped: `ssh-ed25519 ${old.fingerprint}` },
    });
    expect(await broker.checkHostKey(target(), old)).toEqual({ ok: false, stored: presented });
    expect((await keys()).hostKey).toMatchObject({ algorithm: 'ssh-ed25519', fingerprint: next, pinned: true, next: null });

    // A certificate's SHA-256 as openssl prints it is the same fingerprint the gateway computes.
    const digest = createHash('sha256').update('certificate').digest();
    const opensslForm = `sha256 Fingerprint=${[...digest].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':')}`;
    const cert = (await pin(admin, { protocol: 'rdp', fingerprint: opensslForm })).json<HostKeyPinAnswer>();
    expect(cert).toMatchObject({ hostKey: { protocol: 'rdp', fingerprint: fingerprint('certificate') }, replaced: null });
    expect(await broker.checkHostKey(target('rdp'), { algorithm: 'rdp-x509', fingerprint: fingerprint('mitm') })).toMatchObject({
      ok: false,
    });

    // Browser RDP's xfreerdp checks a trusted certificate itself: only one the device has
    // presented, with no next key expected (otherwise the broker must see the presented one).
    expect(await broker.trustedHostKey(target('rdp'), 'rdp')).toBeNull();
    const certificate = { algorithm: 'rdp-x509', fingerprint: fingerprint('certificate') };
    expect(await broker.checkHostKey(target('rdp'), certificate)).toEqual({ ok: true, firstUse: false });
    expect(await broker.trustedHostKey(target('rdp'), 'rdp')).toEqual(certificate);
    expect((await pin(admin, { protocol: 'rdp', fingerprint: fingerprint('renewed') })).statusCode).toBe(200);
    expect(await broker.trustedHostKey(target('rdp'), 'rdp')).toBeNull();
  });
});

/** `gatehouse devices host-key …` against the in-process server over TLS. */
describe.each(dialects)('gatehouse devices host-key on %s', (dialect) => {
  let t: TestApp;
  let deviceId: string;
  let gatehouse: (...args: string[]) => Promise<CliRun>;

  beforeAll(async () => {
    t = await createTestApp(dialect, {}, { tls: true });
    const admin = await t.userWithToken('admin');
    deviceId = (await newDevice(t, admin.token, 'Ops', 'web 1')).deviceId;
    gatehouse = await cliAgainst(t, admin.token);
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await t?.close();
  });

  it('shows, pins and forgets the keys of a device named by its name, path or id', async () => {
    const none = await gatehouse('devices', 'host-key', 'show', 'web 1');
    expect(none.code, none.err).toBe(0);
    expect(none.out).toBe(
      'Ops/web 1 has no trusted key yet: the first connection over each protocol trusts the key the device presents.\n',
    );

    await t.gatewaySessions.trustOnFirstUse(deviceId, 'ssh', { algorithm: 'ssh-ed25519', fingerprint: fingerprint('ssh') });
    const next = fingerprint('next');
    const pinned = await gatehouse('devices', 'host-key', 'pin', 'Ops/web 1', '--protocol', 'ssh', '--fingerprint', next);
    expect(pinned.code, pinned.err).toBe(0);
    expect(pinned.out).toBe(
      `Pinned ${next} as the next ssh key of Ops/web 1: connections over ssh accept it and ssh-ed25519 ${fingerprint('ssh')} ` +
        'until the device presents it; then only it.\n',
    );
    const wrong = await gatehouse('devices', 'host-key', 'pin', 'web 1', '--protocol', 'ssh', '--fingerprint', 'SHA256:nope');
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain('fingerprint');
    expect(wrong.err).toContain('must be SHA256:<base64>');
    const noProtocol = await gatehouse('devices', 'host-key', 'pin', 'web 1', '--fingerprint', next);
    expect(noProtocol.code).toBe(1);
    expect(noProtocol.err).toContain("required option '--protocol <protocol>' not specified");
    await t.gatewaySessions.trustOnFirstUse(deviceId, 'rdp', { algorithm: 'rdp-x509', fingerprint: fingerprint('rdp') });

    const shown = await gatehouse('devices', 'host-key', 'show', deviceId);
    expect(shown.code, shown.err).toBe(0);
    const lines = shown.out.trimEnd().split('\n');
    expect(lines[0]).toBe('Keys trusted for Ops/web 1:');
    expect(lines[1]).toMatch(/^PROTOCOL +ALGORITHM +FINGERPRINT +SINCE +TRUSTED BY$/);
    expect(lines[2]).toMatch(new RegExp(`^rdp +rdp-x509 +${escape(fingerprint('rdp'))} +\\d{4}-\\S+ +first use$`));
    expect(lines[3]).toMatch(new RegExp(`^ssh +ssh-ed25519 +${escape(fingerprint('ssh'))} +\\d{4}-\\S+ +first use$`));
    expect(lines[4]).toMatch(new RegExp(`^ssh +— +${escape(next)} +\\d{4}-\\S+ +pinned as next$`));
    const json = await gatehouse('devices', 'host-key', 'show', 'web 1', '--json');
    expect((JSON.parse(json.out) as { protocol: string }[]).map((k) => k.protocol)).toEqual(['rdp', 'ssh']);

    const forgot = await gatehouse('devices', 'host-key', 'forget', 'web 1', '--protocol', 'rdp');
    expect(forgot.code, forgot.err).toBe(0);
    expect(forgot.out).toBe(
      `Forgot the rdp key of Ops/web 1: rdp-x509 ${fingerprint('rdp')}.\nThe next connection over rdp trusts the key the device presents.\n`,
    );
    const nothing = await gatehouse('devices', 'host-key', 'forget', 'web 1', '--protocol', 'rdp');
    expect(nothing.code).toBe(1);
    expect(nothing.err).toContain('Ops/web 1 has no trusted rdp key: nothing to forget');
    const all = await gatehouse('devices', 'host-key', 'forget', 'web 1');
    expect(all.code, all.err).toBe(0);
    expect(all.out).toContain(`Forgot the ssh key of Ops/web 1: ssh-ed25519 ${fingerprint('ssh')}.`);
    expect(await t.gatewaySessions.hostKeys(deviceId)).toEqual([]);

    // With no key presented, a pin is the trusted key at once, in place of an earlier pin.
    await gatehouse('devices', 'host-key', 'pin', 'web 1', '--protocol', 'vnc', '--fingerprint', fingerprint('first'));
    const firm = await gatehouse('devices', 'host-key', 'pin', 'web 1', '--protocol', 'vnc', '--fingerprint', next);
    expect(firm.code, firm.err).toBe(0);
    expect(firm.out).toBe(
      `Pinned ${next} as the vnc key of Ops/web 1: connections over vnc accept only that key now. It replaces ${fingerprint('first')} (pinned, not presented yet).\n`,
    );
    await gatehouse('devices', 'host-key', 'forget', 'web 1');
    expect(await t.gatewaySessions.hostKeys(deviceId)).toEqual([]);
  });
});

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
