import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { GatewayLogger } from './gateway.js';
import { fingerprintOfSpki, publicKeyOfCertificate, type LinkIdentity } from './identity.js';
import { connectSocket } from './dial.js';

/** What a gateway answers to the server's status sync. */
export interface GatewayStatusReport {
  version: string;
  startedAt: string;
  /** Connections the gateway relays to devices right now. */
  openRelays: number;
}

/** The header a refused relay carries: the socket error code of the device connection. */
export const RELAY_ERROR_HEADER = 'x-gatehouse-error';

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
  /** Seconds between the keep-alive lines of the server's watch stream. */
  watchIntervalMs?: number;
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
  private readonly watches = new Set<ServerResponse>();
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

  static async start(options: ManagementServerOptions): Promise<ManagementServer> {
    const server = new ManagementServer({ targetTimeoutMs: 15_000, watchIntervalMs: 5_000, ...options });
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
        message: "This gateway does not trust the caller's key. Start the gateway with the server's key (gatehouse gateways server-key).",
      });
    }
    if (req.method === 'GET' && req.url === '/v1/status') return json(res, 200, this.report());
    if (req.method === 'GET' && req.url === '/v1/watch') return this.watch(res);
    json(res, 404, { error: 'not found' });
  }

  private report(): GatewayStatusReport {
    return { version: this.options.version, startedAt: this.startedAt, openRelays: this.relays.size };
  }

  /** A response that never ends while the gateway runs: one status line every few seconds. */
  private watch(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.write(`${JSON.stringify(this.report())}\n`);
    const timer = setInterval(() => res.write(`${JSON.stringify(this.report())}\n`), this.options.watchIntervalMs);
    this.watches.add(res);
    res.once('close', () => {
      clearInterval(timer);
      this.watches.delete(res);
    });
  }

  /** `CONNECT host:port`: a TCP connection to a device, relayed byte for byte. */
  private onConnect(req: IncomingMessage, client: Duplex, head: Buffer): void {
    client.on('error', () => undefined);
    if (!this.trusted(req.socket as TLSSocket, 'CONNECT')) {
      client.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const target = parseAuthority(req.url ?? '');
    if (!target) {
      client.end(`HTTP/1.1 400 Bad Request\r\n${RELAY_ERROR_HEADER}: EINVAL\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      return;
    }
    connectSocket(target.host, target.port, this.options.targetTimeoutMs).then(
      (device) => {
        device.setNoDelay(true);
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
        this.options.logger.info({ host: target.host, port: target.port }, 'relaying a connection to a device');
      },
      (error: NodeJS.ErrnoException) => {
        this.options.logger.info({ host: target.host, port: target.port, code: error.code }, 'could not reach a device');
        client.end(
          `HTTP/1.1 502 Bad Gateway\r\n${RELAY_ERROR_HEADER}: ${(error.code ?? 'ECONNRESET').replace(/[^A-Z_]/g, '')}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`,
        );
      },
    );
  }

  /** Ends the watch streams and relays, and stops listening. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const res of this.watches) res.destroy();
    for (const relay of this.relays) relay.destroy();
    this.server.closeAllConnections();
    await closed;
  }
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
