import { once } from 'node:events';
import type net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Server, utils, type ClientChannel, type ServerChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayStats } from './relay-stats.js';

// ssh2's own client and server in process: the client's exec channel plays the device's
// channel (what the relay writes to) and the server's end of it the user's (what it reads).

const hostKey = utils.generateKeyPairSync('ed25519').private;
const MiB = 1024 * 1024;

let server: Server;
let client: Client;
let serverChannel: Promise<ServerChannel>;

beforeAll(async () => {
  serverChannel = new Promise((resolve) => {
    server = new Server({ hostKeys: [hostKey] }, (conn) => {
      conn.on('authentication', (ctx) => ctx.accept());
      conn.on('error', () => {});
      conn.on('session', (accept) => accept().on('exec', (acceptExec) => resolve(acceptExec())));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  client = new Client();
  const ready = once(client, 'ready');
  client.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, username: 'u' });
  await ready;
});
afterAll(() => {
  client.end();
  server.close();
});

describe('RelayStats', () => {
  it('counts the time a channel waited for its peer’s window, its stream being full, and the window adjusts', async () => {
    const device = await new Promise<ClientChannel>((resolve, reject) =>
      client.exec('cat', (error, channel) => (error ? reject(error) : resolve(channel))),
    );
    const user = await serverChannel;
    const stats = new RelayStats(user, device);
    // The peer reads nothing for 300 ms: its 2 MiB window fills, then the channel's own buffer.
    user.pause();
    let received = 0;
    user.on('data', (d: Buffer) => (received += d.length));
    const chunk = Buffer.alloc(MiB, 'x');
    const full: boolean[] = [];
    for (let i = 0; i < 6; i++) full.push(device.write(chunk));
    expect(full).toContain(false);
    await sleep(300);
    const resumed = performance.now();
    user.resume();
    await once(device, 'drain');
    while (received < 6 * MiB) await sleep(10);
    const up = stats.summary().up;
    const blocked = performance.now() - resumed + 300;

    expect(up.windowZeroCount).toBeGreaterThanOrEqual(1);
    expect(up.windowZeroMs).toBeGreaterThanOrEqual(250);
    expect(up.windowZeroMs).toBeLessThanOrEqual(blocked + 50);
    expect(up.destinationFullCount).toBe(1);
    expect(up.destinationFullMs).toBeGreaterThanOrEqual(250);
    // 6 MiB through a 2 MiB window: the peer topped it up at least twice, each at half used or more.
    expect(up.adjustsReceived).toBeGreaterThanOrEqual(2);
    expect(up.windowLeftAtAdjustMin).toBe(0);
    expect(up.adjustsSent).toBeGreaterThanOrEqual(2);
    expect(up.windowUsedAtAdjustMean).toBeGreaterThanOrEqual(MiB);
    expect(up.sourceWindowMin).toBeLessThanOrEqual(MiB);
    expect(up.recorderCount).toBe(0);

    const resume = stats.recorderPaused('down');
    await sleep(20);
    resume();
    expect(stats.summary().down.recorderCount).toBe(1);
    expect(stats.summary().down.recorderMs).toBeGreaterThanOrEqual(15);
  });
});
