import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { GatehouseError } from '@gatehouse/core/errors';
import { parseConnectionString } from './targets/connection-string.js';
import { blobSettings, breakGlassSettings, s3Settings, type BreakGlassSettings } from './settings.js';

/** A key of the mounted secret and what it holds, for the documentation and the errors. */
export const mountedKeys: Record<string, string> = {
  provider: 's3 or blob (required)',
  executeTime: 'daily run time, HH:mm (required)',
  timeZone: 'IANA time zone of executeTime (default UTC)',
  prefix: 'object name prefix (default gatehouse/)',
  encryption: 'age (default), passphrase, or none',
  ageRecipients: 'age X25519 recipients (age1…), separated by commas or new lines',
  passphrase: 'passphrase, when encryption is passphrase (secret)',
  caBundle: 'extra CA certificates (PEM) to trust',
  alertWebhookUrl: 'URL that receives a JSON POST when a run fails or the export is stale (secret)',
  credentials: "S3: keys (default, the access key) or default (the server's own AWS identity, AWS endpoints only)",
  accessKeyId: 'S3 access key ID',
  secretAccessKey: 'S3 secret access key (secret)',
  bucket: 'S3 bucket name',
  protocol: 'http or https (default https)',
  url: 'S3 endpoint host[:port] (empty for AWS itself)',
  region: 'S3 region (optional)',
  pathStyle: 'true for path-style S3 addressing (most S3-compatible servers)',
  acl: 'bucket-owner-full-control (default) or none',
  accountName: 'Azure storage account name (optional with blobEndpoint: taken from it)',
  accountKey: 'Azure storage account key (secret)',
  sasToken: 'Azure SAS token with create and write permissions (secret)',
  container: 'Azure Blob container name',
  endpointSuffix: 'Azure endpoint suffix (default core.windows.net)',
  blobEndpoint: 'full blob endpoint URL (Azurite, private endpoints)',
  connectionString: 'an Azure connection string; split into the fields above (secret)',
};

const booleanKeys = new Set(['pathStyle']);
const listKeys = new Set(['ageRecipients']);

/** The mounted secret cannot be read or is invalid; `issues` name its keys. */
export class MountedConfigError extends GatehouseError {
  constructor(
    readonly source: string,
    issues: { key: string; message: string }[],
  ) {
    super(
      'CONFIG_INVALID',
      `The break-glass configuration in ${source} is invalid:\n${issues.map((i) => `  - ${i.key}: ${i.message}`).join('\n')}`,
      issues.map((i) => ({ path: i.key, message: i.message })),
    );
    this.name = 'MountedConfigError';
  }
}

/** Reads the raw key → value pairs: a directory of one file per key, or a file of `key: value` lines. */
export function readMountedValues(source: string): Map<string, string> {
  const values = new Map<string, string>();
  let isDir: boolean;
  try {
    isDir = statSync(source).isDirectory();
  } catch (error) {
    throw new MountedConfigError(source, [
      { key: '(source)', message: `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})` },
    ]);
  }
  if (isDir) {
    for (const name of readdirSync(source)) {
      // Kubernetes mounts keep the real files under ..data and link to them; skip the machinery.
      if (name.startsWith('.')) continue;
      const file = path.join(source, name);
      if (!statSync(file).isFile()) continue;
      values.set(name, readFileSync(file, 'utf8').replace(/\r?\n$/, ''));
    }
    return values;
  }
  const issues: { key: string; message: string }[] = [];
  readFileSync(source, 'utf8')
    .split(/\r?\n/)
    .forEach((line, i) => {
      if (line.trim() === '' || line.trimStart().startsWith('#')) return;
      const at = line.indexOf(':');
      if (at <= 0) {
        issues.push({ key: `line ${i + 1}`, message: 'is not "key: value"' });
        return;
      }
      values.set(line.slice(0, at).trim(), line.slice(at + 1).trim());
    });
  if (issues.length > 0) throw new MountedConfigError(source, issues);
  return values;
}

/** A fingerprint of the mounted values, to notice a change without keeping the secrets around. */
export function fingerprintValues(values: Map<string, string>): string {
  const h = createHash('sha256');
  for (const [k, v] of [...values].sort(([a], [b]) => a.localeCompare(b))) h.update(`${k}\0${v}\0`);
  return h.digest('hex');
}

/** Parses and validates the mounted secret; every problem is named by its key, no value is echoed. */
export function parseMountedConfig(values: Map<string, string>, source: string): BreakGlassSettings {
  const issues: { key: string; message: string }[] = [];
  const raw: Record<string, unknown> = {};
  for (const [key, value] of values) {
    if (!(key in mountedKeys)) {
      issues.push({ key, message: `is not a break-glass setting (known: ${Object.keys(mountedKeys).join(', ')})` });
      continue;
    }
    if (key === 'connectionString') {
      Object.assign(raw, parseConnectionString(value));
      continue;
    }
    if (value === '') continue;
    if (booleanKeys.has(key)) {
      if (value !== 'true' && value !== 'false') issues.push({ key, message: 'must be true or false' });
      else raw[key] = value === 'true';
    } else if (listKeys.has(key)) {
      raw[key] = value.split(/[\s,]+/).filter((s) => s !== '');
    } else {
      raw[key] = value;
    }
  }
  if (raw.provider === undefined) issues.push({ key: 'provider', message: 'is required: s3 or blob' });
  else if (raw.provider !== 's3' && raw.provider !== 'blob') issues.push({ key: 'provider', message: 'must be s3 or blob' });
  else {
    // Keys of the other provider are a mistake worth naming.
    const own = new Set(Object.keys((raw.provider === 's3' ? s3Settings : blobSettings).shape));
    for (const key of Object.keys(raw)) if (!own.has(key)) issues.push({ key, message: `does not apply to provider ${raw.provider}` });
  }
  if (issues.length === 0) {
    const result = breakGlassSettings.safeParse(raw);
    if (result.success) return result.data;
    for (const issue of result.error.issues) {
      const key = issue.path.length > 0 ? String(issue.path[0]) : '(settings)';
      issues.push({ key, message: issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message });
    }
  }
  throw new MountedConfigError(source, issues);
}
