import { z } from 'zod';

/**
 * The browser terminal's WebSocket (`GET /terminal`): the page's control messages and the
 * server's. Terminal bytes go as binary frames both ways.
 */

const windowSize = { cols: z.number().int().min(10).max(1000), rows: z.number().int().min(3).max(500) };

/** The first message: the session's CSRF token and what to open. */
export const terminalStart = z.strictObject({
  type: z.literal('start'),
  csrfToken: z.string().max(200),
  deviceId: z.string().min(1).max(100),
  accountId: z.string().min(1).max(100).optional(),
  ...windowSize,
});
export type TerminalStart = z.infer<typeof terminalStart>;

/** The window changed size. */
export const terminalResize = z.strictObject({ type: z.literal('resize'), ...windowSize });
export type TerminalResize = z.infer<typeof terminalResize>;

/**
 * What the server tells the page: the shell is open, it was refused (by the API, the
 * gateway or the device), or it ended: by itself (`endedBy: 'device'`, the shell exited) or
 * by the gateway (`'gateway'`: an administrator ended it, a maintenance window closed, the
 * gateway stopped; `message` is the gateway's reason, which names who ended it).
 */
export type TerminalMessage =
  | { type: 'ready'; target: string }
  | { type: 'error'; message: string }
  | { type: 'exit'; code: number | null; message: string; endedBy: 'device' | 'gateway' };
