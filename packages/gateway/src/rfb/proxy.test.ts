import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CANONICAL_PIXEL_FORMAT, decodeRfbRecording } from '@gatehouse/core';
import { PIXEL_FORMAT_RGB565 } from '../../../../test/support/rfb-client.js';
import { testRfbHeader } from '../../../../test/support/rfb-header.js';
import { RfbProxy } from './proxy.js';
import { RfbRecorder } from './recording.js';
import { acceptVncUser } from './user.js';

const servers: net.Server[] = [];
afterEach(() => servers.splice(0).forEach((s) => s.close()));
const recordings = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-rfb-proxy-'));
afterAll(() => rmSync(recordings, { recursive: true, force: true }));

/** Resolves with the first `bytes` bytes `socket` receives. */
function receive(socket: net.Socket, bytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let have = 0;
  return new Promise((resolve) => {
    const onData = (d: Buffer) => {
      parts.push(d);
      have += d.length;
      if (have < bytes) return;
      socket.off('data', onData);
      resolve(Buffer.concat(parts).subarray(0, bytes));
    };
    socket.on('data', onData);
  });
}

/** A FramebufferUpdate of one Raw rectangle `width`×1 at 0,0 with `pixel` (its bytes) repeated. */
function rawUpdate(width: number, pixel: Buffer): Buffer {
  const head = Buffer.alloc(16);
  head.writeUInt16BE(1, 2);
  head.writeUInt16BE(width, 8);
  head.writeUInt16BE(1, 10);
  return Buffer.concat([head, ...Array.from({ length: width }, () => pixel)]);
}

/** Writes `parts` one at a time, each after the last left this end (so the relay tends to see them as separate chunks). */
async function writeApart(socket: net.Socket, parts: Buffer[]): Promise<void> {
  for (const part of parts) await new Promise<void>((resolve) => socket.write(part, () => setImmediate(resolve)));
}

/** Two ends of a TCP connection on 127.0.0.1. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => client.once('connect', r));
  return [client, await accepted];
}

const init = { width: 16, height: 16, pixelFormat: Buffer.from(CANONICAL_PIXEL_FORMAT), name: 'desk-1' };

describe('RfbProxy', () => {
  it('ends at once when the viewer left before the relay began', async () => {
    const [user, userPeer] = await socketPair();
    const [target, targetPeer] = await socketPair();
    user.destroy();
    const proxy = new RfbProxy({ user, target, init });
    expect(await proxy.done).toMatchObject({ result: 'success', reason: null, bytesIn: 0, bytesOut: 0 });
    expect(target.destroyed).toBe(true);
    userPeer.destroy();
    targetPeer.destroy();
  });

  it('relays a framebuffer update split anywhere, and counts the bytes', async () => {
    const [user, viewer] = await socketPair();
    const [target, device] = await socketPair();
    const proxy = new RfbProxy({ user, target, init });
    const update = Buffer.concat([Buffer.of(0, 0, 0, 1), Buffer.of(0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0), Buffer.of(1, 2, 3, 0)]);
    const received: Buffer[] = [];
    viewer.on('data', (d: Buffer) => received.push(d));
    device.write(update.subarray(0, 7));
    device.write(update.subarray(7));
    await new Promise<void>((resolve) => {
      const check = () => (Buffer.concat(received).length >= update.length ? resolve() : viewer.once('data', check));
      check();
    });
    expect(Buffer.concat(received)).toEqual(update);
    viewer.end();
    expect(await proxy.done).toMatchObject({ result: 'success', bytesOut: update.length, bytesIn: 0 });
    device.destroy();
  });
  it('records each message whole however it arrives, and passes the bytes on unchanged', async () => {
    const [user, viewer] = await socketPair();
    const [target, device] = await socketPair();
    const recorder = await RfbRecorder.open(recordings, 'whole.rfb', testRfbHeader());
    const proxy = new RfbProxy({ user, target, init, recorder });
    // A large update (kept by the recorder without a copy), a Bell and a small update, cut across messages.
    const large = rawUpdate(40_000, Buffer.of(1, 2, 3, 0));
    const small = rawUpdate(2, Buffer.of(4, 5, 6, 0));
    const stream = Buffer.concat([large, Buffer.of(2), small]);
    const cuts = [0, 100, 70_000, large.length + 3, stream.length - 5, stream.length];
    const received = receive(viewer, stream.length);
    await writeApart(
      device,
      cuts.slice(1).map((end, i) => stream.subarray(cuts[i], end)),
    );
    expect((await received).equals(stream)).toBe(true);
    viewer.end();
    await proxy.done;
    device.destroy();
    const frames = decodeRfbRecording(readFileSync(recorder.file)).frames.map((f) => Buffer.from(f.data));
    expect(frames.map((f) => f.length)).toEqual([large.length, 1, small.length]);
    expect(frames[0]!.equals(large) && frames[2]!.equals(small)).toBe(true);
  });

  it('converts Raw pixels for a viewer in RGB565 while the messages around them go on as they came', async () => {
    const [user, viewer] = await socketPair();
    const [target, device] = await socketPair();
    const recorder = await RfbRecorder.open(recordings, 'converted.rfb', testRfbHeader());
    const proxy = new RfbProxy({ user, target, init, recorder });
    const setEncodings = receive(device, 8);
    viewer.write(Buffer.concat([Buffer.of(0, 0, 0, 0), PIXEL_FORMAT_RGB565]));
    // The proxy asks the device for convertible encodings once the viewer's format differs.
    expect((await setEncodings)[0]).toBe(2);
    const red = rawUpdate(3, Buffer.of(0xff, 0, 0, 0)); // canonical: little-endian, red in the low byte
    const stream = Buffer.concat([Buffer.of(2), red, Buffer.of(2)]);
    const expected = Buffer.concat([Buffer.of(2), red.subarray(0, 16), Buffer.of(0x00, 0xf8, 0x00, 0xf8, 0x00, 0xf8), Buffer.of(2)]);
    const received = receive(viewer, expected.length);
    await writeApart(device, [stream.subarray(0, 10), stream.subarray(10, 20), stream.subarray(20)]);
    expect(await received).toEqual(expected);
    viewer.end();
    await proxy.done;
    device.destroy();
    // The recording keeps the device's canonical pixels.
    const frames = decodeRfbRecording(readFileSync(recorder.file)).frames.map((f) => Buffer.from(f.data));
    expect(frames).toEqual([Buffer.of(2), red, Buffer.of(2)]);
  });
});

describe('acceptVncUser', () => {
  it('tells the check when the viewer hangs up while it runs', async () => {
    const [viewer, user] = await socketPair();
    let aborted!: () => void;
    const hungUp = new Promise<void>((r) => (aborted = r));
    const accepted = acceptVncUser(
      user,
      {
        kind: 'vnc',
        check: (_challenge, _response, signal) => {
          signal.addEventListener('abort', () => aborted());
          viewer.destroy();
          return hungUp.then(() => ({ ok: false, message: 'gone' }) as const);
        },
      },
      { timeoutMs: 5000 },
    );
    // The viewer's side: its version after the server's (12 bytes), VncAuth after the types (2), a response after the challenge (16).
    let seen = 0;
    viewer.on('data', (d: Buffer) => {
      const before = seen;
      seen += d.length;
      if (before < 12 && seen >= 12) viewer.write('RFB 003.008\n');
      if (before < 14 && seen >= 14) viewer.write(Buffer.of(2));
      if (before < 30 && seen >= 30) viewer.write(Buffer.alloc(16));
    });
    await expect(accepted).rejects.toMatchObject({ kind: 'refused' });
    await hungUp;
  });
});
