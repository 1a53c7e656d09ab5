import type { TLSSocket } from 'node:tls';
import { signAgentGateways, AGENT_MAX_FRAME_BYTES, type GatewayFrame } from '@gatehouse/core/agent-protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { enrolledAgent, testServerKey, TestAgentGateway } from '../../../../test/support/agent-gateway.js';
import { AgentLink } from './link.js';
import type { AgentLogger } from './log.js';
import { loadAgentState, type LoadedAgent } from './state.js';

const server = testServerKey();

function recordingLogger(): AgentLogger & { lines: { level: string; msg: string; fields: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  const at =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}) =>
      void lines.push({ level, msg, fields });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function gateway(name: string): Promise<TestAgentGateway> {
  const g = await TestAgentGateway.start(name);
  cleanup.push(() => g.close());
  return g;
}

function startLink(agent: LoadedAgent, logger = recordingLogger(), onAttach = (s: TLSSocket) => void s.destroy()) {
  const link = new AgentLink({ agent, version: '9.9.9', hostname: 'web-1', logger, onAttach, baseDelayMs: 20, capDelayMs: 50 });
  link.start();
  cleanup.push(() => link.stop());
  return { link, logger };
}

const welcomeWith = (agent: LoadedAgent, issuedAt = new Date()): GatewayFrame => ({
  t: 'welcome',
  gateway: 'default',
  heartbeatMs: 5000,
  gateways: signAgentGateways({ ...agent.gateways, issuedAt: issuedAt.toISOString() }, server.privateKey),
});

describe('AgentLink', () => {
  it('says hello, answers pings, dials back for open, and keeps a newer signed gateway list in agent.json', async () => {
    const g = await gateway('default');
    const agent = enrolledAgent(server, [g.entry()]);
    const newer = welcomeWith(agent);
    g.welcome = () => newer;
    const attached: string[] = [];
    const { link } = startLink(agent, recordingLogger(), (socket) => {
      attached.push('yes');
      socket.end('SSH-2.0-test\r\n');
    });
    await vi.waitFor(() => expect(link.linkedTo).toBe('default'));
    expect(g.control?.hello).toMatchObject({ t: 'hello', v: 1, agentId: 'agent-test', version: '9.9.9', hostname: 'web-1' });
    g.send({ t: 'ping', n: 7 });
    await vi.waitFor(() => expect(g.control?.frames).toContainEqual({ t: 'pong', n: 7 }));
    expect(loadAgentState(agent.stateDir).state.gateways).toBe((newer as { gateways: string }).gateways);
    const data = await g.open();
    expect(attached).toEqual(['yes']);
    const first = await new Promise<string>((resolve) => data.once('data', (b: Buffer) => resolve(b.toString())));
    expect(first).toBe('SSH-2.0-test\r\n');
  });

  it('sends nothing to a gateway whose key is not the listed one, and goes on to the next gateway at once', async () => {
    const impostor = await gateway('impostor');
    const real = await gateway('real');
    const agent = enrolledAgent(server, [impostor.entry(real.identity.publicKey), real.entry()]);
    real.welcome = () => welcomeWith(agent, new Date(0));
    const { link, logger } = startLink(agent);
    await vi.waitFor(() => expect(link.linkedTo).toBe('real'));
    expect(impostor.connections).toBeGreaterThan(0);
    expect(impostor.received.every((n) => n === 0)).toBe(true);
    expect(impostor.controls).toEqual([]);
    expect(logger.lines.find((l) => l.fields.gateway === 'impostor')?.fields.reason).toMatch(/not the one the signed list names/);
  });

  it.each([
    ['an unknown frame type', '{"t":"exec","cmd":"id"}\n', /an unknown frame type "exec"/],
    ['an oversized frame', `{"t":"ping","n":1,"pad":"${'x'.repeat(AGENT_MAX_FRAME_BYTES)}"}\n`, /an oversized frame/],
    ['a frame that is not JSON', 'hello there\n', /a frame that is not JSON/],
    ['an open before welcome', '{"t":"open","ref":"abc"}\n', /an open before welcome/],
  ])('drops the link on %s with one log line naming it, and reconnects', async (_what, line, reason) => {
    const g = await gateway('default');
    const agent = enrolledAgent(server, [g.entry()]);
    g.welcome = () => null;
    const { logger } = startLink(agent);
    await vi.waitFor(() => expect(g.controls).toHaveLength(1));
    g.send(line);
    await vi.waitFor(() => expect(g.controls).toHaveLength(2));
    const drops = logger.lines.filter((l) => l.msg === 'link dropped');
    expect(drops).toHaveLength(1);
    expect(String(drops[0]?.fields.reason)).toMatch(reason);
    // The frame's content is never logged.
    expect(JSON.stringify(logger.lines)).not.toMatch(/cmd|xxxx|hello there/);
  });

  it('refuses a welcome whose gateway list the pinned server key did not sign', async () => {
    const g = await gateway('default');
    const agent = enrolledAgent(server, [g.entry()]);
    const forger = testServerKey();
    g.welcome = () => ({
      t: 'welcome',
      gateway: 'x',
      heartbeatMs: 5000,
      gateways: signAgentGateways({ ...agent.gateways, issuedAt: new Date().toISOString() }, forger.privateKey),
    });
    const { link, logger } = startLink(agent);
    await vi.waitFor(() => expect(g.controls.length).toBeGreaterThanOrEqual(2));
    expect(link.linkedTo).toBeUndefined();
    expect(logger.lines.find((l) => l.msg === 'link dropped')?.fields.reason).toMatch(
      /does not verify \(the signature is not the server’s\)/,
    );
    expect(loadAgentState(agent.stateDir).state.gateways).toBe(agent.state.gateways);
  });

  it('after bye without retry waits the long delay before it tries again', async () => {
    const g = await gateway('default');
    const agent = enrolledAgent(server, [g.entry()]);
    g.welcome = () => ({ t: 'bye', reason: 'this agent was revoked', retry: false });
    const logger = recordingLogger();
    const link = new AgentLink({
      agent,
      version: '1',
      hostname: 'h',
      logger,
      onAttach: () => undefined,
      baseDelayMs: 10,
      refusedDelayMs: 400,
    });
    link.start();
    cleanup.push(() => link.stop());
    await vi.waitFor(() => expect(g.controls).toHaveLength(1));
    const at = Date.now();
    await vi.waitFor(() => expect(g.controls).toHaveLength(2));
    expect(Date.now() - at).toBeGreaterThanOrEqual(350);
    expect(logger.lines.find((l) => l.level === 'error')?.fields).toMatchObject({ reason: 'this agent was revoked', retry: false });
  });
});
