import type { FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { z } from 'zod';
import { caller, csrfTokenOf, sameToken } from '../auth.js';
import type { Services } from '../services.js';

/**
 * How the console's WebSockets begin: a page of another origin is refused at once
 * (cross-site WebSocket hijacking), and the first message, within 10 s, is
 * `{type:"start", csrfToken, …}` with the web session's CSRF token. `begin` gets the parsed
 * start message; every refusal is `{type:"error", message}` and a close (1008). Answers the
 * refusal, for `begin`'s own.
 */
export function acceptStart<S extends { csrfToken: string }>(
  socket: WebSocket,
  req: FastifyRequest,
  services: Services,
  o: { start: z.ZodType<S>; what: string; begin: (start: S) => void },
): (message: string) => void {
  const auth = caller(req);
  const refuse = (message: string) => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ type: 'error', message }));
    socket.close(1008, 'refused');
  };
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `https://${req.headers.host ?? ''}`) {
    refuse(`This ${o.what} may only be opened from the Gatehouse console.`);
    return refuse;
  }
  const timer = setTimeout(() => refuse('No start message arrived within 10 seconds.'), 10_000);
  socket.once('close', () => clearTimeout(timer));
  socket.once('message', (data: Buffer, isBinary: boolean) => {
    clearTimeout(timer);
    let message: unknown;
    try {
      message = isBinary ? undefined : JSON.parse(data.toString('utf8'));
    } catch {
      return refuse('A control message was not JSON.');
    }
    const parsed = o.start.safeParse(message);
    if (!parsed.success)
      return refuse(
        `The start message is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'message'} ${i.message}`).join('; ')}.`,
      );
    if (!auth.sessionToken || !sameToken(parsed.data.csrfToken, csrfTokenOf(auth.sessionToken))) {
      void services.refusals.record(req, 'csrf');
      return refuse('The CSRF token is missing or wrong. Reload the page.');
    }
    o.begin(parsed.data);
  });
  return refuse;
}
