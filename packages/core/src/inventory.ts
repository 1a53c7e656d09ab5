import { z } from 'zod';

/**
 * The inventory as the product documents describe it: projects hold devices, devices
 * hold accounts. The fields are those of the break-glass workbook (spec/001
 * "Connection Information"), so every device can be exported as a row there.
 */

export const providers = ['aws', 'azure', 'gcp', 'on-prem', 'other'] as const;
export type Provider = (typeof providers)[number];
export const protocols = [
  'ssh',
  'sftp',
  'rdp',
  'vnc',
  'http',
  'https',
  'telnet',
  'ftp',
  'mysql',
  'postgresql',
  'mssql',
  'oracle',
  'mongodb',
  'redis',
  'database',
] as const;
export type Protocol = (typeof protocols)[number];
/** The protocols a Gatehouse gateway brokers; the others are inventory only (stored, exported, never connected). */
export const brokeredProtocols = ['ssh', 'sftp', 'rdp', 'vnc'] as const satisfies readonly Protocol[];
export const accessTypes = ['direct', 'gateway', 'tunnel', 'agent'] as const;

/**
 * A value as an inventory spelled it: `value` is what Gatehouse goes by, `written` what the
 * customer wrote (`AWS`, `MySQL`), which the export and the break-glass workbook show.
 */
export interface Spelled<T extends string> {
  value: T;
  written: string;
}

/** How spellings are compared: case, spaces, dots, hyphens and underscores do not count. */
const spellingKey = (s: string) => s.toLowerCase().replace(/[\s._-]+/g, '');

const providerSpellings = new Map<string, Provider>([
  ...providers.map((p) => [spellingKey(p), p] as const),
  ...(['amazon', 'amazonwebservices', 'ec2'] as const).map((k) => [k, 'aws'] as const),
  ...(['microsoftazure', 'msazure'] as const).map((k) => [k, 'azure'] as const),
  ...(['google', 'googlecloud', 'googlecloudplatform'] as const).map((k) => [k, 'gcp'] as const),
  ...(['onpremise', 'onpremises', 'onprem'] as const).map((k) => [k, 'on-prem'] as const),
]);

const protocolSpellings = new Map<string, Protocol>([
  ...protocols.map((p) => [spellingKey(p), p] as const),
  ...(['postgres', 'pgsql'] as const).map((k) => [k, 'postgresql'] as const),
  ...(['sqlserver', 'mssqlserver', 'microsoftsqlserver'] as const).map((k) => [k, 'mssql'] as const),
  ['mariadb', 'mysql'],
  ['mongo', 'mongodb'],
  ['remotedesktop', 'rdp'],
]);

const PROTOCOL_CHOICES = `must be one of ${protocols.join(', ')}, in any case (PostgreSQL, SQL Server, MariaDB are read too)`;

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

/**
 * A provider in any spelling: the known ones in any case (`AWS`, `Amazon Web Services`,
 * `On-Premises`), anything else as `other`. The spelling is kept.
 */
export const providerName = name
  .refine((s) => s.length <= 100, 'must be at most 100 characters')
  .transform((written): Spelled<Provider> => ({ value: providerSpellings.get(spellingKey(written)) ?? 'other', written }));

/** A protocol Gatehouse knows, in any case (`MySQL`, `SSH`, `Postgres`); the spelling is kept. */
export const protocolName = z
  .string({ error: PROTOCOL_CHOICES })
  .trim()
  .transform((written, ctx): Spelled<Protocol> => {
    const value = protocolSpellings.get(spellingKey(written));
    if (value === undefined) {
      ctx.addIssue({ code: 'custom', message: PROTOCOL_CHOICES });
      return z.NEVER;
    }
    return { value, written };
  });

/** Protocols without repeats (`SSH` and `ssh` are one), each in its first spelling. */
export const protocolList = z
  .array(protocolName)
  .max(protocols.length * 2, `at most ${protocols.length * 2} protocols`)
  .transform((list) => list.filter((p, i) => list.findIndex((q) => q.value === p.value) === i));
const accessType = z.enum(accessTypes, { error: `must be one of ${accessTypes.join(', ')}` });
const tagList = z
  .array(tag)
  .max(50, 'at most 50 tags')
  .transform((t) => [...new Set(t)]);

const deviceFields = {
  projectId: z.string().min(1, 'is required'),
  name,
  provider: providerName,
  protocols: protocolList,
  publicIp: ipAddress,
  privateIp: ipAddress,
  urlPort: optionalText(2048),
  accessType,
  tags: tagList,
};

/** The provider and protocols as Gatehouse goes by them, and as they were written (left out: as the values). */
export interface WrittenAs {
  provider: Provider;
  providerAsWritten: string;
  protocols: Protocol[];
  protocolsAsWritten: string[];
}

export type Spellings = { provider: Spelled<Provider>; protocols: Spelled<Protocol>[] };

/** Splits each spelled value into the value Gatehouse goes by and the spelling kept beside it. */
export function writtenAs<T extends Partial<Spellings>>(fields: T): Omit<T, keyof Spellings> & Partial<WrittenAs> {
  const { provider, protocols, ...rest } = fields;
  return {
    ...rest,
    ...(provider === undefined ? {} : { provider: provider.value, providerAsWritten: provider.written }),
    ...(protocols === undefined ? {} : { protocols: protocols.map((p) => p.value), protocolsAsWritten: protocols.map((p) => p.written) }),
  };
}

export const deviceInput = z
  .strictObject({
    ...deviceFields,
    protocols: protocolList.default([]),
    accessType: accessType.default('gateway'),
    tags: tagList.default([]),
  })
  .transform((d) => writtenAs(d) as Omit<typeof d, keyof Spellings> & Pick<WrittenAs, 'provider' | 'protocols'> & Partial<WrittenAs>);
export type DeviceInput = z.infer<typeof deviceInput>;

/** The fields of a device patch before the spellings are split (for schemas that add fields). */
export const devicePatchFields = z.strictObject(deviceFields).partial();

/** Only the fields sent: no defaults, so a field left out keeps its stored value. */
export const devicePatch = devicePatchFields.transform(writtenAs);
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

/**
 * Why a device cannot be connected to through a gateway when every protocol it lists is
 * one no gateway brokers (a MySQL server, a telnet switch); null when it lists none or one
 * the gateway brokers.
 */
export function notBrokeredRefusal(device: {
  name: string;
  protocols: readonly string[];
  protocolsAsWritten: readonly string[];
}): string | null {
  const brokered: readonly string[] = brokeredProtocols;
  if (device.protocols.length === 0 || device.protocols.some((p) => brokered.includes(p))) return null;
  return (
    `${device.name} is listed for ${device.protocolsAsWritten.join(', ')}, which the gateway does not broker (it brokers SSH, SFTP, RDP and VNC). ` +
    "Connect with that protocol's own client, not through Gatehouse; if the device also runs sshd, an administrator can add ssh to its protocols."
  );
}
