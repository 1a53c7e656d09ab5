import { hostOf } from './address-guard.js';
import type { BreakGlassSettings } from './settings.js';
import { normalizeSuffix } from './targets/connection-string.js';

/** The secrets that are sent to (or sign requests for) the bucket or container: they follow the destination. */
export const destinationSecretKeys = ['secretAccessKey', 'accountKey', 'sasToken'] as const;

/** AWS's own S3 endpoints (`s3.eu-west-1.amazonaws.com`, `….amazonaws.com.cn`), where the server's own AWS identity may go. */
export function isAwsEndpoint(url: string): boolean {
  return /(^|\.)amazonaws\.com(\.cn)?$/.test(hostOf(url).toLowerCase());
}

const endpointText = (s: string | undefined) => (s ?? '').trim().replace(/\/+$/, '').toLowerCase();

/**
 * The fields of `after` that send its secrets somewhere else than `before` did: the S3
 * endpoint (URL, protocol, the region when it names the AWS host, path-style addressing)
 * and bucket, or the Blob endpoint (blobEndpoint, account, suffix, protocol) and container.
 * Empty when the destination is the same, or when the provider changed (nothing is kept then).
 */
export function destinationChanges(before: BreakGlassSettings, after: BreakGlassSettings): string[] {
  const changed: string[] = [];
  const compare = (field: string, a: unknown, b: unknown) => {
    if (a !== b) changed.push(field);
  };
  if (before.provider === 's3' && after.provider === 's3') {
    compare('url', endpointText(before.url).replace(/^[a-z]+:\/\//, ''), endpointText(after.url).replace(/^[a-z]+:\/\//, ''));
    compare('protocol', before.protocol, after.protocol);
    // With no URL the region is the AWS host (s3.<region>.amazonaws.com).
    if (!before.url && !after.url) compare('region', before.region ?? 'us-east-1', after.region ?? 'us-east-1');
    compare('bucket', before.bucket, after.bucket);
    compare('pathStyle', before.pathStyle, after.pathStyle);
  } else if (before.provider === 'blob' && after.provider === 'blob') {
    compare('blobEndpoint', endpointText(before.blobEndpoint), endpointText(after.blobEndpoint));
    compare('accountName', before.accountName, after.accountName);
    if (!before.blobEndpoint && !after.blobEndpoint) {
      compare('endpointSuffix', normalizeSuffix(before.endpointSuffix).toLowerCase(), normalizeSuffix(after.endpointSuffix).toLowerCase());
    }
    compare('protocol', before.protocol, after.protocol);
    compare('container', before.container, after.container);
  }
  return changed;
}
