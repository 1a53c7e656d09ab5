import { z } from 'zod';

/**
 * The inventory as the product documents describe it: projects hold devices, devices
 * hold accounts. The fields are those of the break-glass workbook (spec/001
 * "Connection Information"), so every device can be exported as a row there.
 */

export const providers = ['aws', 'azure', 'gcp', 'on-prem', 'other'] as const;
export const protocols = ['ssh', 'sftp', 'rdp', 'vnc', 'http', 'https', 'telnet', 'database'] as const;
export const accessTypes = ['direct', 'gateway', 'tunnel', 'agent'] as const;

const name = z
  .string()
  .trim()
  .min(1, 'is required')
  .max(200, 'must be at most 200 characters')
  .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'must not contain control characters');

const optionalText = (max: number) =>
  z
    .string()
    .trim()
    .max(max, `must be at most ${max} characters`)
    .refine((s) => !/[\u0000-\u0008\u000b-\u001f\u007f]/.test(s), 'must not contain control characters')
    .nullish()
    .transform((s) => (s === '' || s === undefined ? null : s));

const ipAddress = z
  .string()
  .trim()
  .refine((s) => s === '' || z.ipv4().safeParse(s).success || z.ipv6().safeParse(s).success, 'must be an IPv4 or IPv6 address')
  .nullish()
  .transform((s) => (s === '' || s === undefined ? null : s));

/** Tags are short words; `gateway-<segment>` tags choose the gateway segment. */
export const tag = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:=-]{0,62}$/, 'must be 1-63 letters, digits or _ . : = - and start with a letter or digit');

export const projectInput = z.strictObject({
  name,
  description: optionalText(2000),
});
export type ProjectInput = z.infer<typeof projectInput>;

const protocolList = z
  .array(z.enum(protocols, { error: `must be one of ${protocols.join(', ')}` }))
  .max(protocols.length)
  .transform((p) => [...new Set(p)]);
const accessType = z.enum(accessTypes, { error: `must be one of ${accessTypes.join(', ')}` });
const tagList = z
  .array(tag)
  .max(50, 'at most 50 tags')
  .transform((t) => [...new Set(t)]);

export const deviceInput = z.strictObject({
  projectId: z.string().min(1, 'is required'),
  name,
  provider: z.enum(providers, { error: `must be one of ${providers.join(', ')}` }),
  protocols: protocolList.default([]),
  publicIp: ipAddress,
  privateIp: ipAddress,
  urlPort: optionalText(2048),
  accessType: accessType.default('gateway'),
  tags: tagList.default([]),
});
export type DeviceInput = z.infer<typeof deviceInput>;

/** Only the fields sent: no defaults, so a field left out keeps its stored value. */
export const devicePatch = deviceInput.extend({ protocols: protocolList, accessType, tags: tagList }).partial();
export type DevicePatch = z.infer<typeof devicePatch>;

/** Extra credentials are key/value pairs (e.g. an enable password, a recovery code). */
export const extraCredential = z
  .record(z.string().trim().min(1).max(100), z.string().max(10_000))
  .refine((r) => Object.keys(r).length <= 50, 'at most 50 entries');

const secretText = (max: number) => z.string().max(max, `must be at most ${max} characters`).nullish();

export const accountInput = z.strictObject({
  deviceId: z.string().min(1, 'is required'),
  username: name,
  password: secretText(4096),
  privateKey: secretText(65_536).refine(
    (s) => s === null || s === undefined || s === '' || /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(s),
    'must be a PEM private key (-----BEGIN ... PRIVATE KEY-----)',
  ),
  pemFileName: optionalText(255).refine((s) => s === null || /^[^/\\\u0000]+$/.test(s), 'must be a file name without / or \\'),
  passphrase: secretText(4096),
  extraCredential: extraCredential.nullish(),
});
export type AccountInput = z.infer<typeof accountInput>;

export const accountPatch = accountInput.partial();
export type AccountPatch = z.infer<typeof accountPatch>;

/** The secret fields of an account, in the vault. */
export const accountSecretFields = ['password', 'privateKey', 'passphrase', 'extraCredential'] as const;
export type AccountSecretField = (typeof accountSecretFields)[number];

/** The segment a device's tags put it in, if any: `gateway-office1` → `gateway-office1`. */
export function segmentOf(tags: readonly string[]): string | null {
  return tags.find((t) => t.startsWith('gateway-')) ?? null;
}
