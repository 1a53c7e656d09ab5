import { createHash, createPublicKey } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { DEFAULT_GATEWAY, GatehouseError, segmentOf } from '@gatehouse/core';
import { signAgentGateways, signAgentGrant, type AgentGrant, type SignedToken } from '@gatehouse/core/agent-protocol';
import type { Agent } from '@gatehouse/db';
import { AgentLinkServer, type AgentHello, type AgentLinkDecision, type LinkIdentity } from '@gatehouse/gateway';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';

/**
 * The server's side of host agents' links (docs/AGENTS.md): the built-in gateway's agent
 * listener and what it needs from the database (who may link, link state), the gateway
 * lists and session grants signed with the server's link key, and the agent path of the
 * built-in gateway's dialer.
 */
export class AgentLinks {
  /** The listener, once started (agentPort not 0 and the built-in gateway on). */
  server: AgentLinkServer | null = null;

  constructor(
    private readonly services: Services,
    private readonly identity: () => Promise<LinkIdentity>,
    private readonly logger: Logger,
  ) {}

  async start(host: string, port: number): Promise<AgentLinkServer> {
    this.server = await AgentLinkServer.start({
      identity: await this.identity(),
      host,
      port,
      name: DEFAULT_GATEWAY,
      logger: this.logger,
      authenticate: (hello) => this.authenticate(hello),
      linkChanged: (agentId, state, version) =>
        state === 'up'
          ? this.services.agents.linkUp(agentId, DEFAULT_GATEWAY, version ?? 'unknown')
          : this.services.agents.linkDown(agentId),
      contact: (agentId) => this.services.agents.contact(agentId),
    });
    return this.server;
  }

  async close(): Promise<void> {
    await this.server?.close();
    this.server = null;
  }

  /** Ends a revoked agent's link and its sessions (nothing when it is not linked here). */
  drop(agentId: string, reason: string): void {
    this.server?.drop(agentId, reason);
  }

  /**
   * The gateways an agent links to, signed with the server's link key: the built-in
   * gateway's agent listener at `agentAddress`, else at `host` (the name the agent reached
   * the server by) and the listener's port. Empty when agent links are off.
   */
  async gatewayList(agent: Pick<Agent, 'id' | 'deviceId'>, host: string): Promise<SignedToken> {
    const { config, inventory } = this.services;
    const identity = await this.identity();
    const port = this.server?.port ?? config.agentPort;
    const device = await inventory.devices.get(agent.deviceId);
    const address = config.agentAddress ?? `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
    return signAgentGateways(
      {
        agentId: agent.id,
        segment: segmentOf(device.tags),
        issuedAt: new Date().toISOString(),
        gateways: port === 0 && config.agentAddress === undefined ? [] : [{ name: DEFAULT_GATEWAY, address, key: identity.publicKey }],
      },
      identity.privateKey,
    );
  }

  /** A grant for one session on the agent's device, signed with the server's link key. */
  async grant(grant: Omit<AgentGrant, 'nonce' | 'issuedAt' | 'expiresAt'>): Promise<SignedToken> {
    return signAgentGrant(grant, (await this.identity()).privateKey);
  }

  /**
   * A connection to the agent's device through its link, or why not, as the user is told:
   * the agent is not linked (with its last contact), or did not attach in time.
   */
  async open(
    agentId: string,
    deviceName: string,
    timeoutMs: number,
  ): Promise<{ ok: true; socket: Duplex } | { ok: false; reason: string }> {
    if (this.server?.isLinked(agentId)) {
      try {
        return { ok: true, socket: await this.server.open(agentId, timeoutMs) };
      } catch (error) {
        if (!(error instanceof GatehouseError)) throw error;
        return { ok: false, reason: `The agent of ${deviceName} did not take the connection: ${error.message}` };
      }
    }
    const agent = await this.services.agents.get(agentId);
    const last = agent?.lastContactAt ? `last contact ${agent.lastContactAt}` : 'never connected';
    return {
      ok: false,
      reason: `The agent of ${deviceName} is not connected (${last}). Check that gatehouse-agent runs on the device and can reach the gateway.`,
    };
  }

  /** Known, active, and presenting the key it enrolled with: welcomed with its gateway list; else refused and audited. */
  private async authenticate(hello: AgentHello): Promise<AgentLinkDecision> {
    const agent = await this.services.agents.get(hello.agentId);
    const refusal = !agent
      ? 'unknown agent'
      : agent.revokedAt !== null
        ? 'the agent was revoked'
        : spkiOf(agent.publicKey) !== hello.peerKey
          ? 'the agent presented another key than the one it enrolled with'
          : undefined;
    if (refusal === undefined && agent) return { ok: true, gateways: await this.gatewayList(agent, hello.reachedHost) };
    await this.services.refusals.recordFrom(hello.remoteAddress, {
      action: 'agent.link',
      outcome: 'failure',
      actorName: `agent:${hello.hostname}`.slice(0, 64),
      ...(agent ? { targetType: 'device', targetId: agent.deviceId } : {}),
      details: { agentId: hello.agentId.slice(0, 64), reason: refusal, gateway: DEFAULT_GATEWAY },
    });
    return {
      ok: false,
      reason:
        refusal === 'the agent was revoked'
          ? 'The agent was revoked. Enroll it again with a new join token.'
          : 'The agent is not enrolled with this key. Enroll it again with a new join token.',
    };
  }
}

/** Base64 SPKI DER of a PEM public key (as link certificates carry it). */
function spkiOf(pem: string): string {
  return createPublicKey(pem).export({ type: 'spki', format: 'der' }).toString('base64');
}

/** `SHA256:…` of the agent's key as an SSH host key (the `ssh-ed25519` wire blob), as OpenSSH prints it. */
export function agentHostKeyFingerprint(pem: string): string {
  const raw = createPublicKey(pem).export({ type: 'spki', format: 'der' }).subarray(12);
  const name = Buffer.from('ssh-ed25519');
  const blob = Buffer.concat([u32(name.length), name, u32(raw.length), raw]);
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
