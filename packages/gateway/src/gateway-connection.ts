import type net from 'node:net';
import { GatehouseError, isPostQuantumKex } from '@gatehouse/core';
import type ssh2 from 'ssh2';
import type { ClientChannel, Connection, ServerChannel, Session, TcpipBindInfo, TcpipRequestInfo, SocketBindInfo } from 'ssh2';
import type { AuthorizedTarget, GatewayUser, RefusedForward } from './broker.js';
import { connectTarget, type TargetConnection } from './connect-target.js';
import { ConnectionSession } from './connection-session.js';
import { printableName } from './connection-target.js';
import { expandLoginHome } from './login-home.js';
import type { SshGatewayOptions } from './gateway.js';
import { ProxiedSession, type ChannelKind, type PtyState } from './proxied-session.js';
import { CLOSED, GatewaySignIn } from './sign-in.js';
import { OPEN_FAILURE, openSessionChannel, refusalOf, rejectChannel, type ChannelRefusal } from './ssh2-channels.js';
import { disconnect } from './ssh2-disconnect.js';

/** Sockets whose user signed in: the login grace timer leaves them alone. */
export const signedIn = new WeakSet<net.Socket>();

/** One user's SSH connection and, once signed in, its connection to the device. */
export class GatewayConnection {
  private user: GatewayUser | undefined;
  private target: AuthorizedTarget | undefined;
  /** Why a signed-in user may not connect, told on their first channel (publickey and password cannot show text). */
  private refusal: string | undefined;
  /** Refused agent, X11 and remote forwarding requests on this connection (audited up to a limit). */
  private refusedForwards = 0;
  private targetConnection: Promise<TargetConnection> | undefined;
  private readonly sessions = new Set<ProxiedSession>();
  /** The connection's own session while it carries no channel (`ssh -N`); undefined until signed in. */
  private connection: ConnectionSession | undefined;
  private ended = false;
  /** The key exchange the user's client negotiated with the gateway. */
  private userKex: string | null = null;
  /** Whether that key exchange may sign in (asked once, at the first sign-in attempt). */
  private kexAdmitted: Promise<boolean> | undefined;
  /** The SSH user name as typed (`admin+db-1`): `~` and it in a command mean the account's home. */
  private login = '';

  constructor(
    private readonly options: Required<SshGatewayOptions>,
    private readonly client: Connection,
    private readonly remoteAddress: string,
  ) {
    const signIn = new GatewaySignIn(
      options,
      remoteAddress,
      (reason) => this.end(reason),
      (admission) => {
        this.user = admission.user;
        if ('target' in admission) this.target = admission.target;
        else this.refusal = admission.refusal;
      },
    );
    client.on('error', (error) => options.logger.debug({ err: error, remoteAddress }, 'SSH client connection error'));
    client.once('handshake', (negotiated) => (this.userKex = negotiated.kex));
    client.on('authentication', (ctx) => {
      this.login = ctx.username;
      (this.kexAdmitted ??= this.admitKex(ctx.username))
        .then((admitted) => (admitted ? signIn.authenticate(ctx) : undefined))
        .catch((error: unknown) => {
          // The platform cannot take sessions now (its database does not answer): its message says why.
          if (error instanceof GatehouseError && error.code === 'NOT_READY') {
            options.logger.warn({ remoteAddress, problem: error.message }, 'gateway sign-in refused: the platform is not ready');
            this.end(error.message);
            return;
          }
          options.logger.error({ err: error, remoteAddress }, 'gateway sign-in failed with an error');
          this.end('Gatehouse could not sign you in because of an internal error. Try again.');
        });
    });
    client.on('ready', () => {
      const socket = (client as unknown as { _sock?: net.Socket })._sock;
      if (socket) signedIn.add(socket);
      if (this.refusal !== undefined) {
        this.targetConnection = Promise.resolve({ ok: false, reason: this.refusal, gateway: options.name, segment: null });
        // The client leaves once told; should it not, it is shown the door.
        setTimeout(() => this.end(this.refusal ?? CLOSED), 10_000).unref();
        return;
      }
      this.connection = new ConnectionSession(
        options.broker,
        options.logger,
        this.user as GatewayUser,
        this.target as AuthorizedTarget,
        remoteAddress,
      );
      this.targetConnection = this.connectTarget();
    });
    client.on('session', (accept, reject) => {
      void this.openDeviceChannel('session', openSessionChannel).then((opened) => {
        if ('refusal' in opened) return rejectChannel(client, reject, opened.refusal);
        const session = accept();
        this.countChannel(session);
        this.onSession(session, opened.channel);
      });
    });
    // Local forwarding (ssh -L) only where policy allows it; remote forwarding never.
    client.on('tcpip', (accept, reject, info) => {
      this.onForward(accept, reject, info).catch((error: unknown) => {
        options.logger.error({ err: error, remoteAddress }, 'port forwarding failed with an error');
        reject();
      });
    });
    client.on('openssh.streamlocal', (_accept, reject, info) => {
      reject();
      this.forwardRefused('socket', info.socketPath);
    });
    client.on('request', (_accept, reject, name, info) => {
      reject?.();
      // ssh -R: a port (tcpip-forward) or a Unix socket (streamlocal-forward@openssh.com).
      const asked = info as Partial<TcpipBindInfo & SocketBindInfo>;
      if (name === 'tcpip-forward') this.forwardRefused('remote', `${asked.bindAddr ?? ''}:${asked.bindPort ?? ''}`);
      else if ((name as string) === 'streamlocal-forward@openssh.com') this.forwardRefused('socket', asked.socketPath ?? null);
    });
    client.once('close', () => {
      this.ended = true;
      void this.connection?.end();
      void this.targetConnection?.then((t) => {
        if (t.ok) t.client.end();
      });
    });
  }

  /** Counts a channel of the user's while it is open: a connection without one is a session of its own. */
  private countChannel(channel: { once(event: 'close', listener: () => void): unknown }): void {
    const connection = this.connection;
    if (!connection) return;
    connection.channelOpened();
    channel.once('close', () => connection.channelClosed());
  }

  /**
   * A client whose key exchange is not post-quantum may sign in only if the platform says
   * so (it may require one); a refused one is closed with what to upgrade to. False then.
   */
  private async admitKex(username: string): Promise<boolean> {
    const kex = this.userKex ?? 'unknown';
    if (isPostQuantumKex(kex)) return true;
    const decision = await this.options.broker.admitKex({ kex, username: printableName(username), remoteAddress: this.remoteAddress });
    if (decision.allow) return true;
    this.options.logger.info(
      { remoteAddress: this.remoteAddress, why: 'key exchange not post-quantum', kex },
      'SSH gateway refused a connection',
    );
    this.end(decision.message);
    return false;
  }

  /** Closes the connection; OpenSSH prints `reason` ("Received disconnect from …: reason"). */
  private end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    disconnect(this.client, reason);
  }

  /** Ends one session (the user is told `reason`, the recording is closed); false when it is not here. */
  async endSession(id: string, reason: string): Promise<boolean> {
    if (this.connection?.live && this.connection.id === id) {
      await this.endSessions(reason);
      return true;
    }
    const session = [...this.sessions].find((s) => s.id === id);
    if (!session) return false;
    await session.stop(reason);
    return true;
  }

  /** Shows the user of one session `text` (see SshGateway.warnSession); false when it is not here. */
  warnSession(id: string, text: string): boolean {
    if (this.connection?.live && this.connection.id === id) return true;
    const session = [...this.sessions].find((s) => s.id === id);
    session?.warn(text);
    return session !== undefined;
  }

  /** Ends the sessions (closing their recordings) and both connections. */
  async shutDown(): Promise<void> {
    await this.endSessions('The gateway is stopping.');
    const t = await this.targetConnection;
    if (t?.ok) t.client.end();
  }

  /**
   * Ends every session with `reason` shown to the user, then the connection. OpenSSH
   * leaves the connection by itself once its channels are closed; a disconnect sent
   * before that can arrive with the reason and make ssh exit before printing it, so it
   * is sent only if the client has not gone after a moment.
   */
  private async endSessions(reason: string): Promise<void> {
    this.connection?.ending(reason);
    const channels = [...this.sessions];
    await Promise.all(channels.map((s) => s.stop(reason)));
    if (!this.ended && channels.length > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        this.client.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.end(reason);
    await this.connection?.end();
  }

  // The device

  private async connectTarget(): Promise<TargetConnection> {
    const target = this.target as AuthorizedTarget;
    const outcome = await connectTarget(this.options, this.user as GatewayUser, target, this.remoteAddress);
    if (outcome.ok) {
      outcome.kex.user = this.userKex;
      this.connection?.reachedDevice(outcome.gateway, outcome.segment, outcome.kex);
      outcome.client.on('close', () => {
        // The device went away: every channel on it is gone, so is this connection.
        const known = outcome.closedReason();
        if (known !== undefined || !target.agentId) return void this.endSessions(known ?? `The connection to ${target.deviceName} closed.`);
        // An agent that died closes this connection and its link at the same moment: the
        // link's reason, when it arrives within a moment, says more.
        setTimeout(
          () =>
            void this.endSessions(
              outcome.closedReason() ??
                `The connection to the agent of ${target.deviceName} closed: the agent stopped, or its network dropped.`,
            ),
          250,
        ).unref();
      });
    }
    return outcome;
  }

  // Channels

  /**
   * Opens the device's side of a user's channel before the user's is accepted, so that the
   * device's refusal (a stock sshd takes 10 sessions per connection, MaxSessions) reaches
   * the user as the device worded it: OpenSSH prints it, and a ControlMaster client falls
   * back to a connection of its own. Without a device connection the user's channel is
   * accepted all the same, to be told why on it.
   */
  private async openDeviceChannel(
    what: string,
    open: (device: ssh2.Client) => Promise<ClientChannel>,
  ): Promise<{ channel?: ClientChannel } | { refusal: ChannelRefusal }> {
    const t = await this.targetConnection;
    if (!t?.ok) return {};
    try {
      return { channel: await open(t.client) };
    } catch (error) {
      const refusal = refusalOf(error as Error) ?? { reason: OPEN_FAILURE.CONNECT_FAILED, description: (error as Error).message };
      const target = this.target as AuthorizedTarget;
      await this.options.broker
        .connectionFailed({
          user: this.user as GatewayUser,
          target,
          gateway: t.gateway,
          segment: t.segment,
          remoteAddress: this.remoteAddress,
          at: new Date().toISOString(),
          reason: `${target.deviceName} refused the ${what} channel: ${refusal.description}`,
        })
        .catch((e: unknown) => this.options.logger.error({ err: e }, 'could not record a failed channel'));
      return { refusal };
    }
  }

  /** Agent, X11 and remote forwarding are refused; each request is audited (the first 20 of a connection). */
  private forwardRefused(kind: RefusedForward['kind'], destination: string | null): void {
    const { user, target } = this;
    if (!user || !target || this.refusal !== undefined || ++this.refusedForwards > 20) return;
    void this.options.broker
      .forwardRefused(user, target, { kind, destination }, this.remoteAddress)
      .catch((error: unknown) => this.options.logger.error({ err: error }, 'could not audit a refused forwarding request'));
  }

  private onSession(session: Session, deviceChannel: ClientChannel | undefined): void {
    const pty: PtyState = { info: undefined };
    let active: ProxiedSession | undefined;
    session.on('pty', (accept, _reject, info) => {
      pty.info = info;
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      if (pty.info) pty.info = { ...pty.info, ...info };
      active?.resize(info.rows, info.cols, info.height, info.width);
      accept?.();
    });
    // The device's environment is not the user's to set.
    session.on('env', (_accept, reject) => reject?.());
    session.on('auth-agent', (_accept, reject) => {
      reject?.();
      this.forwardRefused('agent', null);
    });
    session.on('x11', (_accept, reject) => {
      reject?.();
      this.forwardRefused('x11', null);
    });
    session.on('signal', (accept, _reject, info) => {
      active?.signal(info.name);
      accept?.();
    });
    // accept() synchronously: OpenSSH sends EOF right after exec, and a late accept loses the channel.
    session.on('exec', (accept, _reject, info) => {
      active = this.startChannel(accept(), 'exec', expandLoginHome(info.command, this.login), pty, deviceChannel);
    });
    session.on('shell', (accept) => {
      active = this.startChannel(accept(), 'shell', null, pty, deviceChannel);
    });
    session.on('subsystem', (accept, reject, info) => {
      if (info.name !== 'sftp') {
        reject();
        return;
      }
      active = this.startChannel(accept(), 'sftp', 'sftp', pty, deviceChannel);
    });
    // A channel the user closes before asking for anything.
    session.once('close', () => {
      if (!active) deviceChannel?.close();
    });
  }

  /** `ssh -L`: a TCP connection through the device, if the user is signed in and policy allows. */
  private async onForward(accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo): Promise<void> {
    const { user, target } = this;
    if (!user || !target || this.refusal !== undefined) return reject();
    const destination = { host: info.destIP, port: info.destPort };
    const decision = await this.options.broker.authorizeForward(user, target, destination, this.remoteAddress);
    // OpenSSH prints the reason ("open failed: administratively prohibited: Port forwarding is off…").
    if (!decision.allow) {
      return rejectChannel(this.client, reject, { reason: OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, description: decision.message });
    }
    const opened = await this.openDeviceChannel(
      `forward to ${destination.host}:${destination.port}`,
      (device) =>
        new Promise<ClientChannel>((resolve, fail) =>
          device.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, (error, channel) =>
            error ? fail(error) : resolve(channel),
          ),
        ),
    );
    // The device's reason, as direct OpenSSH would print it ("connect failed: Connection refused").
    if ('refusal' in opened) return rejectChannel(this.client, reject, opened.refusal);
    const stream = accept();
    this.countChannel(stream);
    this.startChannel(stream, 'forward', `${info.destIP}:${info.destPort}`, { info: undefined }, opened.channel);
  }

  private startChannel(
    stream: ServerChannel,
    kind: ChannelKind,
    command: string | null,
    pty: PtyState,
    deviceChannel: ClientChannel | undefined,
  ): ProxiedSession {
    const proxied = new ProxiedSession(
      this.options,
      stream,
      kind,
      command,
      pty,
      this.user as GatewayUser,
      this.target as AuthorizedTarget,
      this.remoteAddress,
      deviceChannel,
    );
    this.sessions.add(proxied);
    void proxied.run(this.targetConnection as Promise<TargetConnection>).finally(() => {
      this.sessions.delete(proxied);
      this.connection?.carried(proxied.bytesIn, proxied.bytesOut);
    });
    return proxied;
  }
}
