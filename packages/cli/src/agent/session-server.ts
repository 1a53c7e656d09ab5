import type net from 'node:net';
import type { AgentGrant } from '@gatehouse/core/agent-protocol';
import ssh2 from 'ssh2';
import type { AgentLogger } from './log.js';
import { lookupOsUser, runAs, type OsUser } from './os-user.js';
import { SessionGrants } from './session-grants.js';
import { UserSession } from './user-session.js';

export interface AgentSessionServerOptions {
  agentId: string;
  /** The pinned server link key (base64 SPKI DER) that signs grants. */
  serverKey: string;
  /** The agent's enrolled key as an OpenSSH private key (see opensshPrivateKey). */
  hostKey: string;
  logger: AgentLogger;
  /** Where OS users are looked up (tests). */
  passwdFile?: string;
  /** How long the gateway may take from attach to a signed-in session. */
  loginGraceMs?: number;
  /**
   * Spends a checked grant's nonce where every session process of the agent sees it (the
   * agent's main process); false when it was spent before. Without it, this server's own
   * memory counts, which is enough when every session runs in one process.
   */
  spendNonce?(nonce: string, expiresAt: string): Promise<boolean>;
}

/** Sign-in attempts on one connection before it is closed. */
const MAX_AUTH_ATTEMPTS = 3;

/**
 * The SSH server the gateway reaches through a data connection. Its host key is the
 * agent's enrolled key (the gateway pins it). It accepts only the password method, with a
 * grant the pinned server key signed for this agent and the SSH user name, once; the
 * session then runs as that local user. No forwarding of any kind.
 */
export class AgentSessionServer {
  private readonly ssh: ssh2.Server;
  private readonly grants: SessionGrants;
  private readonly sessions = new Set<UserSession>();
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly o: AgentSessionServerOptions) {
    this.grants = new SessionGrants({ serverKey: o.serverKey, agentId: o.agentId });
    this.ssh = new ssh2.Server({ hostKeys: [o.hostKey], ident: 'GatehouseAgent' }, (client) => this.serve(client));
  }

  /** Serves SSH on a data connection the link attached. */
  handle(socket: net.Socket, gateway: string): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.setNoDelay?.(true);
    const grace = setTimeout(() => {
      if (!signedIn.has(socket)) {
        this.o.logger.warn('session dropped: no sign-in in time', { gateway });
        socket.destroy();
      }
    }, this.o.loginGraceMs ?? 30_000);
    grace.unref();
    socket.once('close', () => clearTimeout(grace));
    gatewayOf.set(socket, gateway);
    this.ssh.injectSocket(socket);
  }

  /** Ends every session and connection. */
  close(): void {
    for (const s of this.sessions) s.end();
    for (const socket of this.sockets) socket.destroy();
  }

  /** Checks a grant, spends its nonce (once, across the agent's session processes) and finds the user it names. */
  private async authorize(password: string, osUser: string): Promise<SignIn> {
    const checked = this.grants.check(password, osUser);
    if (!checked.ok) return checked;
    const { nonce, expiresAt } = checked.grant;
    const spent = this.o.spendNonce ? await this.o.spendNonce(nonce, expiresAt) : this.grants.spend(nonce, expiresAt);
    if (!spent) return { ok: false, reason: 'a grant used before' };
    const user = lookupOsUser(osUser, this.o.passwdFile);
    if (!user) return { ok: false, reason: 'no such local user in /etc/passwd' };
    if (!runAs(user, '/bin/true', [])) return { ok: false, reason: 'the agent cannot switch to that user (not root, or no setpriv)' };
    return { ok: true, grant: checked.grant, user };
  }

  private serve(client: ssh2.Connection): void {
    // ssh2 keeps the socket it was given as `_sock`; the gateway name is only for the log.
    const socket = (client as unknown as { _sock?: net.Socket })._sock;
    const gateway = (socket && gatewayOf.get(socket)) ?? 'unknown';
    let attempts = 0;
    let user: OsUser | undefined;
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'password') return ctx.reject(['password']);
      attempts++;
      const refuse = (reason: string) => {
        this.o.logger.warn('session refused', { gateway, osUser: ctx.username.slice(0, 64), reason });
        ctx.reject(['password']);
        if (attempts >= MAX_AUTH_ATTEMPTS) client.end();
      };
      // ssh2 holds further sign-in attempts until this one is answered, later if need be.
      void this.authorize(ctx.password, ctx.username).then(
        (decision) => {
          if (!decision.ok) return refuse(decision.reason);
          user = decision.user;
          if (socket) signedIn.add(socket);
          this.o.logger.info('session signed in', {
            gateway,
            osUser: decision.user.name,
            user: decision.grant.userName,
            accountId: decision.grant.accountId,
            deviceId: decision.grant.deviceId,
          });
          ctx.accept();
        },
        (error: Error) => {
          this.o.logger.error('sign-in failed', { gateway, reason: error.message });
          client.end();
        },
      );
    });
    client.on('ready', () => {
      client.on('session', (accept) => {
        const channel = accept();
        if (!channel || !user) return;
        const session: UserSession = new UserSession(channel, user, this.o.logger, () => this.sessions.delete(session));
        this.sessions.add(session);
      });
    });
    // Forwarding of any kind: refused.
    client.on('tcpip', (_accept, reject) => reject());
    client.on('openssh.streamlocal', (_accept, reject) => reject());
    client.on('request', (_accept, reject) => reject?.());
    client.on('error', (error: Error & { level?: string }) =>
      this.o.logger.warn('ssh connection error', { gateway, reason: error.level ?? error.message }),
    );
  }
}

/** The answer to a sign-in: the grant and the local user it runs as, or a reason that is safe to log. */
type SignIn = { ok: true; grant: AgentGrant; user: OsUser } | { ok: false; reason: string };

const signedIn = new WeakSet<net.Socket>();
const gatewayOf = new WeakMap<net.Socket, string>();
