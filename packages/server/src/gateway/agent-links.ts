import { createHash, createPublicKey } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { DEFAULT_GATEWAY, GatehouseError, segmentOf, selectGateways, type GatewayCandidate } from '@gatehouse/core';
import {
  parseAgentAddress,
  signAgentGateways,
  signAgentGrant,
  type AgentGateway,
  type AgentGrant,
  type SignedToken,
} from '@gatehouse/core/agent-protocol';
import type { Agent, Gateway } from '@gatehouse/db';
import {
  AgentLinkServer,
  dropGatewayAgent,
  GatewayLinkError,
  openRelay,
  type AgentHello,
  type AgentLinkDecision,
  type LinkIdentity,
} from '@gatehouse/gateway';
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
    /** The registered gateways and the tunnel mode setting: the gateway selection agents follow too. */
    private readonly selection: { registered(): Promise<Gateway[]>; tunnelMode(): Promise<boolean> },
  ) {}

  async start(host: string, port: number): Promise<AgentLinkServer> {
    this.server = await AgentLinkServer.start({
      identity: await this.identity(),
      host,
      port,
      name: DEFAULT_GATEWAY,
      logger: this.logger,
      authenticate: (hello) => this.authenticate(hello, DEFAULT_GATEWAY),
      linkChanged: (agentId, state, version) => this.linkChanged(agentId, DEFAULT_GATEWAY, state, version),
      contact: (agentId) => this.services.agents.contact(agentId),
    });
    return this.server;
  }

  async close(): Promise<void> {
    await this.server?.close();
    this.server = null;
  }

  /** The agent's link to `gateway` (the built-in one, or a remote one over its server link) came up or went down. */
  async linkChanged(agentId: string, gateway: string, state: 'up' | 'down', version?: string): Promise<void> {
    if (state === 'up') await this.services.agents.linkUp(agentId, gateway, version ?? 'unknown');
    else await this.services.agents.linkDown(agentId, gateway);
  }

  /**
   * Ends a revoked agent's link and its sessions: here, and on the remote gateway it is
   * linked to (asked over its management endpoint; a gateway that cannot be asked refuses
   * the agent's next hello anyway).
   */
  async drop(agentId: string, reason: string): Promise<void> {
    this.server?.drop(agentId, reason);
    const agent = await this.services.agents.get(agentId);
    const gateway = agent?.linkGateway && agent.linkGateway !== DEFAULT_GATEWAY ? await this.registered(agent.linkGateway) : undefined;
    if (!gateway) return;
    await dropGatewayAgent(gateway, await this.identity(), agentId, reason, 5_000).catch((error: unknown) =>
      this.logger.warn({ err: error, agentId, gateway: gateway.name }, 'could not ask the gateway to drop a revoked agent'),
    );
  }

  private async registered(name: string): Promise<Gateway | undefined> {
    return (await this.selection.registered()).find((g) => g.name === name);
  }

  /**
   * The gateways an agent links to, in the order it tries them, signed with the server's
   * link key: the gateways a connection to its device may go through (segment, health,
   * tunnel mode: `selectGateways`) that take agents' links. The built-in gateway's listener
   * is at `agentAddress`, else at `host` (the name the agent reached the server by, when it
   * did) and the listener's port; a remote gateway's where its last status sync said. When
   * no gateway of the segment is online, all of them are listed, so the agent knows where
   * to try once one is back.
   */
  async gatewayList(agent: Pick<Agent, 'id' | 'deviceId'>, host: string | undefined): Promise<SignedToken> {
    const { config, inventory } = this.services;
    const identity = await this.identity();
    const port = this.server?.port ?? config.agentPort;
    const device = await inventory.devices.get(agent.deviceId);
    const segment = segmentOf(device.tags);
    const [registered, tunnelMode] = await Promise.all([this.selection.registered(), this.selection.tunnelMode()]);
    const builtIn: AgentGateway | undefined =
      port === 0 && config.agentAddress === undefined
        ? undefined
        : config.agentAddress !== undefined || host !== undefined
          ? { name: DEFAULT_GATEWAY, address: config.agentAddress ?? `${bracketed(host as string)}:${port}`, key: identity.publicKey }
          : undefined;
    const entries = new Map<string, AgentGateway>();
    const candidates: (GatewayCandidate & { entry?: AgentGateway })[] = [
      {
        name: DEFAULT_GATEWAY,
        segment: null,
        status: builtIn ? 'online' : 'offline',
        builtIn: true,
        ...(builtIn ? { entry: builtIn } : {}),
      },
      ...registered.flatMap((g) => {
        const entry = remoteEntry(g);
        return entry ? [{ name: g.name, segment: g.segment, status: g.status, builtIn: false, entry }] : [];
      }),
    ];
    const device_ = { name: device.name, segment, accessType: device.accessType };
    let selected = selectGateways(device_, candidates, { tunnelMode });
    if (!selected.ok)
      selected = selectGateways(
        device_,
        candidates.map((c) => (c.entry ? { ...c, status: 'online' as const } : c)),
        { tunnelMode },
      );
    if (selected.ok) for (const c of selected.candidates as typeof candidates) if (c.entry) entries.set(c.name, c.entry);
    return signAgentGateways(
      { agentId: agent.id, segment, issuedAt: new Date().toISOString(), gateways: [...entries.values()] },
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
  ): Promise<{ ok: true; socket: Duplex; gateway: string } | { ok: false; reason: string; gateway: string }> {
    if (this.server?.isLinked(agentId)) {
      try {
        return { ok: true, socket: await this.server.open(agentId, timeoutMs), gateway: DEFAULT_GATEWAY };
      } catch (error) {
        if (!(error instanceof GatehouseError)) throw error;
        return { ok: false, reason: `The agent of ${deviceName} did not take the connection: ${error.message}`, gateway: DEFAULT_GATEWAY };
      }
    }
    const agent = await this.services.agents.get(agentId);
    // Linked to a remote gateway: the session goes through it, relayed over the agent's link there.
    const remote =
      agent?.linkState === 'up' && agent.linkGateway && agent.linkGateway !== DEFAULT_GATEWAY
        ? await this.registered(agent.linkGateway)
        : undefined;
    if (remote) {
      try {
        const socket = await openRelay(remote, await this.identity(), { host: 'agent.invalid', port: 1, agentId }, timeoutMs);
        return { ok: true, socket, gateway: remote.name };
      } catch (error) {
        const code = (error as { socketCode?: string }).socketCode;
        const reason =
          error instanceof GatewayLinkError
            ? error.message
            : code === 'EAGENTLINK'
              ? 'the agent is not linked to it (any more); it reconnects to a gateway of its segment by itself, try again in a moment.'
              : (error as Error).message;
        return {
          ok: false,
          reason: `The agent of ${deviceName} could not be reached through gateway ${remote.name}: ${reason}`,
          gateway: remote.name,
        };
      }
    }
    const last = agent?.lastContactAt ? `last contact ${agent.lastContactAt}` : 'never connected';
    return {
      ok: false,
      reason: `The agent of ${deviceName} is not connected (${last}). Check that gatehouse-agent runs on the device and can reach the gateway.`,
      gateway: DEFAULT_GATEWAY,
    };
  }

  /** Known, active, and presenting the key it enrolled with: welcomed with its gateway list; else refused and audited. */
  async authenticate(hello: Omit<AgentHello, 'reachedHost'> & { reachedHost?: string }, gateway: string): Promise<AgentLinkDecision> {
    const agent = await this.services.agents.get(hello.agentId);
    const refusal = !agent
      ? 'unknown agent'
      : agent.revokedAt !== null
        ? 'the agent was revoked'
        : spkiOf(agent.publicKey) !== hello.peerKey
          ? 'the agent presented another key than the one it enrolled with'
          : undefined;
    // The name the agent reached the built-in gateway by is that gateway's address; a remote gateway's is not.
    const host = gateway === DEFAULT_GATEWAY ? hello.reachedHost : undefined;
    if (refusal === undefined && agent) return { ok: true, gateways: await this.gatewayList(agent, host) };
    await this.services.refusals.recordFrom(hello.remoteAddress, {
      action: 'agent.link',
      outcome: 'failure',
      actorName: `agent:${hello.hostname}`.slice(0, 64),
      ...(agent ? { targetType: 'device', targetId: agent.deviceId } : {}),
      details: { agentId: hello.agentId.slice(0, 64), reason: refusal, gateway },
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

function bracketed(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** A remote gateway's entry in agents' lists, when its last sync said it takes agents (`*:port`: at its management address's host). */
function remoteEntry(g: Gateway): AgentGateway | undefined {
  if (!g.agentAddress) return undefined;
  const port = /^\*:(\d{1,5})$/.exec(g.agentAddress)?.[1];
  const host = parseAgentAddress(g.address)?.host;
  const address = port === undefined ? g.agentAddress : host === undefined ? undefined : `${bracketed(host)}:${port}`;
  return address === undefined ? undefined : { name: g.name, address, key: g.publicKey };
}
