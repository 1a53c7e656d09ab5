import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Gateways, type Gateway, type GatewaySessions } from '@gatehouse/db';
import {
  answerLinkCall,
  fetchGatewayRecording,
  listGatewayRecordings,
  type LinkParsedInput,
  type LinkProcedureHandlers,
  type AuthorizedTarget,
  type GatewayStatusReport,
  type GatewayUser,
  type LinkIdentity,
} from '@gatehouse/gateway';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import type { AgentLinks } from './agent-links.js';
import type { GatewaySettings } from './service.js';
import { abandonedEnd, ServerAccessBroker, sessionEndEvent } from './broker.js';
import { ForbiddenError, GatehouseError } from '@gatehouse/core';

/** How long a sign-in through a remote gateway's entry may be used for its connection. */
const TICKET_TTL_MS = 12 * 60 * 60 * 1000;
const MAX_TICKETS = 20_000;

interface Ticket {
  gatewayId: string;
  user: GatewayUser;
  expiresAt: number;
  /** What the server authorized for this sign-in: the only device and account the gateway may then ask about. */
  target?: AuthorizedTarget;
}

type ClaimedUser = LinkParsedInput<'fetchCredential'>['user'];
type TargetRef = LinkParsedInput<'fetchCredential'>['target'];

/**
 * The server's side of a remote gateway's own SSH entry: the calls its broker sends up
 * the link, answered by the same broker the built-in gateway uses, with what a gateway may
 * ask narrowed to what its users are doing. A sign-in yields a ticket; authorizing,
 * fetching a credential, trusting a host key and starting a session need a live ticket
 * of this gateway, and only for the device and account the server itself authorized for
 * it, in the gateway's segment. A compromised gateway thus gets the credentials of the
 * devices its own users open, not others'. Records (sessions, recordings) say which
 * gateway wrote them, whatever the gateway claims.
 */
export class GatewayLinkBroker {
  private readonly tickets = new Map<string, Ticket>();
  private readonly brokers = new Map<string, ServerAccessBroker>();

  constructor(
    private readonly services: Services,
    private readonly sessions: GatewaySessions,
    private readonly settings: () => Promise<GatewaySettings>,
    private readonly identity: () => Promise<LinkIdentity>,
    private readonly recordingsDir: string,
    private readonly logger: Logger,
    /** Host agents' links: a remote gateway's agent listener asks through it, and its SSH entry signs in to agents with its grants. */
    private readonly agentLinks: AgentLinks,
  ) {}

  private broker(gateway: Gateway): ServerAccessBroker {
    let broker = this.brokers.get(gateway.name);
    if (!broker) {
      broker = new ServerAccessBroker(this.services, this.sessions, () => this.settings(), gateway.name, undefined, this.agentLinks);
      this.brokers.set(gateway.name, broker);
    }
    return broker;
  }

  private issue(gateway: Gateway, signedIn: GatewayUser): GatewayUser {
    if (this.tickets.size >= MAX_TICKETS) {
      const now = Date.now();
      for (const [k, t] of this.tickets) if (t.expiresAt < now || this.tickets.size >= MAX_TICKETS) this.tickets.delete(k);
    }
    const ticket = randomBytes(24).toString('base64url');
    this.tickets.set(ticket, {
      gatewayId: gateway.id,
      user: { id: signedIn.id, username: signedIn.username },
      expiresAt: Date.now() + TICKET_TTL_MS,
    });
    return { id: signedIn.id, username: signedIn.username, ticket };
  }

  private ticketOf(gateway: Gateway, claimed: ClaimedUser): Ticket {
    const ticket = claimed.ticket === undefined ? undefined : this.tickets.get(claimed.ticket);
    if (!ticket || ticket.gatewayId !== gateway.id || ticket.expiresAt < Date.now() || ticket.user.id !== claimed.id) {
      throw new GatehouseError('UNAUTHENTICATED', 'The sign-in this gateway refers to is not known to the server. Sign in again.');
    }
    return ticket;
  }

  private authorized(gateway: Gateway, claimed: ClaimedUser, target: TargetRef): Ticket & { target: AuthorizedTarget } {
    const ticket = this.ticketOf(gateway, claimed);
    if (!ticket.target || ticket.target.accountId !== target.accountId || ticket.target.deviceId !== target.deviceId) {
      throw new ForbiddenError('The server did not authorize this device and account for this sign-in.');
    }
    return ticket as Ticket & { target: AuthorizedTarget };
  }

  /** Why `gateway` may not carry a new connection to the device (for the audit, and for the user), or undefined when it may. */
  private async outOfReach(gateway: Gateway, target: AuthorizedTarget): Promise<{ reason: string; message: string } | undefined> {
    // Read at each sign-in, so a gateway's own SSH entry stops taking sessions the moment
    // it is drained; the gateway itself need not know.
    if ((await new Gateways(this.services.db).drains()).has(gateway.id)) {
      return {
        reason: 'gateway draining',
        message: `This gateway (${gateway.name}) is draining: it takes no new sessions. Connect to the default gateway, which chooses another gateway for ${target.deviceName}.`,
      };
    }
    const { tunnelMode } = await this.settings();
    if (tunnelMode || target.accessType === 'tunnel') {
      return {
        reason: 'outside the gateway segment',
        message: `${target.deviceName} is reached only through the default gateway (tunnel ${tunnelMode ? 'mode is on' : 'access type'}). Connect to the default gateway instead.`,
      };
    }
    if (target.segment !== null && target.segment !== gateway.segment) {
      return {
        reason: 'outside the gateway segment',
        message: `${target.deviceName} is in segment ${target.segment}; this gateway (${gateway.name}) serves ${gateway.segment ?? 'no segment'}. Connect to the default gateway, which chooses one of ${target.segment}.`,
      };
    }
    return undefined;
  }

  /**
   * Answers one call from `gateway`'s broker, as the link's procedure table says: the
   * input is parsed (the gateway is not trusted with the server's records) and the answer
   * checked before it goes back.
   */
  handle(gateway: Gateway, procedure: string, input: unknown): Promise<unknown> {
    return answerLinkCall(this.procedures, procedure, input, gateway);
  }

  private readonly procedures: LinkProcedureHandlers<Gateway> = {
    authenticate: async (request, gateway) => {
      const result = await this.broker(gateway).authenticate(request);
      return result.ok ? { ok: true, user: this.issue(gateway, result.user) } : result;
    },
    authenticateKey: async (request, gateway) => {
      const result = await this.broker(gateway).authenticateKey(request);
      return result.ok && request.signed ? { ok: true, user: this.issue(gateway, result.user) } : result;
    },
    signInRefused: async (refusal, gateway) => {
      await this.broker(gateway).signInRefused(refusal);
      return null;
    },
    admitKex: (request, gateway) => this.broker(gateway).admitKex(request),
    authorize: async ({ user, target, remoteAddress }, gateway) => {
      const ticket = this.ticketOf(gateway, user);
      const wanted = { user: target.user, device: target.device, account: target.account };
      const decision = await this.broker(gateway).authorize(ticket.user, wanted, remoteAddress);
      if (!decision.allow) return decision;
      const problem = await this.outOfReach(gateway, decision.target);
      if (problem) {
        await this.services.audit(null, {
          action: 'gateway.authorize',
          outcome: 'denied',
          actorId: ticket.user.id,
          actorName: ticket.user.username,
          ip: remoteAddress,
          targetType: 'device',
          targetId: decision.target.deviceId,
          details: {
            gateway: gateway.name,
            device: decision.target.deviceName,
            segment: decision.target.segment,
            reason: problem.reason,
          },
        });
        return { allow: false, message: problem.message };
      }
      ticket.target = decision.target;
      return decision;
    },
    fetchCredential: async ({ user, target }, gateway) => {
      const ticket = this.authorized(gateway, user, target);
      return this.broker(gateway).fetchCredential(ticket.user, ticket.target);
    },
    authorizeForward: async ({ user, target, destination, remoteAddress }, gateway) => {
      const ticket = this.authorized(gateway, user, target);
      return this.broker(gateway).authorizeForward(ticket.user, ticket.target, destination, remoteAddress);
    },
    forwardRefused: async ({ user, target, request, remoteAddress }, gateway) => {
      const ticket = this.authorized(gateway, user, target);
      await this.broker(gateway).forwardRefused(ticket.user, ticket.target, request, remoteAddress);
      return null;
    },
    checkHostKey: async ({ target, key }, gateway) => {
      const ticket = [...this.tickets.values()].find(
        (t) => t.gatewayId === gateway.id && t.expiresAt > Date.now() && t.target?.deviceId === target.deviceId,
      );
      if (!ticket?.target) throw new ForbiddenError('No sign-in through this gateway was authorized for that device.');
      return this.broker(gateway).checkHostKey(ticket.target, key);
    },
    sessionStarted: async (s, gateway) => {
      const ticket = this.authorized(gateway, s.user, s.target);
      if (s.recording !== null && !s.recording.endsWith(`/${s.id}.cast`) && !s.recording.endsWith(`/${s.id}.rfb`))
        throw new GatehouseError('VALIDATION_FAILED', 'The recording must be named after its session.');
      await this.broker(gateway).sessionStarted({
        ...s,
        user: ticket.user,
        target: ticket.target,
        gateway: gateway.name,
        segment: ticket.target.segment,
      });
      return null;
    },
    sessionEnded: async ({ sessionId, end }, gateway) => {
      const session = await this.ownSession(gateway, sessionId);
      await this.broker(gateway).sessionEnded(sessionId, end);
      if (session.recorded) void this.fetchRecording(gateway, sessionId);
      return null;
    },
    sessionProgress: async ({ sessionId, bytesIn, bytesOut }, gateway) => {
      await this.ownSession(gateway, sessionId);
      await this.broker(gateway).sessionProgress(sessionId, { bytesIn, bytesOut });
      return null;
    },
    fileOperation: async ({ sessionId, operation }, gateway) => {
      await this.ownSession(gateway, sessionId);
      await this.broker(gateway).fileOperation(sessionId, operation);
      return null;
    },
    // The gateway's agent listener: who may link is the server's to say, and the link state is recorded under the gateway's name.
    agentHello: (hello, gateway) => this.agentLinks.authenticate(hello, gateway.name),
    agentLinkChanged: async ({ agentId, state, version }, gateway) => {
      await this.agentLinks.linkChanged(agentId, gateway.name, state, version);
      return null;
    },
    agentContact: async ({ agentId }) => {
      await this.services.agents.contact(agentId);
      return null;
    },
    connectionFailed: async (f, gateway) => {
      const ticket = this.authorized(gateway, f.user, f.target);
      await this.broker(gateway).connectionFailed({
        ...f,
        user: ticket.user,
        target: ticket.target,
        gateway: gateway.name,
        segment: ticket.target.segment,
      });
      return null;
    },
  };

  private async ownSession(gateway: Gateway, id: string) {
    const session = await this.sessions.find(id);
    if (!session || session.entryGateway !== gateway.name) throw new GatehouseError('NOT_FOUND', 'No such session through this gateway.');
    return session;
  }

  /**
   * The link to a gateway is up: sessions its SSH entry had open before it (re)started
   * are ended, and the recordings it holds are fetched.
   */
  async linkOpened(gateway: Gateway, report: GatewayStatusReport): Promise<void> {
    const reason = 'The gateway stopped before the session ended.';
    const abandoned = await this.sessions.endAbandoned(gateway.name, reason, { startedBefore: report.startedAt });
    for (const s of abandoned) {
      await this.services.audit(null, sessionEndEvent(s, s.id, abandonedEnd(s, reason), gateway.name));
      this.services.afterSessionRotation?.sessionEnded(s);
      if (s.kind === 'sftp') this.services.sftpLogs?.finished(s.id);
    }
    const identity = await this.identity();
    const held = await listGatewayRecordings(gateway, identity, 5_000).catch(() => [] as string[]);
    for (const relative of held) {
      const id = /([0-9a-f-]{36})\.(?:cast|rfb)$/.exec(relative)?.[1];
      const session = id === undefined ? undefined : await this.sessions.find(id);
      if (session?.entryGateway === gateway.name && session.result !== 'active') await this.fetchRecording(gateway, session.id);
    }
  }

  /** Copies a finished session's recording from the gateway (written aside, then moved into place), then the gateway drops it. */
  private async fetchRecording(gateway: Gateway, sessionId: string): Promise<void> {
    const relative = await this.sessions.recordingOf(sessionId);
    if (relative === undefined) return;
    const file = path.resolve(this.recordingsDir, relative);
    if (!file.startsWith(`${this.recordingsDir}${path.sep}`)) return;
    const partial = `${file}.partial`;
    try {
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      const out = createWriteStream(partial, { mode: 0o600 });
      await fetchGatewayRecording(gateway, await this.identity(), relative.split(path.sep).join('/'), out, 30_000);
      await rename(partial, file);
      this.services.recordingSignatures?.finished(sessionId);
    } catch (error) {
      await rm(partial, { force: true });
      this.logger.warn(
        { err: error, gateway: gateway.name, sessionId },
        'could not fetch a recording from a gateway; it stays there until the next link',
      );
    }
  }
}
