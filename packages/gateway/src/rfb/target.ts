import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { CANONICAL_PIXEL_FORMAT, GatehouseError } from '@gatehouse/core';
import { fingerprintOf } from '../host-key.js';
import { vncAuthResponse } from './des.js';
import { HandshakeReadError, HandshakeReader } from './handshake-reader.js';

/** What the target's ServerInit said, with the pixel format the gateway then asked it for. */
export interface RfbServerInit {
  width: number;
  height: number;
  /** The 16-byte RFB PIXEL_FORMAT the target sends in (after the handshake: always CANONICAL_PIXEL_FORMAT). */
  pixelFormat: Buffer;
  name: string;
}

export type VncTargetSecurity = 'none' | 'vnc' | 'vencrypt-tls-vnc' | 'vencrypt-x509-vnc' | 'vencrypt-tls-none' | 'vencrypt-x509-none';

export interface VncTargetConnection {
  /** The RFB stream after ServerInit: the TLS socket for VeNCrypt, else the one given. */
  socket: Duplex;
  init: RfbServerInit;
  security: VncTargetSecurity;
}

export type VncTargetErrorKind = 'auth_failed' | 'unsupported' | 'protocol' | 'timeout' | 'closed' | 'aborted';

/** The gateway could not open an RFB session on the device; the message says why and what to do. */
export class VncTargetError extends GatehouseError {
  constructor(
    readonly kind: VncTargetErrorKind,
    message: string,
  ) {
    super(kind === 'timeout' || kind === 'closed' ? 'UNREACHABLE' : kind === 'aborted' ? 'BAD_REQUEST' : 'BAD_GATEWAY', message);
    this.name = 'VncTargetError';
  }
}

export interface VncTargetOptions {
  /** The vaulted password; undefined when the account has none. */
  password: string | undefined;
  /** For each read of the handshake. */
  timeoutMs: number;
  /** The device as messages name it: `desk-1 (10.0.0.5:5901)`. */
  where: string;
  /** X509 VeNCrypt: whether the certificate's `SHA256:…` fingerprint is trusted (on first use). */
  checkCertificate?: ((fingerprint: string) => Promise<boolean>) | undefined;
  /** How an administrator forgets the trusted certificate, for the refusal of another one (`forgetKeyAdvice`). */
  forgetAdvice?: string | undefined;
  /** Gives the handshake up (the user left): the connection is closed at once, and the error's kind is `aborted`. */
  signal?: AbortSignal | undefined;
  /**
   * Sends the client's ProtocolVersion (3.8) at once, before the server's arrives: for a
   * server known to speak 3.8 and to wait for a client that speaks first, as libvncserver
   * (x11vnc) does for 100 ms after each accept to tell WebSocket clients apart. The gateway's
   * own x11vnc of a browser RDP session; never a device.
   */
  versionFirst?: boolean | undefined;
}

const SECURITY_NONE = 1;
const SECURITY_VNC = 2;
const SECURITY_VENCRYPT = 19;

const VENCRYPT_SUBTYPES = {
  257: 'vencrypt-tls-none',
  258: 'vencrypt-tls-vnc',
  260: 'vencrypt-x509-none',
  261: 'vencrypt-x509-vnc',
} as const satisfies Record<number, VncTargetSecurity>;

/**
 * The gateway's side of an RFB handshake with the device: ProtocolVersion (3.3, 3.7 or 3.8),
 * security (VeNCrypt with TLS and VNC authentication when offered, else VNC authentication,
 * else None), ClientInit (shared), ServerInit; then SetPixelFormat(CANONICAL_PIXEL_FORMAT),
 * the one format recordings are in. On failure, or when `signal` aborts, the socket is
 * destroyed and a VncTargetError says why; its message never contains the password.
 */
export async function connectVncTarget(socket: Duplex, options: VncTargetOptions): Promise<VncTargetConnection> {
  const state: { reader: HandshakeReader; tls?: tls.TLSSocket } = { reader: new HandshakeReader(socket, options.timeoutMs) };
  const { signal } = options;
  // Closing the connection ends whichever read or TLS handshake is waiting.
  const abort = () => {
    state.tls?.destroy();
    socket.destroy();
  };
  signal?.addEventListener('abort', abort, { once: true });
  try {
    if (signal?.aborted) abort();
    const connection = await handshake(state, options);
    if (signal?.aborted) throw new HandshakeReadError('closed');
    state.reader.release();
    return connection;
  } catch (error) {
    state.reader.release();
    abort();
    throw signal?.aborted ? abortedError(options) : targetError(error, options);
  } finally {
    signal?.removeEventListener('abort', abort);
  }
}

async function handshake(state: { reader: HandshakeReader; tls?: tls.TLSSocket }, options: VncTargetOptions): Promise<VncTargetConnection> {
  const { where, password } = options;
  const version = await exchangeVersion(state.reader, where, options.versionFirst === true);
  let security: VncTargetSecurity;
  let type: number;
  if (version === 3) {
    type = await state.reader.readU32();
    if (type === 0) throw refused(where, await state.reader.readString());
    if (type !== SECURITY_NONE && type !== SECURITY_VNC) throw unsupported(where, [type]);
  } else {
    const count = await state.reader.readU8();
    if (count === 0) throw refused(where, await state.reader.readString());
    const offered = [...(await state.reader.read(count))];
    const preference =
      password === undefined ? [SECURITY_NONE, SECURITY_VENCRYPT, SECURITY_VNC] : [SECURITY_VENCRYPT, SECURITY_VNC, SECURITY_NONE];
    const chosen = preference.find((t) => offered.includes(t));
    if (chosen === undefined) throw unsupported(where, offered);
    type = chosen;
    state.reader.socket.write(Buffer.of(type));
  }
  let vncAuth = type === SECURITY_VNC;
  if (type === SECURITY_VENCRYPT) {
    security = await startVeNCrypt(state, options);
    vncAuth = security.endsWith('-vnc');
  } else {
    security = vncAuth ? 'vnc' : 'none';
  }
  if (vncAuth) {
    if (password === undefined)
      throw new VncTargetError(
        'auth_failed',
        `${where} asks for a VNC password, but the account has none vaulted. Ask an administrator to set it.`,
      );
    const challenge = await state.reader.read(16);
    state.reader.socket.write(vncAuthResponse(challenge, password));
  }
  if (vncAuth || version === 8) {
    const result = await state.reader.readU32();
    if (result !== 0) {
      const reason = version === 8 ? (await state.reader.readString().catch(() => '')).trim() : '';
      const why = vncAuth ? 'refused the vaulted VNC password' : 'refused the VNC connection';
      throw new VncTargetError(
        'auth_failed',
        `${where} ${why}${reason ? `: ${reason.replace(/\.$/, '')}` : ''}. ${vncAuth ? "Ask an administrator to update the account's password." : ''}`.trim(),
      );
    }
  }
  state.reader.socket.write(Buffer.of(1)); // ClientInit: shared, other viewers stay connected
  const head = await state.reader.read(20);
  const name = await state.reader.readString();
  const setPixelFormat = Buffer.alloc(20);
  Buffer.from(CANONICAL_PIXEL_FORMAT).copy(setPixelFormat, 4);
  state.reader.socket.write(setPixelFormat);
  return {
    socket: state.reader.socket,
    security,
    init: { width: head.readUInt16BE(0), height: head.readUInt16BE(2), pixelFormat: Buffer.from(CANONICAL_PIXEL_FORMAT), name },
  };
}

/**
 * Reads the server's ProtocolVersion and answers the highest one both speak: 3.3, 3.7 or 3.8
 * (the minor number); `first`: 3.8 was sent before, and the server must speak it.
 */
async function exchangeVersion(reader: HandshakeReader, where: string, first: boolean): Promise<3 | 7 | 8> {
  if (first) reader.socket.write('RFB 003.008\n', 'latin1');
  const text = (await reader.read(12)).toString('latin1');
  const match = /^RFB (\d{3})\.(\d{3})\n$/.exec(text);
  if (!match)
    throw new VncTargetError('protocol', `${where} did not answer as a VNC server (no RFB protocol version). Check the device's VNC port.`);
  const major = Number(match[1]);
  const minor = Number(match[2]);
  if (major < 3) throw new VncTargetError('unsupported', `${where} speaks RFB ${major}.${minor}, older than 3.3.`);
  const version = major > 3 || minor >= 8 ? 8 : minor === 7 ? 7 : 3;
  if (first) {
    if (version !== 8)
      throw new VncTargetError('unsupported', `${where} speaks RFB ${major}.${minor}, not the 3.8 the gateway sent first.`);
    return version;
  }
  reader.socket.write(`RFB 003.00${version}\n`, 'latin1');
  return version;
}

/** VeNCrypt 0.2: picks a TLS subtype with (or, without a password, without) VNC authentication and starts TLS. */
async function startVeNCrypt(
  state: { reader: HandshakeReader; tls?: tls.TLSSocket },
  options: VncTargetOptions,
): Promise<VncTargetSecurity> {
  const { reader } = state;
  const { where } = options;
  const [major = 0, minor = 0] = await reader.read(2);
  if (major !== 0 || minor < 2)
    throw new VncTargetError('unsupported', `${where} speaks VeNCrypt ${major}.${minor}; the gateway needs 0.2.`);
  reader.socket.write(Buffer.of(0, 2));
  if ((await reader.readU8()) !== 0) throw new VncTargetError('unsupported', `${where} refused VeNCrypt 0.2.`);
  const count = await reader.readU8();
  const list = await reader.read(4 * count);
  const offered = Array.from({ length: count }, (_, i) => list.readUInt32BE(4 * i));
  const preference = options.password === undefined ? [260, 257, 261, 258] : [261, 258, 260, 257];
  const subtype = preference.find((t) => offered.includes(t)) as keyof typeof VENCRYPT_SUBTYPES | undefined;
  if (subtype === undefined)
    throw new VncTargetError(
      'unsupported',
      `${where} offers VeNCrypt only with subtypes the gateway does not support (${offered.join(', ')}); it supports TLSVnc, X509Vnc, TLSNone and X509None.`,
    );
  const request = Buffer.alloc(4);
  request.writeUInt32BE(subtype);
  reader.socket.write(request);
  if ((await reader.readU8()) !== 1) throw new VncTargetError('unsupported', `${where} refused the VeNCrypt subtype it offered.`);
  const anonymous = subtype === 257 || subtype === 258;
  reader.release();
  const secure = tls.connect({
    socket: reader.socket,
    rejectUnauthorized: false,
    // Anonymous Diffie-Hellman: TLSVnc has no certificate (TLS 1.2 at most, no 1.3 anonymous suites).
    ...(anonymous ? { ciphers: 'aNULL:ADH:@SECLEVEL=0', maxVersion: 'TLSv1.2' as const } : {}),
  });
  state.tls = secure;
  state.reader = new HandshakeReader(secure, options.timeoutMs);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new HandshakeReadError('timeout')), options.timeoutMs);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      resolve();
    });
    secure.once('error', (error: Error) => {
      clearTimeout(timer);
      reject(new VncTargetError('protocol', `The TLS handshake with ${where} failed: ${error.message}.`));
    });
  });
  if (!anonymous) {
    const fingerprint = fingerprintOf(secure.getPeerCertificate().raw);
    if (options.checkCertificate && !(await options.checkCertificate(fingerprint)))
      throw new VncTargetError(
        'auth_failed',
        `${where} presented a TLS certificate (${fingerprint}) other than the one trusted before. This can be an attack. ` +
          (options.forgetAdvice
            ? `An administrator must check the device and, if the new certificate is right, forget the old one: ${options.forgetAdvice}.`
            : 'If the device was reinstalled, ask an administrator to forget its old certificate.'),
      );
  }
  return VENCRYPT_SUBTYPES[subtype];
}

function refused(where: string, reason: string): VncTargetError {
  return new VncTargetError('protocol', `${where} refused the VNC connection: ${reason.trim() || 'no reason given'}.`);
}

function unsupported(where: string, offered: number[]): VncTargetError {
  return new VncTargetError(
    'unsupported',
    `${where} offers only VNC security types the gateway does not support (${offered.join(', ')}); it supports VeNCrypt (TLSVnc, X509Vnc), VNC authentication and None.`,
  );
}

function abortedError(options: VncTargetOptions): VncTargetError {
  return new VncTargetError('aborted', `The VNC handshake with ${options.where} was given up: the user left.`);
}

function targetError(error: unknown, options: VncTargetOptions): VncTargetError {
  if (error instanceof VncTargetError) return error;
  if (error instanceof HandshakeReadError)
    return error.kind === 'timeout'
      ? new VncTargetError('timeout', `${options.where} did not finish the VNC handshake within ${Math.ceil(options.timeoutMs / 1000)} s.`)
      : new VncTargetError('closed', `${options.where} closed the connection during the VNC handshake.`);
  return new VncTargetError('protocol', `The VNC handshake with ${options.where} failed: ${(error as Error).message}`);
}
