import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { enrollAgent } from '@gatehouse/cli';
import type { SshGateway } from '@gatehouse/gateway';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AgentLink } from '../../packages/cli/src/agent/link.js';
import { jsonLogger } from '../../packages/cli/src/agent/log.js';
import { opensshPrivateKey } from '../../packages/cli/src/agent/openssh-key.js';
import { AgentSessionServer } from '../../packages/cli/src/agent/session-server.js';
import { loadAgentState } from '../../packages/cli/src/agent/state.js';
import { API, createInventory } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { startBuiltInGateway } from '../support/built-in-gateway.js';
import { dialects } from '../support/db.js';
import { ensureSystemUser } from '../support/sshd.js';

/**
 * The agent's own runtime (AgentLink, AgentSessionServer) against the real server in
 * process: enrolled with `enrollAgent`, linked to the built-in gateway's agent listener, and
 * a user's SSH session through the gateway runs as the account's OS user on the "device".
 */
const OS_USER = 'gh-agent-deploy';

describe.each(dialects)('the agent runtime against the built-in gateway on %s', (dialect) => {
  let t: TestApp;
  let gateway: SshGateway;
  let dir: string;
  let link: AgentLink;
  let sessions: AgentSessionServer;
  let admin: { username: string; password: string; token: string };

  beforeAll(async () => {
    ensureSystemUser(OS_USER);
    t = await createTestApp(dialect, {}, { tls: true });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    dir = mkdtempSync(path.join(os.tmpdir(), 'gh-agent-runtime-'));
    admin = await t.userWithToken('admin');
    const { deviceId } = await createInventory(t, admin.token, { project: 'agents', device: 'agent-box', account: OS_USER });
    await t.gateways.agentLinks.start('127.0.0.1', 0);
    gateway = await startBuiltInGateway(t, dir, { dial: t.gateways.dialer(), name: 'default' });
    const created = await t.request('POST', `${API}/devices/${deviceId}/agent-tokens`, { token: admin.token, body: {} });
    await enrollAgent({
      server: `https://127.0.0.1:${(t.app.server.address() as { port: number }).port}`,
      serverFingerprint: t.services.serverSpkiFingerprint!,
      token: created.json<{ token: string }>().token,
      stateDir: path.join(dir, 'agent'),
    });
    const agent = loadAgentState(path.join(dir, 'agent'));
    const logger = jsonLogger(() => undefined);
    sessions = new AgentSessionServer({
      agentId: agent.state.agentId,
      serverKey: agent.state.serverKey,
      hostKey: opensshPrivateKey(agent.privateKey),
      logger,
    });
    link = new AgentLink({ agent, version: '0.1.0', hostname: 'agent-box', logger, onAttach: (s, g) => sessions.handle(s, g) });
    link.start();
    await vi.waitFor(() => expect(link.linkedTo).toBe('default'));
  });
  afterAll(async () => {
    link.stop();
    sessions.close();
    await gateway.stop();
    await t.gateways.agentLinks.close();
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs a command through the gateway as the account’s OS user, and a dropped link ends the session saying so', async () => {
    const client = new ssh2.Client();
    client.on('error', () => undefined);
    await new Promise<void>((resolve) => {
      client.once('ready', () => resolve());
      client.connect({ host: '127.0.0.1', port: gateway.port, username: `${admin.username}:agent-box`, password: admin.password });
    });
    const run = (command: string) =>
      new Promise<{ out: string; code: number }>((resolve, reject) =>
        client.exec(command, (error, stream) => {
          if (error) return reject(error);
          let out = '';
          let code = -1;
          stream.on('data', (b: Buffer) => (out += b.toString()));
          stream.on('exit', (c: number) => (code = c));
          stream.on('close', () => resolve({ out, code }));
        }),
      );
    expect(await run('id -un; exit 4')).toEqual({ out: `${OS_USER}\n`, code: 4 });
    const shell = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
      client.shell({ term: 'xterm' }, (error, stream) => (error ? reject(error) : resolve(stream))),
    );
    let output = '';
    shell.on('data', (chunk: Buffer) => (output += chunk.toString()));
    shell.write('echo "agent $(id -un)"\n');
    await expect.poll(() => output).toContain(`agent ${OS_USER}`);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    // The gateway drops the link (as on revocation): the session through it ends, saying why.
    await t.gateways.agentLinks.drop(loadAgentState(path.join(dir, 'agent')).state.agentId, 'a test');
    await closed;
    await expect
      .poll(async () => (await t.gatewaySessions.list({})).items.filter((s) => s.deviceName === 'agent-box').map((s) => s.reason))
      .toContain("The agent's link was dropped: a test");
  });
});
