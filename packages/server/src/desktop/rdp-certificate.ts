import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { GatehouseError } from '@gatehouse/core';

/** The certificate an RDP target presented, as Gatehouse stores it and as xfreerdp's `/cert:fingerprint:` takes it. */
export interface RdpCertificate {
  /** `SHA256:<base64>` of the DER certificate, as OpenSSH prints a key's fingerprint. */
  fingerprint: string;
  /** The same hash as lower-case hex pairs joined by `:` (FreeRDP's form). */
  sha256Hex: string;
}

/** The protocols of MS-RDPBCGR 2.2.1.1.1 (RDP_NEG_REQ). */
const PROTOCOL_SSL = 0x1;
const PROTOCOL_HYBRID = 0x2;

/**
 * X.224 Connection Request (TPKT + CR TPDU) with an RDP_NEG_REQ asking for TLS or NLA
 * (CredSSP, which runs inside TLS too): what xfreerdp sends first, without a cookie.
 */
export function x224ConnectionRequest(): Buffer {
  const negReq = Buffer.alloc(8);
  negReq.writeUInt8(0x01, 0); // TYPE_RDP_NEG_REQ
  negReq.writeUInt8(0x00, 1);
  negReq.writeUInt16LE(8, 2);
  negReq.writeUInt32LE(PROTOCOL_SSL | PROTOCOL_HYBRID, 4);
  const tpdu = Buffer.from([6 + negReq.length, 0xe0, 0, 0, 0, 0, 0]);
  const tpkt = Buffer.alloc(4);
  tpkt.writeUInt8(3, 0);
  tpkt.writeUInt16BE(4 + tpdu.length + negReq.length, 2);
  return Buffer.concat([tpkt, tpdu, negReq]);
}

export type NegotiationAnswer = { ok: true; protocol: number } | { ok: false; reason: string };

/** Reads the X.224 Connection Confirm (one TPKT) and its RDP_NEG_RSP / RDP_NEG_FAILURE. */
export function parseConnectionConfirm(packet: Buffer): NegotiationAnswer {
  if (packet.length < 11 || packet[0] !== 3 || (packet[5]! & 0xf0) !== 0xd0) {
    return { ok: false, reason: 'it did not answer as an RDP server (no X.224 connection confirm)' };
  }
  const neg = packet.subarray(11);
  if (neg.length < 8) return { ok: false, reason: 'it offers only standard RDP security, without TLS' };
  const type = neg[0];
  const value = neg.readUInt32LE(4);
  if (type === 0x02) {
    if (value === 0) return { ok: false, reason: 'it offers only standard RDP security, without TLS' };
    return { ok: true, protocol: value };
  }
  if (type === 0x03) return { ok: false, reason: `it refused the TLS negotiation (failure code ${value})` };
  return { ok: false, reason: 'its X.224 connection confirm was not understood' };
}

/** Reads one TPKT (4-byte header with a big-endian length) from the socket. */
function readTpkt(socket: Duplex, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const done = (error: Error | null, packet?: Buffer) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (error) reject(error);
      else resolve(packet!);
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 4) return;
      const length = buffered.readUInt16BE(2);
      if (length < 4 || length > 1024) return done(new GatehouseError('BAD_GATEWAY', 'it sent a malformed TPKT'));
      if (buffered.length >= length) {
        socket.pause();
        done(null, buffered.subarray(0, length));
      }
    };
    const onError = (error: Error) => done(error);
    const onClose = () => done(new GatehouseError('BAD_GATEWAY', 'it closed the connection during the RDP negotiation'));
    const timer = setTimeout(
      () => done(new GatehouseError('BAD_GATEWAY', `it did not answer the RDP negotiation within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
  });
}

export function certificateOf(der: Buffer): RdpCertificate {
  const digest = createHash('sha256').update(der).digest();
  return { fingerprint: `SHA256:${digest.toString('base64').replace(/=+$/, '')}`, sha256Hex: hexPairs(digest) };
}

/** FreeRDP's form of a SHA-256 digest: lower-case hex pairs joined by `:`. */
function hexPairs(digest: Buffer): string {
  return [...digest].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The certificate a stored fingerprint (`SHA256:<base64>`) names, in both forms; null for anything else. */
export function certificateOfFingerprint(fingerprint: string): RdpCertificate | null {
  const match = /^SHA256:([A-Za-z0-9+/]{43})=?$/.exec(fingerprint);
  if (!match) return null;
  const digest = Buffer.from(match[1]!, 'base64');
  if (digest.length !== 32) return null;
  return { fingerprint, sha256Hex: hexPairs(digest) };
}

/**
 * Connects as an RDP client far enough to see the target's TLS certificate: the X.224
 * negotiation (TLS or NLA; a target without TLS is refused: there is nothing to pin), then
 * the TLS handshake, whose peer certificate is hashed. The socket is closed afterwards.
 */
export async function readRdpCertificate(socket: Duplex, timeoutMs: number): Promise<RdpCertificate> {
  try {
    socket.write(x224ConnectionRequest());
    const answer = parseConnectionConfirm(await readTpkt(socket, timeoutMs));
    if (!answer.ok) throw new GatehouseError('BAD_GATEWAY', answer.reason);
    const der = await new Promise<Buffer>((resolve, reject) => {
      const secure = tls.connect({
        socket,
        rejectUnauthorized: false,
        // Only the certificate is read here: accept what old targets speak.
        minVersion: 'TLSv1',
        ciphers: 'DEFAULT:@SECLEVEL=0',
      });
      const timer = setTimeout(() => {
        secure.destroy();
        reject(new GatehouseError('BAD_GATEWAY', `its TLS handshake did not finish within ${timeoutMs} ms`));
      }, timeoutMs);
      secure.once('secureConnect', () => {
        clearTimeout(timer);
        const raw = secure.getPeerCertificate(false)?.raw;
        secure.destroy();
        if (raw && raw.length > 0) resolve(raw);
        else reject(new GatehouseError('BAD_GATEWAY', 'it presented no TLS certificate'));
      });
      secure.once('error', (error) => {
        clearTimeout(timer);
        reject(new GatehouseError('BAD_GATEWAY', `its TLS handshake failed (${(error as Error).message})`));
      });
    });
    return certificateOf(der);
  } finally {
    socket.destroy();
  }
}
