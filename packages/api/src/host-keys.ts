import { z } from 'zod';
import { timestamp } from './common.js';

/**
 * What a device's key is trusted for: its SSH host key, the TLS certificate of its RDP
 * service (the browser RDP renderer) and of its VeNCrypt X509 VNC service. Each protocol
 * has its own key, trusted on first use or pinned by an administrator.
 */
export const hostKeyProtocols = ['ssh', 'rdp', 'vnc'] as const;
export const hostKeyProtocol = z.enum(hostKeyProtocols);
export type HostKeyProtocol = z.infer<typeof hostKeyProtocol>;

/** A device's trusted key for one protocol (`/devices/:id/host-key`). */
export const deviceHostKey = z.object({
  deviceId: z.string(),
  protocol: hostKeyProtocol,
  /** `ssh-ed25519`…, `rdp-x509`, `x509` (VNC); null for a pinned key the device has not presented yet. */
  algorithm: z.string().nullable(),
  /** `SHA256:<base64>` of the SSH public key, or of the DER certificate. */
  fingerprint: z.string(),
  /** When the gateway first saw it, or when it was pinned. */
  firstSeen: timestamp,
  /** Set by an administrator (`PUT`), not trusted on first use. */
  pinned: z.boolean(),
  /**
   * The key pinned ahead of a planned change: accepted too until the device presents it,
   * which then replaces this one (audited `device.host_key_rotated`). Null when none.
   */
  next: z.object({ fingerprint: z.string(), pinnedAt: timestamp }).nullable(),
});
export type DeviceHostKey = z.infer<typeof deviceHostKey>;

/**
 * `hostKeys`: one entry per protocol that has a key. `hostKey`: the SSH one, or null, as
 * this route answered before keys were kept per protocol.
 */
export const deviceHostKeyAnswer = z.object({
  hostKey: deviceHostKey
    .nullable()
    .describe('The SSH host key (null before the first SSH connection); kept for older clients: read hostKeys'),
  hostKeys: z.array(deviceHostKey),
});
export type DeviceHostKeyAnswer = z.infer<typeof deviceHostKeyAnswer>;

/** `DELETE /devices/:id/host-key?protocol=`: one protocol's key, or every key without it. */
export const hostKeyForgetQuery = z.strictObject({ protocol: hostKeyProtocol.optional() });
export type HostKeyForgetQuery = z.infer<typeof hostKeyForgetQuery>;

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard base64 without padding (this package runs in the browser too: no Buffer). */
function base64Of(bytes: readonly number[]): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = ((bytes[i] ?? 0) << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += BASE64.charAt((n >> 18) & 63) + BASE64.charAt((n >> 12) & 63);
    if (i + 1 < bytes.length) out += BASE64.charAt((n >> 6) & 63);
    if (i + 2 < bytes.length) out += BASE64.charAt(n & 63);
  }
  return out;
}

const SHA256_BASE64 = /^SHA256:([A-Za-z0-9+/]{43})=?$/;
/** A certificate's SHA-256 in hex, as `openssl x509 -noout -fingerprint -sha256` prints it (with or without colons). */
const SHA256_HEX = /^(?:sha256(?: fingerprint)?[:=])?((?:[0-9a-f]{2}:?){31}[0-9a-f]{2})$/i;

/**
 * A fingerprint as typed, in the form Gatehouse stores and compares (`SHA256:<base64>`), or
 * undefined when it is neither that nor a SHA-256 in hex.
 */
export function normalizeFingerprint(typed: string): string | undefined {
  const value = typed.trim();
  const b64 = SHA256_BASE64.exec(value);
  if (b64) return `SHA256:${b64[1]}`;
  const hex = SHA256_HEX.exec(value)?.[1]?.replace(/:/g, '');
  if (hex?.length !== 64) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < hex.length; i += 2) bytes.push(parseInt(hex.slice(i, i + 2), 16));
  return `SHA256:${base64Of(bytes)}`;
}

/**
 * `PUT /devices/:id/host-key`: the key the device will present for the protocol. Its next
 * key when it has presented one already (both accepted until it presents this one), else
 * the trusted key at once.
 */
export const hostKeyPin = z.strictObject({
  protocol: hostKeyProtocol,
  fingerprint: z
    .string()
    .max(200)
    .transform((typed, ctx) => {
      const fingerprint = normalizeFingerprint(typed);
      if (fingerprint) return fingerprint;
      ctx.addIssue({
        code: 'custom',
        message:
          'must be SHA256:<base64> as `ssh-keygen -lf <key.pub>` prints it (43 characters after SHA256:), ' +
          'or a certificate’s SHA-256 in hex as `openssl x509 -noout -fingerprint -sha256 -in <cert.pem>` prints it',
      });
      return z.NEVER;
    }),
});
export type HostKeyPin = z.input<typeof hostKeyPin>;

/**
 * The device's key for the protocol after `PUT`: with the pin as `next` when the key it had
 * presented stays trusted until then; else the pin itself, with the key it `replaced` at once
 * (a pin never presented; null when there was none).
 */
export const hostKeyPinAnswer = z.object({ hostKey: deviceHostKey, replaced: deviceHostKey.nullable() });
export type HostKeyPinAnswer = z.infer<typeof hostKeyPinAnswer>;
