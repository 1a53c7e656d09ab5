import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CANONICAL_PIXEL_FORMAT } from '@gatehouse/core';
import { RfbProxy } from './proxy.js';
import { acceptVncUser } from './user.js';

const servers: net.Server[] = [];
afterEach(() => servers.splice(0).forEach((s) => s.close()));

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
