import type { BlobTargetConfig } from './blob.js';

/** Splits an Azure connection string into the Blob target fields (the console's paste box). */
export function parseConnectionString(text: string): Partial<BlobTargetConfig> {
  const fields = new Map<string, string>();
  for (const part of text.split(';')) {
    const at = part.indexOf('=');
    if (at <= 0) continue;
    fields.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  const protocol = fields.get('defaultendpointsprotocol')?.toLowerCase();
  const out: Partial<BlobTargetConfig> = {};
  if (protocol === 'http' || protocol === 'https') out.protocol = protocol;
  if (fields.has('accountname')) out.accountName = fields.get('accountname');
  if (fields.has('accountkey')) out.accountKey = fields.get('accountkey');
  if (fields.has('endpointsuffix')) out.endpointSuffix = normalizeSuffix(fields.get('endpointsuffix') ?? '');
  if (fields.has('blobendpoint')) out.blobEndpoint = fields.get('blobendpoint');
  // The portal's SAS form has no DefaultEndpointsProtocol: the endpoint's scheme says it.
  if (!out.protocol && /^https?:\/\//i.test(out.blobEndpoint ?? ''))
    out.protocol = /^http:/i.test(out.blobEndpoint ?? '') ? 'http' : 'https';
  if (fields.has('sharedaccesssignature')) out.sasToken = fields.get('sharedaccesssignature');
  return out;
}

/** `https://core.windows.net/` → `core.windows.net` (spec/001 shows the suffix both ways). */
export function normalizeSuffix(suffix: string): string {
  return suffix
    .trim()
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/+$/, '');
}
