import { generateEd25519KeyPair } from '@gatehouse/gateway';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { listAuditEvents } from '@gatehouse/db';
import type { SshGateway } from '@gatehouse/gateway';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { startBuiltInGateway } from '../support/built-in-gateway.js';
import { dialects } from '../support/db.js';

/** Password sign-ins at the built-in gateway, through the server's broker, with ssh2 as the client. */
describe.each(dialects)('gateway sign-in throttles on %s', (dialect) => {
  let t: TestApp;
  let gateway: SshGateway;
  let dir: string;
  let admin: { id: string; token: string };
  let olga: { id: string; username: string; password: string };
  const userKey = generateEd25519KeyPair('test');

  beforeAll(async () => {
    t = await createTestApp(dialect);
    dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-gw-sign-in-'));
    admin = await t.userWithToken('admin');
    olga = await t.userWithToken('operator');
    const added = await t.request('POST', `${API}/ssh-keys`, { token: admin.token, body: { userId: olga.id, publicKey: userKey.public } });
    expect(added.statusCode).toBe(201);
    gateway = await startBuiltInGateway(t, dir);
  });
  afterAll(async () => {
    await gateway?.stop();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** One connection's sign-in: 'signed in', or 'refused' once the client has no method left. */
  const signIn = (
    username: string,
    how: { password?: string; answer?: string; privateKey?: string; localAddress?: string },
  ): Promise<'signed in' | 'refused'> =>
    new Promise((resolve) => {
      const client = new ssh2.Client();
      client.on('keyboard-interactive', (_n, _i, _l, prompts, finish) => finish(prompts.map(() => how.answer ?? '')));
      client.on('ready', () => {
        client.end();
        resolve('signed in');
      });
      client.on('error', () => resolve('refused'));
      client.on('close', () => resolve('refused'));
      client.connect({
        host: '127.0.0.1',
        port: gateway.port,
        username,
        readyTimeout: 30_000,
        ...(how.password !== undefined ? { password: how.password } : {}),
        ...(how.answer !== undefined ? { tryKeyboard: true } : {}),
        ...(how.privateKey !== undefined ? { privateKey: how.privateKey } : {}),
        ...(how.localAddress !== undefined ? { localAddress: how.localAddress } : {}),
      });
    });
  const failures = async (username: string) =>
    (await listAuditEvents(t.database.db, { action: 'gateway.auth', actorName: username, outcome: 'failure', limit: 1000 }))
      .filter((e) => e.outcome === 'failure')
      .map((e) => e.details.reason);

  it('takes an empty keyboard-interactive answer (ssh without a terminal) for no password attempt', async () => {
    expect(await signIn(`${olga.username}:box`, { answer: '', localAddress: '127.0.0.3' })).toBe('refused');
    expect(await failures(olga.username)).toEqual([]);
    const counted = await t.database.db.kysely.selectFrom('sign_in_throttle').selectAll().where('source', '=', '127.0.0.3').execute();
    expect(counted).toEqual([]);
  });

  it('signs in all of 12 right passwords sent at once from one address (parallel scripts, Ansible forks)', async () => {
    const outcomes = await Promise.all(
      Array.from({ length: 12 }, () => signIn(`${olga.username}:box`, { password: olga.password, localAddress: '127.0.0.4' })),
    );
    expect(outcomes).toEqual(Array<string>(12).fill('signed in'));
    expect(await failures(olga.username)).toEqual([]);
  });

  it('checks at most lockoutThreshold of 40 wrong passwords sent at once, and still lets the user in from elsewhere', async () => {
    const outcomes = await Promise.all(Array.from({ length: 40 }, (_, i) => signIn(`${olga.username}:box`, { password: `guess-${i}` })));
    expect(outcomes.every((o) => o === 'refused')).toBe(true);
    const reasons = await failures(olga.username);
    expect(reasons.filter((r) => r === 'wrong password')).toHaveLength(5);
    // The address as a whole is throttled after 6 × lockoutThreshold, as at the API.
    expect(reasons.filter((r) => r === 'address throttled')).toHaveLength(1);
    const address = t.database.db.kysely
      .selectFrom('sign_in_throttle')
      .selectAll()
      .where('username', '=', '')
      .where('source', '=', '127.0.0.1');
    expect(await address.executeTakeFirstOrThrow()).toMatchObject({ failures: 30, throttled_until: expect.any(String) as string });
    expect(await signIn(`${olga.username}:box`, { password: olga.password })).toBe('refused');
    expect(await signIn(`${olga.username}:box`, { password: olga.password, localAddress: '127.0.0.2' })).toBe('signed in');
  });

  it('signs in by key while the password is throttled, but never a disabled user', async () => {
    // This address is throttled by now (the test before); keys do not count and are not counted.
    expect(await signIn(`${olga.username}:box`, { password: olga.password })).toBe('refused');
    expect(await signIn(`${olga.username}:box`, { privateKey: userKey.private })).toBe('signed in');
    await t.services.users.update(olga.id, { disabled: 1 });
    expect(await signIn(`${olga.username}:box`, { privateKey: userKey.private })).toBe('refused');
  });
});
