import { createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';

/**
 * The host agent's link (docs/AGENTS.md). The agent dials out over TLS to a gateway of its
 * device's segment; both ends present Ed25519 certificates and each checks the other's key:
 * the gateway the agent's enrolled key, the agent a gateway key from a list the server
 * signed. The control connection carries the frames below, one JSON object per line. For
 * each session the gateway sends `open`, and the agent dials a new TLS connection back,
 * sends `attach` as its only frame and then speaks SSH as the server (its host key is its
 * enrolled key); the gateway signs in with a grant the server signed for that one user,
 * device and account, which the agent checks before it starts anything.
 */

export const AGENT_PROTOCOL_VERSION = 1;
/** The longest frame either end accepts, newline included; a longer one drops the link. */
export const AGENT_MAX_FRAME_BYTES = 64 * 1024;
/** How long a grant is valid for after the server signed it. */
export const AGENT_GRANT_TTL_MS = 120_000;
/** Clock difference between server and agent that a grant's times tolerate. */
export const AGENT_CLOCK_SKEW_MS = 60_000;

/** A gateway the agent may link to: where it listens for agents and the key it presents. */
export interface AgentGateway {
  name: string;
  /** `host:port` of its agent listener (`[::1]:7996` for IPv6). */
  address: string;
  /** Base64 SPKI DER of its Ed25519 link key, which its TLS certificate carries. */
  key: string;
}

/** The gateways of the agent's segment, in the order the agent tries them, as the server signed them. */
export interface AgentGatewayList {
  agentId: string;
  segment: string | null;
  issuedAt: string;
  gateways: AgentGateway[];
}

/**
 * What the server allows one session on the agent's device to do: the agent starts a
 * shell, command or SFTP server as `osUser` only for a grant naming itself, unexpired,
 * and not used before (`nonce`).
 */
export interface AgentGrant {
  agentId: string;
  deviceId: string;
  accountId: string;
  /** The account's user name: the local OS user the session runs as. */
  osUser: string;
  userId: string;
  userName: string;
  nonce: string;
  issuedAt: string;
  expiresAt: string;
}

/** A signed statement, as it travels: `v1.<base64url payload>.<base64url signature>`. */
export type SignedToken = string;

/** Frames from the agent, on its control connection (`hello` first) or a data connection (`attach`, its only frame). */
export type AgentFrame =
  | { t: 'hello'; v: number; agentId: string; version: string; hostname: string }
  | { t: 'pong'; n: number }
  | { t: 'attach'; v: number; agentId: string; ref: string };

/** Frames from the gateway on the control connection. */
export type GatewayFrame =
  /** The link is up; `gateways` is a SignedToken of the current AgentGatewayList. */
  | { t: 'welcome'; gateway: string; gateways: SignedToken; heartbeatMs: number }
  | { t: 'ping'; n: number }
  /** Dial back and `attach` with this reference. */
  | { t: 'open'; ref: string }
  /** The gateway ends the link; `retry: false` when the agent was revoked or is unknown. */
  | { t: 'bye'; reason: string; retry: boolean };

const GRANT_CONTEXT = 'gatehouse-agent-grant-v1\n';
const GATEWAYS_CONTEXT = 'gatehouse-agent-gateways-v1\n';
const TOKEN = /^v1\.([A-Za-z0-9_-]{1,16384})\.([A-Za-z0-9_-]{86})$/;

export type FrameResult<F> = { ok: true; frame: F } | { ok: false; reason: string };

const str = (v: unknown, max = 256): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;
const int = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Parses one line from the agent; anything else (bad JSON, unknown `t`, missing fields) is a reason to drop the link. */
export function parseAgentFrame(line: string): FrameResult<AgentFrame> {
  const o = parseObject(line);
  if (!o.ok) return o;
  const f = o.frame;
  switch (f.t) {
    case 'hello':
      return int(f.v) && str(f.agentId) && str(f.version, 64) && str(f.hostname, 253)
        ? { ok: true, frame: { t: 'hello', v: f.v, agentId: f.agentId, version: f.version, hostname: f.hostname } }
        : { ok: false, reason: 'a hello frame without v, agentId, version and hostname' };
    case 'pong':
      return int(f.n) ? { ok: true, frame: { t: 'pong', n: f.n } } : { ok: false, reason: 'a pong frame without n' };
    case 'attach':
      return int(f.v) && str(f.agentId) && str(f.ref, 128)
        ? { ok: true, frame: { t: 'attach', v: f.v, agentId: f.agentId, ref: f.ref } }
        : { ok: false, reason: 'an attach frame without v, agentId and ref' };
    default:
      return { ok: false, reason: `an unknown frame type ${JSON.stringify(String(f.t)).slice(0, 40)}` };
  }
}

/** Parses one line from the gateway, as `parseAgentFrame` does. */
export function parseGatewayFrame(line: string): FrameResult<GatewayFrame> {
  const o = parseObject(line);
  if (!o.ok) return o;
  const f = o.frame;
  switch (f.t) {
    case 'welcome':
      return str(f.gateway) && str(f.gateways, 32768) && int(f.heartbeatMs) && f.heartbeatMs >= 1000
        ? { ok: true, frame: { t: 'welcome', gateway: f.gateway, gateways: f.gateways, heartbeatMs: f.heartbeatMs } }
        : { ok: false, reason: 'a welcome frame without gateway, gateways and heartbeatMs' };
    case 'ping':
      return int(f.n) ? { ok: true, frame: { t: 'ping', n: f.n } } : { ok: false, reason: 'a ping frame without n' };
    case 'open':
      return str(f.ref, 128) ? { ok: true, frame: { t: 'open', ref: f.ref } } : { ok: false, reason: 'an open frame without ref' };
    case 'bye':
      return typeof f.reason === 'string' && typeof f.retry === 'boolean'
        ? { ok: true, frame: { t: 'bye', reason: f.reason.slice(0, 500), retry: f.retry } }
        : { ok: false, reason: 'a bye frame without reason and retry' };
    default:
      return { ok: false, reason: `an unknown frame type ${JSON.stringify(String(f.t)).slice(0, 40)}` };
  }
}

function parseObject(line: string): FrameResult<Record<string, unknown>> {
  if (Buffer.byteLength(line) >= AGENT_MAX_FRAME_BYTES) return { ok: false, reason: 'an oversized frame' };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { ok: false, reason: 'a frame that is not JSON' };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { ok: false, reason: 'a frame that is not an object' };
  return { ok: true, frame: value as Record<string, unknown> };
}

/** One frame as a line. */
export function encodeFrame(frame: AgentFrame | GatewayFrame): string {
  return `${JSON.stringify(frame)}\n`;
}

/**
 * Splits a byte stream into lines, at most AGENT_MAX_FRAME_BYTES each. `push` answers the
 * complete lines so far, or an error once a line grew past the limit (the caller drops the
 * link; nothing more is buffered).
 */
export class FrameReader {
  private buffer = '';
  private failed = false;

  push(chunk: Buffer | string): { ok: true; lines: string[] } | { ok: false; reason: string } {
    if (this.failed) return { ok: false, reason: 'an oversized frame' };
    this.buffer += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    const lines: string[] = [];
    let at: number;
    while ((at = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, at);
      this.buffer = this.buffer.slice(at + 1);
      if (Buffer.byteLength(line) >= AGENT_MAX_FRAME_BYTES) return this.fail();
      if (line.trim() !== '') lines.push(line);
    }
    if (Buffer.byteLength(this.buffer) >= AGENT_MAX_FRAME_BYTES) return this.fail();
    return { ok: true, lines };
  }

  /** What arrived after the last complete line (a data connection's first SSH bytes after `attach`). */
  rest(): string {
    return this.buffer;
  }

  private fail(): { ok: false; reason: string } {
    this.failed = true;
    this.buffer = '';
    return { ok: false, reason: 'an oversized frame' };
  }
}

/** Signs a statement with the server's link key (Ed25519, PKCS#8 PEM or KeyObject). */
function signToken(context: string, payload: object, privateKey: string | KeyObject): SignedToken {
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
  const signature = sign(null, Buffer.from(context + body), privateKey).toString('base64url');
  return `v1.${body}.${signature}`;
}

/** The payload of a token the server's key (base64 SPKI DER) signed, or why not. */
function verifyToken(
  context: string,
  token: string,
  serverKey: string,
): { ok: true; payload: Record<string, unknown> } | { ok: false; reason: string } {
  const m = TOKEN.exec(token);
  if (!m) return { ok: false, reason: 'not a signed token' };
  const [, body = '', signature = ''] = m;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(serverKey, 'base64'), format: 'der', type: 'spki' });
  } catch {
    return { ok: false, reason: 'the pinned server key is not a public key' };
  }
  if (!verify(null, Buffer.from(context + body), key, Buffer.from(signature, 'base64url'))) {
    return { ok: false, reason: 'the signature is not the server’s' };
  }
  try {
    const payload: unknown = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload))
      return { ok: false, reason: 'a payload that is not an object' };
    return { ok: true, payload: payload as Record<string, unknown> };
  } catch {
    return { ok: false, reason: 'a payload that is not JSON' };
  }
}

/** A grant for one session, signed by the server; valid for AGENT_GRANT_TTL_MS. */
export function signAgentGrant(
  grant: Omit<AgentGrant, 'nonce' | 'issuedAt' | 'expiresAt'>,
  privateKey: string | KeyObject,
  now = new Date(),
): SignedToken {
  const full: AgentGrant = {
    ...grant,
    nonce: randomBytes(16).toString('base64url'),
    issuedAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + AGENT_GRANT_TTL_MS).toISOString(),
  };
  return signToken(GRANT_CONTEXT, full, privateKey);
}

/**
 * The agent's check of a grant: the server's signature, its own id, the OS user the
 * gateway asked for, and the times (allowing AGENT_CLOCK_SKEW_MS). Single use is the
 * caller's part (it remembers `nonce` until `expiresAt`).
 */
export function verifyAgentGrant(
  token: string,
  expect: { serverKey: string; agentId: string; osUser: string },
  now = new Date(),
): { ok: true; grant: AgentGrant } | { ok: false; reason: string } {
  const v = verifyToken(GRANT_CONTEXT, token, expect.serverKey);
  if (!v.ok) return v;
  const p = v.payload;
  const fields = ['agentId', 'deviceId', 'accountId', 'osUser', 'userId', 'userName', 'nonce', 'issuedAt', 'expiresAt'] as const;
  for (const f of fields) if (!str(p[f])) return { ok: false, reason: `a grant without ${f}` };
  const grant = p as unknown as AgentGrant;
  if (grant.agentId !== expect.agentId) return { ok: false, reason: 'a grant for another agent' };
  if (grant.osUser !== expect.osUser) return { ok: false, reason: 'a grant for another OS user' };
  const issued = Date.parse(grant.issuedAt);
  const expires = Date.parse(grant.expiresAt);
  if (!Number.isFinite(issued) || !Number.isFinite(expires)) return { ok: false, reason: 'a grant with unreadable times' };
  if (issued - AGENT_CLOCK_SKEW_MS > now.getTime()) return { ok: false, reason: 'a grant issued in the future (check the clocks)' };
  if (expires + AGENT_CLOCK_SKEW_MS < now.getTime()) return { ok: false, reason: 'an expired grant' };
  if (expires - issued > AGENT_GRANT_TTL_MS) return { ok: false, reason: 'a grant valid for too long' };
  return { ok: true, grant };
}

/** The gateway list, signed by the server. */
export function signAgentGateways(list: AgentGatewayList, privateKey: string | KeyObject): SignedToken {
  return signToken(GATEWAYS_CONTEXT, list, privateKey);
}

/** The agent's check of a gateway list: the server's signature and its own id. */
export function verifyAgentGateways(
  token: string,
  expect: { serverKey: string; agentId: string },
): { ok: true; list: AgentGatewayList } | { ok: false; reason: string } {
  const v = verifyToken(GATEWAYS_CONTEXT, token, expect.serverKey);
  if (!v.ok) return v;
  const p = v.payload;
  if (p.agentId !== expect.agentId) return { ok: false, reason: 'a gateway list for another agent' };
  if (!Array.isArray(p.gateways) || !str(p.issuedAt)) return { ok: false, reason: 'a gateway list without gateways and issuedAt' };
  const gateways: AgentGateway[] = [];
  for (const g of p.gateways as unknown[]) {
    const e = g as Record<string, unknown> | null;
    if (!e || !str(e.name) || !str(e.address) || !str(e.key, 200))
      return { ok: false, reason: 'a gateway entry without name, address and key' };
    gateways.push({ name: e.name, address: e.address, key: e.key });
  }
  return {
    ok: true,
    list: { agentId: expect.agentId, segment: typeof p.segment === 'string' ? p.segment : null, issuedAt: p.issuedAt, gateways },
  };
}

/** `host:port` split for net/tls.connect (`[::1]:7996` → `::1`, 7996); undefined when it is not one. */
export function parseAgentAddress(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(address);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2]) as string, port };
}
