import { z } from 'zod';
import { timestamp } from './common.js';

/**
 * Desktops (VNC, and RDP rendered server-side): one-time tokens for native VNC viewers on
 * the gateway's VNC port, and the console's desktop WebSocket (`GET /desktop`).
 */

/** `POST /devices/:id/vnc-token`: the account to use when the device has several. */
export const vncTokenRequest = z
  .strictObject({
    accountId: z.string().min(1).max(100).optional(),
    /** How long the token stays good: 1–10 minutes, 5 by default. */
    minutes: z.number().int().min(1, 'must be 1 to 10').max(10, 'must be 1 to 10').default(5),
  })
  // No body at all (a bare POST) takes the defaults too.
  .nullish()
  .transform((body) => body ?? { minutes: 5 });
export type VncTokenRequest = z.input<typeof vncTokenRequest>;

/**
 * A one-time token: the VNC password to type into the viewer, good once, for this user,
 * device and account only, until `expiresAt`. Shown once; never stored in clear.
 */
export const vncToken = z.object({
  id: z.string(),
  token: z.string(),
  expiresAt: timestamp,
  /** Where to point the viewer: the built-in gateway's VNC listener, `host:port`. */
  address: z.string(),
  deviceId: z.string(),
  deviceName: z.string(),
  accountId: z.string(),
  accountUsername: z.string(),
});
export type VncToken = z.infer<typeof vncToken>;

/**
 * The desktop WebSocket's first message (text): the session's CSRF token and what to open.
 * After the server's `started`, binary frames both ways are the RFB stream (the server
 * side offers security type None: the user is already signed in to the console).
 */
export const desktopStart = z.strictObject({
  type: z.literal('start'),
  csrfToken: z.string().max(200),
  deviceId: z.string().min(1).max(100),
  accountId: z.string().min(1).max(100).optional(),
  protocol: z.enum(['vnc', 'rdp']),
});
export type DesktopStart = z.infer<typeof desktopStart>;

/**
 * What the server tells the page before the RFB stream starts: what it is doing while that
 * takes seconds (an RDP session being started on the gateway), that the session is
 * recorded, or that it failed.
 */
export type DesktopMessage =
  | { type: 'progress'; message: string }
  | { type: 'started'; sessionId: string; target: string; recorded: boolean }
  | { type: 'error'; message: string };

/** `POST /devices/:id/rdp-tunnel`: the account, and how long new connections may use the ticket (1–10 minutes, 5 by default). */
export const rdpTunnelRequest = vncTokenRequest;
export type RdpTunnelRequest = z.input<typeof rdpTunnelRequest>;

/**
 * A ticket for `gatehouse rdp`: the CLI sends it on each connection it tunnels to the
 * built-in gateway's RDP listener (`address`, TLS with the server's certificate). Bound to
 * this user, device and account, and, from its first use, to the address that used it;
 * good for new connections until `expiresAt` (RDP clients reconnect). Shown once.
 */
export const rdpTunnel = vncToken.omit({ token: true, address: true }).extend({
  ticket: z.string(),
  /** The built-in gateway's RDP tunnel listener, `host:port`. */
  address: z.string(),
});
export type RdpTunnel = z.infer<typeof rdpTunnel>;
