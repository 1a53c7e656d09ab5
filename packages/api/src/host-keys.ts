import { z } from 'zod';
import { timestamp } from './common.js';

/** The SSH host key the gateways trust for a device, on first use (`/devices/:id/host-key`). */
export const deviceHostKey = z.object({
  deviceId: z.string(),
  algorithm: z.string(),
  fingerprint: z.string(),
  firstSeen: timestamp,
});
export type DeviceHostKey = z.infer<typeof deviceHostKey>;

/** null before the first connection to the device. */
export const deviceHostKeyAnswer = z.object({ hostKey: deviceHostKey.nullable() });
export type DeviceHostKeyAnswer = z.infer<typeof deviceHostKeyAnswer>;
