import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CANONICAL_PIXEL_FORMAT, decodeRfbRecording, RFB_RECORDING_FORMAT, RFB_RECORDING_VERSION } from '@gatehouse/core';
import { PIXEL_FORMAT_RGB565, RfbRefusedError, RfbTestClient } from '../../../../test/support/rfb-client.js';
import { startVncTarget, stopVncTargets, VNC_TARGET_COLOUR, VNC_TARGET_SIZE, type RunningVncTarget } from '../../../../test/support/vnc.js';
import { vncAuthResponse } from './des.js';
import { RfbProxy, type RfbProxyResult } from './proxy.js';
import { RfbRecorder, rfbRecordingPath } from './recording.js';
import { ServerMessageFramer } from './server-messages.js';
import { connectVncTarget, VncTargetError, type VncTargetConnection } from './target.js';
import { acceptVncUser, sendServerInit, type VncUserAuth } from './user.js';

const PASSWORD = 'vnc-pw-7';
const TOKEN = 'TK3P9QWX';

let tigervnc: RunningVncTarget;
let tigervncTls: RunningVncTarget;
let x11vnc: RunningVncTarget;
const recordingsDir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-rfb-rec-'));

beforeAll(async () => {
  [tigervnc, tigervncTls, x11vnc] = await Promise.all([
    startVncTarget({ kind: 'tigervnc', password: PASSWORD }),
    startVncTarget({ kind: 'tigervnc', password: PASSWORD, securityTypes: 'TLSVnc,VncAuth' }),
    startVncTarget({ kind: 'x11vnc', password: PASSWORD }),
  ]);
});

afterAll(async () => {
  await stopVncTargets();
  rmSync(recordingsDir, { recursive: true, force: true });
});

function dial(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

async function connectTarget(port: number, password: string | undefined): Promise<VncTargetConnection> {
  return connectVncTarget(await dial(port), { password, timeoutMs: 5000, where: `desk-1 (127.0.0.1:${port})` });
}

describe('connectVncTarget', () => {
  it.each([
    ['TigerVNC with VncAuth', () => tigervnc, 'vnc'],
    ['TigerVNC with its default VeNCrypt TLSVnc', () => tigervncTls, 'vencrypt-tls-vnc'],
    ['x11vnc with VncAuth', () => x11vnc, 'vnc'],
  ] as const)('logs in to %s with the vaulted password', async (_name, target, security) => {
    const connection = await connectTarget(target().port, PASSWORD);
    expect(connection.security).toBe(security);
    expect(connection.init).toMatchObject({ width: VNC_TARGET_SIZE.width, height: VNC_TARGET_SIZE.height });
    expect(connection.init.pixelFormat).toEqual(Buffer.from(CANONICAL_PIXEL_FORMAT));
    connection.socket.destroy();
  });

  it.each([
    ['TigerVNC', () => tigervnc],
    ['TigerVNC over TLS', () => tigervncTls],
    ['x11vnc', () => x11vnc],
  ] as const)('says %s refused a wrong vaulted password, without the password', async (_name, target) => {
    const error = await connectTarget(target().port, 'wrong-pw').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VncTargetError);
    expect((error as VncTargetError).kind).toBe('auth_failed');
    expect((error as VncTargetError).message).toContain(`desk-1 (127.0.0.1:${target().port}) refused the vaulted VNC password`);
    expect((error as VncTargetError).message).toContain('Ask an administrator');
    expect((error as VncTargetError).message).not.toContain('wrong-pw');
  });

  it("sends its version first to x11vnc when asked (browser RDP's own x11vnc), which libvncserver otherwise waits 100 ms for", async () => {
    const timed = async (versionFirst: boolean) => {
      const started = performance.now();
      const socket = await dial(x11vnc.port);
      const connection = await connectVncTarget(socket, { password: PASSWORD, timeoutMs: 5000, where: 'x11vnc', versionFirst });
      connection.socket.destroy();
      expect(connection.security).toBe('vnc');
      return performance.now() - started;
    };
    // libvncserver peeks 100 ms for the first bytes of a WebSocket client before it sends its version.
    const waited = Math.min(await timed(false), await timed(false));
    expect(waited).toBeGreaterThanOrEqual(100);
    // Timings are not asserted (the machine may be busy); the handshake's success is.
    const first = Math.min(await timed(true), await timed(true));
    console.log(`x11vnc handshake: ${Math.round(waited)} ms waiting for its version, ${Math.round(first)} ms sending ours first`);
  });

  it('pins the certificate of an X509Vnc target, and refuses another one', async () => {
    const x509 = await startVncTarget({ kind: 'tigervnc', password: PASSWORD, securityTypes: 'X509Vnc', x509: true });
    try {
      const seen: string[] = [];
      const options = { password: PASSWORD, timeoutMs: 5000, where: 'desk-1' };
      const trusted = await connectVncTarget(await dial(x509.port), { ...options, checkCertificate: async (f) => (seen.push(f), true) });
      expect(trusted.security).toBe('vencrypt-x509-vnc');
      expect(seen).toEqual([x509.certificateFingerprint]);
      trusted.socket.destroy();
      const forgetAdvice = './gatehouse devices host-key forget Studio/desk-1 --protocol vnc';
      const other = await connectVncTarget(await dial(x509.port), { ...options, checkCertificate: async () => false, forgetAdvice }).catch(
        (e: unknown) => e,
      );
      expect(other).toMatchObject({ kind: 'auth_failed' });
      expect((other as VncTargetError).message).toContain(
        `desk-1 presented a TLS certificate (${x509.certificateFingerprint}) other than the one trusted before. This can be an attack.`,
      );
      expect((other as VncTargetError).message).toContain(`if the new certificate is right, forget the old one: ${forgetAdvice}.`);
    } finally {
      await x509.stop();
    }
  });

  it('says when a device stays silent, or hangs up during the handshake', async () => {
    const silent = net.createServer(() => undefined);
    const hangUp = net.createServer((s) => s.end('RFB 003.008\n'));
    await Promise.all([silent, hangUp].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
    try {
      const port = (s: net.Server) => (s.address() as net.AddressInfo).port;
      const timeout = await connectVncTarget(await dial(port(silent)), { password: PASSWORD, timeoutMs: 300, where: 'desk-1' }).catch(
        (e: unknown) => e,
      );
      expect(timeout).toMatchObject({ kind: 'timeout', message: 'desk-1 did not finish the VNC handshake within 1 s.' });
      const closed = await connectVncTarget(await dial(port(hangUp)), { password: PASSWORD, timeoutMs: 5000, where: 'desk-1' }).catch(
        (e: unknown) => e,
      );
      expect(closed).toMatchObject({ kind: 'closed', message: 'desk-1 closed the connection during the VNC handshake.' });
    } finally {
      silent.close();
      hangUp.close();
    }
  });

  it('gives the handshake up at once when its signal aborts (the user left), closing the connection', async () => {
    const accepted: net.Socket[] = [];
    const silent = net.createServer((s) => accepted.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const gone = new AbortController();
      const handshake = connectVncTarget(await dial((silent.address() as net.AddressInfo).port), {
        password: PASSWORD,
        timeoutMs: 20_000,
        where: 'desk-1',
        signal: gone.signal,
      }).catch((e: unknown) => e);
      await vi.waitFor(() => expect(accepted).toHaveLength(1));
      const closed = new Promise((resolve) => accepted[0]?.once('close', resolve));
      gone.abort();
      expect(await handshake).toMatchObject({ kind: 'aborted', message: 'The VNC handshake with desk-1 was given up: the user left.' });
      await closed;
      // Already aborted: no handshake starts.
      const early = await connectVncTarget(await dial(tigervnc.port), {
        password: PASSWORD,
        timeoutMs: 5000,
        where: 'desk-1',
        signal: gone.signal,
      }).catch((e: unknown) => e);
      expect(early).toMatchObject({ kind: 'aborted' });
    } finally {
      silent.close();
    }
  });

  it('cannot reach a device whose VNC server is down', async () => {
    const down = await startVncTarget({ kind: 'tigervnc', password: PASSWORD });
    await down.stop();
    await expect(dial(down.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

interface GatewaySession {
  result: Promise<RfbProxyResult>;
  proxy: Promise<RfbProxy>;
  recording: string;
}

/**
 * A minimal gateway: the user's VncAuth response is checked against TOKEN, and the device is
 * connected inside the check (so a failure reaches the viewer as the SecurityResult reason).
 */
async function startGateway(target: () => number, options: { auth?: 'vnc' | 'none'; password?: string } = {}) {
  const sessions: GatewaySession[] = [];
  const server = net.createServer((socket) => {
    let connection: VncTargetConnection | undefined;
    let ready!: (p: RfbProxy) => void;
    const proxy = new Promise<RfbProxy>((r) => (ready = r));
    const recording = rfbRecordingPath(crypto.randomUUID(), new Date());
    const result = (async () => {
      const check: VncUserAuth =
        options.auth === 'none'
          ? { kind: 'none' }
          : {
              kind: 'vnc',
              check: async (challenge, response) => {
                if (!timingSafeEqual(vncAuthResponse(challenge, TOKEN), response))
                  return { ok: false, message: 'The one-time password is wrong or used.' };
                try {
                  connection = await connectTarget(target(), options.password ?? PASSWORD);
                  return { ok: true };
                } catch (error) {
                  return { ok: false, message: (error as Error).message };
                }
              },
            };
      await acceptVncUser(socket, check, { timeoutMs: 5000 });
      connection ??= await connectTarget(target(), options.password ?? PASSWORD);
      const startedAt = new Date().toISOString();
      const recorder = await RfbRecorder.open(recordingsDir, recording, {
        format: RFB_RECORDING_FORMAT,
        version: RFB_RECORDING_VERSION,
        width: connection.init.width,
        height: connection.init.height,
        name: 'desk-1',
        pixelFormat: Buffer.from(CANONICAL_PIXEL_FORMAT).toString('hex'),
        startedAt,
        protocol: 'vnc',
      });
      sendServerInit(socket, connection.init, 'desk-1');
      const relay = new RfbProxy({ user: socket, target: connection.socket, init: connection.init, recorder });
      ready(relay);
      return relay.done;
    })();
    result.catch(() => undefined);
    sessions.push({ result, proxy, recording });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, sessions, close: () => server.close() };
}

function recordedMessages(relative: string): { frames: number; bytes: Buffer } {
  const { header, frames } = decodeRfbRecording(readFileSync(path.join(recordingsDir, relative)));
  expect(header).toMatchObject({ width: VNC_TARGET_SIZE.width, height: VNC_TARGET_SIZE.height, name: 'desk-1', protocol: 'vnc' });
  return { frames: frames.length, bytes: Buffer.concat(frames.map((f) => f.data)) };
}

/** Every frame of a recording ends at a message boundary: the whole stream frames cleanly. */
function expectWholeMessages(bytes: Buffer): number {
  let ended = 0;
  let last = 0;
  const framer = new ServerMessageFramer({ end: (m) => (ended++, (last = m.end)) });
  framer.push(bytes);
  expect(last).toBe(bytes.length);
  return ended;
}

describe('RfbProxy between a viewer and a real device', () => {
  it.each([
    ['TigerVNC', () => tigervnc],
    ['TigerVNC over TLS', () => tigervncTls],
    ['x11vnc', () => x11vnc],
  ] as const)('shows the desktop of %s and records it', async (_name, target) => {
    const gateway = await startGateway(() => target().port);
    try {
      const client = await RfbTestClient.connect(gateway.port, { password: TOKEN });
      expect(client.name).toBe('desk-1');
      client.setEncodings([0, 1, -223]);
      await client.waitForColour(20, 20, VNC_TARGET_COLOUR);
      client.close();
      const session = gateway.sessions[0]!;
      const result = await session.result;
      expect(result).toMatchObject({ result: 'success', reason: null });
      expect(result.bytesOut).toBeGreaterThan(VNC_TARGET_SIZE.width * 4);
      const recorded = recordedMessages(session.recording);
      expect(recorded.frames).toBeGreaterThan(0);
      expect(expectWholeMessages(recorded.bytes)).toBeGreaterThan(0);
    } finally {
      gateway.close();
    }
  });

  it("frames the device's Tight, ZRLE, Hextile and RRE updates whole", async () => {
    const gateway = await startGateway(() => tigervnc.port);
    try {
      for (const encoding of [7, 16, 5, 2]) {
        const client = await RfbTestClient.connect(gateway.port, { password: TOKEN });
        client.setEncodings([encoding, -223]);
        client.requestUpdate(false);
        await client.waitFor(() => client.encodingsSeen.has(encoding));
        client.close();
      }
      for (const session of gateway.sessions) {
        expect((await session.result).result).toBe('success');
        expectWholeMessages(recordedMessages(session.recording).bytes);
      }
    } finally {
      gateway.close();
    }
  });

  it('converts Raw pixels for a viewer asking 16 bits per pixel, and keeps the recording canonical', async () => {
    const gateway = await startGateway(() => x11vnc.port);
    try {
      const client = await RfbTestClient.connect(gateway.port, { password: TOKEN });
      client.setPixelFormat(PIXEL_FORMAT_RGB565);
      client.setEncodings([7, 16, 5, 0, 1, -223]);
      await client.waitForColour(30, 30, VNC_TARGET_COLOUR);
      expect([...client.encodingsSeen].every((e) => [0, 1, -223, -224].includes(e))).toBe(true);
      client.close();
      const session = gateway.sessions[0]!;
      await session.result;
      const recorded = recordedMessages(session.recording);
      // Canonical: 4 bytes a pixel, so the full update is at least width × height × 4.
      expect(recorded.bytes.length).toBeGreaterThanOrEqual(VNC_TARGET_SIZE.width * VNC_TARGET_SIZE.height * 4);
      expectWholeMessages(recorded.bytes);
    } finally {
      gateway.close();
    }
  });

  it("tells the viewer why it was refused, from the check: a wrong token, or the device's refusal", async () => {
    const gateway = await startGateway(() => tigervnc.port, { password: 'not-the-pw' });
    try {
      const wrongToken = await RfbTestClient.connect(gateway.port, { password: 'WRONG123' }).catch((e: unknown) => e);
      expect(wrongToken).toBeInstanceOf(RfbRefusedError);
      expect((wrongToken as RfbRefusedError).reason).toBe('The one-time password is wrong or used.');
      const refused = await RfbTestClient.connect(gateway.port, { password: TOKEN }).catch((e: unknown) => e);
      expect((refused as RfbRefusedError).reason).toMatch(/^desk-1 \(127\.0\.0\.1:\d+\) refused the vaulted VNC password/);
      expect((refused as RfbRefusedError).reason).not.toContain('not-the-pw');
    } finally {
      gateway.close();
    }
  });

  it.each(['3.3', '3.7'] as const)('serves a viewer that speaks RFB %s', async (version) => {
    const gateway = await startGateway(() => tigervnc.port);
    try {
      const client = await RfbTestClient.connect(gateway.port, { password: TOKEN, version });
      await client.waitForColour(7, 7, VNC_TARGET_COLOUR);
      client.close();
      const refused = await RfbTestClient.connect(gateway.port, { password: 'WRONG123', version }).catch((e: unknown) => e);
      // No room for a reason before RFB 3.8.
      expect(refused).toMatchObject({ reason: '' });
    } finally {
      gateway.close();
    }
  });

  it("passes clipboard text both ways (the desktop's clipboard, read and set with xclip)", async () => {
    const gateway = await startGateway(() => tigervnc.port);
    try {
      const client = await RfbTestClient.connect(gateway.port, { password: TOKEN });
      client.requestUpdate(false);
      await client.waitFor(() => client.messages > 0);
      const printable = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('');
      client.cutText(printable);
      const clipboard = () =>
        execFileSync('xclip', ['-o', '-selection', 'clipboard'], {
          env: tigervnc.env,
          encoding: 'latin1',
          timeout: 5000,
          stdio: ['ignore', 'pipe', 'ignore'],
        });
      await vi.waitFor(() => expect(clipboard()).toBe(printable), { timeout: 10_000 });
      // xclip keeps the selection from a background process until the next owner takes it.
      execFileSync('xclip', ['-i', '-selection', 'clipboard'], {
        env: tigervnc.env,
        input: 'to the viewer',
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      await client.waitFor(() => client.serverCutText.includes('to the viewer'));
      client.close();
      expect((await gateway.sessions[0]!.result).result).toBe('success');
    } finally {
      gateway.close();
    }
  });

  it('serves a signed-in user without VNC authentication (None)', async () => {
    const gateway = await startGateway(() => tigervnc.port, { auth: 'none' });
    try {
      const client = await RfbTestClient.connect(gateway.port);
      await client.waitForColour(5, 5, VNC_TARGET_COLOUR);
      client.close();
      expect((await gateway.sessions[0]!.result).result).toBe('success');
    } finally {
      gateway.close();
    }
  });

  it('ends the session on a message type it does not pass on, and when told to', async () => {
    const gateway = await startGateway(() => tigervnc.port);
    try {
      const rogue = await RfbTestClient.connect(gateway.port, { password: TOKEN });
      rogue.socket.write(Buffer.of(150, 1, 0, 0, 0, 0, 0, 0, 0, 0));
      expect(await gateway.sessions[0]!.result).toMatchObject({
        result: 'failure',
        reason: 'The VNC viewer sent RFB message type 150, which the gateway does not pass on.',
      });
      await rogue.waitFor(() => rogue.isClosed).catch(() => undefined);
      const ended = await RfbTestClient.connect(gateway.port, { password: TOKEN });
      (await gateway.sessions[1]!.proxy).end('An administrator ended the session.');
      expect(await gateway.sessions[1]!.result).toMatchObject({ result: 'failure', reason: 'An administrator ended the session.' });
      ended.close();
    } finally {
      gateway.close();
    }
  });
});
