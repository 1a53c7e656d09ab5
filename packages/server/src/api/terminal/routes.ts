import { terminalResize, terminalStart, type TerminalMessage, type TerminalStart } from '@gatehouse/api';
import type { GatewayShell } from '@gatehouse/gateway';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { connectors } from '../../access.js';
import { caller, csrfTokenOf, sameToken } from '../../auth.js';
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
      const refuse = (message: string) => {
        send({ type: 'error', message });
        socket.close(1008, 'refused');
      };
      // A page of another origin is refused before anything else (cross-site WebSocket hijacking).
      const origin = req.headers.origin;
      if (origin !== undefined && origin !== `https://${req.headers.host ?? ''}`)
        return refuse('This terminal may only be opened from the Gatehouse console.');
      let shell: GatewayShell | undefined;
      let started = false;
      const timer = setTimeout(() => !started && refuse('No start message arrived within 10 seconds.'), 10_000);
      socket.on('close', () => {
        clearTimeout(timer);
        shell?.close();
      });
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) {
          shell?.channel.write(data);
          return;
        }
        let message: unknown;
        try {
          message = JSON.parse(data.toString('utf8'));
        } catch {
          return refuse('A control message was not JSON.');
        }
        if (!started) {
          started = true;
          const parsed = terminalStart.safeParse(message);
          if (!parsed.success)
            return refuse(
              `The start message is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'message'} ${i.message}`).join('; ')}.`,
            );
          if (!auth.sessionToken || !sameToken(parsed.data.csrfToken, csrfTokenOf(auth.sessionToken))) {
            void services.refusals.record(req, 'csrf');
            return refuse('The CSRF token is missing or wrong. Reload the page.');
          }
          void begin(parsed.data);
          return;
        }
        const r = terminalResize.safeParse(message);
        if (r.success) shell?.resize(r.data.cols, r.data.rows);
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
