import type { BreakGlassRun, BreakGlassRunProgress, BreakGlassTestReport, BreakGlassTestStage } from '@gatehouse/api';
import { parseConnectionString } from '@gatehouse/api/connection-string';

export type Provider = 's3' | 'blob';

export type Stage = BreakGlassTestStage;
export type Report = BreakGlassTestReport;
/** A run as started (POST) or followed (GET, with the bytes sent so far). */
export type Run = BreakGlassRun & Partial<Pick<BreakGlassRunProgress, 'uploadedBytes'>>;

/** Every field of the form as text, whatever the provider. */
export type Form = Record<
  | 'executeTime'
  | 'timeZone'
  | 'accessKeyId'
  | 'secretAccessKey'
  | 'bucket'
  | 'protocol'
  | 'url'
  | 'region'
  | 'accountName'
  | 'accountKey'
  | 'sasToken'
  | 'container'
  | 'endpointSuffix'
  | 'blobEndpoint'
  | 'prefix'
  | 'encryption'
  | 'ageRecipients'
  | 'passphrase'
  | 'caBundle'
  | 'alertWebhookUrl',
  string
> & { provider: Provider; pathStyle: boolean; credentials: 'keys' | 'default' };

export const EMPTY: Form = {
  provider: 's3',
  executeTime: '03:00',
  timeZone: 'UTC',
  accessKeyId: '',
  secretAccessKey: '',
  bucket: '',
  protocol: 'https',
  url: '',
  region: '',
  accountName: '',
  accountKey: '',
  sasToken: '',
  container: '',
  endpointSuffix: 'core.windows.net',
  blobEndpoint: '',
  prefix: 'gatehouse/',
  encryption: 'age',
  ageRecipients: '',
  passphrase: '',
  caBundle: '',
  alertWebhookUrl: '',
  pathStyle: false,
  credentials: 'keys',
};

/** What the API shows for a secret that is set; sent back, it keeps the stored value. */
export const MASK = '********';

export function formOf(settings: Record<string, unknown> | null): Form {
  if (!settings) return EMPTY;
  const text = (k: string) => {
    const v = settings[k];
    return typeof v === 'string' ? v : '';
  };
  const form = { ...EMPTY };
  for (const key of Object.keys(EMPTY) as (keyof Form)[]) {
    if (key === 'pathStyle' || key === 'provider' || key === 'ageRecipients' || key === 'credentials') continue;
    form[key] = text(key) || EMPTY[key];
  }
  form.provider = settings.provider === 'blob' ? 'blob' : 's3';
  form.pathStyle = settings.pathStyle === true;
  form.credentials = settings.credentials === 'default' ? 'default' : 'keys';
  form.ageRecipients = Array.isArray(settings.ageRecipients) ? (settings.ageRecipients as string[]).join('\n') : '';
  return form;
}

/** The settings body for the API: only the provider's own fields (the API refuses others by name). */
export function bodyOf(f: Form): Record<string, unknown> {
  const common = {
    provider: f.provider,
    executeTime: f.executeTime.trim(),
    timeZone: f.timeZone.trim(),
    prefix: f.prefix,
    encryption: f.encryption,
    ageRecipients: f.ageRecipients
      .split(/\s+/)
      .map((r) => r.trim())
      .filter((r) => r !== ''),
    ...(f.encryption === 'passphrase' ? { passphrase: f.passphrase } : {}),
    caBundle: f.caBundle,
    alertWebhookUrl: f.alertWebhookUrl,
  };
  if (f.provider === 's3') {
    const own = f.credentials === 'default';
    return {
      ...common,
      credentials: f.credentials,
      accessKeyId: own ? '' : f.accessKeyId,
      secretAccessKey: own ? '' : f.secretAccessKey,
      bucket: f.bucket,
      protocol: f.protocol,
      url: f.url,
      region: f.region,
      pathStyle: f.pathStyle,
    };
  }
  return {
    ...common,
    accountName: f.accountName,
    accountKey: f.accountKey,
    sasToken: f.sasToken,
    container: f.container,
    protocol: f.protocol,
    endpointSuffix: f.endpointSuffix,
    blobEndpoint: f.blobEndpoint,
  };
}

/**
 * The Blob fields of an Azure connection string: with an account key
 * (DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=…) or the
 * portal's SAS form (BlobEndpoint=…;SharedAccessSignature=…). It replaces every Blob field,
 * so nothing saved earlier (an old blob endpoint, the other credential) stays hidden in
 * the form; undefined when the text holds none of its keys.
 */
export function fromConnectionString(text: string): Partial<Form> | undefined {
  const fields = parseConnectionString(text);
  if (Object.keys(fields).length === 0) return undefined;
  return {
    protocol: fields.protocol ?? 'https',
    // Left empty with a blob endpoint: the server takes the account from it.
    accountName: fields.accountName ?? '',
    accountKey: fields.accountKey ?? '',
    sasToken: (fields.sasToken ?? '').replace(/^\?/, ''),
    endpointSuffix: fields.endpointSuffix ?? EMPTY.endpointSuffix,
    blobEndpoint: fields.blobEndpoint ?? '',
  };
}

/**
 * Whether the form sends its secrets somewhere else than the saved settings (another
 * endpoint, bucket or container): the API then refuses a stored secret, so the page asks
 * for it next to the field before the user saves.
 */
export function destinationChanged(f: Form, saved: Form | null): boolean {
  if (!saved || saved.provider !== f.provider) return false;
  const norm = (s: string) => s.trim().replace(/\/+$/, '').toLowerCase();
  const fields: (keyof Form)[] =
    f.provider === 's3'
      ? ['url', 'protocol', 'bucket', 'pathStyle', ...(f.url.trim() === '' ? (['region'] as const) : [])]
      : ['blobEndpoint', 'accountName', 'endpointSuffix', 'protocol', 'container'];
  return fields.some((k) => norm(String(f[k])) !== norm(String(saved[k])));
}
