import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type {
  AccessBroker,
  AuthorizedTarget,
  DesktopBroker,
  GatewayLogger,
  GatewayUser,
  TargetCredential,
  TargetDialer,
} from '@gatehouse/gateway';
import { forgetKeyAdvice, USER_LEFT_MESSAGE } from '@gatehouse/gateway';
import { GatehouseError } from '@gatehouse/core';
import { AUTO_CLIENT, CLIPBOARD_READY, findFreeRdp, freerdpArgs, freerdpEnvironment, type FreeRdpClient } from './freerdp.js';
import { certificateOfFingerprint, readRdpCertificate, type RdpCertificate } from './rdp-certificate.js';
import { RdpDisplayPool, type PooledDisplay } from './rdp-display-pool.js';
import { onLines, startRdpDisplay, type RdpDisplay } from './rdp-display.js';

export { xauthorityEntry } from './rdp-display.js';

/**
 * Browser RDP without guacd: per session a fresh Xvfb display, `xfreerdp` connected to the
 * target through the gateway's dialer and showing the desktop on that display, and a
 * local-only `x11vnc` of the display for the RFB proxy (the same path, player and recorder
 * as VNC). Each process runs in its own process group; every exit path stops all three and
 * removes the session's directory.
 */
export interface RdpRendererOptions {
  /** Sessions rendered at once (config `rdpMaxSessions`); 0 turns browser RDP off. */
  maxSessions: number;
  logger: GatewayLogger;
  /** TCP connect, RDP negotiation and TLS, each; and xfreerdp's time to reach the target's desktop protocol. */
  connectTimeoutMs?: number;
  /**
   * From the RDP connection being up to the target having started a desktop session for the
   * account. A target that refuses the password (xrdp, or Windows without NLA) shows its own
   * logon screen instead, and never starts one.
   */
  logonTimeoutMs?: number;
  /** A session whose display no viewer connected to within this time (from its start) ends. */
  viewerTimeoutMs?: number;
  /**
   * Displays (Xvfb + x11vnc) kept started ahead of sessions (config `rdpDisplayPool`), so a
   * session starts with its display ready; each is used by one session and then destroyed.
   * Filled at the first session. 0 (the default here): each session starts its own.
   */
  displayPool?: number;
  width?: number;
  height?: number;
  /** Where the per-session directories go (private, 0700); default the OS temp directory. */
  runDirectory?: string;
  /**
   * The FreeRDP client (config `rdpClient`): `auto` (the default) takes `xfreerdp3` when
   * installed, else `xfreerdp`; or a command name or path of FreeRDP 2 or 3.
   */
  client?: string;
}

export interface RdpOpenRequest {
  target: AuthorizedTarget;
  credential: TargetCredential;
  user: GatewayUser;
  remoteAddress: string;
  dial: TargetDialer;
  broker: Pick<AccessBroker, 'checkHostKey'> & Pick<DesktopBroker, 'trustedHostKey'>;
  /** Aborts when the user hangs up while the session starts: its processes are stopped and open() fails. */
  signal?: AbortSignal | undefined;
}

export type RdpOpenResult =
  { ok: true; session: RdpRendering } | { ok: false; message: string; gateway: string | null; segment: string | null };

export interface RdpRendering {
  /** x11vnc's port on 127.0.0.1; it takes one viewer, with `vncPassword` (VncAuth). */
  vncPort: number;
  vncPassword: string;
  /** The gateway and segment that reached the device (for the session row). */
  gateway: string;
  segment: string | null;
  width: number;
  height: number;
  /** The Xvfb, xfreerdp and x11vnc process ids (each its own process group). */
  pids: readonly number[];
  /** The display came ready from the pool (its Xvfb and x11vnc started before the session). */
  pooledDisplay: boolean;
  /** The target's certificate was trusted already: xfreerdp checked it itself, with no connection of Gatehouse's own to read it first. */
  trustedCertificate: boolean;
  /** ms from open() to the target's desktop session being up. */
  openedInMs: number;
  /** Where that time went: ms from open() to the end of each step (see {@link RdpStartTimings}). */
  timings: RdpStartTimings;
  /** Stops all three processes and removes the session's files; idempotent. */
  close(reason?: string): Promise<void>;
  /** Settles once everything is stopped: xfreerdp exited (logoff, the target closed), the viewer left, or close(). */
  exited: Promise<{ reason: string }>;
}

/**
 * ms from open() to each step's end. The display (taken from the pool ready, or Xvfb started
 * now), the certificate check and the dial of xfreerdp's connection run beside each other;
 * xfreerdp starts once the certificate is known and Xvfb is up (a new display's x11vnc beside
 * it), its connection joined to the dialed one when that is up.
 */
export interface RdpStartTimings {
  /**
   * The certificate xfreerdp is to accept known: the one Gatehouse trusts already (a lookup),
   * or, on first use or with a next key expected, the target's read (own TCP + TLS connection)
   * and checked with the broker.
   */
  certificate: number;
  /** Xvfb accepting clients (its -displayfd line); about 0 with a pooled display. */
  display: number;
  /** x11vnc listening (its PORT= line; it starts beside xfreerdp); about 0 with a pooled display. */
  vnc: number;
  /** xfreerdp started (its process spawned; it loads and connects from here). */
  xfreerdp: number;
  /** xfreerdp's connection to the target dialed through the gateway (TCP; it runs from open()). */
  dialed: number;
  /** xfreerdp's RDP connection active (TCP, X.224, TLS, MCS, licensing, capabilities). */
  connected: number;
  /** The target started the account's desktop session (its clipboard channel is up). */
  loggedOn: number;
}

type RendererSettings = Required<Omit<RdpRendererOptions, 'runDirectory'>> & { runDirectory: string };

const defaults = { connectTimeoutMs: 15_000, logonTimeoutMs: 20_000, viewerTimeoutMs: 60_000, width: 1280, height: 800 };

/** The connection errors xfreerdp logs (`freerdp_set_last_error_ex ERRCONNECT_…`) that mean the credential was refused (NLA). */
const CREDENTIAL_ERRORS =
  /ERRCONNECT_(LOGON_FAILURE|WRONG_PASSWORD|AUTHENTICATION_FAILED|ACCOUNT_DISABLED|ACCOUNT_EXPIRED|ACCOUNT_LOCKED_OUT|ACCOUNT_RESTRICTION|PASSWORD_EXPIRED|PASSWORD_MUST_CHANGE|PASSWORD_CERTAINLY_EXPIRED|LOGON_TYPE_NOT_GRANTED|NO_OR_MISSING_CREDENTIALS)/;

export class RdpRenderer {
  readonly #options: RendererSettings;
  /** Sessions opening or open: a slot is taken before anything starts. */
  readonly #live = new Set<Session>();
  readonly #pool: RdpDisplayPool<RdpDisplay> | null;
  #stopped = false;
  /** The server's process ends without stop() (process.exit, a fatal error): no renderer outlives it. */
  readonly #onExit = () => this.kill();
  /** The FreeRDP client, looked for at construction (sessions on) and again at a session after a failure. */
  #client: Promise<FreeRdpClient> | null = null;

  constructor(options: RdpRendererOptions) {
    this.#options = { ...defaults, displayPool: 0, runDirectory: os.tmpdir(), client: AUTO_CLIENT, ...options };
    const size = Math.min(this.#options.displayPool, this.#options.maxSessions);
    this.#pool = size > 0 ? new RdpDisplayPool(size, (signal) => startSpareDisplay(this.#options, signal), this.#options.logger) : null;
    process.on('exit', this.#onExit);
    if (this.#options.maxSessions > 0) void this.#findClient().catch(() => undefined);
  }

  /** The FreeRDP client found (logged once), or why there is none (looked for again next time). */
  #findClient(): Promise<FreeRdpClient> {
    this.#client ??= findFreeRdp(this.#options.client).then(
      (client) => {
        const { command, version, major, preload } = client;
        this.#options.logger.info({ command, version, primitivesHint: preload ?? null }, `browser RDP renders with FreeRDP ${version}`);
        if (major === 3 && !preload) {
          this.#options.logger.warn(
            { command },
            'FreeRDP 3 runs without the primitives hint (not built: npm run build needs a C compiler), ~0.3 s slower to connect',
          );
        }
        return client;
      },
      (error: Error) => {
        this.#client = null;
        this.#options.logger.warn({ err: error }, 'browser RDP has no FreeRDP client');
        throw error;
      },
    );
    return this.#client;
  }

  /** The FreeRDP client this renderer uses (found at the first call). */
  freerdp(): Promise<FreeRdpClient> {
    return this.#findClient();
  }

  /** Displays waiting in the pool now. */
  get pooledDisplays(): number {
    return this.#pool?.ready ?? 0;
  }

  get activeSessions(): number {
    return this.#live.size;
  }

  async open(request: RdpOpenRequest): Promise<RdpOpenResult> {
    const { target, credential } = request;
    const where = `${target.deviceName} (${target.host}:${target.port})`;
    const refuse = (message: string) => ({ ok: false as const, message, gateway: null, segment: null });
    if (this.#options.maxSessions === 0) {
      return refuse(
        'Browser RDP is turned off on this gateway (rdpMaxSessions 0). Ask an administrator to raise rdpMaxSessions ' +
          '(GATEHOUSE_RDP_MAX_SESSIONS), or use a native RDP client with `./gatehouse rdp`.',
      );
    }
    // Found once; everything from the slot check to taking the slot runs without a turn of the event loop.
    let client: FreeRdpClient;
    try {
      client = await this.#findClient();
    } catch (error) {
      return refuse((error as Error).message);
    }
    if (this.#stopped) return refuse('The server is stopping; browser RDP sessions cannot start now.');
    if (this.#live.size >= this.#options.maxSessions) {
      return refuse(
        `The gateway's maximum of ${this.#options.maxSessions} browser RDP sessions is reached. Try again when one ends, ` +
          `or ask an administrator to raise rdpMaxSessions (GATEHOUSE_RDP_MAX_SESSIONS).`,
      );
    }
    if (credential.password === undefined || credential.password === '') {
      return refuse(`The account ${credential.username} on ${target.deviceName} has no vaulted password; RDP needs one.`);
    }
    if (/[\r\n]/.test(credential.password)) {
      return refuse(`The vaulted password of ${credential.username} on ${target.deviceName} contains a line break, which RDP cannot take.`);
    }
    if (request.signal?.aborted) return refuse(USER_LEFT_MESSAGE);
    const session = new Session(this.#options, request, where, client, this.#pool?.take());
    this.#live.add(session);
    void session.exited.then(() => this.#live.delete(session));
    const left = () => void session.close(USER_LEFT_MESSAGE);
    request.signal?.addEventListener('abort', left, { once: true });
    const result = await session.start().finally(() => request.signal?.removeEventListener('abort', left));
    if (!result.ok) await session.close(result.message);
    else if (request.signal?.aborted) {
      await result.session.close(USER_LEFT_MESSAGE);
      return refuse(USER_LEFT_MESSAGE);
    }
    return result;
  }

  /** Ends every session (the server is stopping) and refuses new ones. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...[...this.#live].map((s) => s.close('The server stopped.')), this.#pool?.stop()]);
    process.off('exit', this.#onExit);
  }

  /**
   * SIGKILLs the process groups of every session and of the pool's displays (waiting or
   * starting) and removes their files, all before it returns: the last resort of a stop that
   * ran out of time, and of the server's process exiting (when nothing asynchronous runs any
   * more). Refuses new sessions.
   */
  kill(): void {
    this.#stopped = true;
    for (const session of this.#live) session.kill();
    this.#pool?.kill();
  }
}

class Session {
  readonly #processes: ChildProcess[] = [];
  readonly #sockets: Duplex[] = [];
  #relay: net.Server | null = null;
  #directory: string | null = null;
  #closing: Promise<void> | null = null;
  #resolveExited!: (value: { reason: string }) => void;
  readonly exited = new Promise<{ reason: string }>((resolve) => (this.#resolveExited = resolve));
  /** Set once open() has returned the session: from then on any process exit ends it. */
  #open = false;
  #dialed: { gateway: string; segment: string | null } | null = null;

  constructor(
    private readonly options: RendererSettings,
    private readonly request: RdpOpenRequest,
    private readonly where: string,
    private readonly client: FreeRdpClient,
    /** A display from the pool, now this session's alone; undefined: the session starts its own. */
    private readonly pooled: RdpDisplay | undefined,
  ) {
    if (pooled) this.#adopt(pooled);
  }

  async start(): Promise<RdpOpenResult> {
    const started = performance.now();
    const { target, user, remoteAddress, dial, credential } = this.request;
    const { connectTimeoutMs, logonTimeoutMs, width, height, logger } = this.options;
    const fail = (message: string): RdpOpenResult => ({
      ok: false,
      message,
      gateway: this.#dialed?.gateway ?? null,
      segment: this.#dialed?.segment ?? null,
    });
    const at = () => Math.round(performance.now() - started);
    const timings: RdpStartTimings = { certificate: 0, display: 0, vnc: 0, xfreerdp: 0, dialed: 0, connected: 0, loggedOn: 0 };
    // 1. The certificate xfreerdp is to accept: the one Gatehouse trusts already, or the
    // target's, read over a connection of its own and checked like an SSH host key (trust on
    // first use). Beside it: the display (ready from the pool, or started now) and the dial of
    // xfreerdp's own connection (closed with the session if the check refuses).
    const trusted = this.#trustedCertificate();
    const checked = trusted.then((certificate) => certificate ?? this.#checkCertificate(started));
    const displayReady = this.#display().then((display) => ((timings.display = at()), display));
    const vncReady = displayReady.then((display) => display.vncReady).then(() => (timings.vnc = at()));
    const dialed = dial(target, { user, remoteAddress }).then((connection) => {
      timings.dialed = at();
      if (connection.ok) this.#keep(connection.socket);
      return connection;
    });
    const settled = Promise.allSettled([checked, displayReady, vncReady, dialed]);
    try {
      const refusal = await checked;
      timings.certificate = at();
      if (typeof refusal === 'string') {
        await settled;
        return fail(refusal);
      }
      const certificate = refusal;
      const trustedCertificate = (await trusted) !== null;
      const display = await displayReady;
      logger.debug({ ms: at(), display: display.env.DISPLAY, pooled: this.pooled !== undefined }, 'browser RDP: display up');

      // 2. xfreerdp at once (it takes a while to load), the password on stdin; its connection,
      // to a one-connection relay in the session's directory, joins the dialed one when that is up.
      const socketPath = path.join(display.directory, 'rdp.sock');
      await this.#relayOnce(
        socketPath,
        dialed.then((connection) => (connection.ok ? connection.socket : null)),
      );
      const env = { ...display.env, ...(await freerdpEnvironment(this.client, display.directory)) };
      const desktop = this.#startXfreerdp(env, socketPath, certificate, credential, width, height, started);
      timings.xfreerdp = at();
      const connection = await dialed;
      this.#dialed = { gateway: connection.gateway, segment: connection.segment };
      if (!connection.ok) return fail(connection.reason);

      const outcome = await desktop.loggedOn(connectTimeoutMs, logonTimeoutMs, () => (timings.connected = at()));
      if (!outcome.ok) {
        await settled;
        // xfreerdp checked the trusted certificate itself and refused the one it saw: the
        // broker's check says which the target presents, and audits a change.
        if (trustedCertificate && outcome.certificateRefused) {
          const explained = await this.#checkCertificate(started);
          if (typeof explained === 'string') return fail(explained);
        }
        return fail(outcome.message);
      }
      timings.loggedOn = at();
      await vncReady;
      if (this.#closing) return fail('The server stopped while the browser RDP session was starting.');
      // A display process that stopped meanwhile (before this session listened for it).
      if (display.processes.some((p) => p.exitCode !== null || p.signalCode !== null))
        return fail(`The display of the browser RDP session to ${this.where} stopped while it started. Try again.`);
      const { vncPassword, vncPort } = display;
      const openedInMs = at();
      const pooledDisplay = this.pooled !== undefined;
      logger.info(
        { deviceId: target.deviceId, display: display.env.DISPLAY, vncPort, ms: openedInMs, timings, pooledDisplay, trustedCertificate },
        'browser RDP session rendered',
      );
      this.#open = true;
      this.#expectViewer(display);
      return {
        ok: true,
        session: {
          vncPort,
          vncPassword,
          gateway: connection.gateway,
          segment: connection.segment,
          width,
          height,
          pids: this.#processes.map((p) => p.pid!),
          pooledDisplay,
          trustedCertificate,
          openedInMs,
          timings,
          close: (reason) => this.close(reason ?? 'The session was closed.'),
          exited: this.exited,
        },
      };
    } catch (error) {
      // Closed meanwhile (the user left, the server stops): the processes it still wanted to start were refused.
      if (!this.#closing) logger.error({ err: error, deviceId: target.deviceId }, 'browser RDP session failed to start');
      await settled;
      return fail(`Gatehouse could not start the browser RDP session to ${this.where}: ${(error as Error).message}`);
    }
  }

  /** The pooled display, or a new one whose processes and directory are this session's from the start. */
  async #display(): Promise<RdpDisplay> {
    if (this.pooled) return this.pooled;
    const display = await startRdpDisplay({
      ...this.options,
      timeoutMs: this.options.connectTimeoutMs,
      directoryMade: (directory) => (this.#directory = directory),
      spawn: (command, args, env) => this.#spawn(command, args, env),
    });
    display.onExit = (reason) => this.#ended(reason);
    return display;
  }

  /** Takes a pooled display over: its processes and directory go with this session. */
  #adopt(display: RdpDisplay): void {
    this.#directory = display.directory;
    this.#processes.push(...display.processes);
    display.onExit = (reason) => this.#ended(reason);
  }

  /** A socket closed with the session (or at once, if it is closing already). */
  #keep(socket: Duplex): void {
    if (this.#closing) socket.destroy();
    else this.#sockets.push(socket);
  }

  /** Ends the open session if no viewer connected to its display within the viewer timeout. */
  #expectViewer(display: RdpDisplay): void {
    const seconds = Math.round(this.options.viewerTimeoutMs / 1000);
    setTimeout(() => {
      if (!display.viewerSeen()) void this.close(`No viewer connected to the browser RDP session within ${seconds} s.`);
    }, this.options.viewerTimeoutMs).unref();
  }

  /**
   * The RDP certificate Gatehouse trusts for the device when it is the only one it accepts
   * (null on first use, for a pin the device has not presented yet, or with a next key
   * expected: then the broker must see the presented one).
   */
  async #trustedCertificate(): Promise<RdpCertificate | null> {
    const key = await this.request.broker.trustedHostKey(this.request.target, 'rdp');
    return key?.algorithm === 'rdp-x509' ? certificateOfFingerprint(key.fingerprint) : null;
  }

  /** Dials the device once to read its certificate and checks it with the broker: the certificate, or why not. */
  async #checkCertificate(started: number): Promise<RdpCertificate | string> {
    const { target, user, remoteAddress, dial, broker } = this.request;
    const probe = await dial(target, { user, remoteAddress });
    this.#dialed = { gateway: probe.gateway, segment: probe.segment };
    if (!probe.ok) return probe.reason;
    let certificate: RdpCertificate;
    try {
      certificate = await readRdpCertificate(probe.socket, this.options.connectTimeoutMs);
    } catch (error) {
      return `${this.where} did not complete a TLS connection as an RDP server: ${(error as Error).message}.`;
    }
    this.options.logger.debug({ ms: Math.round(performance.now() - started) }, 'browser RDP: certificate read');
    const check = await broker.checkHostKey(target, { algorithm: 'rdp-x509', fingerprint: certificate.fingerprint });
    if (check.ok) return certificate;
    return (
      `The RDP certificate of ${target.deviceName} has changed: Gatehouse trusts ${check.stored.algorithm} ${check.stored.fingerprint}, ` +
      `the device presented rdp-x509 ${certificate.fingerprint}. This can be an attack. An administrator must check the device and, ` +
      `if the new certificate is right, forget the stored one: ${forgetKeyAdvice(target, 'rdp')}; ` +
      `the next connection then trusts the new one.`
    );
  }

  close(reason: string): Promise<void> {
    this.#closing ??= (async () => {
      this.#relay?.close();
      for (const socket of this.#sockets) socket.destroy();
      await Promise.all(this.#processes.map((child) => stopGroup(child, this.options.logger)));
      if (this.#directory) await rm(this.#directory, { recursive: true, force: true });
      this.#resolveExited({ reason });
    })();
    return this.#closing;
  }

  /** SIGKILL to each process group of the session and its files removed, now (see RdpRenderer.kill). */
  kill(): void {
    killNow(this.#processes, this.#directory);
  }

  /** A process of the session ended by itself: once the session is open, that ends it. */
  #ended(reason: string): void {
    if (this.#open) void this.close(reason);
  }

  #spawn(command: string, args: string[], env: NodeJS.ProcessEnv | undefined, stdin: 'pipe' | 'ignore' = 'ignore'): ChildProcess {
    if (this.#closing) throw new GatehouseError('NOT_READY', 'the session is closing');
    const child = spawnIsolated(command, args, env, stdin, this.options.logger);
    this.#processes.push(child);
    return child;
  }

  /**
   * Accepts one connection on a Unix socket in the private directory and joins it to the
   * target's socket once that is dialed (what xfreerdp sends first waits in the local one);
   * no target socket (the dial failed): the local connection is closed.
   */
  #relayOnce(socketPath: string, dialed: Promise<Duplex | null>): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ pauseOnConnect: false }, (local) => {
        server.close();
        this.#sockets.push(local);
        local.once('error', () => local.destroy());
        void dialed.then((target) => {
          if (!target || local.destroyed) {
            target?.destroy();
            return void local.destroy();
          }
          local.pipe(target).pipe(local);
          const end = () => {
            local.destroy();
            target.destroy();
          };
          local.once('close', end).once('error', end);
          target.once('close', end).once('error', end);
        });
      });
      this.#relay = server;
      server.once('error', reject);
      server.listen({ path: socketPath }, () => resolve());
    });
  }

  #startXfreerdp(
    env: NodeJS.ProcessEnv,
    socketPath: string,
    certificate: RdpCertificate,
    credential: TargetCredential,
    width: number,
    height: number,
    started: number,
  ): {
    loggedOn(
      connectTimeoutMs: number,
      logonTimeoutMs: number,
      connected: () => void,
    ): Promise<{ ok: true } | { ok: false; message: string; certificateRefused: boolean }>;
  } {
    const args = [
      '-oL',
      '-eL',
      this.client.command,
      ...freerdpArgs(this.client, { socketPath, username: credential.username, sha256Hex: certificate.sha256Hex, width, height }),
    ];
    const child = this.#spawn('stdbuf', args, env, 'pipe');
    child.stdin!.end(`${credential.password}\n`);
    let active = false;
    let loggedOn = false;
    let lastError: string | null = null;
    let certificateRefused = false;
    const waiters: (() => void)[] = [];
    const wake = () => waiters.splice(0).forEach((w) => w());
    onLines(child, (line) => {
      // Each step of its connection, with the ms since open() (the first-frame timeline).
      if (line.includes('--> CONNECTION_STATE_') || CLIPBOARD_READY.test(line))
        this.options.logger.debug({ ms: Math.round(performance.now() - started), line }, 'browser RDP: xfreerdp');
      if (line.includes('--> CONNECTION_STATE_ACTIVE')) active = true;
      // The target's clipboard channel comes up once a desktop session runs for the account
      // (xrdp starts chansrv with the session, Windows rdpclip in the user's session).
      else if (CLIPBOARD_READY.test(line)) loggedOn = true;
      else if (/CERTIFICATE|certificate not trusted/.test(line)) certificateRefused = true;
      const error = /\b(ERRCONNECT_\w+|ERRINFO_\w+)/.exec(line);
      if (error) lastError = error[1]!;
      wake();
    });
    let exitCode: number | null | undefined;
    child.once('exit', (code) => {
      exitCode = code;
      wake();
      this.#ended(`The RDP connection to ${this.where} ended${lastError ? ` (${lastError})` : ''}.`);
    });
    const until = (predicate: () => boolean, ms: number) =>
      new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(predicate()), ms);
        const check = () => {
          if (predicate() || exitCode !== undefined) {
            clearTimeout(timer);
            resolve(predicate());
          } else waiters.push(check);
        };
        check();
      });
    const failure = (): string => {
      const {
        target,
        credential: { username },
      } = this.request;
      if (certificateRefused) {
        return `${this.where} presented a different TLS certificate to the RDP client than the one Gatehouse checked; the connection was refused.`;
      }
      if (lastError && CREDENTIAL_ERRORS.test(lastError)) {
        return `${this.where} refused the vaulted password of ${username} (${lastError}). Ask an administrator to update the account's password.`;
      }
      if (lastError === 'ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED') {
        return `${this.where} and the RDP client found no common security protocol (TLS or NLA).`;
      }
      return `The RDP client could not connect to ${target.deviceName}${lastError ? ` (${lastError})` : ` (exit code ${exitCode})`}.`;
    };
    return {
      loggedOn: async (connectTimeoutMs, logonTimeoutMs, connected) => {
        if (!(await until(() => active, connectTimeoutMs))) {
          if (exitCode !== undefined) return { ok: false, message: failure(), certificateRefused };
          return {
            ok: false,
            message: `${this.where} did not complete the RDP connection within ${Math.round(connectTimeoutMs / 1000)} s.`,
            certificateRefused,
          };
        }
        connected();
        if (await until(() => loggedOn, logonTimeoutMs)) return { ok: true };
        if (exitCode !== undefined) return { ok: false, message: failure(), certificateRefused };
        return {
          ok: false,
          certificateRefused,
          message:
            `${this.where} accepted the RDP connection but started no desktop session for ${this.request.credential.username} ` +
            `within ${Math.round(logonTimeoutMs / 1000)} s: it showed its own logon screen, so the vaulted password was most likely refused. ` +
            `Ask an administrator to check the account's password.`,
        };
      },
    };
  }
}

/** How long a renderer process has to exit after SIGTERM before its process group gets SIGKILL. */
export const STOP_GRACE_MS = 3000;

/**
 * SIGTERM to the process group, SIGKILL after `graceMs`; resolves once the leader exited, and
 * at the latest `graceMs` after the SIGKILL (a process the kernel cannot kill at once, in
 * uninterruptible sleep, does not hold the server's stop).
 */
export function stopGroup(child: ChildProcess, logger?: GatewayLogger, graceMs = STOP_GRACE_MS): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return Promise.resolve();
  const exited = child.exitCode !== null || child.signalCode !== null;
  const timers: NodeJS.Timeout[] = [];
  const gone = exited
    ? Promise.resolve()
    : new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        timers.push(
          setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs),
          setTimeout(() => {
            logger?.warn({ pid, command: child.spawnargs[3] }, 'a browser RDP process did not exit after SIGKILL');
            resolve();
          }, 2 * graceMs),
        );
      });
  signalGroup(pid, 'SIGTERM');
  return gone.then(() => {
    for (const timer of timers) clearTimeout(timer);
    // Anything the leader left in its group.
    signalGroup(pid, 'SIGKILL');
  });
}

/** SIGKILL to each process group, then the directory removed, all synchronously (the server's process may be exiting). */
function killNow(processes: readonly ChildProcess[], directory: string | null): void {
  for (const child of processes) if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
  if (directory) rmSync(directory, { recursive: true, force: true });
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

/**
 * Starts a renderer process in its own process group (detached), killed by the kernel if the
 * server dies without closing it (setpriv's parent-death signal survives the exec).
 */
function spawnIsolated(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv | undefined,
  stdin: 'pipe' | 'ignore',
  logger: GatewayLogger,
): ChildProcess {
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', command, ...args], {
    detached: true,
    stdio: [stdin, 'pipe', 'pipe'],
    env: env ?? { PATH: process.env.PATH },
  });
  child.once('error', (error) => logger.warn({ err: error, command }, 'browser RDP process failed'));
  return child;
}

/** A display started for the pool: its processes and directory are stopped and removed by `destroy` unless a session takes it. */
async function startSpareDisplay(options: RendererSettings, signal: AbortSignal): Promise<PooledDisplay<RdpDisplay>> {
  const processes: ChildProcess[] = [];
  let directory: string | null = null;
  const destroy = async () => {
    await Promise.all(processes.map((child) => stopGroup(child)));
    if (directory) await rm(directory, { recursive: true, force: true });
  };
  const kill = () => killNow(processes, directory);
  // The pool stopped or was killed while this display starts: what it started is killed now
  // (no session used it), which fails the start.
  signal.addEventListener('abort', kill, { once: true });
  try {
    const display = await startRdpDisplay({
      ...options,
      timeoutMs: options.connectTimeoutMs,
      directoryMade: (made) => (directory = made),
      spawn: (command, args, env) => {
        if (signal.aborted) throw new GatehouseError('NOT_READY', 'the display pool stopped');
        const child = spawnIsolated(command, args, env, 'ignore', options.logger);
        processes.push(child);
        return child;
      },
    });
    const died = new Promise<void>((resolve) => (display.onExit = () => resolve()));
    await display.vncReady;
    return { display, died, destroy, kill };
  } catch (error) {
    await destroy();
    throw error;
  } finally {
    signal.removeEventListener('abort', kill);
  }
}
