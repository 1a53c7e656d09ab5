import { gatewayAddress, gatewayName, segmentName } from '@gatehouse/core/gateway-selection';
import { z } from 'zod';
import { timestamp } from './common.js';

/** Registered gateways, the server's link key, and the gateway settings (`/gateways`, `/gateway-settings`). */

export const gatewayCreate = z.strictObject({
  name: gatewayName,
  segment: segmentName.nullish().transform((s) => s ?? null),
  address: gatewayAddress,
  publicKey: z.string().max(4096),
});
/** What a client sends (the segment may be left out: none). */
export type GatewayCreate = z.input<typeof gatewayCreate>;

export const gatewayUpdate = gatewayCreate.partial();
export type GatewayUpdate = z.input<typeof gatewayUpdate>;

export const gateway = z.object({
  id: z.string(),
  name: z.string(),
  builtIn: z.boolean(),
  segment: z.string().nullable(),
  address: z.string().nullable(),
  /** The gateway's link key (registered) or SSH host key (built-in) fingerprint. */
  fingerprint: z.string().nullable(),
  /** A registered gateway's link public key, as registered (the built-in gateway has none). */
  publicKey: z.string().optional(),
  status: z.enum(['unknown', 'online', 'offline']),
  statusReason: z.string().nullable(),
  /** An administrator drained it: it carries no new session (live ones go on) until resumed. */
  draining: z.boolean(),
  /** Since when it is draining; null when it is not. */
  drainingSince: timestamp.nullable(),
  lastContactAt: timestamp.nullable(),
  lastSyncAt: timestamp.nullable(),
  latencyMs: z.number().nullable(),
  version: z.string().nullable(),
  liveSessions: z.number().int(),
  openRelays: z.number().int().nullable(),
  createdAt: timestamp.nullable(),
});
export type Gateway = z.infer<typeof gateway>;

/** The built-in gateway first, then the registered ones by name; and whether tunnel mode is on. */
export const gatewayList = z.object({ items: z.array(gateway), tunnelMode: z.boolean() });
export type GatewayList = z.infer<typeof gatewayList>;

/** The server's public link key, which every gateway is started with (`--server-key`). */
export const gatewayServerKey = z.object({ publicKey: z.string(), fingerprint: z.string() });
export type GatewayServerKey = z.infer<typeof gatewayServerKey>;

export const gatewaySettings = z.object({
  /** Every connection goes through the default gateway; no other gateway reaches a device. */
  tunnelMode: z.boolean(),
  /** Users may forward TCP connections through the devices they use (`ssh -L`). */
  portForwarding: z.boolean(),
  /**
   * Users' SSH clients must negotiate a post-quantum key exchange (`mlkem768x25519-sha256`)
   * with the gateway, built-in and remote; older clients are refused with what to upgrade to.
   */
  requirePostQuantumKex: z.boolean(),
});
export type GatewaySettings = z.infer<typeof gatewaySettings>;

export const gatewaySettingsUpdate = z.strictObject({
  tunnelMode: z.boolean().optional(),
  portForwarding: z.boolean().optional(),
  requirePostQuantumKex: z.boolean().optional(),
});
export type GatewaySettingsUpdate = z.infer<typeof gatewaySettingsUpdate>;

/** Devices to check, by id, comma-separated (at most 500). */
export const gatewayReachQuery = z.strictObject({
  deviceIds: z
    .string()
    .max(500 * 37)
    .transform((s) => s.split(',').filter((id) => id !== ''))
    .refine((ids) => ids.length <= 500, 'must name at most 500 devices'),
});

/**
 * Whether a new connection to each device (of those the caller may see) would find a
 * gateway now; when not, the refusal a user would get (`message`) and its short `reason`.
 */
export const gatewayReach = z.object({
  items: z.array(z.object({ deviceId: z.string(), ok: z.boolean(), reason: z.string().nullable(), message: z.string().nullable() })),
});
export type GatewayReach = z.infer<typeof gatewayReach>;
