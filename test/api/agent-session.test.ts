import { generateEd25519KeyPair } from '@gatehouse/gateway';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encodeFrame, verifyAgentGrant } from '@gatehouse/core/agent-protocol';
import type { SshGateway } from '@gatehouse/gateway';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, createInventory } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { startBuiltInGateway } from '../support/built-in-gateway.js';
import { dialects } from '../support/db.js';
import { dialGateway, FakeAgentLink, fakeAgentIdentity } from '../support/fake-agent.js';

/**
 * A session through the built-in gateway to a device reached by its agent: the agent here is
 * a link and an ssh2 server in the test process that accepts only a grant the server signed.
 */
describe.each(dialects)('a session through an agent link on %s', (dialect) => {
  let t: TestApp;
  let gateway: SshGateway;
  let dir: string;
  let admin: { id: string; username: string; password: string; token: string };
  const hostKey = generateEd25519KeyPair('test');
  // The same key as PKCS#8, which the link identity takes (ssh2's key objects export it; its types do not say so).
  const identity = fakeAgentIdentity((ssh2.utils.parseKey(hostKey.private) as unknown as { getPrivatePEM(): string }).getPrivatePEM());
  let agentId: string;
  let serverKey: string;
  const grants: string[] = [];

  beforeAll(async () => {
    t = await createTestApp(dialect, {}, { tls: true });
    dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-agent-session-'));
    admin = await t.userWithToken('admin');
    const { deviceId } = await createInventory(t, admin.token, { project: 'agents', device: 'agent-box', account: 'deploy' });
    const created = await t.request('POST', `${API}/devices/${deviceId}/agent-tokens`, { token: admin.token, body: {} });
    const enrolled = await t.request('POST', `${API}/agents/enroll`, {
      body: {
        token: created.json<{ token: string }>().token,
        publicKey: createPublicKey(identity.privateKey).export({ type: 'spki', format: 'pem' }).toString(),
        hostname: 'agent-box',
        version: '0.1.0',
      },
    });
    ({ agentId, serverKey } = enrolled.json<{ agentId: string; serverKey: string }>());
    await t.gateways.agentLinks.start('127.0.0.1', 0);
    gateway = await startBuiltInGateway(t, dir, { dial: t.gateways.dialer(), name: 'default' });
  });
  afterAll(async () => {
    await gateway.stop();
    await t.gateways.agentLinks.close();
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The agent: its control link, and an SSH server on every connection it is asked to open. */
  async function runAgent(): Promise<FakeAgentLink> {
    const port = t.gateways.agentLinks.server!.port;
    const agent = await FakeAgentLink.connect(port, identity, serverKey);
    agent.send({ t: 'hello', v: 1, agentId, version: '0.1.0', hostname: 'agent-box' });
    await agent.next('welcome');
    const ssh = new ssh2.Server({ hostKeys: [hostKey.private] }, (client) => {
      client.on('error', () => undefined);
      client.on('authentication', (ctx) => {
        if (ctx.method !== 'password') return ctx.reject(['password']);
        const checked = verifyAgentGrant(ctx.password, { serverKey, agentId, osUser: ctx.username });
        if (!checked.ok) return ctx.reject();
        grants.push(checked.grant.nonce);
        ctx.accept();
      });
      client.on('session', (accept) => {
        const session = accept();
        session.on('pty', (acceptPty) => acceptPty());
        session.on('shell', (acceptShell) => acceptShell().write('agent shell\r\n'));
      });
    });
    void (async () => {
      for (;;) {
        const { ref } = await agent.next('open', 60_000).catch(() => ({ ref: undefined }));
        if (ref === undefined) return;
        const data = await dialGateway(port, identity, serverKey);
        data.write(encodeFrame({ t: 'attach', v: 1, agentId, ref }));
        ssh.injectSocket(data);
      }
    })();
    return agent;
  }

  it('opens a shell on the agent with a grant, and ends it when the link is lost, saying so', async () => {
    const agent = await runAgent();
    const client = new ssh2.Client();
    client.on('error', () => undefined);
    const ready = new Promise<void>((resolve) => client.once('ready', () => resolve()));
    client.connect({ host: '127.0.0.1', port: gateway.port, username: `${admin.username}:agent-box`, password: admin.password });
    await ready;
    const shell = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
      client.shell((error, stream) => (error ? reject(error) : resolve(stream))),
    );
    let output = '';
    shell.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await expect.poll(() => output).toContain('agent shell');
    expect(grants).toHaveLength(1);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    agent.close();
    await closed;
    await expect
      .poll(async () => (await t.gatewaySessions.list({})).items.find((s) => s.deviceName === 'agent-box' && s.result !== 'active'))
      .toMatchObject({ result: 'failure', reason: "The agent's link was lost." });
  });
});
