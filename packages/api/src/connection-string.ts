/** The Blob fields an Azure connection string holds. */
export interface ConnectionStringFields {
  protocol?: 'http' | 'https';
  accountName?: string;
  accountKey?: string;
  endpointSuffix?: string;
  blobEndpoint?: string;
  sasToken?: string;
}

/**
 * Splits an Azure connection string into the Blob fields, with an account key
 * (`DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=…`) or the
 * portal's SAS form (`BlobEndpoint=…;SharedAccessSignature=…`). One implementation for the
 * server (the `connectionString` setting) and the console's paste box: no Node here.
 */
export function parseConnectionString(text: string): ConnectionStringFields {
  const fields = new Map<string, string>();
  for (const part of text.split(';')) {
    const at = part.indexOf('=');
    if (at <= 0) continue;
    fields.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  const protocol = fields.get('defaultendpointsprotocol')?.toLowerCase();
  const out: ConnectionStringFields = {};
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

/** `https://core.windows.net/` → `core.windows.net` (the suffix is written both ways). */
export function normalizeSuffix(suffix: string): string {
  return suffix
    .trim()
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/+$/, '');
}
