import { terminalResize, terminalStart, type TerminalMessage, type TerminalStart } from '@gatehouse/api';
import type { GatewayShell } from '@gatehouse/gateway';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { connectors } from '../../access.js';
import { caller } from '../../auth.js';
import { acceptStart } from '../started-socket.js';
import type { Services } from '../../services.js';
import { gatewayTargetOf, openFailure, type WebTerminal } from '../../terminal.js';
import { closingMessage } from './closing-message.js';

/**
 * GET /api/v1/terminal, upgraded to a WebSocket. The first message is
 * `{type:"start", csrfToken, deviceId, accountId?, cols, rows}`: the session's CSRF token
 * (a page of another site cannot know it, and the cookie is SameSite=Strict anyway) and
 * what to open. Then binary frames both ways are terminal bytes, and
 * `{type:"resize", cols, rows}` changes the window.
 */
export function terminalRoutes(app: FastifyInstance, services: Services, terminal: WebTerminal) {
  app.get(
    '/terminal',
    {
      websocket: true,
      config: connectors,
      schema: {
        tags: ['sessions'],
        summary: 'Browser terminal (WebSocket): an SSH shell through the built-in gateway, recorded and audited like ssh',
      },
    },
    (socket: WebSocket, req: FastifyRequest) => {
      const auth = caller(req);
      const send = (m: TerminalMessage) => socket.readyState === socket.OPEN && socket.send(JSON.stringify(m));
      let shell: GatewayShell | undefined;
      socket.on('close', () => shell?.close());
      const refuse = acceptStart(socket, req, services, {
        start: terminalStart,
        what: 'terminal',
        begin: (s) => {
          socket.on('message', (data: Buffer, isBinary: boolean) => {
            if (isBinary) return void shell?.channel.write(data);
            let message: unknown;
            try {
              message = JSON.parse(data.toString('utf8'));
            } catch {
              return refuse('A control message was not JSON.');
            }
            const r = terminalResize.safeParse(message);
            if (r.success) shell?.resize(r.data.cols, r.data.rows);
          });
          void begin(s);
        },
      });

      const begin = async (s: TerminalStart) => {
        try {
          const { target, device } = await gatewayTargetOf(services, auth, s.deviceId, s.accountId);
          shell = await terminal.open(auth.user, target, req.ip, s.cols, s.rows);
          await services.audit(req, {
            action: 'terminal.open',
            outcome: 'success',
            targetType: 'device',
            targetId: device.id,
            details: { target, accountId: s.accountId ?? null },
          });
          if (socket.readyState !== socket.OPEN) return shell.close();
          send({ type: 'ready', target });
          // Whether the device ever spoke, and the last of stderr: the gateway tells why it
          // refused or ended a session there (`gatehouse: <reason>`, exit status 255).
          let spoke = false;
          let stderrTail = '';
          shell.channel.on('data', (d: Buffer) => {
            spoke = true;
            if (socket.readyState === socket.OPEN) socket.send(d);
          });
          shell.channel.stderr.on('data', (d: Buffer) => {
            stderrTail = (stderrTail + d.toString('utf8')).slice(-1024);
            if (socket.readyState === socket.OPEN) socket.send(d);
          });
          let code: number | null = null;
          shell.channel.on('exit', (c: number | null) => (code = c));
          shell.channel.on('close', () => {
            send(closingMessage(code, spoke, stderrTail));
            socket.close(1000, 'ended');
          });
        } catch (error) {
          const message = openFailure(error, req);
          await services
            .audit(req, {
              action: 'terminal.open',
              outcome: 'failure',
              targetType: 'device',
              targetId: s.deviceId,
              details: { reason: message },
            })
            .catch(() => undefined);
          refuse(message);
        }
      };
    },
  );
}
