import { ConflictError, DEFAULT_GATEWAY, GatehouseError, segmentOf, selectGateways, type GatewayCandidate } from '@gatehouse/core';
import {
  Gateways,
  type Db,
  type Device,
  type Gateway,
  type GatewayDrain,
  type GatewaySessions,
  type Settings,
  type Vault,
} from '@gatehouse/db';
import {
  dialFirstReachable,
  endGatewaySession,
  generateLinkIdentity,
  type GatewayLinkError,
  linkIdentityOf,
  type LinkIdentity,
  type LiveSessions,
  type AccessBroker,
  type DesktopBroker,
  type DesktopSessions,
  type GatewayLogger,
  type TargetDialer,
  warnGatewaySession,
} from '@gatehouse/gateway';
import type { RdpRenderer } from '../desktop/rdp-renderer.js';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import { AgentLinks } from './agent-links.js';
import { GatewayHealth } from './health.js';
import { GatewayLinkBroker } from './link-broker.js';

const LINK_KEY_SETTING = 'gateway.link_key';
const SETTINGS_KEY = 'gateway.settings';
const linkKeyScope = { table: 'settings', id: 'gateway', field: 'linkKey' };

export interface GatewaySettings {
  /** Every connection goes through the default gateway; no other gateway reaches a device. */
  tunnelMode: boolean;
  /** Users may forward TCP connections through the devices they use (`ssh -L`). Off by default. */
  portForwarding: boolean;
  /** Users' SSH clients must negotiate a post-quantum key exchange with the gateways. Off by default. */
  requirePostQuantumKex: boolean;
}

/** A live session, and the gateway the user entered through (which holds it). */
export interface LiveSession {
  id: string;
  entryGateway: string;
}

/** The built-in gateway as the gateway list shows it. */
export interface BuiltInGatewayInfo {
  address: string;
  hostKeyFingerprint: string;
  /** The host key as one OpenSSH public key line, for clients' known_hosts. */
  hostKey: string;
}

/** What the console's desktop WebSocket needs of the built-in gateway to open a desktop. */
export interface BuiltInDesktop {
  broker: AccessBroker & DesktopBroker;
  dial: TargetDialer;
  recordingsDir: string;
  name: string;
  timeoutMs: number;
  /** Live desktops of both entries (the VNC port and the WebSocket). */
  sessions: DesktopSessions;
  logger: GatewayLogger;
  /** Renders browser RDP sessions (at most `rdpMaxSessions` at once); stopped with the server. */
  rdp: RdpRenderer;
}

export interface GatewayServiceOptions {
  services: Services;
  /** Where recordings fetched from remote gateways' SSH entries go. */
  recordingsDir: string;
  db: Db;
  settings: Settings;
  vault: Vault;
  sessions: GatewaySessions;
  audit: Services['audit'];
  logger: Logger;
  targetTimeoutMs: number;
  version: string;
}

/** How long ending a session held by another replica waits for that replica to end it. */
const END_REQUEST_WAIT_MS = 10_000;

/**
 * The server's side of its gateways: the registry, the server's own link key (which the
 * gateways pin), the status sync, tunnel mode, and the dialer the built-in gateway uses
 * to reach a device through the gateway selection chose, failing over to the next.
 */
export class GatewayService {
  readonly gateways: Gateways;
  readonly health: GatewayHealth;
  readonly links: GatewayLinkBroker;
  /** Host agents' links to the built-in gateway. */
  readonly agentLinks: AgentLinks;
  private identityPromise: Promise<LinkIdentity> | undefined;
  /** Set once the built-in gateway listens; null while it is off. */
  builtIn: BuiltInGatewayInfo | null = null;
  /**
   * The built-in gateway's VNC listener, `host:port` as a viewer should dial it (what a
   * VNC token's answer names); set once it listens, null while it is off (vncPort 0).
   */
  vncAddress: string | null = null;
  /** The built-in gateway's RDP tunnel listener, `host:port`; null while it is off (rdpPort 0). */
  rdpAddress: string | null = null;
  /** The built-in gateway's live sessions, once it listens. */
  builtInSessions: LiveSessions | null = null;
  /** The built-in gateway's desktops (the console's WebSocket), once it listens. */
  desktop: BuiltInDesktop | null = null;

  constructor(private readonly opts: GatewayServiceOptions) {
    this.gateways = new Gateways(opts.db);
    this.agentLinks = new AgentLinks(opts.services, () => this.identity(), opts.logger.child({ component: 'agent-links' }), {
      registered: () => this.gateways.list(),
      tunnelMode: async () => (await this.settings()).tunnelMode,
    });
    const logger = opts.logger.child({ component: 'gateway-health' });
    this.links = new GatewayLinkBroker(
      opts.services,
      opts.sessions,
      () => this.settings(),
      () => this.identity(),
      opts.recordingsDir,
      logger,
      this.agentLinks,
    );
    this.health = new GatewayHealth({
      gateways: this.gateways,
      identity: () => this.identity(),
      audit: opts.audit,
      logger,
      recordInput: opts.services.config.gatewayRecordInput,
      recordBinaryExec: opts.services.config.gatewayRecordBinaryExec,
      onCall: (gateway, procedure, input) => this.links.handle(gateway, procedure, input),
      onLinkOpen: (gateway, report) =>
        void this.links
          .linkOpened(gateway, report)
          .catch((error: unknown) => logger.error({ err: error, gateway: gateway.name }, 'link set-up failed')),
      // Agents linked to a gateway that went offline are down too (it cannot say so itself).
      onOffline: (gateway) => opts.services.agents.linksDownVia(gateway.name),
    });
  }

  /**
   * Ends a live session where the user entered: the built-in gateway, or a remote gateway's
   * own SSH entry (asked over its management endpoint). The user is told `reason`, and the
   * session's row and recording keep it. False when that gateway has no such session (it
   * ended meanwhile); throws when the gateway cannot be asked.
   */
  async endSession(session: LiveSession, reason: string): Promise<boolean> {
    if (session.entryGateway === DEFAULT_GATEWAY && this.opts.db.dialect === 'postgres') {
      if (this.builtInSessions && (await this.builtInSessions.endSession(session.id, reason))) return true;
      return this.endOnAnotherReplica(session, reason);
    }
    return this.askEntry(
      session,
      (builtIn) => builtIn.endSession(session.id, reason),
      (gateway, identity) => endGatewaySession(gateway, identity, session.id, reason, this.opts.targetTimeoutMs),
      'ended',
    );
  }

  /**
   * A session of another replica's built-in gateway (PostgreSQL): the end is asked for in its
   * row, which that replica's gateway reads within a second (`watchSessionRequests`); answers once
   * the row says it ended. False when the session is not live.
   */
  private async endOnAnotherReplica(session: LiveSession, reason: string): Promise<boolean> {
    const { sessions } = this.opts;
    if (!(await sessions.requestEnd(session.id, reason))) return false;
    const deadline = Date.now() + END_REQUEST_WAIT_MS;
    while (Date.now() < deadline) {
      if (!(await sessions.isLive(session.id))) return true;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new ConflictError(
      `The server replica holding session ${session.id} did not end it within ${END_REQUEST_WAIT_MS / 1000} s: it may be stopped or cut off from the database. The end stays asked for: that replica ends it when it reads the request, and if it stopped, the leader records the session as ended once that replica's lease lapses.`,
    );
  }

  /**
   * On PostgreSQL, where other replicas may ask: every second, ends the sessions of this
   * replica's built-in gateway whose end another replica asked for, and shows the warnings
   * asked for them once. Returns the stop.
   */
  watchSessionRequests(): () => void {
    if (this.opts.db.dialect !== 'postgres') return () => undefined;
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      void this.deliverSessionRequests()
        .catch((error: unknown) =>
          this.opts.logger.warn({ err: error }, 'could not read the session ends and warnings other replicas asked for'),
        )
        .finally(() => (busy = false));
    }, 1_000);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** One pass of `watchSessionRequests`. Exposed for tests. */
  async deliverSessionRequests(): Promise<void> {
    const live = this.builtInSessions;
    if (!live) return;
    const { sessions } = this.opts;
    for (const r of await sessions.endRequests()) await live.endSession(r.id, r.reason);
    // Claimed (cleared from the row) before shown: each is shown once, even if a pass fails midway.
    for (const w of await sessions.claimWarnings(this.opts.services.replica)) await live.warnSession(w.id, w.text);
  }

  /**
   * Shows the user of a live session `text` without ending it (a terminal shows
   * `*** text ***`, and the recording keeps it), where the user entered, as `endSession`
   * asks. A session of another replica's built-in gateway (PostgreSQL) gets it through its
   * row, which that replica reads within a second. False when that gateway has no such
   * session; throws when it cannot be asked.
   */
  async warnSession(session: LiveSession, text: string): Promise<boolean> {
    if (session.entryGateway === DEFAULT_GATEWAY && this.opts.db.dialect === 'postgres') {
      if (this.builtInSessions && (await this.builtInSessions.warnSession(session.id, text))) return true;
      return this.opts.sessions.requestWarning(session.id, text);
    }
    return this.askEntry(
      session,
      (builtIn) => builtIn.warnSession(session.id, text),
      (gateway, identity) => warnGatewaySession(gateway, identity, session.id, text, this.opts.targetTimeoutMs),
      'warned',
    );
  }

  private async askEntry(
    session: LiveSession,
    builtIn: (sessions: LiveSessions) => Promise<boolean>,
    remote: (gateway: Gateway, identity: LinkIdentity) => Promise<boolean>,
    what: string,
  ): Promise<boolean> {
    if (session.entryGateway === DEFAULT_GATEWAY) {
      if (!this.builtInSessions) throw new ConflictError('The built-in gateway is off: it holds no session.');
      return builtIn(this.builtInSessions);
    }
    const gateway = (await this.gateways.list()).find((g) => g.name === session.entryGateway);
    if (!gateway)
      throw new GatehouseError(
        'CONFLICT',
        `Gateway ${session.entryGateway} is no longer registered; its sessions cannot be ${what} from here.`,
      );
    try {
      return await remote(gateway, await this.identity());
    } catch (error) {
      throw new GatehouseError(
        'CONFLICT',
        `Gateway ${gateway.name} did not answer (${(error as Error).message}). Try again when it is online.`,
      );
    }
  }

  /**
   * The key the server presents to its gateways: made once, the private half sealed in
   * the database, so every replica presents the same one.
   */
  identity(): Promise<LinkIdentity> {
    this.identityPromise ??= (async () => {
      const { settings, vault } = this.opts;
      let stored = await settings.get(LINK_KEY_SETTING);
      if (stored === undefined) {
        const fresh = generateLinkIdentity('gatehouse-server');
        stored = await settings.setIfAbsent(LINK_KEY_SETTING, vault.encrypt(linkKeyScope, fresh.privateKey));
      }
      return linkIdentityOf(vault.decrypt(linkKeyScope, stored), 'gatehouse-server');
    })();
    this.identityPromise.catch(() => (this.identityPromise = undefined));
    return this.identityPromise;
  }

  async settings(): Promise<GatewaySettings> {
    const text = await this.opts.settings.get(SETTINGS_KEY);
    const parsed = text === undefined ? {} : (JSON.parse(text) as Partial<GatewaySettings>);
    return {
      tunnelMode: parsed.tunnelMode === true,
      portForwarding: parsed.portForwarding === true,
      requirePostQuantumKex: parsed.requirePostQuantumKex === true,
    };
  }

  async saveSettings(next: GatewaySettings, settings: Settings = this.opts.settings): Promise<GatewaySettings> {
    await settings.set(SETTINGS_KEY, JSON.stringify(next));
    return next;
  }

  /** The built-in gateway and every registered one, with their live sessions. */
  async list(reachedAs?: string): Promise<PresentedGateway[]> {
    const [gateways, live, drains] = await Promise.all([this.gateways.list(), this.opts.sessions.liveByGateway(), this.gateways.drains()]);
    return [
      this.presentBuiltIn(live.get(DEFAULT_GATEWAY) ?? 0, drains.get(DEFAULT_GATEWAY), reachedAs),
      ...gateways.map((g) => presentGateway(g, live.get(g.name) ?? 0, drains.get(g.id))),
    ];
  }

  /** One gateway; `reachedAs` is the host name the caller reached the server by (for the built-in gateway's address). */
  async show(id: string, reachedAs?: string): Promise<PresentedGateway> {
    const [live, drains] = await Promise.all([this.opts.sessions.liveByGateway(), this.gateways.drains()]);
    if (id === DEFAULT_GATEWAY) return this.presentBuiltIn(live.get(DEFAULT_GATEWAY) ?? 0, drains.get(DEFAULT_GATEWAY), reachedAs);
    const g = await this.gateways.get(id);
    return presentGateway(g, live.get(g.name) ?? 0, drains.get(g.id));
  }

  /**
   * The address users should give ssh for the built-in gateway: its listener's, unless that
   * is a wildcard (0.0.0.0, ::), which nobody can connect to; then the configured public
   * host (gatewayPublicHost), else the host the caller reached the server by, with the port.
   */
  private builtInAddress(reachedAs: string | undefined): string | null {
    if (!this.builtIn) return null;
    const { address } = this.builtIn;
    const colon = address.lastIndexOf(':');
    const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
    // A Host header is the caller's to choose: only a plain name or address is shown back.
    const reached = reachedAs?.replace(/^\[|\]$/g, '');
    const usable = reached !== undefined && /^(?:[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]{2,45})$/.test(reached) ? reached : undefined;
    const publicHost = this.opts.services.config.gatewayPublicHost ?? (WILDCARD_HOSTS.has(host) ? usable : undefined);
    if (publicHost === undefined) return address;
    return `${publicHost.includes(':') ? `[${publicHost}]` : publicHost}${address.slice(colon)}`;
  }

  private presentBuiltIn(liveSessions: number, drain: GatewayDrain | undefined, reachedAs: string | undefined): PresentedGateway {
    return {
      id: DEFAULT_GATEWAY,
      name: DEFAULT_GATEWAY,
      builtIn: true,
      segment: null,
      address: this.builtInAddress(reachedAs),
      fingerprint: this.builtIn?.hostKeyFingerprint ?? null,
      status: this.builtIn ? 'online' : 'offline',
      statusReason: this.builtIn ? null : 'The built-in gateway is off (gatewayPort 0).',
      draining: drain !== undefined,
      drainingSince: drain?.since ?? null,
      lastContactAt: this.builtIn ? new Date().toISOString() : null,
      lastSyncAt: null,
      latencyMs: 0,
      version: this.opts.version,
      liveSessions,
      openRelays: null,
      createdAt: null,
    };
  }

  /** Every gateway as selection sees it (status, drained), and whether tunnel mode is on. */
  private async candidates(): Promise<{ candidates: (GatewayCandidate & { gateway?: Gateway })[]; tunnelMode: boolean }> {
    const [registered, settings, drains] = await Promise.all([this.gateways.list(), this.settings(), this.gateways.drains()]);
    const candidates: (GatewayCandidate & { gateway?: Gateway })[] = [
      {
        name: DEFAULT_GATEWAY,
        segment: null,
        status: this.builtIn ? 'online' : 'offline',
        builtIn: true,
        draining: drains.has(DEFAULT_GATEWAY),
      },
      ...registered.map((g) => ({
        name: g.name,
        segment: g.segment,
        status: g.status,
        builtIn: false,
        draining: drains.has(g.id),
        gateway: g,
      })),
    ];
    return { candidates, tunnelMode: settings.tunnelMode };
  }

  /**
   * Whether a new connection to each device would find a gateway now, and if not the
   * refusal the user would get (the console shows it instead of a Connect that would fail).
   * A device with a host agent (not revoked) is reached through the agent's link.
   */
  async reach(devices: readonly Device[]): Promise<{ deviceId: string; ok: boolean; reason: string | null; message: string | null }[]> {
    const { candidates, tunnelMode } = await this.candidates();
    return Promise.all(
      devices.map(async (d) => {
        const agent = await this.opts.services.agents.ofDevice(d.id);
        if (agent && agent.revokedAt === null) return { deviceId: d.id, ok: true, reason: null, message: null };
        const selection = selectGateways({ name: d.name, segment: segmentOf(d.tags), accessType: d.accessType }, candidates, {
          tunnelMode,
        });
        return selection.ok
          ? { deviceId: d.id, ok: true, reason: null, message: null }
          : { deviceId: d.id, ok: false, reason: selection.reason, message: selection.message };
      }),
    );
  }

  /** The dialer of the built-in gateway: selection by segment, then failover in order. */
  dialer(): TargetDialer {
    const { audit, logger, targetTimeoutMs } = this.opts;
    return async (target, { user, remoteAddress: socketAddress }) => {
      // A device with an agent is reached through the agent's link only (its sshd may be gone).
      if (target.agentId) {
        const opened = await this.agentLinks.open(target.agentId, target.deviceName, targetTimeoutMs);
        const via = { gateway: opened.gateway, segment: target.segment };
        return opened.ok ? { ok: true, socket: opened.socket, ...via } : { ok: false, reason: opened.reason, ...via };
      }
      const remoteAddress = user.browserAddress ?? socketAddress;
      const { candidates, tunnelMode } = await this.candidates();
      const selection = selectGateways({ name: target.deviceName, segment: target.segment, accessType: target.accessType }, candidates, {
        tunnelMode,
      });
      const base = {
        action: 'gateway.select',
        actorId: user.id,
        actorName: user.username,
        targetType: 'device',
        targetId: target.deviceId,
        ip: remoteAddress,
      } as const;
      if (!selection.ok) {
        await audit(null, {
          ...base,
          outcome: 'failure',
          details: { device: target.deviceName, segment: selection.segment, reason: selection.reason, message: selection.message },
        });
        return { ok: false, reason: selection.message, gateway: DEFAULT_GATEWAY, segment: selection.segment };
      }
      const dialed = await dialFirstReachable(
        target,
        selection.candidates.map((c) => ({ name: c.name, relay: (c as GatewayCandidate & { gateway?: Gateway }).gateway })),
        {
          identity: () => this.identity(),
          timeoutMs: targetTimeoutMs,
          onFailedTry: async (candidate, failed, linkError) => {
            if (candidate.relay && linkError) await this.gatewayFailed(candidate.relay, linkError, target.deviceName);
            logger.info(
              { gateway: failed.gateway, deviceId: target.deviceId, reason: failed.reason },
              'a gateway could not reach the device; trying the next',
            );
          },
        },
      );
      const details = { device: target.deviceName, segment: selection.segment };
      if (dialed.ok) {
        // The device's name as this connection's authorization read it moments ago, not read
        // again for the event (issue 23); the audit log would add it last, as here.
        const targetName = `${target.projectName}/${target.deviceName}`;
        await audit(null, {
          ...base,
          outcome: 'success',
          details: { ...details, gateway: dialed.gateway, tunnel: selection.tunnel, failedOver: dialed.failedOver, targetName },
        });
        return { ok: true, socket: dialed.socket, gateway: dialed.gateway, segment: selection.segment };
      }
      await audit(null, {
        ...base,
        outcome: 'failure',
        details: { ...details, reason: 'no gateway reached the device', failedOver: dialed.failedOver },
      });
      const gateway = dialed.failedOver.at(-1)?.gateway ?? DEFAULT_GATEWAY;
      return { ok: false, reason: dialed.reason + (await this.revokedAgentNote(target.deviceId)), gateway, segment: selection.segment };
    };
  }

  /**
   * For a device whose host agent was revoked (and none enrolled since), which is reached
   * at its address again: a failure there says so, since the user may expect the agent.
   */
  private async revokedAgentNote(deviceId: string): Promise<string> {
    const agent = await this.opts.services.agents.ofDevice(deviceId);
    if (!agent?.revokedAt) return '';
    return (
      ` Its host agent was revoked on ${agent.revokedAt.slice(0, 16).replace('T', ' ')} UTC, so Gatehouse tried its address instead: ` +
      'an administrator can enroll a new agent (./gatehouse agents token), or the device needs a running sshd.'
    );
  }

  /**
   * The gateway itself failed a connection. One that did not answer (a timeout: hung or
   * cut off; or a refusal: stopped) opens its circuit breaker, so the next connections
   * do not wait on it too; any other failure only has it synced now. Stored before the
   * connection fails over, so the very next one already skips it.
   */
  private async gatewayFailed(gateway: Gateway, error: GatewayLinkError, device: string): Promise<void> {
    if (error.kind !== 'unreachable') return this.health.suspect(gateway.id);
    try {
      await this.health.openCircuit(gateway, error.message, device);
    } catch (failure) {
      this.opts.logger.error({ err: failure, gateway: gateway.name }, 'could not mark a gateway that did not answer as offline');
      this.health.suspect(gateway.id);
    }
  }
}

/** A gateway as the API shows it. */
export interface PresentedGateway {
  id: string;
  name: string;
  builtIn: boolean;
  segment: string | null;
  address: string | null;
  /** The gateway's key (remote) or SSH host key (built-in) fingerprint. */
  fingerprint: string | null;
  status: 'unknown' | 'online' | 'offline';
  statusReason: string | null;
  draining: boolean;
  drainingSince: string | null;
  lastContactAt: string | null;
  lastSyncAt: string | null;
  latencyMs: number | null;
  version: string | null;
  liveSessions: number;
  openRelays: number | null;
  createdAt: string | null;
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '']);

function presentGateway(g: Gateway, liveSessions: number, drain: GatewayDrain | undefined): PresentedGateway & { publicKey: string } {
  return {
    id: g.id,
    name: g.name,
    builtIn: false,
    segment: g.segment,
    address: g.address,
    fingerprint: g.fingerprint,
    publicKey: g.publicKey,
    status: g.status,
    statusReason: g.statusReason,
    draining: drain !== undefined,
    drainingSince: drain?.since ?? null,
    lastContactAt: g.lastContactAt,
    lastSyncAt: g.lastSyncAt,
    latencyMs: g.latencyMs,
    version: g.version,
    liveSessions,
    openRelays: g.openRelays,
    createdAt: g.createdAt,
  };
}
