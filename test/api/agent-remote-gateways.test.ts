import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { enrollAgent } from '@gatehouse/cli';
import { verifyAgentGateways } from '@gatehouse/core/agent-protocol';
import { startRemoteGateway, type RunningRemoteGateway } from '@gatehouse/gateway';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentLink } from '../../packages/cli/src/agent/link.js';
import { loadAgentState } from '../../packages/cli/src/agent/state.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { API, auditEvents, createInventory } from '../support/api-helpers.js';
import { dialects } from '../support/db.js';
import { freePort } from '../support/sshd.js';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
/** The server's status sync interval: an agent whose gateway died must be back within it. */
const HEALTH_INTERVAL_MS = 15_000;

/**
 * Host agents of a segment's devices link to the segment's remote gateways: the server
 * relays sessions through the gateway holding the link, and when that gateway dies the
 * agent moves to the other one of its segment. All in process (gateways, server, the
 * agent runtime's link); the agent's SSH side is played by the test on the attached socket.
 */
describe.each(dialects)('host agents on remote gateways, on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  let dir: string;
  const gateways = new Map<string, RunningRemoteGateway>();

  beforeAll(async () => {
    t = await createTestApp(dialect, {}, { tls: true });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    admin = (await t.userWithToken('admin')).token;
    dir = mkdtempSync(path.join(os.tmpdir(), 'gh-agent-remote-'));
    const serverKey = (await t.request('GET', `${API}/gateways/server-key`, { token: admin })).json<{ publicKey: string }>().publicKey;
    for (const name of ['seg-a', 'seg-b']) {
      const running = await startRemoteGateway(
        {
          host: '127.0.0.1',
          managementPort: 0,
          dataDir: path.join(dir, name),
          serverKey,
          logLevel: 'silent',
          sshPort: 0,
          targetTimeoutSeconds: 5,
          agentPort: await freePort(),
        },
        pino({ level: 'silent' }),
      );
      gateways.set(name, running);
      const created = await t.request('POST', `${API}/gateways`, {
        token: admin,
        body: { name, segment: 'gateway-seg1', address: `127.0.0.1:${running.managementPort}`, publicKey: running.identity.publicKey },
      });
      expect(created.statusCode, created.body).toBe(201);
    }
  });
  afterAll(async () => {
    for (const g of gateways.values()) await g.close();
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('links to a gateway of its segment, is reached through it, moves to the other when it dies, and a revocation there ends it', async () => {
    const { deviceId } = await createInventory(t, admin, { project: 'remote-agents', device: 'seg-box' });
    const tagged = await t.request('PATCH', `${API}/devices/${deviceId}`, { token: admin, body: { tags: ['gateway-seg1'] } });
    expect(tagged.statusCode, tagged.body).toBe(200);
    // The gateways said where they take agents at their registration's sync.
    const listed = (await t.request('GET', `${API}/gateways`, { token: admin })).json<{ items: { name: string; status: string }[] }>();
    expect(listed.items.filter((g) => g.name.startsWith('seg-')).map((g) => g.status)).toEqual(['online', 'online']);

    const token = (await t.request('POST', `${API}/devices/${deviceId}/agent-tokens`, { token: admin, body: {} })).json<{ token: string }>()
      .token;
    const stateDir = path.join(dir, 'state');
    const state = await enrollAgent({
      server: `https://127.0.0.1:${(t.app.server.address() as { port: number }).port}`,
      serverFingerprint: t.services.serverSpkiFingerprint!,
      token,
      stateDir,
      hostname: 'seg-box',
    });
    // The list the agent pinned names the segment's two gateways with their own keys, not the built-in one.
    const list = verifyAgentGateways(loadAgentState(stateDir).state.gateways, { serverKey: state.serverKey, agentId: state.agentId });
    expect(list.ok && list.list.gateways.map((g) => g.name).sort()).toEqual(['seg-a', 'seg-b']);
    expect(list.ok && list.list.gateways.map((g) => g.key).sort()).toEqual([...gateways.values()].map((g) => g.identity.publicKey).sort());

    const attached: TLSSocket[] = [];
    const link = new AgentLink({
      agent: loadAgentState(stateDir),
      version: '0.1.0',
      hostname: 'seg-box',
      logger: quiet,
      onAttach: (socket) => void attached.push(socket),
      baseDelayMs: 50,
      capDelayMs: 200,
      refusedDelayMs: 60_000,
    });
    const agentView = async () =>
      (await t.request('GET', `${API}/devices/${deviceId}/agent`, { token: admin })).json<{
        agent: { linkState: string; linkGateway: string | null };
      }>().agent;
    /** A session connection through the server's dialer: the bytes the agent's side writes arrive at the gateway's user leg. */
    const session = async () => {
      const opened = await t.gateways.agentLinks.open(state.agentId, 'seg-box', 5000);
      if (!opened.ok) throw new Error(opened.reason);
      const agentSide = await expect
        .poll(() => attached.at(-1))
        .toBeDefined()
        .then(() => attached.at(-1)!);
      agentSide.write('SSH-2.0-agent\r\n');
      const first = await new Promise<string>((resolve) => {
        opened.socket.once('data', (chunk: Buffer) => resolve(chunk.toString()));
        opened.socket.resume();
      });
      opened.socket.destroy();
      return { gateway: opened.gateway, first };
    };

    link.start();
    try {
      await expect.poll(agentView).toMatchObject({ linkState: 'up' });
      const first = (await agentView()).linkGateway as string;
      expect(['seg-a', 'seg-b']).toContain(first);
      expect(await session()).toEqual({ gateway: first, first: 'SSH-2.0-agent\r\n' });

      // Its gateway dies: the agent is linked to the other one within one health interval, and new sessions go there.
      const other = first === 'seg-a' ? 'seg-b' : 'seg-a';
      const died = Date.now();
      await gateways.get(first)!.close();
      gateways.delete(first);
      await expect.poll(agentView, { timeout: HEALTH_INTERVAL_MS, interval: 100 }).toMatchObject({ linkState: 'up', linkGateway: other });
      const movedAfterMs = Date.now() - died;
      expect(movedAfterMs).toBeLessThan(HEALTH_INTERVAL_MS);
      // The server may record the new link a moment before the agent's side of the handshake ends.
      await expect.poll(() => link.linkedTo).toBe(other);
      expect(await session()).toEqual({ gateway: other, first: 'SSH-2.0-agent\r\n' });

      // Revoked: the remote gateway is told, drops the link, and refuses the agent's next hello (audited under its name).
      expect((await t.request('POST', `${API}/agents/${state.agentId}/revoke`, { token: admin })).statusCode).toBe(204);
      await expect.poll(() => link.linkedTo).toBeUndefined();
      const opened = await t.gateways.agentLinks.open(state.agentId, 'seg-box', 2000);
      expect(opened.ok).toBe(false);
      link.stop();
      const again = new AgentLink({
        agent: loadAgentState(stateDir),
        version: '0.1.0',
        hostname: 'seg-box',
        logger: quiet,
        onAttach: () => undefined,
        refusedDelayMs: 60_000,
      });
      again.start();
      try {
        await expect
          .poll(async () => (await auditEvents(t, admin, { action: 'agent.link' })).filter((e) => e.details.agentId === state.agentId))
          .toContainEqual(
            expect.objectContaining({
              outcome: 'failure',
              details: expect.objectContaining({ reason: 'the agent was revoked', gateway: other }) as unknown,
            }),
          );
        expect(again.linkedTo).toBeUndefined();
      } finally {
        again.stop();
      }
    } finally {
      link.stop();
    }
  });
});
