import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import {
  AGENT_MAX_FRAME_BYTES,
  encodeFrame,
  FrameReader,
  parseAgentFrame,
  type AgentFrame,
  type GatewayFrame,
  type SignedToken,
} from '@gatehouse/core/agent-protocol';
import { GatehouseError } from '@gatehouse/core';
import type { GatewayLogger } from './gateway.js';
import { publicKeyOfCertificate, type LinkIdentity } from './identity.js';

/** What the agent said in its `hello`, and the key its TLS certificate carries (base64 SPKI DER). */
export interface AgentHello {
  agentId: string;
  version: string;
  hostname: string;
  peerKey: string;
  remoteAddress: string;
  /** The host name the agent dialed (TLS server name), else the address it reached. */
  reachedHost: string;
}

export type AgentLinkDecision = { ok: true; gateways: SignedToken } | { ok: false; reason: string };

export interface AgentLinkServerOptions {
  /** The key and certificate agents pin (from the signed gateway list). */
  identity: LinkIdentity;
  host: string;
  /** 0: any free port (see `port` once listening). */
  port: number;
  /** This gateway's name, as the gateway list and `welcome` name it (a remote gateway learns it from its server link). */
  name: string | (() => string);
  logger: GatewayLogger;
  /**
   * Is this a known, active agent whose enrolled key is `peerKey`? The answer carries a
   * freshly signed gateway list; a refusal's reason is sent in `bye` (and audited by the caller).
   */
  authenticate(hello: AgentHello): Promise<AgentLinkDecision>;
  /** The agent's link came up (with the version its hello gave) or went down. */
  linkChanged(agentId: string, state: 'up' | 'down', version?: string): void | Promise<void>;
  /** The agent answered a ping: at most once per `contactEveryMs`. */
  contact(agentId: string): void | Promise<void>;
  /** Ping interval; a link silent for 3 × this is dropped. Default 5000. */
  heartbeatMs?: number;
  /** Default 30 000. */
  contactEveryMs?: number;
  /** How long a new connection may take to send its first frame. Default 10 000. */
  firstFrameTimeoutMs?: number;
}

/** The agent is not linked, did not attach in time, or its link went while waiting. */
export class AgentLinkError extends GatehouseError {
  constructor(message: string) {
    super('UNREACHABLE', message);
    this.name = 'AgentLinkError';
  }
}

interface PendingAttach {
  resolve(socket: tls.TLSSocket): void;
  reject(error: AgentLinkError): void;
  timer: NodeJS.Timeout;
}

interface Link {
  agentId: string;
  peerKey: string;
  socket: tls.TLSSocket;
  lastSeen: number;
  lastContact: number;
  ping: NodeJS.Timeout;
  n: number;
  pending: Map<string, PendingAttach>;
  data: Set<tls.TLSSocket>;
}

/** Why a data connection (a session's leg) was closed by the link server, for the session's end reason. */
const closedReasons = new WeakMap<Duplex, string>();

/** Why the link server closed this data connection (the agent's link was lost or dropped), if it did. */
export function agentLinkClosedReason(socket: Duplex): string | undefined {
  return closedReasons.get(socket);
}

/**
 * The gateway's end of host agents' links (docs/AGENTS.md): a TLS 1.3 listener where each
 * agent keeps one control connection (`hello`, then pings) and dials a data connection
 * (`attach`) for every session the gateway opens on it. Holds no database: who may link,
 * and what a link's state means, are the callbacks'.
 */
export class AgentLinkServer {
  private readonly links = new Map<string, Link>();
  private readonly heartbeatMs: number;
  private readonly contactEveryMs: number;
  private readonly firstFrameTimeoutMs: number;
  private readonly sockets = new Set<tls.TLSSocket>();
  private readonly recording = new Map<string, Promise<void>>();

  private constructor(
    private readonly opts: AgentLinkServerOptions,
    private readonly server: tls.Server,
  ) {
    this.heartbeatMs = opts.heartbeatMs ?? 5000;
    this.contactEveryMs = opts.contactEveryMs ?? 30_000;
    this.firstFrameTimeoutMs = opts.firstFrameTimeoutMs ?? 10_000;
    server.on('secureConnection', (socket) => this.accept(socket));
    // A failed handshake (no TLS 1.3, garbage): nothing to serve, nothing worth more than debug.
    server.on('tlsClientError', (error, socket) => {
      opts.logger.debug({ err: error, remoteAddress: socket.remoteAddress }, 'agent link: TLS handshake failed');
      socket.destroy();
    });
  }

  static async start(opts: AgentLinkServerOptions): Promise<AgentLinkServer> {
    const server = tls.createServer({
      key: opts.identity.privateKey,
      cert: opts.identity.certificate,
      minVersion: 'TLSv1.3',
      // The agent's certificate is only the carrier of its key, which is checked against the enrolled one.
      requestCert: true,
      rejectUnauthorized: false,
    });
    const links = new AgentLinkServer(opts, server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return links;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  isLinked(agentId: string): boolean {
    return this.links.has(agentId);
  }

  /**
   * A new connection to the agent's device: asks the agent over its control connection to
   * dial back, and answers the data connection that attached with the reference (its first
   * SSH bytes, if any came with the `attach` line, put back in front).
   */
  open(agentId: string, timeoutMs: number): Promise<Duplex> {
    const link = this.links.get(agentId);
    if (!link) return Promise.reject(new AgentLinkError('The agent is not connected.'));
    const ref = randomBytes(16).toString('base64url');
    return new Promise<Duplex>((resolve, reject) => {
      const timer = setTimeout(() => {
        link.pending.delete(ref);
        reject(new AgentLinkError(`The agent did not open a session connection within ${Math.round(timeoutMs / 1000)} s.`));
      }, timeoutMs);
      link.pending.set(ref, { resolve, reject, timer });
      send(link.socket, { t: 'open', ref });
    });
  }

  /** Ends the agent's link for good (revoked): `bye` without retry, and its sessions' connections closed. */
  drop(agentId: string, reason: string): void {
    const link = this.links.get(agentId);
    if (!link) return;
    this.opts.logger.info({ agentId, reason }, 'agent link dropped');
    this.lose(link, `The agent's link was dropped: ${reason}`);
    bye(link.socket, reason, false);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const link of [...this.links.values()]) this.lose(link, 'The gateway is stopping.');
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private accept(socket: tls.TLSSocket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', (error: Error) =>
      this.opts.logger.debug({ err: error, remoteAddress: socket.remoteAddress }, 'agent link socket error'),
    );
    const cert = socket.getPeerX509Certificate();
    if (!cert) return this.hostile(socket, undefined, 'no client certificate');
    const peerKey = publicKeyOfCertificate(cert);
    const timer = setTimeout(() => this.hostile(socket, undefined, 'no first frame in time'), this.firstFrameTimeoutMs);
    socket.once('close', () => clearTimeout(timer));
    // The first line as bytes: on a data connection what follows it is SSH, not text.
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const at = buffered.indexOf(0x0a);
      if (at < 0) {
        if (buffered.length >= AGENT_MAX_FRAME_BYTES) {
          clearTimeout(timer);
          socket.off('data', onData);
          this.hostile(socket, undefined, 'an oversized frame');
        }
        return;
      }
      clearTimeout(timer);
      socket.pause();
      socket.off('data', onData);
      const parsed = parseAgentFrame(buffered.subarray(0, at).toString('utf8'));
      const rest = buffered.subarray(at + 1);
      if (!parsed.ok) return this.hostile(socket, undefined, parsed.reason);
      const frame = parsed.frame;
      if (frame.t === 'hello') return void this.control(socket, frame, peerKey, rest);
      if (frame.t === 'attach') return this.attach(socket, frame, peerKey, rest);
      return this.hostile(socket, undefined, `a ${frame.t} frame before hello or attach`);
    };
    socket.on('data', onData);
  }

  private async control(socket: tls.TLSSocket, hello: Extract<AgentFrame, { t: 'hello' }>, peerKey: string, rest: Buffer): Promise<void> {
    const { agentId } = hello;
    // Nothing is expected from the agent before welcome.
    if (rest.toString('utf8').trim() !== '') return this.hostile(socket, agentId, 'a frame before welcome');
    let decision: AgentLinkDecision;
    try {
      decision = await this.opts.authenticate({
        agentId,
        version: hello.version,
        hostname: hello.hostname,
        peerKey,
        remoteAddress: socket.remoteAddress ?? '',
        reachedHost: reachedHostOf(socket),
      });
    } catch (error) {
      this.opts.logger.error({ err: error, agentId }, 'agent link: could not check the agent');
      return bye(socket, 'The gateway could not check the agent; try again.', true);
    }
    if (socket.destroyed) return;
    if (!decision.ok) {
      this.opts.logger.warn({ agentId, remoteAddress: socket.remoteAddress, reason: decision.reason }, 'agent link refused');
      return bye(socket, decision.reason, false);
    }
    // A second link of the same agent (it reconnected before the old one timed out) replaces the first.
    const old = this.links.get(agentId);
    if (old) {
      this.lose(old, "The agent's link was replaced by a new one.");
      old.socket.destroy();
    }
    const now = Date.now();
    const link: Link = {
      agentId,
      peerKey,
      socket,
      lastSeen: now,
      lastContact: now,
      n: 0,
      pending: new Map(),
      data: new Set(),
      ping: setInterval(() => this.heartbeat(link), this.heartbeatMs),
    };
    link.ping.unref();
    this.links.set(agentId, link);
    const name = typeof this.opts.name === 'function' ? this.opts.name() : this.opts.name;
    send(socket, { t: 'welcome', gateway: name, gateways: decision.gateways, heartbeatMs: this.heartbeatMs });
    this.notify(agentId, 'up', hello.version);
    this.opts.logger.info(
      { agentId, version: hello.version, hostname: hello.hostname, remoteAddress: socket.remoteAddress },
      'agent linked',
    );
    const reader = new FrameReader();
    socket.on('data', (chunk: Buffer) => {
      const read = reader.push(chunk);
      if (!read.ok) return this.hostile(socket, agentId, read.reason);
      for (const line of read.lines) {
        const parsed = parseAgentFrame(line);
        if (!parsed.ok) return this.hostile(socket, agentId, parsed.reason);
        if (parsed.frame.t !== 'pong')
          return this.hostile(socket, agentId, `an unexpected ${parsed.frame.t} frame on the control connection`);
        this.pong(link);
      }
    });
    socket.once('close', () => {
      if (this.links.get(agentId) !== link) return;
      this.lose(link, "The agent's link was lost.");
      this.opts.logger.info({ agentId }, 'agent link lost');
    });
    socket.resume();
  }

  private attach(socket: tls.TLSSocket, frame: Extract<AgentFrame, { t: 'attach' }>, peerKey: string, rest: Buffer): void {
    const link = this.links.get(frame.agentId);
    const pending = link?.pending.get(frame.ref);
    if (!link || !pending) return this.hostile(socket, frame.agentId, 'an attach with an unknown reference');
    if (link.peerKey !== peerKey) return this.hostile(socket, frame.agentId, 'an attach with another key than the link’s');
    link.pending.delete(frame.ref);
    clearTimeout(pending.timer);
    link.data.add(socket);
    socket.once('close', () => link.data.delete(socket));
    if (rest.length > 0) socket.unshift(rest);
    // Paused: the SSH client that takes it resumes it once it reads.
    pending.resolve(socket);
  }

  private heartbeat(link: Link): void {
    if (Date.now() - link.lastSeen > 3 * this.heartbeatMs) {
      this.opts.logger.warn({ agentId: link.agentId }, 'agent link silent for three heartbeats; dropping it');
      link.socket.destroy();
      return;
    }
    send(link.socket, { t: 'ping', n: ++link.n });
  }

  private pong(link: Link): void {
    const now = Date.now();
    link.lastSeen = now;
    if (now - link.lastContact < this.contactEveryMs) return;
    link.lastContact = now;
    void Promise.resolve()
      .then(() => this.opts.contact(link.agentId))
      .catch((error: unknown) => this.opts.logger.error({ err: error, agentId: link.agentId }, 'could not record agent contact'));
  }

  /** The link is gone: out of the registry, its waiting opens refused and its sessions' connections closed. */
  private lose(link: Link, reason: string): void {
    if (this.links.get(link.agentId) !== link) return;
    this.links.delete(link.agentId);
    clearInterval(link.ping);
    for (const p of link.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new AgentLinkError(reason));
    }
    link.pending.clear();
    for (const data of link.data) {
      closedReasons.set(data, reason);
      data.destroy();
    }
    this.notify(link.agentId, 'down');
  }

  /** One agent's state changes are recorded in the order they happened (a replaced link's down before the new one's up). */
  private notify(agentId: string, state: 'up' | 'down', version?: string): void {
    const recorded = (this.recording.get(agentId) ?? Promise.resolve())
      .then(() => this.opts.linkChanged(agentId, state, version))
      .catch((error: unknown) => this.opts.logger.error({ err: error, agentId, state }, 'could not record the agent link state'));
    this.recording.set(agentId, recorded);
    void recorded.then(() => {
      if (this.recording.get(agentId) === recorded) this.recording.delete(agentId);
    });
  }

  /** Hostile or broken input: the connection goes, with one log line naming why (never the frame). */
  private hostile(socket: tls.TLSSocket, agentId: string | undefined, reason: string): void {
    this.opts.logger.warn({ agentId, remoteAddress: socket.remoteAddress, reason }, 'agent link: dropped a connection');
    socket.destroy();
  }
}

function reachedHostOf(socket: tls.TLSSocket): string {
  const servername = (socket as tls.TLSSocket & { servername?: string | false }).servername;
  if (typeof servername === 'string' && servername !== '') return servername;
  return (socket.localAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
}

function send(socket: tls.TLSSocket, frame: GatewayFrame): void {
  if (!socket.destroyed && socket.writable) socket.write(encodeFrame(frame));
}

/** `bye`, then the connection ends (destroyed if the agent does not close it within 2 s). */
function bye(socket: tls.TLSSocket, reason: string, retry: boolean): void {
  if (socket.destroyed) return;
  socket.end(encodeFrame({ t: 'bye', reason, retry }));
  setTimeout(() => socket.destroy(), 2000).unref();
}
