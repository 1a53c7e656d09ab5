import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocket } from 'ws';
import type { GatehouseServer } from './server.js';

/** The server's first message on the console's desktop WebSocket; after `started`, the RFB stream. */
export type DesktopMessage = Record<string, unknown> & { stream?: Duplex };

/**
 * The console's desktop WebSocket (`/api/v1/desktop`) as `username` signed in with a
 * password: `open` sends the start message (a VNC desktop unless `start` says otherwise)
 * and `firstMessage` reads the server's answer, with the RFB stream taken up at once after
 * `started` (its first bytes may come in the same read).
 */
export async function consoleDesktop(server: GatehouseServer, username: string, password: string) {
  const signIn = await server.request('/api/v1/auth/login', { method: 'POST', body: { username, password } });
  const cookie = String([signIn.headers['set-cookie']].flat()[0]).split(';')[0] ?? '';
  const { csrfToken } = JSON.parse(signIn.body) as { csrfToken: string };
  const open = (start: Record<string, unknown>) => {
    const ws = new WebSocket(`${server.url.replace('https', 'wss')}/api/v1/desktop`, {
      ca: readFileSync(server.certFile),
      headers: { cookie },
    });
    ws.on('open', () => ws.send(JSON.stringify({ type: 'start', protocol: 'vnc', ...start })));
    return ws;
  };
  const firstMessage = (ws: WebSocket) =>
    new Promise<DesktopMessage>((resolve, reject) => {
      ws.once('message', (d: Buffer) => {
        const message = JSON.parse(d.toString('utf8')) as Record<string, unknown>;
        resolve(message.type === 'started' ? { ...message, stream: createWebSocketStream(ws) } : message);
      });
      ws.once('error', reject);
    });
  return { csrfToken, open, firstMessage };
}
