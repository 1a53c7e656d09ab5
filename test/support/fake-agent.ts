import tls from 'node:tls';
import { encodeFrame, FrameReader, parseGatewayFrame, type AgentFrame, type GatewayFrame } from '@gatehouse/core/agent-protocol';
import { generateLinkIdentity, linkIdentityOf, type LinkIdentity } from '@gatehouse/gateway';
import { publicKeyOfCertificate } from '../../packages/gateway/src/identity.js';

/**
 * A host agent's link end as a test drives it: a TLS client with the agent's key as its
 * certificate, checking the gateway's key before it sends anything, reading frames and
 * answering pings (unless told not to).
 */
export class FakeAgentLink {
  readonly frames: GatewayFrame[] = [];
  private readonly reader = new FrameReader();
  private waiters: (() => void)[] = [];
  closed = false;
  answerPings = true;

  private constructor(readonly socket: tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      const read = this.reader.push(chunk);
      if (!read.ok) throw new Error(read.reason);
      for (const line of read.lines) {
        const parsed = parseGatewayFrame(line);
        if (!parsed.ok) throw new Error(parsed.reason);
        this.frames.push(parsed.frame);
        if (parsed.frame.t === 'ping' && this.answerPings) this.send({ t: 'pong', n: parsed.frame.n });
      }
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** A TLS connection to the gateway at 127.0.0.1:port, refused unless it presents `gatewayKey`. */
  static async connect(port: number, identity: LinkIdentity, gatewayKey: string): Promise<FakeAgentLink> {
    return new FakeAgentLink(await dialGateway(port, identity, gatewayKey));
  }

  send(frame: AgentFrame | string): void {
    this.socket.write(typeof frame === 'string' ? frame : encodeFrame(frame));
  }

  /** The first frame of type `t` not taken yet. */
  async next<T extends GatewayFrame['t']>(t: T, timeoutMs = 5000): Promise<Extract<GatewayFrame, { t: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = this.frames.findIndex((f) => f.t === t);
      if (at >= 0) return this.frames.splice(at, 1)[0] as Extract<GatewayFrame, { t: T }>;
      if (this.closed) throw new Error(`the link closed before a ${t} frame (got ${this.frames.map((f) => f.t).join(', ') || 'nothing'})`);
      if (Date.now() > deadline) throw new Error(`no ${t} frame within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('the link did not close');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** A TLS 1.3 connection presenting `identity`, checked to reach the gateway whose key is `gatewayKey`. */
export function dialGateway(port: number, identity: LinkIdentity, gatewayKey: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      key: identity.privateKey,
      cert: identity.certificate,
      minVersion: 'TLSv1.3',
      rejectUnauthorized: false,
    });
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate();
      if (!cert || publicKeyOfCertificate(cert) !== gatewayKey) {
        socket.destroy();
        reject(new Error('the gateway presented another key'));
        return;
      }
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/** An agent's key pair as `gatehouse agent enroll` makes it: the PEM private key and its link identity. */
export function fakeAgentIdentity(privateKeyPem?: string): LinkIdentity {
  return privateKeyPem ? linkIdentityOf(privateKeyPem, 'gatehouse-agent') : generateLinkIdentity('gatehouse-agent');
}
