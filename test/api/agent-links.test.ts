import { createHash, createPublicKey } from 'node:crypto';
import { once } from 'node:events';
import { encodeFrame, verifyAgentGateways, verifyAgentGrant } from '@gatehouse/core/agent-protocol';
import type { AgentLinkServer, AuthorizedTarget, GatewayUser, LinkIdentity } from '@gatehouse/gateway';
import { ServerAccessBroker } from '@gatehouse/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { API, auditEvents, createInventory } from '../support/api-helpers.js';
import { dialects } from '../support/db.js';
import { dialGateway, FakeAgentLink, fakeAgentIdentity } from '../support/fake-agent.js';

/** Host agents' links to the built-in gateway: the listener on port 0, a fake agent over real TLS. */
describe.each(dialects)('agent links on %s', (dialect) => {
  let t: TestApp;
  let admin: { id: string; username: string; token: string };
  let links: AgentLinkServer;
  let serverKey: string;
  let broker: ServerAccessBroker;

  beforeAll(async () => {
    t = await createTestApp(dialect, {}, { tls: true });
    admin = await t.userWithToken('admin');
    links = await t.gateways.agentLinks.start('127.0.0.1', 0);
    serverKey = (await t.gateways.identity()).publicKey;
    broker = new ServerAccessBroker(
      t.services,
      t.gatewaySessions,
      () => t.gateways.settings(),
      'default',
      undefined,
      t.gateways.agentLinks,
    );
  });
  afterAll(async () => {
    await t.gateways.agentLinks.close();
    await t.close();
  });

  /** A device with an account, and its agent enrolled with a fresh key. */
  async function enrolled(name: string) {
    const { deviceId, accountId } = await createInventory(t, admin.token, { project: `p-${name}`, device: name, account: 'deploy' });
    const created = await t.request('POST', `${API}/devices/${deviceId}/agent-tokens`, { token: admin.token, body: {} });
    const identity = fakeAgentIdentity();
    const publicKey = createPublicKey(identity.privateKey).export({ type: 'spki', format: 'pem' }).toString();
    const res = await t.request('POST', `${API}/agents/enroll`, {
      body: { token: created.json<{ token: string }>().token, publicKey, hostname: `${name}.local`, version: '0.1.0' },
    });
    expect(res.statusCode, res.body).toBe(201);
    const answer = res.json<{ agentId: string; serverKey: string; gateways: string }>();
    return { deviceId, accountId, identity, ...answer };
  }

  async function link(agentId: string, identity: LinkIdentity) {
    const agent = await FakeAgentLink.connect(links.port, identity, serverKey);
    agent.send({ t: 'hello', v: 1, agentId, version: '0.2.0', hostname: 'h' });
    return agent;
  }

  const agentView = async (deviceId: string) =>
    (await t.request('GET', `${API}/devices/${deviceId}/agent`, { token: admin.token })).json<{
      agent: { linkState: string; linkGateway: string | null; version: string; lastContactAt: string | null };
    }>().agent;

  it('answers enrollment with the server key and a gateway list it signed', async () => {
    const e = await enrolled('enroll-answer');
    expect(e.serverKey).toBe(serverKey);
    const list = verifyAgentGateways(e.gateways, { serverKey: e.serverKey, agentId: e.agentId });
    expect(list.ok && list.list.gateways).toEqual([{ name: 'default', address: `localhost:${links.port}`, key: serverKey }]);
    // Another agent's id, or a key that is not the server's, does not verify it.
    expect(verifyAgentGateways(e.gateways, { serverKey, agentId: 'other' }).ok).toBe(false);
    expect(verifyAgentGateways(e.gateways, { serverKey: e.identity.publicKey, agentId: e.agentId }).ok).toBe(false);
  });

  it('links an agent with its enrolled key: up through the default gateway, down when it goes', async () => {
    const e = await enrolled('links-up');
    const agent = await link(e.agentId, e.identity);
    const welcome = await agent.next('welcome');
    expect(welcome.gateway).toBe('default');
    expect(verifyAgentGateways(welcome.gateways, { serverKey, agentId: e.agentId }).ok).toBe(true);
    await expect.poll(() => agentView(e.deviceId)).toMatchObject({ linkState: 'up', linkGateway: 'default', version: '0.2.0' });
    expect((await agentView(e.deviceId)).lastContactAt).not.toBeNull();
    agent.close();
    await expect.poll(async () => (await agentView(e.deviceId)).linkState).toBe('down');
  });

  it('refuses another key, a revoked agent and an unknown one: bye without retry, audited', async () => {
    const e = await enrolled('refused');
    const cases: [string, LinkIdentity, string][] = [
      [e.agentId, fakeAgentIdentity(), 'the agent presented another key than the one it enrolled with'],
      ['00000000-0000-4000-8000-000000000000', fakeAgentIdentity(), 'unknown agent'],
    ];
    for (const [agentId, identity, reason] of cases) {
      const agent = await link(agentId, identity);
      expect(await agent.next('bye')).toMatchObject({ retry: false });
      await agent.waitClosed();
      const events = await auditEvents(t, admin.token, { action: 'agent.link' });
      expect(events.find((ev) => ev.details.agentId === agentId)).toMatchObject({ outcome: 'failure', details: { reason } });
    }
    expect(await t.request('POST', `${API}/agents/${e.agentId}/revoke`, { token: admin.token })).toHaveProperty('statusCode', 204);
    const agent = await link(e.agentId, e.identity);
    expect(await agent.next('bye')).toEqual({ t: 'bye', reason: expect.stringMatching(/revoked/) as unknown, retry: false });
    const events = await auditEvents(t, admin.token, { action: 'agent.link' });
    expect(events.find((ev) => ev.details.agentId === e.agentId && ev.details.reason === 'the agent was revoked')).toBeDefined();
  });

  it('drops the live link of an agent that is revoked', async () => {
    const e = await enrolled('revoked-live');
    const agent = await link(e.agentId, e.identity);
    await agent.next('welcome');
    expect(await t.request('POST', `${API}/agents/${e.agentId}/revoke`, { token: admin.token })).toHaveProperty('statusCode', 204);
    expect(await agent.next('bye')).toEqual({ t: 'bye', reason: 'The agent was revoked.', retry: false });
    await agent.waitClosed();
    expect(links.isLinked(e.agentId)).toBe(false);
  });

  it('sends sessions through the link, signs in with a grant the agent accepts, and checks the agent key as host key', async () => {
    const e = await enrolled('sessions');
    const user: GatewayUser = { id: admin.id, username: admin.username };
    const authorized = await broker.authorize(user, { user: admin.username, device: 'sessions', account: 'deploy' }, '127.0.0.1');
    expect(authorized.allow).toBe(true);
    const target = (authorized as { target: AuthorizedTarget }).target;
    expect(target.agentId).toBe(e.agentId);
    const dial = t.gateways.dialer();
    // Not linked: the user is told so, with the last contact.
    const down = await dial(target, { user, remoteAddress: '127.0.0.1' });
    expect(down).toMatchObject({
      ok: false,
      reason:
        'The agent of sessions is not connected (never connected). Check that gatehouse-agent runs on the device and can reach the gateway.',
    });

    const agent = await link(e.agentId, e.identity);
    await agent.next('welcome');
    const dialing = dial(target, { user, remoteAddress: '127.0.0.1' });
    const { ref } = await agent.next('open');
    const data = await dialGateway(links.port, e.identity, serverKey);
    data.write(encodeFrame({ t: 'attach', v: 1, agentId: e.agentId, ref }));
    const dialed = await dialing;
    expect(dialed).toMatchObject({ ok: true, gateway: 'default' });

    // The credential is a grant for this agent, user and account, never the vaulted password.
    const released = await broker.fetchCredential(user, target);
    expect(released.allow).toBe(true);
    const credential = (released as { credential: { username: string; password?: string } }).credential;
    expect(credential.username).toBe('deploy');
    expect(credential.password).not.toBe('an-account-password');
    const verified = verifyAgentGrant(credential.password ?? '', { serverKey, agentId: e.agentId, osUser: 'deploy' });
    expect(verified.ok && verified.grant).toMatchObject({
      deviceId: e.deviceId,
      accountId: e.accountId,
      userId: admin.id,
      userName: admin.username,
    });

    // The host key is the agent's enrolled key, as an SSH key.
    const raw = createPublicKey(e.identity.privateKey).export({ format: 'jwk' }).x as string;
    const blob = Buffer.concat([
      Buffer.from('0000000b', 'hex'),
      Buffer.from('ssh-ed25519'),
      Buffer.from('00000020', 'hex'),
      Buffer.from(raw, 'base64url'),
    ]);
    const fingerprint = `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
    expect(await broker.checkHostKey(target, { algorithm: 'ssh-ed25519', fingerprint })).toEqual({ ok: true, firstUse: false });
    const other = await broker.checkHostKey(target, { algorithm: 'ssh-ed25519', fingerprint: 'SHA256:other' });
    expect(other).toEqual({ ok: false, stored: { algorithm: 'ssh-ed25519', fingerprint } });
    const mismatch = await auditEvents(t, admin.token, { action: 'device.host_key_mismatch' });
    expect(mismatch.find((ev) => ev.targetId === e.deviceId)).toBeDefined();

    // Revoked: no grant any more, and the link and its session connection are gone.
    const closed = once(data, 'close');
    await t.request('POST', `${API}/agents/${e.agentId}/revoke`, { token: admin.token });
    await closed;
    expect(await broker.fetchCredential(user, target)).toEqual({
      allow: false,
      message: 'The agent of sessions was revoked. Ask an administrator to enroll it again.',
    });
    agent.close();
  });

  it('requires a maintenance window for an agent device as for any device: refused outside one, no grant signed', async () => {
    const e = await enrolled('windowed');
    const user: GatewayUser = { id: admin.id, username: admin.username };
    const wanted = { user: admin.username, device: 'windowed', account: 'deploy' };
    const allowed = await broker.authorize(user, wanted, '127.0.0.1');
    expect(allowed.allow).toBe(true);
    const target = (allowed as { target: AuthorizedTarget }).target;
    const required = await t.request('PATCH', `${API}/devices/${e.deviceId}`, { token: admin.token, body: { maintenanceRequired: true } });
    expect(required.statusCode, required.body).toBe(200);
    const refused = await broker.authorize(user, wanted, '127.0.0.1');
    expect(refused).toMatchObject({ allow: false, message: expect.stringContaining('maintenance window') as unknown });
    // Signed in before it was required: the credential (the grant) is refused too.
    const released = await broker.fetchCredential(user, target);
    expect(released.allow).toBe(false);
    const denied = await auditEvents(t, admin.token, { action: 'gateway.authorize' });
    expect(denied.find((ev) => ev.details.device === 'windowed' && ev.details.reason === 'no maintenance window')).toBeDefined();
  });
});
