import { randomUUID } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import ssh2 from 'ssh2';
import type {
  AuthContext,
  ClientChannel,
  Connection,
  KeyboardAuthContext,
  PseudoTtyInfo,
  ServerChannel,
  Session,
  TcpipRequestInfo,
  TcpipBindInfo,
  SocketBindInfo,
  ClientErrorExtensions,
} from 'ssh2';
import { AsciicastRecorder } from './asciicast.js';
import type { AccessBroker, AuthorizedTarget, GatewayUser, RefusedForward, SessionEnd, SessionKind } from './broker.js';
import { parseConnectionTarget, printableName, type ConnectionTarget } from './connection-target.js';
import { ConnectionSession } from './connection-session.js';
import { directDialer, whereOf, type TargetDialer } from './dial.js';
import { fingerprintOf, keyTypeOf, verifyUserKeySignature } from './host-key.js';
import { ExecOutputWatch, summaryMarker, type ExecStream } from './exec-output.js';
import { isLegacyScp, LegacyScpLog, SftpOperationLog, type FileOperation } from './sftp-log.js';
import { OPEN_FAILURE, openSessionChannel, refusalOf, rejectChannel, startSession, type ChannelRefusal } from './ssh2-channels.js';
import { disconnect } from './ssh2-disconnect.js';
import { usePooledPadding } from './ssh2-padding.js';

/** The slice of a pino logger the gateway uses. Recording data and secrets never go to it. */
export interface GatewayLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface SshGatewayOptions {
  broker: AccessBroker;
  /** The gateway's host private key, OpenSSH format (see loadOrCreateHostKey). */
  hostKey: string;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  recordingsDir: string;
  /** How audit events and sessions name this gateway. */
  name: string;
  logger: GatewayLogger;
  /** Record what the user types ("i" events), not only what the device prints. */
  recordInput?: boolean | (() => boolean);
  /**
   * Record the bytes of exec output without a terminal that is not text (downloads by
   * rsync, git, scp, cat). Off by default: such a stream is only counted and hashed
   * (SHA-256), and the recording says so with markers.
   */
  recordBinaryExec?: boolean | (() => boolean);
  /** How long the target may take to connect and authenticate. */
  targetTimeoutMs?: number;
  /** How long a client may take from TCP connect to a finished sign-in. */
  loginGraceMs?: number;
  /** Failed sign-in attempts on one connection before it is closed. */
  maxAuthAttempts?: number;
  /** Opens the TCP path to the device; by default this gateway connects directly. */
  dial?: TargetDialer;
}

const AUTH_METHODS: AuthContext['method'][] = ['publickey', 'keyboard-interactive', 'password'];
/** The disconnect reason when the user was told why already. */
const CLOSED = 'Gatehouse closed the connection.';

/** The device's SSH connection, and the gateway and segment it went through. */
type TargetConnection =
  | { ok: true; client: ssh2.Client; gateway: string; segment: string | null }
  | { ok: false; reason: string; gateway: string; segment: string | null };

/**
 * The SSH/SFTP gateway: terminates the user's SSH connection, signs the user in and
 * checks their access through the broker, connects to the device with the vaulted
 * credential, and proxies exec, shell and the sftp subsystem, recording terminals as
 * asciicast v2. Port forwarding, agent and X11 forwarding are refused.
 */
export class SshGateway {
  private readonly ssh: ssh2.Server;
  private readonly listener: net.Server;
  private readonly connections = new Set<GatewayConnection>();
  private readonly sockets = new Set<net.Socket>();
  private stopping = false;

  private constructor(readonly options: Required<SshGatewayOptions>) {
    this.ssh = new ssh2.Server({ hostKeys: [options.hostKey], ident: 'Gatehouse' }, (client, info) => {
      const connection = new GatewayConnection(this.options, client, info.ip);
      this.connections.add(connection);
      client.once('close', () => this.connections.delete(connection));
    });
    this.listener = net.createServer((socket) => this.accept(socket));
  }

  /** Starts listening; resolves once the port is bound. */
  /**
   * Ends a live session now (an administrator's decision): the user sees `reason`, the
   * recording is closed and the session ends with it. False when no session has that id here.
   */
  async endSession(id: string, reason: string): Promise<boolean> {
    for (const c of this.connections) if (await c.endSession(id, reason)) return true;
    return false;
  }

  static async start(options: SshGatewayOptions): Promise<SshGateway> {
    // Both legs' packets: the user's connection and the gateway's own to the device.
    usePooledPadding();
    const gateway = new SshGateway({
      recordInput: false,
      recordBinaryExec: false,
      targetTimeoutMs: 15_000,
      loginGraceMs: 60_000,
      maxAuthAttempts: 3,
      dial: directDialer(options.name, options.targetTimeoutMs ?? 15_000),
      ...options,
    });
    await new Promise<void>((resolve, reject) => {
      gateway.listener.once('error', reject);
      gateway.listener.listen({ host: options.host, port: options.port }, () => {
        gateway.listener.off('error', reject);
        resolve();
      });
    });
    gateway.listener.on('error', (error) => options.logger.error({ err: error }, 'SSH gateway listener error'));
    return gateway;
  }

  /** The bound port (useful when started on port 0). */
  get port(): number {
    return (this.listener.address() as net.AddressInfo).port;
  }

  private accept(socket: net.Socket): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    // Without it every small packet waits for the peer's delayed ACK (see notes: 178 → 57 ms setup).
    socket.setNoDelay(true);
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => this.sockets.delete(socket));
    // Garbage, a stalled handshake or a client that never signs in: closed after the grace time.
    const grace = setTimeout(() => {
      if (!signedIn.has(socket)) socket.destroy();
    }, this.options.loginGraceMs);
    grace.unref();
    socket.once('close', () => clearTimeout(grace));
    this.ssh.injectSocket(socket);
  }

  /**
   * Stops accepting connections, ends every session (recordings are closed and each
   * session's end is reported to the broker) and closes every connection.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    await Promise.all([...this.connections].map((c) => c.shutDown()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }
}

/** Sockets whose user signed in: the login grace timer leaves them alone. */
const signedIn = new WeakSet<net.Socket>();

/** What a user's channel is: every session kind but the connection's own. */
type ChannelKind = Exclude<SessionKind, 'connection'>;

interface PtyState {
  info: PseudoTtyInfo | undefined;
}

/** One user's SSH connection and, once signed in, its connection to the device. */
class GatewayConnection {
  private user: GatewayUser | undefined;
  private target: AuthorizedTarget | undefined;
  /** Why a signed-in user may not connect, told on their first channel (publickey and password cannot show text). */
  private refusal: string | undefined;
  private failures = 0;
  /** Refused agent, X11 and remote forwarding requests on this connection (audited up to a limit). */
  private refusedForwards = 0;
  private targetConnection: Promise<TargetConnection> | undefined;
  private readonly sessions = new Set<ProxiedSession>();
  /** The connection's own session while it carries no channel (`ssh -N`); undefined until signed in. */
  private connection: ConnectionSession | undefined;
  private ended = false;

  constructor(
    private readonly options: Required<SshGatewayOptions>,
    private readonly client: Connection,
    private readonly remoteAddress: string,
  ) {
    client.on('error', (error) => options.logger.debug({ err: error, remoteAddress }, 'SSH client connection error'));
    client.on('authentication', (ctx) => {
      this.authenticate(ctx).catch((error: unknown) => {
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

  // Sign-in

  private async authenticate(ctx: AuthContext): Promise<void> {
    if (ctx.method !== 'keyboard-interactive' && ctx.method !== 'password' && ctx.method !== 'publickey') {
      ctx.reject(AUTH_METHODS);
      return;
    }
    const parsed = parseConnectionTarget(ctx.username);
    if (!parsed.ok) {
      await this.options.broker
        .signInRefused({ username: printableName(ctx.username), reason: parsed.reason, remoteAddress: this.remoteAddress })
        .catch((error: unknown) => this.options.logger.error({ err: error }, 'could not record a refused user name'));
      await this.refuse(ctx, parsed.reason, 'malformed user name');
      return;
    }
    const { target } = parsed;
    if (ctx.method === 'publickey') {
      const blob = ctx.key.data;
      const request = {
        username: target.user,
        fingerprint: fingerprintOf(blob),
        algorithm: keyTypeOf(blob),
        remoteAddress: this.remoteAddress,
      };
      if (!ctx.signature) {
        // The client asks whether this key would do; it signs only if told yes.
        const known = await this.options.broker.authenticateKey({ ...request, signed: false });
        if (known.ok) ctx.accept();
        else ctx.reject(AUTH_METHODS);
        return;
      }
      if (!verifyUserKeySignature(blob, ctx.blob ?? Buffer.alloc(0), ctx.signature, ctx.hashAlgo)) {
        ctx.reject(AUTH_METHODS);
        return;
      }
      const result = await this.options.broker.authenticateKey({ ...request, signed: true });
      if (!result.ok) {
        // Tried keys are not failed sign-ins (clients offer every key they hold): the next method may follow.
        ctx.reject(AUTH_METHODS);
        return;
      }
      await this.admit(ctx, result.user, target);
      return;
    }
    let password: string;
    let totp: string | undefined;
    if (ctx.method === 'password') {
      password = ctx.password;
    } else {
      const [answer] = await prompt(ctx, [{ prompt: 'Password: ', echo: false }]);
      password = answer ?? '';
    }
    if (password === '') {
      // ssh without a terminal or a password source answers the prompt empty: no attempt at all.
      ctx.reject(AUTH_METHODS);
      return;
    }
    let result = await this.options.broker.authenticate({ username: target.user, password, remoteAddress: this.remoteAddress });
    if (!result.ok && result.mfaRequired && ctx.method === 'keyboard-interactive') {
      [totp] = await prompt(ctx, [{ prompt: 'Authenticator code: ', echo: true }]);
      result = await this.options.broker.authenticate({
        username: target.user,
        password,
        totp: totp ?? '',
        remoteAddress: this.remoteAddress,
      });
    }
    if (!result.ok) {
      this.failures++;
      if (this.failures >= this.options.maxAuthAttempts) {
        await this.refuse(ctx, 'Too many failed sign-ins on this connection.', 'too many attempts');
        return;
      }
      if (ctx.method === 'keyboard-interactive' && !result.mfaRequired) {
        await prompt(ctx, [], result.message);
      }
      ctx.reject(AUTH_METHODS);
      return;
    }
    await this.admit(ctx, result.user, target);
  }

  /** A signed-in user: may they use what they asked for? */
  private async admit(ctx: AuthContext, user: GatewayUser, target: ConnectionTarget): Promise<void> {
    const decision = await this.options.broker.authorize(user, target, this.remoteAddress);
    if (!decision.allow && ctx.method === 'keyboard-interactive') {
      await this.refuse(ctx, decision.message, 'not authorized');
      return;
    }
    if (!decision.allow) {
      // These methods have no way to show text: sign in, then say why on the channel.
      this.options.logger.info({ remoteAddress: this.remoteAddress, why: 'not authorized' }, 'SSH gateway refused a connection');
      this.user = user;
      this.refusal = decision.message;
      ctx.accept();
      return;
    }
    this.user = user;
    this.target = decision.target;
    ctx.accept();
  }

  /**
   * Refuses and closes the connection: trying again cannot help. Keyboard-interactive
   * clients are shown the reason first (OpenSSH prints a prompt's instruction text).
   */
  private async refuse(ctx: AuthContext, message: string, why: string): Promise<void> {
    this.options.logger.info({ remoteAddress: this.remoteAddress, why }, 'SSH gateway refused a connection');
    // Keyboard-interactive clients print the message; others learn it from the disconnect
    // (no failure answer first: the client would ask for the password again meanwhile).
    if (ctx.method === 'keyboard-interactive') await prompt(ctx, [], message);
    this.end(ctx.method === 'keyboard-interactive' ? CLOSED : message);
  }

  // The device

  private async connectTarget(): Promise<TargetConnection> {
    const { broker, targetTimeoutMs } = this.options;
    const user = this.user as GatewayUser;
    const target = this.target as AuthorizedTarget;
    const where = whereOf(target);
    const started = performance.now();
    let hostKeyProblem: string | undefined;
    let via: { gateway: string; segment: string | null } = { gateway: this.options.name, segment: target.segment };
    const outcome = await (async (): Promise<TargetConnection> => {
      const dialed = await this.options.dial(target, { user, remoteAddress: this.remoteAddress });
      via = { gateway: dialed.gateway, segment: dialed.segment };
      if (!dialed.ok) return dialed;
      const { socket } = dialed;
      socket.setNoDelay?.(true);
      const credential = await broker.fetchCredential(user, target);
      const client = new ssh2.Client();
      return new Promise<TargetConnection>((resolve) => {
        client.on('error', (error: Error & ClientErrorExtensions) => {
          resolve({ ok: false, reason: hostKeyProblem ?? clientProblem(error, target), ...via });
          client.end();
        });
        client.once('ready', () => resolve({ ok: true, client, ...via }));
        client.once('close', () =>
          resolve({ ok: false, reason: hostKeyProblem ?? `The connection to ${where} closed during sign-in.`, ...via }),
        );
        client.on('keyboard-interactive', (_name, _instructions, _lang, prompts, finish) =>
          finish(prompts.map(() => credential.password ?? '')),
        );
        client.connect({
          sock: socket,
          username: credential.username,
          ...(credential.password !== undefined ? { password: credential.password } : {}),
          ...(credential.privateKey !== undefined ? { privateKey: credential.privateKey } : {}),
          ...(credential.passphrase !== undefined ? { passphrase: credential.passphrase } : {}),
          tryKeyboard: credential.password !== undefined,
          readyTimeout: targetTimeoutMs,
          hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
            const presented = { algorithm: keyTypeOf(key), fingerprint: fingerprintOf(key) };
            broker.checkHostKey(target, presented).then(
              (check) => {
                if (!check.ok) {
                  hostKeyProblem =
                    `The host key of ${target.deviceName} has changed: Gatehouse trusts ${check.stored.algorithm} ${check.stored.fingerprint}, ` +
                    `the device presented ${presented.algorithm} ${presented.fingerprint}. This can be an attack. ` +
                    `An administrator must check the device and, if the new key is right, remove the stored key ` +
                    `(DELETE /api/v1/devices/${target.deviceId}/host-key); the next connection then trusts the new one.`;
                }
                verify(check.ok);
              },
              (error: unknown) => {
                this.options.logger.error({ err: error, deviceId: target.deviceId }, 'host key check failed');
                hostKeyProblem = 'Gatehouse could not check the host key of the device. Try again, or ask an administrator.';
                verify(false);
              },
            );
          },
        });
      });
    })().catch((error: unknown): TargetConnection => {
      this.options.logger.error({ err: error, deviceId: target.deviceId }, 'target connection failed with an error');
      return { ok: false, reason: 'Gatehouse could not connect to the device because of an internal error. Try again.', ...via };
    });
    const ms = Math.round(performance.now() - started);
    if (outcome.ok) {
      this.options.logger.info({ deviceId: target.deviceId, gateway: outcome.gateway, ms }, 'connected to the device');
      this.connection?.reachedDevice(outcome.gateway, outcome.segment);
      outcome.client.on('close', () => {
        // The device went away: every channel on it is gone, so is this connection.
        void this.endSessions(`The connection to ${target.deviceName} closed.`);
      });
    } else {
      await broker
        .connectionFailed({
          user,
          target,
          gateway: outcome.gateway,
          segment: outcome.segment,
          remoteAddress: this.remoteAddress,
          at: new Date().toISOString(),
          reason: outcome.reason,
        })
        .catch((error: unknown) => this.options.logger.error({ err: error }, 'could not record a failed connection'));
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
      active = this.startChannel(accept(), 'exec', info.command, pty, deviceChannel);
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

/** One channel (shell, exec or sftp) proxied to a channel on the device, and its recording. */
class ProxiedSession {
  private targetChannel: ClientChannel | undefined;
  private recorder: AsciicastRecorder | undefined;
  /** Bytes from the user to the device, and back. */
  bytesIn = 0;
  bytesOut = 0;
  private exit: { code: number } | { signal: string; coreDumped: boolean; description: string } | undefined;
  private finished: Promise<void> | undefined;
  private fileLog: SftpOperationLog | undefined;
  private scpLog: LegacyScpLog | undefined;
  /** Exec without a terminal: what its streams were, when they are not recorded whole. */
  private watches: ExecOutputWatch[] = [];
  /** File operations are reported in order, one after another. */
  private fileOps: Promise<void> = Promise.resolve();
  private channelClosed: Promise<void> = Promise.resolve();
  private resolveDone!: () => void;
  private readonly done = new Promise<void>((resolve) => (this.resolveDone = resolve));
  readonly id = randomUUID();

  constructor(
    private readonly options: Required<SshGatewayOptions>,
    private readonly stream: ServerChannel,
    private readonly kind: ChannelKind,
    private readonly command: string | null,
    private readonly pty: PtyState,
    private readonly user: GatewayUser,
    private readonly target: AuthorizedTarget,
    private readonly remoteAddress: string,
    /** The device's channel, opened when the user's was accepted; undefined when the device could not be reached. */
    private readonly deviceChannel: ClientChannel | undefined,
  ) {
    stream.on('error', () => undefined);
  }

  async run(connection: Promise<TargetConnection>): Promise<void> {
    const t = await connection;
    if (!t.ok) {
      this.tellUser(t.reason);
      this.resolveDone();
      return;
    }
    let channel: ClientChannel;
    try {
      channel = await this.startTargetChannel();
    } catch (error) {
      const reason = `${this.target.deviceName} refused the ${this.kind} channel: ${(error as Error).message}`;
      await this.options.broker
        .connectionFailed({
          user: this.user,
          target: this.target,
          gateway: t.gateway,
          segment: t.segment,
          remoteAddress: this.remoteAddress,
          at: new Date().toISOString(),
          reason,
        })
        .catch((e: unknown) => this.options.logger.error({ err: e }, 'could not record a failed channel'));
      this.tellUser(reason);
      this.resolveDone();
      return;
    }
    this.targetChannel = channel;
    channel.on('error', () => undefined);
    const startedAt = new Date();
    let recording: string | null = null;
    if (this.kind === 'shell' || this.kind === 'exec') {
      recording = path.join(startedAt.toISOString().slice(0, 10), `${this.id}.cast`);
      this.recorder = await AsciicastRecorder.create(path.join(this.options.recordingsDir, recording), {
        width: this.pty.info?.cols ?? 80,
        height: this.pty.info?.rows ?? 24,
        timestamp: startedAt.getTime() / 1000,
        term: this.pty.info?.term,
        command: this.kind === 'exec' ? (this.command ?? undefined) : undefined,
      });
    }
    await this.options.broker.sessionStarted({
      id: this.id,
      user: this.user,
      target: this.target,
      gateway: t.gateway,
      segment: t.segment,
      kind: this.kind,
      command: this.command,
      remoteAddress: this.remoteAddress,
      startedAt: startedAt.toISOString(),
      recording,
    });
    this.wire(channel, this.channelClosed);
    await this.done;
  }

  /** Asks the device's channel for what the user asked (a forward's is open already). */
  private async startTargetChannel(): Promise<ClientChannel> {
    const channel = this.deviceChannel;
    if (!channel) throw new Error('the device has no channel for it');
    // Listened to first: a quick command's exit status and close can arrive in the same read
    // as the request's reply, before any await resumes, and unlike its output they are not buffered.
    channel.on('exit', (code: number | null, signal?: string, coreDumped?: boolean, description?: string) => {
      this.exit = code !== null ? { code } : { signal: signal ?? 'KILL', coreDumped: coreDumped ?? false, description: description ?? '' };
    });
    this.channelClosed = new Promise<void>((closed) => channel.once('close', () => closed()));
    const window = this.pty.info && {
      term: this.pty.info.term,
      cols: this.pty.info.cols,
      rows: this.pty.info.rows,
      width: this.pty.info.width,
      height: this.pty.info.height,
      modes: this.pty.info.modes,
    };
    switch (this.kind) {
      case 'shell':
        await startSession(channel, { kind: 'shell' }, window);
        break;
      case 'exec':
        await startSession(channel, { kind: 'exec', command: this.command ?? '' }, window);
        break;
      case 'sftp':
        await startSession(channel, { kind: 'subsystem', name: 'sftp' });
        break;
      case 'forward':
        break;
    }
    return channel;
  }

  private wire(channel: ClientChannel, channelClosed: Promise<void>): void {
    const { stream, recorder } = this;
    if (this.kind === 'sftp') this.fileLog = new SftpOperationLog((op) => this.reportFileOperation(op));
    if (this.kind === 'exec') this.scpLog = LegacyScpLog.of(this.command ?? '');
    const fileLog = this.fileLog ?? this.scpLog;
    const recordInput = setting(this.options.recordInput) && recorder !== undefined;
    const record = this.recordedPart(recorder, recordInput);
    // While the recording waits for the disk, the recorded side waits for the recording.
    const holdWhileRecording = (source: { pause(): unknown; resume(): unknown }) => {
      if (!recorder?.congested) return;
      source.pause();
      void recorder.drained().then(() => source.resume());
    };
    stream.on('data', (d: Buffer) => {
      this.bytesIn += d.length;
      fileLog?.fromClient(d);
      if (recordInput && record.stdin(d)) {
        recorder.input(d);
        holdWhileRecording(stream);
      }
    });
    channel.on('data', (d: Buffer) => {
      this.bytesOut += d.length;
      fileLog?.fromServer(d);
      if (!record.stdout(d)) return;
      recorder?.output(d);
      holdWhileRecording(channel);
    });
    channel.stderr.on('data', (d: Buffer) => {
      this.bytesOut += d.length;
      if (!record.stderr(d)) return;
      recorder?.output(d);
      holdWhileRecording(channel.stderr);
    });
    // The user's EOF becomes the device's EOF (stdin closed); the device's exit status
    // is passed on before the channel ends, or OpenSSH reports none.
    stream.pipe(channel);
    channel.pipe(stream, { end: false });
    channel.stderr.pipe(stream.stderr, { end: false });
    // The user's channel ends once the device's output, buffered or not, has been passed on.
    void channelClosed
      .then(() => Promise.all([drained(channel), drained(channel.stderr)]))
      .then(() => {
        if (!stream.writable) return void this.finish(null);
        if (this.exit && 'code' in this.exit) stream.exit(this.exit.code);
        else if (this.exit) {
          try {
            stream.exit(this.exit.signal, this.exit.coreDumped, this.exit.description);
          } catch {
            // A signal ssh2 does not know (a vendor's name@domain): an exit status says it failed.
            stream.exit(255);
          }
        }
        stream.end();
        void this.finish(null);
      });
    stream.once('close', () => {
      channel.close();
      void this.finish(null);
    });
  }

  /**
   * For an exec without a terminal (unless binary output is to be recorded): a watch per
   * stream that answers whether a chunk goes to the recording. Legacy scp is a transfer
   * from its first byte. Otherwise every chunk is recorded.
   */
  private recordedPart(recorder: AsciicastRecorder | undefined, recordInput: boolean): Record<ExecStream, (d: Buffer) => boolean> {
    const all = () => true;
    if (!recorder || this.kind !== 'exec' || this.pty.info || setting(this.options.recordBinaryExec)) {
      return { stdout: all, stderr: all, stdin: all };
    }
    const scp = isLegacyScp(this.command ?? '');
    const watch = (stream: ExecStream) => {
      const w = new ExecOutputWatch(stream, scp && stream !== 'stderr');
      this.watches.push(w);
      if (w.binary) recorder.marker(w.startMarker());
      return (d: Buffer) => {
        const wasBinary = w.binary;
        if (w.admit(d)) return true;
        if (!wasBinary) recorder.marker(w.startMarker());
        return false;
      };
    };
    return { stdout: watch('stdout'), stderr: watch('stderr'), stdin: recordInput ? watch('stdin') : all };
  }

  resize(rows: number, cols: number, height: number, width: number): void {
    this.targetChannel?.setWindow(rows, cols, height, width);
    this.recorder?.resize(cols, rows);
  }

  signal(name: string): void {
    this.targetChannel?.signal(name);
  }

  /** Ends the session from the gateway's side (stop, or the device went away). */
  async stop(reason: string): Promise<void> {
    if (!this.targetChannel) return this.done;
    this.tellUser(reason);
    this.targetChannel.close();
    return this.finish(reason);
  }

  private tellUser(message: string): void {
    if (!this.stream.writable) return;
    // A forwarded connection is raw TCP: it has no stderr or exit status to tell anything with.
    if (this.kind === 'forward') return void this.stream.destroy();
    this.stream.stderr.write(`gatehouse: ${message}\r\n`);
    this.stream.exit(255);
    this.stream.end();
  }

  private reportFileOperation(op: FileOperation): void {
    this.fileOps = this.fileOps
      .then(() => this.options.broker.fileOperation(this.id, op))
      .catch((error: unknown) => this.options.logger.error({ err: error, sessionId: this.id }, 'could not record a file operation'));
  }

  private finish(reason: string | null): Promise<void> {
    this.finished ??= (async () => {
      try {
        for (const w of this.watches) if (w.binary) this.recorder?.marker(summaryMarker(w.summary()));
        await this.recorder?.close();
      } catch (error) {
        this.options.logger.error({ err: error, sessionId: this.id }, 'recording could not be written completely');
      }
      this.fileLog?.finish(reason ?? 'The channel closed with the file still open.');
      if (this.scpLog) this.reportFileOperation(this.scpLog.operation(this.exit && 'code' in this.exit ? this.exit.code : null));
      await this.fileOps;
      // Killed by a signal: no exit status, and no success either.
      const killed = this.exit && 'signal' in this.exit ? this.exit : undefined;
      const end: SessionEnd = {
        endedAt: new Date().toISOString(),
        bytesIn: this.bytesIn,
        bytesOut: this.bytesOut,
        result: reason === null && !killed ? 'success' : 'failure',
        exitStatus: this.exit && 'code' in this.exit ? this.exit.code : null,
        exitSignal: killed?.signal ?? null,
        reason:
          reason ?? (killed ? `The command was killed by signal ${killed.signal}${killed.coreDumped ? ' (core dumped)' : ''}.` : null),
      };
      await this.options.broker
        .sessionEnded(this.id, end)
        .catch((error: unknown) => this.options.logger.error({ err: error, sessionId: this.id }, 'could not record the end of a session'));
      this.resolveDone();
    })();
    return this.finished;
  }
}

/** A setting given as a value or as a function that reads it now. */
function setting(value: boolean | (() => boolean)): boolean {
  return typeof value === 'function' ? value() : value;
}

/** Resolves when a readable has delivered all its data (or after 5 s, should it never end). */
function drained(readable: NodeJS.ReadableStream & { readableEnded: boolean }): Promise<void> {
  if (readable.readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 5000);
    readable.once('end', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Keyboard-interactive prompts as a promise; with no prompts, only shows `instructions`. */
function prompt(ctx: KeyboardAuthContext, prompts: { prompt: string; echo: boolean }[], instructions = ''): Promise<string[]> {
  // No name: OpenSSH prints a prompt's name on a line of its own, above every password prompt.
  return new Promise((resolve) => ctx.prompt(prompts, '', instructions, (answers) => resolve(answers)));
}

function clientProblem(error: Error & ClientErrorExtensions, target: AuthorizedTarget): string {
  if (error.level === 'client-authentication') {
    return `${target.deviceName} refused the vaulted credential of account ${target.accountUsername}. Ask an administrator to check the account's password or key.`;
  }
  if (error.level === 'client-timeout') return `${target.deviceName} did not finish the SSH handshake in time.`;
  return `The SSH connection to ${target.deviceName} failed (${error.level ?? 'protocol'}): ${error.message}`;
}
