import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { AGENT_MAX_FRAME_BYTES, encodeFrame } from '@gatehouse/core/agent-protocol';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { dialGateway, FakeAgentLink, fakeAgentIdentity } from '../../../test/support/fake-agent.js';
import { AgentLinkServer, agentLinkClosedReason, type AgentHello } from './agent-links.js';
import { generateLinkIdentity } from './identity.js';

const gatewayIdentity = generateLinkIdentity('gatehouse-server');
const known = new Map<string, string>();
const events: string[] = [];
const logged: { msg: string; reason?: string }[] = [];
const log = (obj: object, msg: string) => logged.push({ msg, reason: (obj as { reason?: string }).reason });
let links: AgentLinkServer;
let port: number;

beforeAll(async () => {
  links = await AgentLinkServer.start({
    identity: gatewayIdentity,
    host: '127.0.0.1',
    port: 0,
    name: 'default',
    logger: { info: log, warn: log, error: log, debug: () => undefined },
    heartbeatMs: 1000,
    contactEveryMs: 0,
    authenticate: async ({ agentId, peerKey }: AgentHello) =>
      known.get(agentId) === peerKey ? { ok: true, gateways: `v1.list-for-${agentId}.sig` } : { ok: false, reason: 'unknown agent or key' },
    linkChanged: (agentId, state, version) => void events.push(`${agentId} ${state}${version ? ` ${version}` : ''}`),
    contact: (agentId) => void events.push(`${agentId} contact`),
  });
  port = links.port;
});
afterAll(() => links.close());

/** An enrolled agent with its control connection up. */
async function linked(agentId: string) {
  const identity = fakeAgentIdentity();
  known.set(agentId, identity.publicKey);
  const agent = await FakeAgentLink.connect(port, identity, gatewayIdentity.publicKey);
  agent.send({ t: 'hello', v: 1, agentId, version: '1.2.3', hostname: 'host' });
  const welcome = await agent.next('welcome');
  return { agent, identity, welcome };
}

/** The agent's answer to `open`: a data connection that attaches, with `extra` bytes in the same write. */
async function attach(agentId: string, identity: ReturnType<typeof fakeAgentIdentity>, ref: string, extra = Buffer.alloc(0)) {
  const data = await dialGateway(port, identity, gatewayIdentity.publicKey);
  data.write(Buffer.concat([Buffer.from(encodeFrame({ t: 'attach', v: 1, agentId, ref })), extra]));
  return data;
}

describe('AgentLinkServer', () => {
  it('welcomes an enrolled agent with the signed gateway list and records the link', async () => {
    const { agent, welcome } = await linked('a1');
    expect(welcome).toEqual({ t: 'welcome', gateway: 'default', gateways: 'v1.list-for-a1.sig', heartbeatMs: 1000 });
    expect(links.isLinked('a1')).toBe(true);
    await vi.waitFor(() => expect(events).toContain('a1 up 1.2.3'));
    // Pings come, pongs count as contact.
    await agent.next('ping', 3000);
    await vi.waitFor(() => expect(events).toContain('a1 contact'));
    agent.close();
    await vi.waitFor(() => expect(events).toContain('a1 down'));
    expect(links.isLinked('a1')).toBe(false);
  });

  it('refuses an agent with another key: bye without retry, not linked', async () => {
    known.set('a2', fakeAgentIdentity().publicKey);
    const agent = await FakeAgentLink.connect(port, fakeAgentIdentity(), gatewayIdentity.publicKey);
    agent.send({ t: 'hello', v: 1, agentId: 'a2', version: '1', hostname: 'h' });
    expect(await agent.next('bye')).toEqual({ t: 'bye', reason: 'unknown agent or key', retry: false });
    await agent.waitClosed();
    expect(links.isLinked('a2')).toBe(false);
  });

  it('opens a session connection: the data connection that attached, with the bytes after the line', async () => {
    const { agent, identity } = await linked('a3');
    const opening = links.open('a3', 5000);
    const { ref } = await agent.next('open');
    // SSH's first bytes after the line, binary included.
    const data = await attach('a3', identity, ref, Buffer.from('SSH-2.0-agent\r\n\u0000\u00ff', 'latin1'));
    const socket = await opening;
    const first = new Promise<Buffer>((resolve) => socket.once('data', resolve));
    socket.resume();
    expect((await first).toString('latin1')).toBe('SSH-2.0-agent\r\n\u0000\u00ff');
    socket.write('SSH-2.0-gateway\r\n');
    const [echo] = (await once(data, 'data')) as [Buffer];
    expect(echo.toString()).toBe('SSH-2.0-gateway\r\n');
    // A reference is good once.
    const again = await attach('a3', identity, ref);
    await once(again, 'close');
    // The control connection goes: so does the session's.
    agent.close();
    await once(data, 'close');
    expect(agentLinkClosedReason(socket)).toBe("The agent's link was lost.");
  });

  it('refuses an attach with another key or an unknown reference, and times out', async () => {
    const { agent } = await linked('a4');
    const opening = links.open('a4', 1500);
    const { ref } = await agent.next('open');
    const other = await attach('a4', fakeAgentIdentity(), ref);
    await once(other, 'close');
    const unknown = await attach('a4', fakeAgentIdentity(), 'nope');
    await once(unknown, 'close');
    await expect(opening).rejects.toThrow(/did not open a session connection within 2 s/);
    await expect(links.open('nobody', 1000)).rejects.toThrow(/not connected/);
    agent.close();
  });

  it('drops a revoked agent: bye without retry, its sessions closed with the reason', async () => {
    const { agent, identity } = await linked('a5');
    const opening = links.open('a5', 5000);
    const data = await attach('a5', identity, (await agent.next('open')).ref);
    const socket: Duplex = await opening;
    links.drop('a5', 'The agent was revoked.');
    expect(await agent.next('bye')).toEqual({ t: 'bye', reason: 'The agent was revoked.', retry: false });
    await once(data, 'close');
    await agent.waitClosed();
    expect(agentLinkClosedReason(socket)).toMatch(/dropped: The agent was revoked/);
    expect(links.isLinked('a5')).toBe(false);
  });

  it('replaces the link of an agent that links again, recording down before up', async () => {
    const first = await linked('a9');
    const second = await FakeAgentLink.connect(port, first.identity, gatewayIdentity.publicKey);
    second.send({ t: 'hello', v: 1, agentId: 'a9', version: '2.0.0', hostname: 'host' });
    await second.next('welcome');
    await first.agent.waitClosed();
    expect(links.isLinked('a9')).toBe(true);
    await vi.waitFor(() =>
      expect(events.filter((e) => e.startsWith('a9 ') && !e.endsWith('contact'))).toEqual(['a9 up 1.2.3', 'a9 down', 'a9 up 2.0.0']),
    );
    second.close();
  });

  it('drops a link that stops answering pings after three heartbeats', async () => {
    const { agent } = await linked('a6');
    agent.answerPings = false;
    await agent.waitClosed(6000);
    await vi.waitFor(() => expect(events).toContain('a6 down'));
  });

  it('drops hostile input with one log line and keeps serving others', async () => {
    const bad = [
      'not json\n',
      `${JSON.stringify({ t: 'shell', cmd: 'id' })}\n`,
      encodeFrame({ t: 'pong', n: 1 }),
      'x'.repeat(AGENT_MAX_FRAME_BYTES + 10),
    ];
    for (const line of bad) {
      const agent = await FakeAgentLink.connect(port, fakeAgentIdentity(), gatewayIdentity.publicKey);
      agent.send(line);
      await agent.waitClosed();
    }
    // After the hello, anything but pong drops the link too.
    const { agent } = await linked('a7');
    agent.send({ t: 'hello', v: 1, agentId: 'a7', version: '1', hostname: 'h' });
    await agent.waitClosed();
    const reasons = logged.filter((l) => l.msg === 'agent link: dropped a connection').map((l) => l.reason);
    expect(reasons).toEqual(
      expect.arrayContaining([
        'a frame that is not JSON',
        'an unknown frame type "shell"',
        'a pong frame before hello or attach',
        'an oversized frame',
        'an unexpected hello frame on the control connection',
      ]),
    );
    // No line carries a frame's content.
    expect(JSON.stringify(logged)).not.toContain('id"');
    const { agent: still } = await linked('a8');
    expect(links.isLinked('a8')).toBe(true);
    still.close();
  });
});
