import { createReadStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { GatewayLogger } from './gateway.js';
import { fingerprintOfSpki, publicKeyOfCertificate, type LinkIdentity } from './identity.js';
import { connectSocket } from './dial.js';
import { RECORDING_PATH, type LinkProcedure } from './link-procedures.js';
import type { AgentLinkServer } from './agent-links.js';
import { GatehouseError, isErrorCode, RFB_RECORDING_MEDIA_TYPE } from '@gatehouse/core';

/** What a gateway answers to the server's status sync. */
export interface GatewayStatusReport {
  version: string;
  startedAt: string;
  /** Connections the gateway relays to devices right now. */
  openRelays: number;
  /**
   * `host:port` where this gateway's agent listener takes host agents' links (`*:port`: at the
   * host the server reaches the gateway by); null when it has none.
   */
  agentAddress?: string | null;
}

/** The header a refused relay carries: the socket error code of the device connection. */
export const RELAY_ERROR_HEADER = 'x-gatehouse-error';
/** On `CONNECT`: relay to this host agent's device over its link to this gateway, not to host:port. */
export const RELAY_AGENT_HEADER = 'x-gatehouse-agent';
/** The relay error code of a host agent that is not linked here (or did not attach in time). */
export const AGENT_UNLINKED = 'EAGENTLINK';

/** What the management endpoint asks of the gateway's own SSH entry (an SshGateway). */
export interface LiveSessions {
  endSession(id: string, reason: string): Promise<boolean>;
  warnSession(id: string, text: string): Promise<boolean>;
}

export interface ManagementServerOptions {
  identity: LinkIdentity;
  /** The server's public key (base64 SPKI); a peer presenting another key is refused. */
  serverKey: string;
  host: string;
  port: number;
  version: string;
  logger: GatewayLogger;
  /** How long a device may take to accept a relayed TCP connection. */
  targetTimeoutMs?: number;
  /** Milliseconds between the keep-alive lines of the server's link. */
  watchIntervalMs?: number;
  /** Where this gateway's own SSH entry keeps recordings until the server has them. */
  recordingsDir?: string;
}

/** A line on the link, from the gateway: a keep-alive, or a call for the server to answer. */
export type LinkDown = ({ t: 'status' } & GatewayStatusReport) | { t: 'call'; id: number; procedure: LinkProcedure; input: unknown };
/** A line on the link, from the server: who the gateway is, or an answer. */
export type LinkUp =
  | { t: 'hello'; name: string; segment: string | null; recordInput?: boolean; recordBinaryExec?: boolean }
  | { t: 'result'; id: number; ok: true; value: unknown }
  | { t: 'result'; id: number; ok: false; error: string; code?: string };

/** One open link to a server (one per server replica). */
class Link {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  hello: { name: string; segment: string | null; recordInput: boolean; recordBinaryExec: boolean } | undefined;

  constructor(
    private readonly res: ServerResponse,
    readonly opened = Date.now(),
  ) {}

  send(line: LinkDown): void {
    this.res.write(`${JSON.stringify(line)}\n`);
  }

  call(procedure: LinkProcedure, input: unknown, timeoutMs: number): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new GatehouseError('UNREACHABLE', `The Gatehouse server did not answer ${procedure} in time.`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.send({ t: 'call', id, procedure, input });
    });
  }

  receive(line: LinkUp): void {
    if (line.t === 'hello') {
      this.hello = {
        name: String(line.name),
        segment: line.segment ?? null,
        recordInput: line.recordInput === true,
        recordBinaryExec: line.recordBinaryExec === true,
      };
      return;
    }
    const waiter = this.waiting.get(line.id);
    if (!waiter) return;
    this.waiting.delete(line.id);
    if (line.ok) waiter.resolve(line.value);
    // The server's code comes along, so a refusal stays what it was (a ticket not known, a malformed input).
    else waiter.reject(new GatehouseError(isErrorCode(line.code) ? line.code : 'BAD_GATEWAY', String(line.error)));
  }

  close(): void {
    for (const w of this.waiting.values()) w.reject(new GatehouseError('UNREACHABLE', 'The link to the Gatehouse server closed.'));
    this.waiting.clear();
  }
}

/**
 * A remote gateway's management endpoint: HTTPS with both sides pinned by key. The
 * server syncs the status (`GET /v1/status`), holds a watch stream open so a stopped
 * gateway is noticed at once (`GET /v1/watch`), and opens TCP relays to devices with
 * HTTP `CONNECT host:port`. Nothing else is served, and nobody but the pinned server
 * gets an answer beyond "not trusted".
 */
export class ManagementServer {
  private readonly server: https.Server;
  private readonly relays = new Set<Duplex>();
  private readonly links = new Set<Link>();
  private readonly startedAt = new Date().toISOString();

  private constructor(private readonly options: Required<ManagementServerOptions>) {
    this.server = https.createServer({
      key: options.identity.privateKey,
      cert: options.identity.certificate,
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
    });
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
    this.server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onConnect(req, socket, head));
    this.server.on('tlsClientError', (error) => options.logger.debug({ err: error }, 'management TLS handshake failed'));
    // A stalled peer must not hold a socket forever.
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 0;
  }

  /** The live sessions of this gateway's own SSH entry (set once the entry listens). */
  liveSessions: LiveSessions | undefined;
  /** This gateway's agent listener (set once it listens), and the address agents are told to dial. */
  agentLinks: AgentLinkServer | undefined;
  agentAddress: string | null = null;

  static async start(options: ManagementServerOptions): Promise<ManagementServer> {
    const server = new ManagementServer({ targetTimeoutMs: 15_000, watchIntervalMs: 5_000, recordingsDir: '', ...options });
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.server.listen({ host: options.host, port: options.port }, () => {
        server.server.off('error', reject);
        resolve();
      });
    });
    server.server.on('error', (error) => options.logger.error({ err: error }, 'management listener error'));
    return server;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get openRelays(): number {
    return this.relays.size;
  }

  /** The peer's key is the server's: otherwise answered with 403 and logged. */
  private trusted(socket: TLSSocket, what: string): boolean {
    const cert = socket.getPeerX509Certificate();
    const presented = cert ? publicKeyOfCertificate(cert) : undefined;
    if (presented === this.options.serverKey) return true;
    this.options.logger.warn(
      {
        remoteAddress: socket.remoteAddress,
        presented: presented ? fingerprintOfSpki(Buffer.from(presented, 'base64')) : 'no certificate',
        trusted: fingerprintOfSpki(Buffer.from(this.options.serverKey, 'base64')),
        what,
      },
      'refused a management request: the peer is not the Gatehouse server this gateway trusts',
    );
    return false;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('cache-control', 'no-store');
    if (!this.trusted(req.socket as TLSSocket, `${req.method ?? ''} ${req.url ?? ''}`)) {
      return json(res, 403, {
        error: 'server key not trusted',
        message: "This gateway does not trust the caller's key. Start the gateway with the server's key (./gatehouse gateways server-key).",
      });
    }
    if (req.method === 'GET' && req.url === '/v1/status') return json(res, 200, this.report());
    if (req.method === 'POST' && req.url === '/v1/link') return this.link(req, res);
    if (req.url?.startsWith('/v1/recordings')) return void this.recordings(req, res);
    const session = req.method === 'POST' ? /^\/v1\/sessions\/([0-9a-f-]{36})\/(end|warn)$/.exec(req.url ?? '') : null;
    if (session?.[2] === 'end') return void this.endSession(session[1] as string, req, res);
    if (session?.[2] === 'warn') return void this.warnSession(session[1] as string, req, res);
    const agent = req.method === 'POST' ? /^\/v1\/agents\/([0-9a-f-]{36})\/drop$/.exec(req.url ?? '') : null;
    if (agent) return void this.dropAgent(agent[1] as string, req, res);
    json(res, 404, { error: 'not found' });
  }

  private report(): GatewayStatusReport {
    return { version: this.options.version, startedAt: this.startedAt, openRelays: this.relays.size, agentAddress: this.agentAddress };
  }

  /**
   * The server's link: a request and a response that both stay open while the gateway
   * runs. Down the response go a status line every few seconds (so a stopped gateway is
   * noticed at once) and the calls of this gateway's own SSH entry; up the request come
   * who this gateway is and the answers.
   */
  private link(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.flushHeaders();
    const link = new Link(res);
    this.links.add(link);
    link.send({ t: 'status', ...this.report() });
    const timer = setInterval(() => link.send({ t: 'status', ...this.report() }), this.options.watchIntervalMs);
    let buffered = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > 16 * 1024 * 1024) return void res.destroy();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const text = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        try {
          link.receive(JSON.parse(text) as LinkUp);
        } catch {
          this.options.logger.warn({}, 'the server sent a link line that is not JSON');
        }
      }
    });
    const close = () => {
      clearInterval(timer);
      this.links.delete(link);
      link.close();
    };
    res.once('close', close);
    req.once('error', close);
  }

  /** Who the server says this gateway is (its registered name and segment), once a link is up. */
  get registration(): { name: string; segment: string | null; recordInput: boolean; recordBinaryExec: boolean } | undefined {
    for (const link of this.links) if (link.hello) return link.hello;
    return undefined;
  }

  /**
   * Sends one call to the server over the newest link (any replica will do) and resolves
   * with its answer as it came: the transport of `callLinkProcedure`, which checks both.
   * Rejects with a message for the user when no server is connected.
   */
  async callServer(procedure: LinkProcedure, input: unknown, timeoutMs = 30_000): Promise<unknown> {
    const link = [...this.links].sort((a, b) => b.opened - a.opened)[0];
    if (!link)
      throw new GatehouseError(
        'UNREACHABLE',
        'This gateway has no link to the Gatehouse server right now. Try again in a moment, or use the default gateway.',
      );
    return link.call(procedure, input, timeoutMs);
  }

  /** `POST /v1/sessions/<id>/end` with `{"reason"}`: ends a live session of the SSH entry. */
  private async endSession(id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readSmallJson(req, res);
    if (!body) return;
    const reason =
      typeof body.reason === 'string' && body.reason.trim() !== '' ? body.reason.slice(0, 500) : 'An administrator ended this session.';
    const ended = this.liveSessions ? await this.liveSessions.endSession(id, reason) : false;
    json(res, ended ? 200 : 404, { ended });
  }

  /** `POST /v1/agents/<id>/drop` with `{"reason"}`: ends a revoked host agent's link here and its sessions. */
  private async dropAgent(agentId: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readSmallJson(req, res);
    if (!body) return;
    const reason = typeof body.reason === 'string' && body.reason.trim() !== '' ? body.reason.slice(0, 500) : 'The agent was revoked.';
    const linked = this.agentLinks?.isLinked(agentId) ?? false;
    this.agentLinks?.drop(agentId, reason);
    json(res, linked ? 200 : 404, { dropped: linked });
  }

  /** `POST /v1/sessions/<id>/warn` with `{"text"}`: shows the user of a live session of the SSH entry a warning. */
  private async warnSession(id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readSmallJson(req, res);
    if (!body) return;
    if (typeof body.text !== 'string' || body.text.trim() === '') return json(res, 400, { error: 'text is required' });
    const warned = this.liveSessions ? await this.liveSessions.warnSession(id, body.text.slice(0, 500)) : false;
    json(res, warned ? 200 : 404, { warned });
  }

  /**
   * The recordings of this gateway's own sessions (asciicast `.cast`, desktop `.rfb`), which
   * the server fetches and then removes: `GET /v1/recordings` lists them, `GET` and
   * `DELETE /v1/recordings/<path>`.
   */
  private async recordings(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const root = this.options.recordingsDir;
    if (root === '') return json(res, 404, { error: 'no recordings here' });
    const url = req.url ?? '';
    if (req.method === 'GET' && url === '/v1/recordings') {
      const files = await readdir(root, { recursive: true }).catch(() => [] as string[]);
      return json(res, 200, { items: files.map((f) => f.split(path.sep).join('/')).filter((f) => RECORDING_PATH.test(f)) });
    }
    const relative = decodeURIComponent(url.slice('/v1/recordings/'.length));
    const file = path.resolve(root, relative);
    if (!RECORDING_PATH.test(relative) || !file.startsWith(`${root}${path.sep}`)) {
      return json(res, 400, { error: 'not a recording path' });
    }
    if (req.method === 'DELETE') {
      await rm(file, { force: true });
      return json(res, 200, { removed: relative });
    }
    if (req.method !== 'GET') return json(res, 405, { error: 'method not allowed' });
    const size = await stat(file).then(
      (st) => st.size,
      () => undefined,
    );
    if (size === undefined) return json(res, 404, { error: 'no such recording' });
    const type = relative.endsWith('.rfb') ? RFB_RECORDING_MEDIA_TYPE : 'application/x-asciicast';
    res.writeHead(200, { 'content-type': type, 'content-length': size });
    createReadStream(file).pipe(res);
  }

  /** `CONNECT host:port`: a TCP connection to a device, relayed byte for byte. */
  private onConnect(req: IncomingMessage, client: Duplex, head: Buffer): void {
    client.on('error', () => undefined);
    if (!this.trusted(req.socket as TLSSocket, 'CONNECT')) {
      client.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const agentId = req.headers[RELAY_AGENT_HEADER];
    if (typeof agentId === 'string') return this.relayToAgent(agentId, client, head);
    const target = parseAuthority(req.url ?? '');
    if (!target) {
      client.end(`HTTP/1.1 400 Bad Request\r\n${RELAY_ERROR_HEADER}: EINVAL\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      return;
    }
    connectSocket(target.host, target.port, this.options.targetTimeoutMs).then(
      (device) => this.pipeRelay(client, device, head, { host: target.host, port: target.port }),
      (error: NodeJS.ErrnoException) => {
        this.options.logger.info({ host: target.host, port: target.port, code: error.code }, 'could not reach a device');
        client.end(
          `HTTP/1.1 502 Bad Gateway\r\n${RELAY_ERROR_HEADER}: ${(error.code ?? 'ECONNRESET').replace(/[^A-Z_]/g, '')}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`,
        );
      },
    );
  }

  /** `CONNECT` with the agent header: a session connection to the agent's device, over the agent's link to this gateway. */
  private relayToAgent(agentId: string, client: Duplex, head: Buffer): void {
    const links = this.agentLinks;
    const refuse = (why: string) => {
      this.options.logger.info({ agentId: agentId.slice(0, 100), reason: why }, 'could not relay to a host agent');
      client.end(`HTTP/1.1 502 Bad Gateway\r\n${RELAY_ERROR_HEADER}: ${AGENT_UNLINKED}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    };
    if (!links || !/^[0-9a-f-]{36}$/.test(agentId)) return refuse(links ? 'not an agent id' : 'no agent listener');
    links.open(agentId, this.options.targetTimeoutMs).then(
      (agent) => this.pipeRelay(client, agent, head, { agentId }),
      (error: Error) => refuse(error.message),
    );
  }

  /** Relays bytes both ways until either side closes; counted in `openRelays`. */
  private pipeRelay(client: Duplex, device: Duplex, head: Buffer, what: Record<string, unknown>): void {
    (device as net.Socket).setNoDelay?.(true);
    (client as net.Socket).setNoDelay?.(true);
    this.relays.add(client);
    client.once('close', () => {
      this.relays.delete(client);
      device.destroy();
    });
    device.once('close', () => client.destroy());
    device.on('error', () => client.destroy());
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) device.write(head);
    client.pipe(device);
    device.pipe(client);
    this.options.logger.info(what, 'relaying a connection to a device');
  }

  /** Ends the links and relays, and stops listening. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const link of this.links) link.close();
    for (const relay of this.relays) relay.destroy();
    this.server.closeAllConnections();
    await closed;
  }
}

/** A request's JSON object body of at most 4 KiB; undefined once it has answered the request's error. */
async function readSmallJson(req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown> | undefined> {
  let body = '';
  for await (const chunk of req) {
    body += String(chunk);
    if (body.length > 4096) return void json(res, 413, { error: 'body too large' });
  }
  try {
    const parsed = JSON.parse(body || '{}') as unknown;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // answered below
  }
  return void json(res, 400, { error: 'the body is not a JSON object' });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** `host:port` or `[v6]:port`, strictly. */
export function parseAuthority(authority: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]{1,253})):(\d{1,5})$/.exec(authority);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1] ?? match[2] ?? '', port };
}
