import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Gateway, GatewaySessions } from '@gatehouse/db';
import {
  fetchGatewayRecording,
  listGatewayRecordings,
  type AuthorizedTarget,
  type GatewayStatusReport,
  type GatewayUser,
  type LinkIdentity,
} from '@gatehouse/gateway';
import { z } from 'zod';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import { abandonedEnd, ServerAccessBroker, sessionEndEvent } from './broker.js';

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

const text = (max: number) => z.string().max(max);
const user = z.object({ id: text(100), username: text(200), ticket: text(200).optional() });
const authRequest = z.object({ username: text(512), password: text(1024), totp: text(32).optional(), remoteAddress: text(100) });
const keyRequest = z.object({
  username: text(512),
  fingerprint: text(200),
  algorithm: text(100),
  signed: z.boolean(),
  remoteAddress: text(100),
});
const signInRefusal = z.object({ username: text(1000), reason: text(1000), remoteAddress: text(100) });
const connectionTarget = z.object({ user: text(512), device: text(512), account: text(512).optional() });
const targetRef = z.object({ accountId: text(100), deviceId: text(100) });
const hostKey = z.object({ algorithm: text(100), fingerprint: text(200) });
const destination = z.object({ host: text(255), port: z.number().int().min(1).max(65535) });
const refusedForward = z.object({ kind: z.enum(['agent', 'x11', 'remote', 'socket']), destination: text(1024).nullable() });
const iso = text(40);
const sessionStart = z.object({
  id: z.uuid(),
  user,
  kind: z.enum(['shell', 'exec', 'sftp', 'forward', 'connection']),
  command: text(8192).nullable(),
  remoteAddress: text(100),
  startedAt: iso,
  recording: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}\/[0-9a-f-]{36}\.cast$/)
    .nullable(),
});
const sessionEnd = z.object({
  endedAt: iso,
  bytesIn: z.number().int().min(0),
  bytesOut: z.number().int().min(0),
  result: z.enum(['success', 'failure']),
  exitStatus: z.number().int().nullable(),
  exitSignal: text(100).nullable().optional(),
  reason: text(4000).nullable(),
});
const fileOperation = z.object({
  at: iso,
  op: z.enum(['upload', 'download', 'remove', 'rename', 'mkdir', 'rmdir', 'list']),
  path: text(8192),
  target: text(8192).nullable(),
  bytes: z.number().int().min(0),
  result: z.enum(['success', 'failure']),
  error: text(4000).nullable(),
});
const failure = z.object({ user, remoteAddress: text(100), at: iso, reason: text(4000) });

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
    private readonly settings: () => Promise<{ tunnelMode: boolean; portForwarding: boolean }>,
    private readonly identity: () => Promise<LinkIdentity>,
    private readonly recordingsDir: string,
    private readonly logger: Logger,
  ) {}

  private broker(gateway: Gateway): ServerAccessBroker {
    let broker = this.brokers.get(gateway.name);
    if (!broker) {
      broker = new ServerAccessBroker(this.services, this.sessions, () => this.settings(), gateway.name);
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

  private ticketOf(gateway: Gateway, claimed: z.infer<typeof user>): Ticket {
    const ticket = claimed.ticket === undefined ? undefined : this.tickets.get(claimed.ticket);
    if (!ticket || ticket.gatewayId !== gateway.id || ticket.expiresAt < Date.now() || ticket.user.id !== claimed.id) {
      throw new Error('The sign-in this gateway refers to is not known to the server. Sign in again.');
    }
    return ticket;
  }

  private authorized(
    gateway: Gateway,
    claimed: z.infer<typeof user>,
    target: z.infer<typeof targetRef>,
  ): Ticket & { target: AuthorizedTarget } {
    const ticket = this.ticketOf(gateway, claimed);
    if (!ticket.target || ticket.target.accountId !== target.accountId || ticket.target.deviceId !== target.deviceId) {
      throw new Error('The server did not authorize this device and account for this sign-in.');
    }
    return ticket as Ticket & { target: AuthorizedTarget };
  }

  /** Why `gateway` may not reach the device, or undefined when it may. */
  private async outOfReach(gateway: Gateway, target: AuthorizedTarget): Promise<string | undefined> {
    const { tunnelMode } = await this.settings();
    if (tunnelMode || target.accessType === 'tunnel') {
      return `${target.deviceName} is reached only through the default gateway (tunnel ${tunnelMode ? 'mode is on' : 'access type'}). Connect to the default gateway instead.`;
    }
    if (target.segment !== null && target.segment !== gateway.segment) {
      return `${target.deviceName} is in segment ${target.segment}; this gateway (${gateway.name}) serves ${gateway.segment ?? 'no segment'}. Connect to the default gateway, which chooses one of ${target.segment}.`;
    }
    return undefined;
  }

  /** Answers one call from `gateway`'s broker. Every parameter is checked: the gateway is not trusted with the server's records. */
  async handle(gateway: Gateway, method: string, params: unknown[]): Promise<unknown> {
    const broker = this.broker(gateway);
    switch (method) {
      case 'authenticate': {
        const result = await broker.authenticate(authRequest.parse(params[0]));
        return result.ok ? { ok: true, user: this.issue(gateway, result.user) } : result;
      }
      case 'authenticateKey': {
        const request = keyRequest.parse(params[0]);
        const result = await broker.authenticateKey(request);
        return result.ok && request.signed ? { ok: true, user: this.issue(gateway, result.user) } : result;
      }
      case 'signInRefused':
        return broker.signInRefused(signInRefusal.parse(params[0]));
      case 'authorize': {
        const ticket = this.ticketOf(gateway, user.parse(params[0]));
        const asked = connectionTarget.parse(params[1]);
        const wanted = { user: asked.user, device: asked.device, account: asked.account };
        const remoteAddress = text(100).parse(params[2]);
        const decision = await broker.authorize(ticket.user, wanted, remoteAddress);
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
              reason: 'outside the gateway segment',
            },
          });
          return { allow: false, message: problem };
        }
        ticket.target = decision.target;
        return decision;
      }
      case 'fetchCredential': {
        const ticket = this.authorized(gateway, user.parse(params[0]), targetRef.parse(params[1]));
        return broker.fetchCredential(ticket.user, ticket.target);
      }
      case 'authorizeForward': {
        const ticket = this.authorized(gateway, user.parse(params[0]), targetRef.parse(params[1]));
        return broker.authorizeForward(ticket.user, ticket.target, destination.parse(params[2]), text(100).parse(params[3]));
      }
      case 'forwardRefused': {
        const ticket = this.authorized(gateway, user.parse(params[0]), targetRef.parse(params[1]));
        return broker.forwardRefused(ticket.user, ticket.target, refusedForward.parse(params[2]), text(100).parse(params[3]));
      }
      case 'checkHostKey': {
        const ref = targetRef.parse(params[0]);
        const ticket = [...this.tickets.values()].find(
          (t) => t.gatewayId === gateway.id && t.expiresAt > Date.now() && t.target?.deviceId === ref.deviceId,
        );
        if (!ticket?.target) throw new Error('No sign-in through this gateway was authorized for that device.');
        return broker.checkHostKey(ticket.target, hostKey.parse(params[1]));
      }
      case 'sessionStarted': {
        const s = sessionStart.parse(params[0]);
        const raw = params[0] as { target?: unknown };
        const ticket = this.authorized(gateway, s.user, targetRef.parse(raw.target));
        if (s.recording !== null && !s.recording.endsWith(`/${s.id}.cast`))
          throw new Error('The recording must be named after its session.');
        return broker.sessionStarted({
          ...s,
          user: ticket.user,
          target: ticket.target,
          gateway: gateway.name,
          segment: ticket.target.segment,
        });
      }
      case 'sessionEnded': {
        const id = z.uuid().parse(params[0]);
        const session = await this.ownSession(gateway, id);
        await broker.sessionEnded(id, sessionEnd.parse(params[1]));
        if (session.recorded) void this.fetchRecording(gateway, id);
        return null;
      }
      case 'fileOperation': {
        const id = z.uuid().parse(params[0]);
        await this.ownSession(gateway, id);
        return broker.fileOperation(id, fileOperation.parse(params[1]));
      }
      case 'connectionFailed': {
        const f = failure.parse(params[0]);
        const raw = params[0] as { target?: unknown };
        const ticket = this.authorized(gateway, f.user, targetRef.parse(raw.target));
        return broker.connectionFailed({
          ...f,
          user: ticket.user,
          target: ticket.target,
          gateway: gateway.name,
          segment: ticket.target.segment,
        });
      }
      default:
        throw new Error(`Unknown call ${method.slice(0, 40)}.`);
    }
  }

  private async ownSession(gateway: Gateway, id: string) {
    const session = await this.sessions.find(id);
    if (!session || session.entryGateway !== gateway.name) throw new Error('No such session through this gateway.');
    return session;
  }

  /**
   * The link to a gateway is up: sessions its SSH entry had open before it (re)started
   * are ended, and the recordings it holds are fetched.
   */
  async linkOpened(gateway: Gateway, report: GatewayStatusReport): Promise<void> {
    const reason = 'The gateway stopped before the session ended.';
    const abandoned = await this.sessions.endAbandoned(gateway.name, reason, report.startedAt);
    for (const s of abandoned) {
      await this.services.audit(null, sessionEndEvent(s, s.id, abandonedEnd(s, reason), gateway.name));
    }
    const identity = await this.identity();
    const held = await listGatewayRecordings(gateway, identity, 5_000).catch(() => [] as string[]);
    for (const relative of held) {
      const id = /([0-9a-f-]{36})\.cast$/.exec(relative)?.[1];
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
    } catch (error) {
      await rm(partial, { force: true });
      this.logger.warn(
        { err: error, gateway: gateway.name, sessionId },
        'could not fetch a recording from a gateway; it stays there until the next link',
      );
    }
  }
}
