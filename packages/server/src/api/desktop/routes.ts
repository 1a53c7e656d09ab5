import { desktopStart, type DesktopMessage, type DesktopStart } from '@gatehouse/api';
import { acceptVncUser, openDesktop, type LiveDesktop } from '@gatehouse/gateway';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { connectors } from '../../access.js';
import { caller } from '../../auth.js';
import { renderedRdpSource } from '../../desktop/rdp-source.js';
import type { GatewayService } from '../../gateway/service.js';
import type { Services } from '../../services.js';
import { acceptStart } from '../started-socket.js';
import { webSocketStream } from './websocket-stream.js';

/** How long the page's RFB client has to finish its (None) handshake after `started`. */
const USER_HANDSHAKE_MS = 10_000;

/**
 * GET /api/v1/desktop, upgraded to a WebSocket. The first message is
 * `{type:"start", csrfToken, deviceId, accountId?, protocol}`; the server authorizes the
 * device as the built-in gateway's VNC port does, connects to the desktop with the vaulted
 * password (for RDP: renders the device's desktop on the gateway, `{type:"progress"}`
 * meanwhile, and connects to that), and answers `{type:"started", sessionId, target, recorded}`
 * or `{type:"error", message}`. After `started`, binary frames both ways are the RFB stream
 * (security type None: the user signed in to the console), recorded like a native viewer's.
 */
export function desktopSocketRoutes(app: FastifyInstance, services: Services, gateways: GatewayService) {
  app.get(
    '/desktop',
    {
      websocket: true,
      config: connectors,
      schema: {
        tags: ['sessions'],
        summary:
          'Browser desktop (WebSocket): a VNC desktop, or an RDP one rendered on the gateway, through the built-in gateway, recorded and audited like a native viewer',
      },
    },
    (socket: WebSocket, req: FastifyRequest) => {
      const auth = caller(req);
      const send = (m: DesktopMessage) => socket.readyState === socket.OPEN && socket.send(JSON.stringify(m));
      const fail = (message: string, code = 1008) => {
        send({ type: 'error', message });
        socket.close(code, code === 1008 ? 'refused' : 'failed');
      };
      // The browser hung up: a desktop still connecting (or an RDP renderer still starting) is given up.
      const hangUp = new AbortController();
      socket.on('close', () => hangUp.abort());
      acceptStart(socket, req, services, {
        start: desktopStart,
        what: 'desktop',
        begin: (s) =>
          void begin(s).catch((error: unknown) => {
            req.log.error({ err: error }, 'browser desktop failed');
            fail(`The desktop could not be opened (request ${req.id}).`, 1011);
          }),
      });

      const begin = async (s: DesktopStart) => {
        // ms from the start message to each step, logged once the session runs (the first-frame timeline).
        const started = performance.now();
        const timings: Record<string, number> = {};
        const mark = (step: string) => (timings[step] = Math.round(performance.now() - started));
        const desktop = gateways.desktop;
        if (!desktop) return fail('The browser desktop needs the built-in gateway, which is off (gatewayPort 0). Ask an administrator.');
        const user = { id: auth.user.id, username: auth.user.username, browserAddress: req.ip };
        const request = { deviceId: s.deviceId, accountId: s.accountId ?? null, protocol: s.protocol };
        const authorized = await desktop.broker.authorizeDesktop(user, request, req.ip);
        if (!authorized.allow) return fail(authorized.message);
        mark('authorized');
        const context = { broker: desktop.broker, dial: desktop.dial, user, target: authorized.target, remoteAddress: req.ip };
        const signal = hangUp.signal;
        // An RDP desktop is rendered on the gateway (Xvfb, xfreerdp, x11vnc), which takes seconds.
        if (s.protocol === 'rdp') send({ type: 'progress', message: 'Starting the RDP session…' });
        const opened = await openDesktop({
          ...context,
          recordingsDir: desktop.recordingsDir,
          protocol: s.protocol,
          gatewayName: desktop.name,
          timeoutMs: desktop.timeoutMs,
          sessions: desktop.sessions,
          logger: desktop.logger,
          signal,
          source: s.protocol === 'rdp' ? renderedRdpSource(desktop.rdp, { ...context, signal }) : undefined,
        });
        if (!opened.ok) return fail(opened.message, 1011);
        mark('opened');
        await relay(opened.session, s.protocol, mark, timings);
      };

      const relay = async (session: LiveDesktop, protocol: string, mark: (step: string) => void, timings: Record<string, number>) => {
        if (socket.readyState !== socket.OPEN) return session.abandon('The browser left before the desktop opened.');
        const stream = webSocketStream(socket);
        send({ type: 'started', sessionId: session.id, target: session.name, recorded: true });
        try {
          await acceptVncUser(stream, { kind: 'none' }, { timeoutMs: USER_HANDSHAKE_MS });
        } catch (error) {
          await session.abandon(`The browser's RFB handshake did not finish: ${(error as Error).message}`);
          return fail(`The desktop's handshake did not finish: ${(error as Error).message}`, 1011);
        }
        mark('userHandshake');
        const result = await session.attach(stream, () => {
          mark('firstFrame');
          req.log.info({ sessionId: session.id, protocol, timings }, 'browser desktop: first frame relayed');
        });
        if (socket.readyState === socket.OPEN) socket.close(1000, closeReason(result.reason ?? 'The session ended.'));
      };
    },
  );
}

/** A WebSocket close reason is at most 123 bytes. */
function closeReason(text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  return bytes.length <= 123
    ? text
    : `${bytes
        .subarray(0, 120)
        .toString('utf8')
        .replace(/\uFFFD+$/, '')}…`;
}
