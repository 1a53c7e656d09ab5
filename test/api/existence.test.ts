import { generateEd25519KeyPair } from '@gatehouse/gateway';
// The WebSocket plugin's types add injectWS to the Fastify instance.
import type {} from '@fastify/websocket';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, createInventory, errorOf, loginOrThrow, randomId, sessionHeaders, type WebSession } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

/** An answer with the id it names replaced, so answers about different ids compare equal. */
const withoutId = (text: string, id: string) => text.replaceAll(id, '<id>');

describe.each(dialects)('answers that do not tell which ids exist, on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  let operator: { id: string; username: string; password: string; token: string };
  let session: WebSession;
  let a: { projectId: string; deviceId: string; accountId: string };
  let elsewhere: { accountId: string };
  let otherProject: { accountId: string };

  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = (await t.userWithToken('admin')).token;
    operator = await t.userWithToken('operator');
    a = await createInventory(t, admin, { project: 'Alpha', device: 'alpha-1' });
    const second = await t.request('POST', `${API}/devices`, {
      token: admin,
      body: { projectId: a.projectId, name: 'alpha-2', provider: 'aws', protocols: ['ssh'], publicIp: '198.51.100.11' },
    });
    const onSecond = await t.request('POST', `${API}/accounts`, {
      token: admin,
      body: { deviceId: second.json<{ id: string }>().id, username: 'root', password: 'pw' },
    });
    elsewhere = { accountId: onSecond.json<{ id: string }>().id };
    otherProject = await createInventory(t, admin, { project: 'Bravo', device: 'bravo-1' });
    const grant = await t.request('POST', `${API}/grants`, { token: admin, body: { userId: operator.id, projectId: a.projectId } });
    expect(grant.statusCode).toBe(201);
    session = await loginOrThrow(t, operator.username, operator.password);
  });
  afterAll(() => t.close());

  /** What the browser terminal says when asked to open this account on device alpha-1. */
  const terminalRefusal = async (accountId: string): Promise<string> => {
    const ws = await t.app.injectWS(`${API}/terminal`, { headers: { cookie: session.cookie } });
    const reply = new Promise<string>((resolve) => ws.once('message', (data: Buffer) => resolve(data.toString('utf8'))));
    ws.send(JSON.stringify({ type: 'start', csrfToken: session.csrfToken, deviceId: a.deviceId, accountId, cols: 80, rows: 24 }));
    const message = JSON.parse(await reply) as { type: string; message: string };
    ws.terminate();
    expect(message.type).toBe('error');
    return message.message;
  };

  it('the terminal and the file browser answer an account on another device as one that does not exist', async () => {
    const missing = randomId();
    const terminal = new Set<string>();
    const files = new Set<string>();
    for (const accountId of [missing, elsewhere.accountId, otherProject.accountId]) {
      terminal.add(withoutId(await terminalRefusal(accountId), accountId));
      const res = await t.request('GET', `${API}/files?deviceId=${a.deviceId}&accountId=${accountId}&path=/`, {
        headers: sessionHeaders(session),
      });
      expect(res.statusCode, accountId).toBe(404);
      files.add(withoutId(errorOf(res).message, accountId));
    }
    expect([...terminal]).toEqual([`Account "<id>" does not exist. Check the id, or list them to find it.`]);
    expect([...files]).toEqual([`Account "<id>" does not exist. Check the id, or list them to find it.`]);
    // The account on the granted device still gets through to the gateway (which is off here).
    expect(await terminalRefusal(a.accountId)).toMatch(/built-in gateway/);
  });

  it("answers a removal of another user's SSH key as of a key that does not exist", async () => {
    const publicKey = generateEd25519KeyPair('admin-key').public;
    const added = await t.request('POST', `${API}/ssh-keys`, { token: admin, body: { publicKey } });
    expect(added.statusCode).toBe(201);
    const keyId = added.json<{ id: string }>().id;
    const missing = randomId();
    const theirs = await t.request('DELETE', `${API}/ssh-keys/${keyId}`, { token: operator.token });
    const none = await t.request('DELETE', `${API}/ssh-keys/${missing}`, { token: operator.token });
    expect([theirs.statusCode, none.statusCode]).toEqual([404, 404]);
    expect(withoutId(errorOf(theirs).message, keyId)).toBe(withoutId(errorOf(none).message, missing));
    expect(errorOf(theirs).code).toBe('NOT_FOUND');
    // The key is still there, and its owner can remove it.
    expect((await t.request('DELETE', `${API}/ssh-keys/${keyId}`, { token: admin })).statusCode).toBe(204);
  });
});
