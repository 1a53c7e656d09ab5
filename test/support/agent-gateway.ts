import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import {
  encodeFrame,
  FrameReader,
  parseAgentFrame,
  signAgentGateways,
  type AgentFrame,
  type AgentGateway,
  type GatewayFrame,
} from '@gatehouse/core/agent-protocol';
import { generateLinkIdentity, publicKeyOfCertificate, type LinkIdentity } from '@gatehouse/gateway/identity';
import { AGENT_KEY_FILE, writeAgentState, loadAgentState, type LoadedAgent } from '../../packages/cli/src/agent/state.js';

/** The server's side of the trust: the key that signs grants and gateway lists, and its public form the agent pins. */
export interface TestServerKey {
  privateKey: KeyObject;
  /** Base64 SPKI DER. */
  publicKey: string;
}

export function testServerKey(): TestServerKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64') };
}

/** An enrolled agent's state directory (agent.json 0600 and its key) naming `gateways`, as `gatehouse agent enroll` leaves it. */
export function enrolledAgent(server: TestServerKey, gateways: AgentGateway[], agentId = 'agent-test'): LoadedAgent {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-agent-'));
  const { privateKey } = generateKeyPairSync('ed25519');
  writeFileSync(path.join(dir, AGENT_KEY_FILE), privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o600 });
  writeAgentState(dir, {
    agentId,
    deviceId: 'device-test',
    deviceName: 'web-1',
    server: 'https://127.0.0.1:1',
    serverFingerprint: `sha256:${'0'.repeat(64)}`,
    serverKey: server.publicKey,
    gateways: signAgentGateways(
      { agentId, segment: null, issuedAt: new Date(Date.now() - 60_000).toISOString(), gateways },
      server.privateKey,
    ),
    enrolledAt: new Date().toISOString(),
  });
  return loadAgentState(dir);
}

interface Control {
  socket: tls.TLSSocket;
  hello: Extract<AgentFrame, { t: 'hello' }>;
  frames: AgentFrame[];
}

/**
 * A TLS listener playing a gateway's agent side, as the protocol describes it: answers
 * `hello` with `welcome` (or whatever the test says), sends `open` and hands back the
 * data connection that attached. Records what each connection sent.
 */
export class TestAgentGateway {
  readonly controls: Control[] = [];
  /** TCP connections accepted (a client that drops out during TLS counts here only). */
  connections = 0;
  /** Application bytes received per accepted connection, in order. */
  readonly received: number[] = [];
  /** What `welcome` carries; null answers nothing (a test sends its own frames). */
  welcome: (() => GatewayFrame | null) | undefined;
  private readonly opens = new Map<string, (socket: tls.TLSSocket) => void>();

  private constructor(
    private readonly server: tls.Server,
    readonly identity: LinkIdentity,
    readonly name: string,
  ) {}

  static async start(name: string, identity = generateLinkIdentity('gatehouse-gateway')): Promise<TestAgentGateway> {
    const server = tls.createServer({
      key: identity.privateKey,
      cert: identity.certificate,
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
    });
    const gateway = new TestAgentGateway(server, identity, name);
    server.on('connection', () => gateway.connections++);
    server.on('secureConnection', (socket) => gateway.accept(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return gateway;
  }

  get address(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** This gateway as a list entry; `key` overrides the key the list names for it. */
  entry(key = this.identity.publicKey): AgentGateway {
    return { name: this.name, address: this.address, key };
  }

  /** The newest control connection. */
  get control(): Control | undefined {
    return this.controls.at(-1);
  }

  send(frame: GatewayFrame | string): void {
    this.control?.socket.write(typeof frame === 'string' ? frame : encodeFrame(frame));
  }

  /** Sends `open` and resolves with the data connection that attached with its ref (the SSH bytes after it put back). */
  open(timeoutMs = 5_000): Promise<tls.TLSSocket> {
    const ref = randomBytes(16).toString('base64url');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no attach')), timeoutMs);
      this.opens.set(ref, (socket) => {
        clearTimeout(timer);
        resolve(socket);
      });
      this.send({ t: 'open', ref });
    });
  }

  async close(): Promise<void> {
    for (const c of this.controls) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: tls.TLSSocket): void {
    const at = this.received.push(0) - 1;
    const cert = socket.getPeerX509Certificate();
    const clientKey = cert ? publicKeyOfCertificate(cert) : undefined;
    const reader = new FrameReader();
    let control: Control | undefined;
    let raw = Buffer.alloc(0);
    socket.on('error', () => undefined);
    const onData = (chunk: Buffer) => {
      this.received[at] = (this.received[at] ?? 0) + chunk.length;
      if (!control) raw = Buffer.concat([raw, chunk]);
      const pushed = reader.push(chunk);
      if (!pushed.ok) return socket.destroy();
      for (const line of pushed.lines) {
        const parsed = parseAgentFrame(line);
        if (!parsed.ok) return socket.destroy();
        const frame = parsed.frame;
        if (control) {
          control.frames.push(frame);
        } else if (frame.t === 'hello') {
          control = { socket, hello: frame, frames: [] };
          this.controls.push(control);
          if (!clientKey) return socket.destroy();
          const answer = this.welcome?.();
          if (answer !== null && answer !== undefined) socket.write(encodeFrame(answer));
        } else if (frame.t === 'attach') {
          const resolve = this.opens.get(frame.ref);
          this.opens.delete(frame.ref);
          if (!resolve) return socket.destroy();
          socket.off('data', onData);
          // The SSH bytes after the line, as bytes (FrameReader.rest() is text, and SSH packets are not).
          const rest = raw.subarray(raw.indexOf(0x0a) + 1);
          if (rest.length > 0) socket.unshift(rest);
          resolve(socket);
          return;
        }
      }
    };
    socket.on('data', onData);
  }
}
