import http, { type IncomingMessage } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { fingerprintOfSpki, publicKeyOfCertificate, type LinkIdentity } from './identity.js';
import { RELAY_AGENT_HEADER, RELAY_ERROR_HEADER, parseAuthority, type GatewayStatusReport } from './management.js';
import { GatehouseError } from '@gatehouse/core';
import { SocketError } from './dial.js';

/** Where a registered gateway listens for management, and the key it must present. */
export interface GatewayEndpoint {
  name: string;
  /** `host:port` */
  address: string;
  /** The registered public key (base64 SPKI). */
  publicKey: string;
}

/**
 * Why the server could not talk to a gateway; `kind` says whose problem it is. A gateway
 * that did not answer is `UNREACHABLE` (503); one that answered wrongly (another key, a
 * refusal, a malformed answer) is `BAD_GATEWAY` (502).
 */
export class GatewayLinkError extends GatehouseError {
  constructor(
    readonly kind: 'unreachable' | 'key-mismatch' | 'not-trusted' | 'protocol',
    message: string,
    /** The fingerprint the peer presented, for key mismatches. */
    readonly presented?: string,
  ) {
    super(kind === 'unreachable' ? 'UNREACHABLE' : 'BAD_GATEWAY', message);
    this.name = 'GatewayLinkError';
  }
}

/**
 * A TLS connection to a gateway's management port on which nothing has been sent yet:
 * resolved only once the gateway proved the registered key, so no request (not even the
 * address of a device) reaches an impostor.
 */
export function connectToGateway(endpoint: GatewayEndpoint, identity: LinkIdentity, timeoutMs: number): Promise<tls.TLSSocket> {
  const authority = parseAuthority(endpoint.address);
  if (!authority) {
    return Promise.reject(new GatewayLinkError('protocol', `The address of gateway ${endpoint.name} is not host:port.`));
  }
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: authority.host,
      port: authority.port,
      key: identity.privateKey,
      cert: identity.certificate,
      // The chain is not what is checked: the key is, right below.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
      ALPNProtocols: ['http/1.1'],
      ...(net.isIP(authority.host) === 0 ? { servername: authority.host } : {}),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new GatewayLinkError(
          'unreachable',
          `Gateway ${endpoint.name} (${endpoint.address}) did not answer within ${Math.round(timeoutMs / 1000)} s.`,
        ),
      );
    }, timeoutMs);
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new GatewayLinkError(
          'unreachable',
          `Gateway ${endpoint.name} (${endpoint.address}) is unreachable: ${error.code ?? error.message}.`,
        ),
      );
    });
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const cert = socket.getPeerX509Certificate();
      const presented = cert ? publicKeyOfCertificate(cert) : undefined;
      if (presented !== endpoint.publicKey) {
        socket.destroy();
        const fingerprint = presented ? fingerprintOfSpki(Buffer.from(presented, 'base64')) : 'no key';
        reject(
          new GatewayLinkError(
            'key-mismatch',
            `The gateway at ${endpoint.address} presented key ${fingerprint}, not the key registered for ${endpoint.name} ` +
              `(${fingerprintOfSpki(Buffer.from(endpoint.publicKey, 'base64'))}). Nothing was sent to it. If the gateway was ` +
              're-installed, register its new key (./gatehouse gateways update --public-key); otherwise check who answers on that address.',
            fingerprint,
          ),
        );
        return;
      }
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

function request(socket: tls.TLSSocket, method: string, path: string, headers: Record<string, string> = {}): http.ClientRequest {
  // No agent: the request goes on this socket, which already proved the gateway's key.
  return http.request({ method, path, createConnection: () => socket, headers: { host: 'gatehouse-gateway', ...headers } });
}

async function readJson(res: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 65_536) throw new GatewayLinkError('protocol', 'The gateway answered with more than 64 KiB.');
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new GatewayLinkError('protocol', 'The gateway answered with something that is not JSON.');
  }
}

function refusalOf(endpoint: GatewayEndpoint, status: number | undefined): GatewayLinkError {
  if (status === 403) {
    return new GatewayLinkError(
      'not-trusted',
      `Gateway ${endpoint.name} does not trust this server's key. Restart it with --server-key set to what "./gatehouse gateways server-key" prints.`,
    );
  }
  return new GatewayLinkError('protocol', `Gateway ${endpoint.name} answered HTTP ${status ?? '?'}.`);
}

function isStatusReport(value: unknown): value is GatewayStatusReport {
  const v = value as Partial<GatewayStatusReport> | null;
  return typeof v === 'object' && v !== null && typeof v.version === 'string' && typeof v.openRelays === 'number';
}

/** One status sync: the gateway's report and the round trip in milliseconds (TLS included). */
export async function fetchGatewayStatus(
  endpoint: GatewayEndpoint,
  identity: LinkIdentity,
  timeoutMs: number,
): Promise<{ report: GatewayStatusReport; latencyMs: number }> {
  const started = performance.now();
  const socket = await connectToGateway(endpoint, identity, timeoutMs);
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(socket, 'GET', '/v1/status');
      req.setTimeout(timeoutMs, () =>
        req.destroy(new GatewayLinkError('unreachable', `Gateway ${endpoint.name} did not answer its status in time.`)),
      );
      req.once('response', resolve);
      req.once('error', (error) =>
        reject(
          error instanceof GatewayLinkError ? error : new GatewayLinkError('unreachable', `Gateway ${endpoint.name}: ${error.message}.`),
        ),
      );
      req.end();
    });
    if (res.statusCode !== 200) {
      res.resume();
      throw refusalOf(endpoint, res.statusCode);
    }
    const body = await readJson(res);
    if (!isStatusReport(body))
      throw new GatewayLinkError('protocol', `Gateway ${endpoint.name} answered a status Gatehouse does not understand.`);
    return {
      report: {
        version: body.version.slice(0, 64),
        startedAt: String(body.startedAt).slice(0, 40),
        openRelays: body.openRelays,
        agentAddress: typeof body.agentAddress === 'string' ? body.agentAddress.slice(0, 300) : null,
      },
      latencyMs: Math.round(performance.now() - started),
    };
  } finally {
    socket.destroy();
  }
}

/** What the server tells a gateway on its link, and how it answers the gateway's calls. */
export interface LinkHandlers {
  hello: { name: string; segment: string | null; recordInput: boolean; recordBinaryExec: boolean };
  /** Answers one call of the gateway's SSH entry (see `answerLinkCall`); a rejection is sent back as its message. */
  onCall(procedure: string, input: unknown): Promise<unknown>;
  /** Called once when the link ends for any reason (the gateway stopped, the network dropped, or no keep-alive for `staleMs`). */
  onEnd(why: string): void;
  /** Called when the link is up (the gateway answered with its first status line). */
  onOpen?(report: GatewayStatusReport): void;
}

/**
 * Holds the gateway's link open: keep-alive status lines and the calls of the gateway's
 * SSH entry come down it, answers go up. Returns a function that closes it without
 * calling `onEnd`.
 */
export function linkGateway(endpoint: GatewayEndpoint, identity: LinkIdentity, staleMs: number, handlers: LinkHandlers): () => void {
  let closed = false;
  let socket: tls.TLSSocket | undefined;
  let stale: NodeJS.Timeout | undefined;
  let opened = false;
  const end = (why: string) => {
    if (closed) return;
    closed = true;
    clearTimeout(stale);
    socket?.destroy();
    handlers.onEnd(why);
  };
  const feed = () => {
    clearTimeout(stale);
    stale = setTimeout(() => end('no keep-alive from the gateway'), staleMs);
    stale.unref();
  };
  connectToGateway(endpoint, identity, staleMs).then(
    (s) => {
      socket = s;
      if (closed) return void s.destroy();
      const req = http.request({
        method: 'POST',
        path: '/v1/link',
        createConnection: () => s,
        headers: { host: 'gatehouse-gateway', 'content-type': 'application/x-ndjson', 'transfer-encoding': 'chunked' },
      });
      const send = (line: unknown) => {
        if (!closed) req.write(`${JSON.stringify(line)}\n`);
      };
      send({ t: 'hello', ...handlers.hello });
      req.once('response', (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return end(`HTTP ${res.statusCode ?? '?'}`);
        }
        feed();
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          feed();
          buffered += chunk;
          let newline: number;
          while ((newline = buffered.indexOf('\n')) >= 0) {
            const text = buffered.slice(0, newline);
            buffered = buffered.slice(newline + 1);
            let line: { t?: string; id?: number; procedure?: string; input?: unknown } & Partial<GatewayStatusReport>;
            try {
              line = JSON.parse(text) as typeof line;
            } catch {
              return end('the gateway sent a line that is not JSON');
            }
            if (line.t === 'status' && !opened && isStatusReport(line)) {
              opened = true;
              handlers.onOpen?.(line);
            } else if (line.t === 'call' && typeof line.id === 'number' && typeof line.procedure === 'string') {
              const id = line.id;
              handlers.onCall(line.procedure, line.input).then(
                (value) => send({ t: 'result', id, ok: true, value: value ?? null }),
                (error: Error) =>
                  send({
                    t: 'result',
                    id,
                    ok: false,
                    error: error.message,
                    code: error instanceof GatehouseError ? error.code : 'INTERNAL',
                  }),
              );
            }
          }
        });
        res.once('end', () => end('the gateway ended the link'));
        res.once('error', () => end('the link failed'));
      });
      req.once('error', () => end('the link failed'));
      s.once('close', () => end('the connection closed'));
    },
    (error: Error) => end(error.message),
  );
  return () => {
    closed = true;
    clearTimeout(stale);
    socket?.destroy();
  };
}

/** Asks the gateway to end a live session of its own SSH entry; false when it has no such session. */
export function endGatewaySession(
  endpoint: GatewayEndpoint,
  identity: LinkIdentity,
  sessionId: string,
  reason: string,
  timeoutMs: number,
): Promise<boolean> {
  return postToSession(endpoint, identity, sessionId, 'end', { reason }, timeoutMs);
}

/** Asks the gateway to show the user of a live session of its own SSH entry `text`; false when it has no such session. */
export function warnGatewaySession(
  endpoint: GatewayEndpoint,
  identity: LinkIdentity,
  sessionId: string,
  text: string,
  timeoutMs: number,
): Promise<boolean> {
  return postToSession(endpoint, identity, sessionId, 'warn', { text }, timeoutMs);
}

/** Asks the gateway to end a revoked host agent's link and its sessions; false when the agent is not linked there. */
export function dropGatewayAgent(
  endpoint: GatewayEndpoint,
  identity: LinkIdentity,
  agentId: string,
  reason: string,
  timeoutMs: number,
): Promise<boolean> {
  return postJson(endpoint, identity, `/v1/agents/${encodeURIComponent(agentId)}/drop`, { reason }, timeoutMs);
}

/** `POST /v1/sessions/<id>/<action>` with a JSON body: true when the gateway answers 200. */
function postToSession(
  endpoint: GatewayEndpoint,
  identity: LinkIdentity,
  sessionId: string,
  action: 'end' | 'warn',
  body: object,
  timeoutMs: number,
): Promise<boolean> {
  return postJson(endpoint, identity, `/v1/sessions/${encodeURIComponent(sessionId)}/${action}`, body, timeoutMs);
}

/** `POST <path>` with a JSON body: true when the gateway answers 200. */
async function postJson(
  endpoint: GatewayEndpoint,
  identity: LinkIdentity,
  path: string,
  body: object,
  timeoutMs: number,
): Promise<boolean> {
  const socket = await connectToGateway(endpoint, identity, timeoutMs);
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(socket, 'POST', path);
      req.setHeader('content-type', 'application/json');
      req.once('response', resolve);
      req.once('error', reject);
      req.end(JSON.stringify(body));
    });
    res.resume();
    return res.statusCode === 200;
  } finally {
    socket.destroy();
  }
}

/** The recordings the gateway's SSH entry holds for the server to fetch. */
export async function listGatewayRecordings(endpoint: GatewayEndpoint, identity: LinkIdentity, timeoutMs: number): Promise<string[]> {
  const socket = await connectToGateway(endpoint, identity, timeoutMs);
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(socket, 'GET', '/v1/recordings');
      req.once('response', resolve);
      req.once('error', reject);
      req.end();
    });
    if (res.statusCode !== 200) {
      res.resume();
      return [];
    }
    const body = (await readJson(res)) as { items?: unknown };
    return Array.isArray(body.items) ? body.items.filter((i): i is string => typeof i === 'string') : [];
  } finally {
    socket.destroy();
  }
}

/** Streams one recording from the gateway into `out` (resolves once it is all written), then removes it there. */
export async function fetchGatewayRecording(
  endpoint: GatewayEndpoint,
  identity: LinkIdentity,
  relative: string,
  out: NodeJS.WritableStream,
  timeoutMs: number,
): Promise<void> {
  const route = `/v1/recordings/${relative.split('/').map(encodeURIComponent).join('/')}`;
  const socket = await connectToGateway(endpoint, identity, timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      const req = request(socket, 'GET', route);
      req.once('response', (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(
            new GatewayLinkError('protocol', `Gateway ${endpoint.name} answered HTTP ${res.statusCode ?? '?'} for a recording.`),
          );
        }
        res.pipe(out);
        out.once('finish', () => resolve());
        res.once('error', reject);
      });
      req.once('error', reject);
      req.end();
    });
  } finally {
    socket.destroy();
  }
  const again = await connectToGateway(endpoint, identity, timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      const req = request(again, 'DELETE', route);
      req.once('response', (res) => {
        res.resume();
        resolve();
      });
      req.once('error', reject);
      req.end();
    });
  } finally {
    again.destroy();
  }
}

/**
 * Asks the gateway to open a TCP connection to `host:port` and relay it. Resolves with the
 * relayed stream, or rejects: a `GatewayLinkError` when the gateway itself did not
 * answer, or an error with the device's socket `code` when the gateway could not reach it.
 */
export async function openRelay(
  endpoint: GatewayEndpoint,
  identity: LinkIdentity,
  target: { host: string; port: number; agentId?: string | null | undefined },
  timeoutMs: number,
): Promise<Duplex & { setNoDelay?(noDelay?: boolean): unknown }> {
  const socket = await connectToGateway(endpoint, identity, Math.min(timeoutMs, 5_000));
  // A device with a host agent is reached over the agent's link to that gateway; the authority is only a placeholder then.
  const authority = target.agentId
    ? 'agent.invalid:1'
    : target.host.includes(':')
      ? `[${target.host}]:${target.port}`
      : `${target.host}:${target.port}`;
  return new Promise((resolve, reject) => {
    const req = request(socket, 'CONNECT', authority, target.agentId ? { [RELAY_AGENT_HEADER]: target.agentId } : {});
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new SocketError('ETIMEDOUT', 'timed out'));
    }, timeoutMs + 1_000);
    req.once('connect', (res: IncomingMessage, relayed: Duplex, head: Buffer) => {
      clearTimeout(timer);
      if (res.statusCode === 200) {
        if (head.length > 0) relayed.unshift(head);
        resolve(relayed);
        return;
      }
      relayed.destroy();
      if (res.statusCode === 403) return reject(refusalOf(endpoint, 403));
      const code = String(res.headers[RELAY_ERROR_HEADER] ?? 'ECONNRESET');
      reject(new SocketError(code, `the gateway could not reach the device (${code})`));
    });
    req.once('response', (res: IncomingMessage) => {
      clearTimeout(timer);
      res.resume();
      socket.destroy();
      reject(refusalOf(endpoint, res.statusCode));
    });
    req.once('error', (error) => {
      clearTimeout(timer);
      reject(new GatewayLinkError('unreachable', `Gateway ${endpoint.name} dropped the relay: ${error.message}.`));
    });
    req.end();
  });
}
