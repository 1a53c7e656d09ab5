import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AgentProcess, enrollAgent, freeLowPort, stopAgents } from '../support/agent.js';
import { RemoteGatewayProcess, stopGateways } from '../support/gateway.js';
import { killServers, removeTempDirs, setupAdmin, startServer, tempDir, type GatehouseServer, savedToken } from '../support/server.js';
import { runClient } from '../support/ssh-client.js';
import { ensureSystemUser } from '../support/sshd.js';

/** The account's OS user on the device (no password: the agent needs none). */
const DEVICE_USER = 'gh-test-agent';
const DEVICE = 'failover-box';
const ADMIN_PASSWORD = 'agent failover admin password';
const OPERATOR = 'fiona';
const OPERATOR_PASSWORD = 'agent failover operator password';
/** The device's tag, and its gateways' segment. */
const SEGMENT = 'gateway-failover';
/** The server's gateway status sync interval: an agent whose gateway died must be linked again within it. */
const HEALTH_INTERVAL_MS = 15_000;

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

interface Session {
  command: string | null;
  gateway: string;
  result: string;
  endedAt: string | null;
}

interface AgentView {
  linkState: string;
  linkGateway: string | null;
}

/**
 * A host agent of a segment's device, as a real `gatehouse agent run` process, links to one of
 * the segment's two remote gateway processes; sessions entering the built-in gateway are relayed
 * through that one. When it is killed, the agent moves to the other within one health interval
 * and sessions go there.
 */
describe.skipIf(!isRoot)('a host agent fails over between the remote gateways of its segment', () => {
  const gateways = new Map<string, RemoteGatewayProcess>();
  let server: GatehouseServer;
  let agent: AgentProcess;
  let sshPort: number;
  let token: string;
  let deviceId: string;

  const api = <T>(method: string, route: string, body?: unknown) => server.api<T>(token, method, route, body);
  const agentView = async () => (await api<{ agent: AgentView | null }>('GET', `/devices/${deviceId}/agent`)).agent;
  /** The agent's view once its link is up at one of `names`; fails at once if the agent exits. */
  const linkedTo = (names: string[], timeout: number) =>
    Promise.race([
      vi.waitFor(
        async () => {
          const view = await agentView();
          if (view?.linkState !== 'up' || !names.includes(view.linkGateway ?? ''))
            throw new Error(`the agent is not linked to ${names.join(' or ')}: ${JSON.stringify(view)}\n${agent.log}`);
          return view.linkGateway as string;
        },
        { timeout, interval: 100 },
      ),
      agent.exited.then((status) => {
        throw new Error(`the agent exited (${status.code ?? status.signal}):\n${agent.log}`);
      }),
    ]);
  /** `id -un` on the device over native ssh through the built-in gateway; the gateway its recorded session went through. */
  const sshThrough = async () => {
    const command = `id -un # ${randomBytes(4).toString('hex')}`;
    const result = await runClient('ssh', ['-p', String(sshPort), `${OPERATOR}:${DEVICE}@127.0.0.1`, command], {
      password: OPERATOR_PASSWORD,
    });
    expect(result.stdout.toString(), result.stderr).toBe(`${DEVICE_USER}\n`);
    expect(result.code).toBe(0);
    const session = await vi.waitFor(
      async () => {
        const found = (await api<{ items: Session[] }>('GET', `/sessions?deviceId=${deviceId}&limit=100`)).items.find(
          (s) => s.command === command,
        );
        if (!found?.endedAt) throw new Error(`no ended session yet: ${JSON.stringify(found)}`);
        return found;
      },
      { timeout: 10_000, interval: 100 },
    );
    expect(session.result).toBe('success');
    return session.gateway;
  };

  beforeAll(async () => {
    const dir = tempDir('gatehouse-agent-failover-');
    ensureSystemUser(DEVICE_USER);
    sshPort = await freeLowPort();
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(sshPort) } });
    const credentials = path.join(dir, 'credentials.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    token = savedToken(credentials);

    const serverKey = (await api<{ publicKey: string }>('GET', '/gateways/server-key')).publicKey;
    const names = ['fo-1', 'fo-2'];
    const started = await Promise.all(
      names.map(async (name) =>
        RemoteGatewayProcess.start({
          dataDir: path.join(dir, name),
          serverKey,
          port: await freeLowPort(),
          agentPort: await freeLowPort(),
        }),
      ),
    );
    for (const [i, name] of names.entries()) {
      const gateway = started[i] as RemoteGatewayProcess;
      gateways.set(name, gateway);
      await api('POST', '/gateways', { name, segment: SEGMENT, address: gateway.address, publicKey: gateway.publicKey });
    }

    const project = await api<{ id: string }>('POST', '/projects', { name: 'Failover' });
    deviceId = (
      await api<{ id: string }>('POST', '/devices', {
        projectId: project.id,
        name: DEVICE,
        provider: 'on-prem',
        protocols: ['ssh'],
        tags: [SEGMENT],
      })
    ).id;
    await api('POST', '/accounts', { deviceId, username: DEVICE_USER });
    const operator = await api<{ id: string }>('POST', '/users', { username: OPERATOR, role: 'operator', password: OPERATOR_PASSWORD });
    await api('POST', '/grants', { userId: operator.id, projectId: project.id, deviceId });

    const { installCommand } = await api<{ installCommand: string }>('POST', `/devices/${deviceId}/agent-tokens`, {});
    const stateDir = path.join(dir, 'device', 'state');
    const enrollment = await enrollAgent({ installCommand, stateDir });
    expect(enrollment.result.code, enrollment.result.stderr).toBe(0);
    agent = AgentProcess.start({ stateDir });
  });

  afterAll(async () => {
    await stopAgents();
    await stopGateways();
    killServers();
    removeTempDirs();
  });

  it('is reached through the gateway holding its link, and through the other once that one is killed', async () => {
    const first = await linkedTo([...gateways.keys()], 15_000);
    expect(await sshThrough()).toBe(first);

    const other = [...gateways.keys()].find((name) => name !== first) as string;
    const killedAt = Date.now();
    gateways.get(first)?.kill();
    await linkedTo([other], HEALTH_INTERVAL_MS);
    expect(Date.now() - killedAt).toBeLessThan(HEALTH_INTERVAL_MS);
    expect(await sshThrough()).toBe(other);
  });
});
