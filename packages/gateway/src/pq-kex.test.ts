import { createHash, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import { createRequire } from 'node:module';
import net from 'node:net';
import { once } from 'node:events';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { Client, Server, utils, type Algorithms } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// mlkem768x25519-sha256 (draft-ietf-sshm-mlkem-hybrid-kex) is added to ssh2 by patches/ssh2+1.17.0.patch
// (applied by patch-package at `npm ci`). These tests run ssh2's server and client in process; the
// e2e suite (test/e2e/ssh-pq.test.ts) runs OpenSSH 10.2 against the gateway on both legs.

const require = createRequire(import.meta.url);
const constants = require('ssh2/lib/protocol/constants.js') as { DEFAULT_KEX: string[] };

const KEX = 'mlkem768x25519-sha256';
const hostKey = utils.generateKeyPairSync('ed25519').private;
const hostPublic = (utils.parseKey(hostKey) as { getPublicSSH(): Buffer }).getPublicSSH();

let server: Server;
let port: number;
/** The key exchange each accepted connection negotiated, in accept order. */
const serverKex: string[] = [];

function startServer(algorithms?: Algorithms): Promise<{ server: Server; port: number }> {
  const s = new Server({ hostKeys: [hostKey], ...(algorithms ? { algorithms } : {}) }, (conn) => {
    conn.on('handshake', (negotiated) => serverKex.push(negotiated.kex));
    conn.on('authentication', (ctx) => ctx.accept());
    conn.on('error', () => {});
  });
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve({ server: s, port: (s.address() as net.AddressInfo).port })));
}

/** Connects an ssh2 client, returns the key exchange it negotiated once authenticated. */
async function clientKex(p: number, algorithms?: Algorithms): Promise<string> {
  const client = new Client();
  let kex = '';
  client.on('handshake', (negotiated) => (kex = negotiated.kex));
  const ready = once(client, 'ready');
  client.connect({ host: '127.0.0.1', port: p, username: 'u', ...(algorithms ? { algorithms } : {}) });
  await ready;
  client.end();
  return kex;
}

beforeAll(async () => {
  ({ server, port } = await startServer());
});
afterAll(() => server.close());

describe('mlkem768x25519-sha256 in ssh2', () => {
  it('is offered first by the patched ssh2 (client and server)', () => {
    expect(constants.DEFAULT_KEX[0]).toBe(KEX);
    expect(constants.DEFAULT_KEX).toContain('curve25519-sha256');
  });

  it('is negotiated between ssh2 client and server by default', async () => {
    serverKex.length = 0;
    expect(await clientKex(port)).toBe(KEX);
    expect(serverKex).toEqual([KEX]);
  });

  it('falls back to curve25519 with a peer that does not offer it, either side', async () => {
    expect(await clientKex(port, { kex: ['curve25519-sha256'] })).toBe('curve25519-sha256');
    const old = await startServer({ kex: ['curve25519-sha256', 'ecdh-sha2-nistp256'] });
    try {
      expect(await clientKex(old.port)).toBe('curve25519-sha256');
    } finally {
      old.server.close();
    }
  });

  it('keeps concurrent handshakes apart (each its own keys)', async () => {
    serverKex.length = 0;
    const kexes = await Promise.all(Array.from({ length: 8 }, () => clientKex(port)));
    expect(kexes).toEqual(Array(8).fill(KEX));
    expect(serverKex).toEqual(Array(8).fill(KEX));
  });

  it('signs the exchange hash the draft defines (checked by an independent client written from the draft)', async () => {
    const peer = await RawPeer.connect(port);
    try {
      await peer.kexinit(KEX);
      const mlkem = ml_kem768.keygen();
      const x25519 = generateKeyPairSync('x25519');
      const x25519Public = Buffer.from(x25519.publicKey.export({ format: 'jwk' }).x as string, 'base64url');
      const clientBlob = Buffer.concat([mlkem.publicKey, x25519Public]);
      peer.send(Buffer.concat([Buffer.from([30]), sshString(clientBlob)]));

      const reply = await peer.packet();
      expect(reply[0]).toBe(31); // SSH_MSG_KEX_ECDH_REPLY
      const [kS, serverBlob, signature] = readStrings(reply.subarray(1), 3) as [Buffer, Buffer, Buffer];
      expect(kS.equals(hostPublic)).toBe(true);
      // S_REPLY: the ML-KEM-768 ciphertext, then the server's X25519 public key.
      expect(serverBlob.length).toBe(ml_kem768.lengths.cipherText! + 32);
      const mlkemSecret = ml_kem768.decapsulate(serverBlob.subarray(0, 1088), mlkem.secretKey);
      const x25519Secret = diffieHellman({
        privateKey: x25519.privateKey,
        publicKey: createPublicKey({
          key: { kty: 'OKP', crv: 'X25519', x: serverBlob.subarray(1088).toString('base64url') },
          format: 'jwk',
        }),
      });
      // K = SHA-256(K_PQ || K_CL), hashed as a string (not an mpint): a leading 0x00 or high bit must not change it.
      const k = createHash('sha256').update(mlkemSecret).update(x25519Secret).digest();
      const exchangeHash = createHash('sha256');
      for (const part of [peer.identity, peer.serverIdentity, peer.clientKexinit, peer.serverKexinit, kS, clientBlob, serverBlob, k])
        exchangeHash.update(sshString(part));
      const [sigType, sig] = readStrings(signature, 2) as [Buffer, Buffer];
      expect(sigType.toString()).toBe('ssh-ed25519');
      const [, rawHostKey] = readStrings(kS, 2) as [Buffer, Buffer];
      const hostKeyObject = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: rawHostKey.toString('base64url') }, format: 'jwk' });
      expect(verify(null, exchangeHash.digest(), hostKeyObject, sig)).toBe(true);
    } finally {
      peer.close();
    }
  });

  it('refuses a client key of the wrong length with a key exchange failure', async () => {
    const peer = await RawPeer.connect(port);
    try {
      await peer.kexinit(KEX);
      peer.send(Buffer.concat([Buffer.from([30]), sshString(randomBytes(1184 + 31))]));
      const disconnect = await peer.packet();
      expect(disconnect[0]).toBe(1); // SSH_MSG_DISCONNECT
      expect(disconnect.readUInt32BE(1)).toBe(3); // SSH_DISCONNECT_KEY_EXCHANGE_FAILED
    } finally {
      peer.close();
    }
  });
});

function sshString(data: Buffer | Uint8Array): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  return Buffer.concat([length, data]);
}

function readStrings(data: Buffer, count: number): Buffer[] {
  const out: Buffer[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    const length = data.readUInt32BE(p);
    out.push(data.subarray(p + 4, p + 4 + length));
    p += 4 + length;
  }
  return out;
}

function nameList(names: string): Buffer {
  return sshString(Buffer.from(names));
}

/** A minimal SSH client (RFC 4253 up to the first key exchange reply, packets unencrypted). */
class RawPeer {
  readonly identity = Buffer.from('SSH-2.0-gatehouse_pq_test');
  serverIdentity: Buffer = Buffer.alloc(0);
  clientKexinit: Buffer = Buffer.alloc(0);
  serverKexinit: Buffer = Buffer.alloc(0);
  private buffered: Buffer = Buffer.alloc(0);
  private waiting: (() => void) | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.waiting?.();
    });
    socket.on('close', () => this.waiting?.());
  }

  static async connect(port: number): Promise<RawPeer> {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const peer = new RawPeer(socket);
    socket.write(Buffer.concat([peer.identity, Buffer.from('\r\n')]));
    const line = await peer.take((b) => {
      const end = b.indexOf('\r\n');
      return end < 0 ? -1 : end + 2;
    });
    peer.serverIdentity = line.subarray(0, line.length - 2);
    return peer;
  }

  /** Waits until `size` says how many buffered bytes make the next item, and takes them. */
  private async take(size: (b: Buffer) => number): Promise<Buffer> {
    for (;;) {
      const n = size(this.buffered);
      if (n >= 0 && n <= this.buffered.length) {
        const out = this.buffered.subarray(0, n);
        this.buffered = this.buffered.subarray(n);
        return out;
      }
      if (this.socket.destroyed) throw new Error('the server closed the connection');
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  async packet(): Promise<Buffer> {
    const raw = await this.take((b) => (b.length < 4 ? -1 : 4 + b.readUInt32BE(0)));
    const padding = raw[4] as number;
    return raw.subarray(5, raw.length - padding);
  }

  send(payload: Buffer): void {
    let padding = 8 - ((5 + payload.length) % 8);
    if (padding < 4) padding += 8;
    const header = Buffer.alloc(5);
    header.writeUInt32BE(1 + payload.length + padding);
    header[4] = padding;
    this.socket.write(Buffer.concat([header, payload, randomBytes(padding)]));
  }

  async kexinit(kex: string): Promise<void> {
    this.serverKexinit = await this.packet();
    expect(this.serverKexinit[0]).toBe(20);
    const [serverKex] = readStrings(this.serverKexinit.subarray(17), 1) as [Buffer];
    expect(serverKex.toString().split(',')[0]).toBe(kex);
    this.clientKexinit = Buffer.concat([
      Buffer.from([20]),
      randomBytes(16),
      nameList(kex),
      nameList('ssh-ed25519'),
      nameList('aes128-ctr'),
      nameList('aes128-ctr'),
      nameList('hmac-sha2-256'),
      nameList('hmac-sha2-256'),
      nameList('none'),
      nameList('none'),
      nameList(''),
      nameList(''),
      Buffer.from([0, 0, 0, 0, 0]),
    ]);
    this.send(this.clientKexinit);
  }

  close(): void {
    this.socket.destroy();
  }
}
