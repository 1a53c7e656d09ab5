import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { enrollAgent } from '@gatehouse/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentLink } from '../../packages/cli/src/agent/link.js';
import { loadAgentState } from '../../packages/cli/src/agent/state.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { API, auditEvents, createInventory } from '../support/api-helpers.js';
import { dialects } from '../support/db.js';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** The agent runtime's link (`gatehouse agent run`) against the server's agent listener, after a real enrollment over TLS. */
describe.each(dialects)('the agent runtime linked to the server on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  let dir: string;

  beforeAll(async () => {
    t = await createTestApp(dialect, {}, { tls: true });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    await t.gateways.agentLinks.start('127.0.0.1', 0);
    admin = (await t.userWithToken('admin')).token;
    dir = mkdtempSync(path.join(os.tmpdir(), 'gh-agent-runtime-'));
  });
  afterAll(async () => {
    await t.gateways.agentLinks.close();
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('enrolls, links up, takes a session connection, and is refused once revoked', async () => {
    const { deviceId } = await createInventory(t, admin, { project: 'runtime', device: 'runtime-box' });
    const token = (await t.request('POST', `${API}/devices/${deviceId}/agent-tokens`, { token: admin, body: {} })).json<{ token: string }>()
      .token;
    const server = `https://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
    const stateDir = path.join(dir, 'state');
    const state = await enrollAgent({
      server,
      serverFingerprint: t.services.serverSpkiFingerprint!,
      token,
      stateDir,
      hostname: 'runtime-box',
    });
    const attached: TLSSocket[] = [];
    const link = new AgentLink({
      agent: loadAgentState(stateDir),
      version: '0.1.0',
      hostname: 'runtime-box',
      logger: quiet,
      onAttach: (socket) => void attached.push(socket),
      baseDelayMs: 20,
      capDelayMs: 50,
      refusedDelayMs: 50,
    });
    link.start();
    try {
      const agentView = async () =>
        (await t.request('GET', `${API}/devices/${deviceId}/agent`, { token: admin })).json<{
          agent: { linkState: string; linkGateway: string | null };
        }>().agent;
      await expect.poll(agentView).toMatchObject({ linkState: 'up', linkGateway: 'default' });
      expect(link.linkedTo).toBe('default');

      const socket = await t.gateways.agentLinks.server!.open(state.agentId, 5000);
      expect(attached).toHaveLength(1);
      attached[0]!.write('SSH-2.0-agent\r\n');
      const [first] = await new Promise<Buffer[]>((resolve) => {
        socket.once('data', (chunk: Buffer) => resolve([chunk]));
        socket.resume();
      });
      expect(first?.toString()).toBe('SSH-2.0-agent\r\n');

      expect((await t.request('POST', `${API}/agents/${state.agentId}/revoke`, { token: admin })).statusCode).toBe(204);
      await expect.poll(() => link.linkedTo).toBeUndefined();
      await expect.poll(async () => (await agentView()).linkState).toBe('down');
      expect(t.gateways.agentLinks.server!.isLinked(state.agentId)).toBe(false);
      // It comes back (soon, here) and is refused, audited.
      await expect
        .poll(async () => (await auditEvents(t, admin, { action: 'agent.link' })).filter((e) => e.details.agentId === state.agentId))
        .toContainEqual(
          expect.objectContaining({ outcome: 'failure', details: expect.objectContaining({ reason: 'the agent was revoked' }) as unknown }),
        );
      expect(link.linkedTo).toBeUndefined();
    } finally {
      link.stop();
    }
  });
});
