import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { RFB_RECORDING_FORMAT, RFB_RECORDING_VERSION } from '@gatehouse/core';
import type { AccessBroker, AuthorizedTarget, GatewayUser, TargetCredential } from '../broker.js';
import { whereOf, type TargetDialer } from '../dial.js';
import { forgetKeyAdvice } from '../host-key-advice.js';
import type { GatewayLogger } from '../gateway.js';
import type { LiveSessions } from '../management.js';
import { RfbProxy, TARGET_CLOSED, type RfbProxyResult } from './proxy.js';
import { RfbRecorder, rfbRecordingPath } from './recording.js';
import { connectVncTarget, VncTargetError, type RfbServerInit } from './target.js';
import { sendServerInit } from './user.js';

export interface OpenDesktopOptions {
  broker: AccessBroker;
  dial: TargetDialer;
  user: GatewayUser;
  target: AuthorizedTarget;
  remoteAddress: string;
  recordingsDir: string;
  protocol: 'vnc' | 'rdp';
  gatewayName: string;
  timeoutMs: number;
  /** Where the session is held while it is live (admin end, maintenance windows, gateway stop). */
  sessions: DesktopSessions;
  logger: GatewayLogger;
  /**
   * Aborts when the user hangs up meanwhile: the device's connection is closed at once (or
   * as soon as the dial returns it) and the attempt is a failed connection.
   */
  signal?: AbortSignal | undefined;
  /**
   * Where the RFB stream comes from. Absent: the device's own VNC server, through `dial`,
   * signed in with the vaulted password. A desktop rendered on the gateway (browser RDP)
   * gives its local VNC server, started with the vaulted credential.
   */
  source?: DesktopSource;
}

/** The reason a desktop given up because its user hung up is recorded with. */
export const USER_LEFT_MESSAGE = 'The user hung up before the desktop was open.';

export type OpenDesktopResult = { ok: true; session: LiveDesktop } | { ok: false; message: string };

/** Starts a rendered desktop with the account's credential: its VNC server, or why not. */
export type DesktopSource = (credential: TargetCredential) => Promise<RenderedDesktopResult>;

export type RenderedDesktopResult =
  { ok: true; desktop: RenderedDesktop } | { ok: false; message: string; gateway: string | null; segment: string | null };

export interface RenderedDesktop {
  /** Connected to the renderer's VNC server, which asks VncAuth with `password`. */
  socket: Duplex;
  password: string;
  /** The gateway and segment that reached the device. */
  gateway: string;
  segment: string | null;
  /** Stops the renderer (every end of the session); idempotent. */
  close(reason: string): Promise<void>;
  /** Settles once the renderer stopped, by `close` or by itself (the device's connection ended). */
  exited: Promise<{ reason: string }>;
}

/**
 * Opens a desktop for a user the broker has authorized: the dialer's TCP path to the device,
 * the vaulted password, and the RFB handshake with the target. Nothing is recorded and no
 * session starts yet (`attach` does, once the user side is ready); a failure is reported to
 * the broker (`connectionFailed`: a failed session row and a `session.start` failure event)
 * and its reason is the message the user is shown. When `signal` aborts (the user hung up),
 * the device's connection is closed and the failure's reason is USER_LEFT_MESSAGE.
 */
export async function openDesktop(o: OpenDesktopOptions): Promise<OpenDesktopResult> {
  let via = { gateway: o.gatewayName, segment: o.target.segment };
  let socket: Duplex | undefined;
  let rendered: RenderedDesktop | undefined;
  const left = (): OpenDesktopResult | undefined => (o.signal?.aborted ? { ok: false, message: USER_LEFT_MESSAGE } : undefined);
  const outcome = await (async (): Promise<OpenDesktopResult> => {
    const gone = left();
    if (gone) return gone;
    let password: string | undefined;
    if (o.source) {
      const released = await o.broker.fetchCredential(o.user, o.target);
      if (!released.allow) return { ok: false, message: released.message };
      const started = await o.source(released.credential);
      if (!started.ok) {
        via = { gateway: started.gateway ?? via.gateway, segment: started.segment ?? via.segment };
        return left() ?? { ok: false, message: started.message };
      }
      rendered = started.desktop;
      via = { gateway: rendered.gateway, segment: rendered.segment };
      socket = rendered.socket;
      password = rendered.password;
    } else {
      const dialed = await o.dial(o.target, { user: o.user, remoteAddress: o.remoteAddress });
      via = { gateway: dialed.gateway, segment: dialed.segment };
      if (!dialed.ok) return left() ?? { ok: false, message: dialed.reason };
      socket = dialed.socket;
      dialed.socket.setNoDelay?.(true);
    }
    // The dial (or the renderer) cannot be called off; what it made for a user who left is closed below.
    const goneSince = left();
    if (goneSince) return goneSince;
    // Errors surface as the handshake's failure (or the proxy's end), never as an uncaught event.
    socket.on('error', () => undefined);
    if (!rendered) {
      const released = await o.broker.fetchCredential(o.user, o.target);
      if (!released.allow) return { ok: false, message: released.message };
      password = released.credential.password;
    }
    const connection = await connectVncTarget(socket, {
      password,
      timeoutMs: o.timeoutMs,
      where: rendered ? `the RDP session's display for ${whereOf(o.target)}` : whereOf(o.target),
      // A renderer's local VNC server offers no certificate to check; the device's is checked by the renderer.
      checkCertificate: async (fingerprint) => !rendered && (await o.broker.checkHostKey(o.target, { algorithm: 'x509', fingerprint })).ok,
      forgetAdvice: forgetKeyAdvice(o.target, 'vnc'),
      signal: o.signal,
      // The renderer's x11vnc waits 100 ms after accepting for a client that speaks first.
      versionFirst: rendered !== undefined,
    });
    return { ok: true, session: new LiveDesktop(o, connection.socket, connection.init, via, rendered) };
  })().catch((error: unknown): OpenDesktopResult => {
    if (error instanceof VncTargetError)
      return error.kind === 'aborted' ? { ok: false, message: USER_LEFT_MESSAGE } : { ok: false, message: error.message };
    o.logger.error({ err: error, deviceId: o.target.deviceId }, 'desktop connection failed with an error');
    return { ok: false, message: 'Gatehouse could not connect to the desktop because of an internal error. Try again.' };
  });
  if (outcome.ok) {
    o.logger.info({ deviceId: o.target.deviceId, gateway: via.gateway, protocol: o.protocol }, 'connected to the desktop');
    return outcome;
  }
  socket?.destroy();
  await rendered?.close(outcome.message);
  await reportFailure(o, via, outcome.message);
  return outcome;
}

function reportFailure(o: OpenDesktopOptions, via: { gateway: string; segment: string | null }, reason: string): Promise<void> {
  return o.broker
    .connectionFailed({
      user: o.user,
      target: o.target,
      gateway: via.gateway,
      segment: via.segment,
      remoteAddress: o.remoteAddress,
      at: new Date().toISOString(),
      reason,
    })
    .catch((error: unknown) => o.logger.error({ err: error }, 'could not record a failed desktop connection'));
}

/**
 * A desktop whose target handshake succeeded. `attach` joins the user's side (whose RFB
 * handshake is done up to ServerInit): the recording opens, the session starts, and the
 * proxy relays until either side closes or `end` is called. `abandon` gives it up before
 * that (the user left): a failed connection, nothing recorded.
 */
export class LiveDesktop {
  readonly id = randomUUID();
  /** The name the user's viewer shows: `project/device:account`. */
  readonly name: string;
  private proxy: RfbProxy | undefined;
  private endReason: string | undefined;
  /** attach() was called: from then on it ends the session itself. */
  private attaching = false;
  private abandoning: Promise<void> | undefined;
  private settled = false;
  private finishedResolve!: () => void;
  /** Resolves once the session ended and the broker was told (or it was abandoned). */
  readonly finished = new Promise<void>((resolve) => (this.finishedResolve = resolve));

  constructor(
    private readonly o: OpenDesktopOptions,
    private readonly target: Duplex,
    readonly init: RfbServerInit,
    private readonly via: { gateway: string; segment: string | null },
    private readonly rendered?: RenderedDesktop,
  ) {
    this.name = `${o.target.projectName}/${o.target.deviceName}:${o.target.accountUsername}`;
    target.on('error', () => undefined);
    o.sessions.add(this);
  }

  /**
   * The user's side is ready for ServerInit: records and relays until the session ends.
   * `firstUpdate` is called once the device's first framebuffer update went to the user.
   */
  async attach(user: Duplex, firstUpdate?: () => void): Promise<RfbProxyResult> {
    const { o } = this;
    this.attaching = true;
    if (this.endReason !== undefined) {
      await this.abandon(this.endReason);
      user.destroy();
      return { bytesIn: 0, bytesOut: 0, reason: this.endReason, result: 'failure' };
    }
    const startedAt = new Date();
    const relative = rfbRecordingPath(this.id, startedAt);
    let recorder: RfbRecorder | undefined;
    try {
      recorder = await RfbRecorder.open(o.recordingsDir, relative, {
        format: RFB_RECORDING_FORMAT,
        version: RFB_RECORDING_VERSION,
        width: this.init.width,
        height: this.init.height,
        name: this.name,
        pixelFormat: Buffer.from(this.init.pixelFormat).toString('hex'),
        startedAt: startedAt.toISOString(),
        protocol: o.protocol,
      });
      await o.broker.sessionStarted({
        id: this.id,
        user: o.user,
        target: o.target,
        gateway: this.via.gateway,
        segment: this.via.segment,
        kind: o.protocol,
        command: null,
        remoteAddress: o.remoteAddress,
        startedAt: startedAt.toISOString(),
        recording: relative,
      });
    } catch (error) {
      o.logger.error({ err: error, sessionId: this.id }, 'could not start a desktop session');
      await recorder?.close().catch(() => undefined);
      await rm(path.join(o.recordingsDir, relative), { force: true }).catch(() => undefined);
      user.destroy();
      const reason = 'Gatehouse could not start recording the session. Try again, or ask an administrator.';
      await this.abandon(reason);
      return { bytesIn: 0, bytesOut: 0, reason, result: 'failure' };
    }
    sendServerInit(user, this.init, this.name);
    const proxy = new RfbProxy({ user, target: this.target, init: this.init, recorder, logger: o.logger, onFirstUpdate: firstUpdate });
    this.proxy = proxy;
    // Ended while the session was starting: end it now, so its row says why.
    if (this.endReason !== undefined) proxy.end(this.endReason);
    let result = await proxy.done.catch((error: unknown): RfbProxyResult => {
      o.logger.error({ err: error, sessionId: this.id }, 'desktop proxy failed');
      return { bytesIn: 0, bytesOut: 0, reason: 'The gateway failed while relaying the session.', result: 'failure' };
    });
    user.destroy();
    this.target.destroy();
    if (this.rendered) {
      await this.rendered.close(result.reason ?? 'The session ended.');
      // The renderer's display went away under the proxy: the renderer says why (the device ended the RDP connection).
      if (result.reason === TARGET_CLOSED) result = { ...result, reason: (await this.rendered.exited).reason };
    }
    await recorder.close().catch((error: unknown) => o.logger.error({ err: error, sessionId: this.id }, 'could not close a recording'));
    o.sessions.delete(this);
    await o.broker
      .sessionEnded(this.id, {
        endedAt: new Date().toISOString(),
        bytesIn: result.bytesIn,
        bytesOut: result.bytesOut,
        result: result.result,
        exitStatus: null,
        reason: result.reason,
      })
      .catch((error: unknown) => o.logger.error({ err: error, sessionId: this.id }, 'could not record the end of a desktop session'));
    this.settle();
    return result;
  }

  /** Gives the desktop up before it started (the user left, or their handshake failed): a failed connection, no recording. */
  abandon(reason: string): Promise<void> {
    if (this.settled) return Promise.resolve();
    this.abandoning ??= (async () => {
      this.target.destroy();
      this.o.sessions.delete(this);
      await this.rendered?.close(reason);
      await reportFailure(this.o, this.via, reason);
      this.settle();
    })();
    return this.abandoning;
  }

  /**
   * Ends the session (an administrator, a closed maintenance window, the gateway stopping);
   * resolves once it ended. A desktop whose user is still in the RFB handshake is given up
   * at once (a failed connection with `reason`), rather than after the handshake.
   */
  end(reason: string): Promise<void> {
    this.endReason ??= reason;
    if (this.proxy) this.proxy.end(reason);
    else if (!this.attaching) void this.abandon(this.endReason);
    return this.finished;
  }

  private settle(): void {
    this.settled = true;
    this.finishedResolve();
  }
}

/**
 * The live desktops of one gateway (its VNC port and the console's desktop WebSocket), by
 * session id: what `/sessions/:id/end`, maintenance windows and the gateway's stop reach.
 */
export class DesktopSessions implements LiveSessions {
  private readonly live = new Map<string, LiveDesktop>();

  add(desktop: LiveDesktop): void {
    this.live.set(desktop.id, desktop);
  }

  delete(desktop: LiveDesktop): void {
    this.live.delete(desktop.id);
  }

  get size(): number {
    return this.live.size;
  }

  /** Ends the session with `reason` (its row keeps it); false when no desktop has that id here. */
  async endSession(id: string, reason: string): Promise<boolean> {
    const desktop = this.live.get(id);
    if (!desktop) return false;
    await desktop.end(reason);
    return true;
  }

  /** A desktop has nowhere to show text without taking over the user's screen: nothing is shown. */
  async warnSession(id: string): Promise<boolean> {
    return this.live.has(id);
  }

  /** Ends every live desktop (the gateway stops); resolves once their ends are recorded. */
  async endAll(reason: string): Promise<void> {
    await Promise.all([...this.live.values()].map((d) => d.end(reason)));
  }
}
