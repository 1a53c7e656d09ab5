import net from 'node:net';
import tls from 'node:tls';
import {
  AGENT_PROTOCOL_VERSION,
  encodeFrame,
  FrameReader,
  parseAgentAddress,
  parseGatewayFrame,
  verifyAgentGateways,
  type AgentFrame,
  type AgentGateway,
  type AgentGatewayList,
  type GatewayFrame,
} from '@gatehouse/core/agent-protocol';
import { linkIdentityOf, publicKeyOfCertificate, type LinkIdentity } from '@gatehouse/gateway/identity';
import type { AgentLogger } from './log.js';
import { writeAgentState, type LoadedAgent } from './state.js';

export interface AgentLinkOptions {
  agent: LoadedAgent;
  version: string;
  hostname: string;
  logger: AgentLogger;
  /**
   * A gateway's `open`: when set, the link does not dial back; the caller does (the agent's
   * main process starts a session process that dials `entry` and sends `attach` with `ref`).
   */
  onOpen?(entry: AgentGateway, ref: string): void;
  /** Without `onOpen`: a data connection the link dialled back that sent `attach`; the gateway speaks SSH on it next. */
  onAttach?(socket: tls.TLSSocket, gateway: string): void;
  /** Full-jitter backoff: the first delay is up to `baseDelayMs`, doubling to `capDelayMs`. */
  baseDelayMs?: number;
  capDelayMs?: number;
  /** How long a gateway may take to connect and finish TLS before the next one is tried. */
  connectTimeoutMs?: number;
  /** The wait after a gateway said `bye {retry: false}` (the agent is revoked or unknown). */
  refusedDelayMs?: number;
}

/** Data connections one link keeps at most (pending dial-backs and sessions) when it dials back itself: a flood of `open` dials no more. */
const MAX_DATA_CONNECTIONS = 64;
/** The longest heartbeat interval the agent takes from a gateway. */
const MAX_HEARTBEAT_MS = 60_000;
/** Silence allowed before `welcome`, as three heartbeats of the default 5 s. */
const WELCOME_TIMEOUT_MS = 15_000;

type Ending =
  /** A link that was up ended (silence, the gateway closed it, `bye` with retry): the same gateway again after the base delay. */
  | { kind: 'dropped' }
  /** No link came up, or the gateway broke the protocol: the next gateway at once. */
  | { kind: 'failed' }
  | { kind: 'refused' };

/**
 * The agent's control connection. Dials the gateways of the signed list in order over
 * TLS 1.3 with the agent's key as client certificate, and sends nothing to one whose
 * certificate does not carry the key the list names. Answers pings, dials back for each
 * `open` (or leaves that to `onOpen`), keeps a newer signed list the gateway passes on, and
 * reconnects with full-jitter backoff. Anything unexpected from the gateway drops the link
 * with one log line.
 */
export class AgentLink {
  private list: AgentGatewayList;
  private readonly identity: LinkIdentity;
  private readonly o: Required<Omit<AgentLinkOptions, 'agent' | 'logger' | 'onOpen' | 'onAttach'>> & AgentLinkOptions;
  private control: tls.TLSSocket | undefined;
  private readonly data = new Set<net.Socket>();
  private pendingDials = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  /** The gateway to try next, and how many of the list failed in this round. */
  private index = 0;
  private triedThisRound = 0;
  /** Rounds in a row in which every gateway failed. */
  private failedRounds = 0;
  private up: string | undefined;

  constructor(options: AgentLinkOptions) {
    this.o = { baseDelayMs: 500, capDelayMs: 10_000, connectTimeoutMs: 5_000, refusedDelayMs: 300_000, ...options };
    this.list = options.agent.gateways;
    this.identity = linkIdentityOf(options.agent.privateKey, 'gatehouse-agent');
  }

  /** The gateway the link is up to, by name. */
  get linkedTo(): string | undefined {
    return this.up;
  }

  /** The gateway list in use (the newest the server signed that the agent has seen). */
  get gateways(): AgentGatewayList {
    return this.list;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.connect();
  }

  /** Ends the link and every data connection; nothing reconnects. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.control?.destroy();
    for (const socket of this.data) socket.destroy();
  }

  private async connect(): Promise<void> {
    const entry = this.list.gateways[this.index % this.list.gateways.length] as AgentGateway;
    let socket: tls.TLSSocket;
    try {
      socket = await dialGateway(entry, this.identity, this.o.connectTimeoutMs);
    } catch (error) {
      this.o.logger.warn('gateway not reached', { gateway: entry.name, address: entry.address, reason: (error as Error).message });
      this.ended({ kind: 'failed' });
      return;
    }
    if (this.stopped) {
      socket.destroy();
      return;
    }
    this.serve(socket, entry);
  }

  private serve(socket: tls.TLSSocket, entry: AgentGateway): void {
    this.control = socket;
    const reader = new FrameReader();
    let welcomed = false;
    let ending: Ending = { kind: 'failed' };
    let silence: NodeJS.Timeout | undefined;
    const listen = (ms: number) => {
      clearTimeout(silence);
      silence = setTimeout(() => drop(`no frame for ${ms} ms`), ms);
    };
    const drop = (reason: string) => {
      this.o.logger.warn('link dropped', { gateway: entry.name, reason });
      socket.destroy();
    };
    // A gateway that breaks the protocol failed, even after welcome: the next one is tried, with backoff.
    const hostile = (reason: string) => {
      ending = { kind: 'failed' };
      drop(reason);
    };
    const send = (frame: AgentFrame) => socket.write(encodeFrame(frame));
    let heartbeatMs = WELCOME_TIMEOUT_MS / 3;

    const handle = (frame: GatewayFrame): void => {
      switch (frame.t) {
        case 'welcome': {
          if (welcomed) return hostile('the gateway sent a second welcome');
          const adopted = this.adopt(frame.gateways, entry);
          if (!adopted.ok) return hostile(`the gateway sent a gateway list that does not verify (${adopted.reason})`);
          welcomed = true;
          // Bounded: a huge value would overflow the silence timer, which then fires at once.
          heartbeatMs = Math.min(frame.heartbeatMs, MAX_HEARTBEAT_MS);
          ending = { kind: 'dropped' };
          this.up = entry.name;
          this.failedRounds = 0;
          this.triedThisRound = 0;
          this.o.logger.info('link up', { gateway: entry.name, address: entry.address, via: frame.gateway });
          return;
        }
        case 'ping':
          if (!welcomed) return hostile('the gateway sent a ping before welcome');
          send({ t: 'pong', n: frame.n });
          return;
        case 'open':
          if (!welcomed) return hostile('the gateway sent an open before welcome');
          if (this.o.onOpen) this.o.onOpen(entry, frame.ref);
          else void this.attach(entry, frame.ref);
          return;
        case 'bye':
          this.o.logger[frame.retry ? 'warn' : 'error']('the gateway ended the link', {
            gateway: entry.name,
            reason: frame.reason.slice(0, 200),
            retry: frame.retry,
          });
          if (!frame.retry) ending = { kind: 'refused' };
          socket.destroy();
          return;
      }
    };

    socket.on('data', (chunk: Buffer) => {
      const pushed = reader.push(chunk);
      if (!pushed.ok) return hostile(`the gateway sent ${pushed.reason}`);
      for (const line of pushed.lines) {
        const parsed = parseGatewayFrame(line);
        if (!parsed.ok) return hostile(`the gateway sent ${parsed.reason}`);
        handle(parsed.frame);
        if (socket.destroyed) return;
        listen(3 * heartbeatMs);
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) =>
      this.o.logger.warn('link error', { gateway: entry.name, reason: error.code ?? error.message }),
    );
    socket.once('close', () => {
      clearTimeout(silence);
      if (this.control === socket) this.control = undefined;
      if (this.up === entry.name) this.o.logger.info('link down', { gateway: entry.name });
      this.up = undefined;
      // Sessions are left to the gateway, which ends them with the link and tells the user why.
      this.ended(ending);
    });
    listen(WELCOME_TIMEOUT_MS);
    send({
      t: 'hello',
      v: AGENT_PROTOCOL_VERSION,
      agentId: this.o.agent.state.agentId,
      version: this.o.version,
      hostname: this.o.hostname,
    });
  }

  /** Checks a gateway list from `welcome` and keeps it (agent.json too) when it is newer than the one in use. */
  private adopt(token: string, current: AgentGateway): { ok: true } | { ok: false; reason: string } {
    const { state } = this.o.agent;
    const checked = verifyAgentGateways(token, { serverKey: state.serverKey, agentId: state.agentId });
    if (!checked.ok) return checked;
    if (checked.list.gateways.length === 0) return { ok: false, reason: 'no gateway in it' };
    if (!(Date.parse(checked.list.issuedAt) > Date.parse(this.list.issuedAt))) return { ok: true };
    this.list = checked.list;
    const at = checked.list.gateways.findIndex((g) => g.address === current.address && g.key === current.key);
    this.index = Math.max(at, 0);
    try {
      writeAgentState(this.o.agent.stateDir, { ...state, gateways: token });
      this.o.agent.state = { ...state, gateways: token };
      this.o.logger.info('gateway list updated', { gateways: checked.list.gateways.map((g) => g.name), issuedAt: checked.list.issuedAt });
    } catch (error) {
      this.o.logger.error('the new gateway list could not be saved', { reason: (error as NodeJS.ErrnoException).code ?? String(error) });
    }
    return { ok: true };
  }

  /** Dials the gateway back for a session and hands the connection on after `attach`. */
  private async attach(entry: AgentGateway, ref: string): Promise<void> {
    if (this.data.size + this.pendingDials >= MAX_DATA_CONNECTIONS) {
      this.o.logger.warn('open refused: too many data connections', { gateway: entry.name, max: MAX_DATA_CONNECTIONS });
      return;
    }
    this.pendingDials++;
    let socket: tls.TLSSocket;
    try {
      socket = await dialGateway(entry, this.identity, this.o.connectTimeoutMs);
    } catch (error) {
      this.o.logger.warn('dial-back failed', { gateway: entry.name, reason: (error as Error).message });
      return;
    } finally {
      this.pendingDials--;
    }
    if (this.stopped || this.control === undefined) {
      socket.destroy();
      return;
    }
    this.data.add(socket);
    socket.once('close', () => this.data.delete(socket));
    socket.write(encodeFrame({ t: 'attach', v: AGENT_PROTOCOL_VERSION, agentId: this.o.agent.state.agentId, ref }));
    if (this.o.onAttach) this.o.onAttach(socket, entry.name);
    else socket.destroy();
  }

  /** What comes after a control connection ended (or never came up). */
  private ended(ending: Ending): void {
    if (this.stopped) return;
    const n = this.list.gateways.length;
    switch (ending.kind) {
      case 'dropped':
        this.failedRounds = 0;
        this.triedThisRound = 0;
        this.schedule(this.delay(0));
        return;
      case 'refused':
        this.schedule(this.o.refusedDelayMs);
        return;
      case 'failed':
        this.index = (this.index + 1) % n;
        this.triedThisRound++;
        if (this.triedThisRound < n) {
          void this.connect();
          return;
        }
        this.triedThisRound = 0;
        this.schedule(this.delay(this.failedRounds++));
        return;
    }
  }

  /** Full jitter: uniformly up to base × 2^attempt, at most the cap. */
  private delay(attempt: number): number {
    return Math.floor(Math.random() * Math.min(this.o.capDelayMs, this.o.baseDelayMs * 2 ** Math.min(attempt, 30)));
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.connect(), ms);
  }
}

/**
 * A TLS 1.3 connection to a gateway of the signed list that has passed the pin: its
 * certificate carries the key the list names for it, checked before anything is sent. The
 * agent's link identity is the client certificate. Rejects with a reason fit for the log.
 */
export function dialGateway(entry: AgentGateway, identity: LinkIdentity, timeoutMs: number): Promise<tls.TLSSocket> {
  const address = parseAgentAddress(entry.address);
  if (!address) return Promise.reject(new Error(`the list's address ${JSON.stringify(entry.address)} is not host:port`));
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: address.host,
      port: address.port,
      ...(net.isIP(address.host) ? {} : { servername: address.host }),
      cert: identity.certificate,
      key: identity.privateKey,
      // No CA: the pin below is the whole check, and every connection must pass it.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
    });
    const fail = (reason: string) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(reason));
    };
    const timer = setTimeout(() => fail(`no TLS answer within ${timeoutMs} ms`), timeoutMs);
    const onError = (error: NodeJS.ErrnoException) => fail(`cannot connect (${error.code ?? error.message})`);
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate();
      if (!cert || publicKeyOfCertificate(cert) !== entry.key) {
        fail('the gateway presented a key that is not the one the signed list names; nothing was sent');
        return;
      }
      clearTimeout(timer);
      socket.off('error', onError);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}
