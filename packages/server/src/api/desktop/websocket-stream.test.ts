import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { freeLowPort } from '../../../../../bench/host.js';
import { webSocketStream } from './websocket-stream.js';

/**
 * The browser desktop's WebSocket as the RFB proxy's stream, against a real ws client: once
 * the session is done with the stream, the socket still reads, so the browser's answer to
 * the close arrives and the close ends at once (a socket left paused waits ws's 30 s close
 * timeout, which held the server's stop: issue 21).
 */
describe('webSocketStream', () => {
  const servers: WebSocketServer[] = [];
  afterEach(async () => {
    for (const wss of servers.splice(0)) {
      for (const client of wss.clients) client.terminate();
      await new Promise((resolve) => wss.close(resolve));
    }
  });

  async function connected(): Promise<{ browser: WebSocket; server: WebSocket }> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: await freeLowPort() });
    servers.push(wss);
    await once(wss, 'listening');
    const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
    const { port } = wss.address() as { port: number };
    const browser = new WebSocket(`ws://127.0.0.1:${port}`);
    const [server] = await accepted;
    if (browser.readyState !== WebSocket.OPEN) await once(browser, 'open');
    return { browser, server };
  }

  /** The route's close with the session's reason; resolves with what the browser heard once both ends closed. */
  async function closeBoth(browser: WebSocket, server: WebSocket) {
    const heard = once(browser, 'close') as Promise<[number, Buffer]>;
    const serverClosed = once(server, 'close');
    server.close(1000, 'The gateway is stopping.');
    const [code, reason] = await heard;
    await serverClosed;
    return { code, reason: reason.toString() };
  }

  it('passes the browser’s binary frames through, and drops what arrives after the stream is destroyed', async () => {
    const { browser, server } = await connected();
    const stream = webSocketStream(server);
    const received: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => received.push(chunk));
    browser.send(Buffer.from('RFB 003.008\n'));
    await expect.poll(() => Buffer.concat(received).toString()).toBe('RFB 003.008\n');

    stream.destroy();
    // noVNC's next update request, after the session ended.
    browser.send(Buffer.of(3, 1, 0, 0, 0, 0, 4, 0, 3, 0));
    expect(await closeBoth(browser, server)).toEqual({ code: 1000, reason: 'The gateway is stopping.' });
    expect(Buffer.concat(received).toString()).toBe('RFB 003.008\n');
  });

  it('reads again once destroyed while the session held the browser back (socket paused)', async () => {
    const { browser, server } = await connected();
    const stream = webSocketStream(server);
    // Nothing reads the stream (the proxy paused the user's side): its buffer fills and the socket pauses.
    for (let i = 0; i < 4; i++) browser.send(Buffer.alloc(16 * 1024));
    await expect.poll(() => server.isPaused).toBe(true);

    stream.destroy();
    expect(server.isPaused).toBe(false);
    expect(await closeBoth(browser, server)).toEqual({ code: 1000, reason: 'The gateway is stopping.' });
  });
});
