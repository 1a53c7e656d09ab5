import { isIP } from 'node:net';
import { hostOf } from './address-guard.js';
import type { BreakGlassSettings } from './settings.js';
import { normalizeSuffix } from './targets/connection-string.js';

/** The secrets that are sent to (or sign requests for) the bucket or container: they follow the destination. */
export const destinationSecretKeys = ['secretAccessKey', 'accountKey', 'sasToken'] as const;

/** AWS's own S3 endpoints (`s3.eu-west-1.amazonaws.com`, `….amazonaws.com.cn`), where the server's own AWS identity may go. */
export function isAwsEndpoint(url: string): boolean {
  return /(^|\.)amazonaws\.com(\.cn)?$/.test(hostOf(url).toLowerCase());
}

/** The storage endpoint the settings write to (scheme and host, as the targets build it), for messages and checks. */
export function storageEndpoint(s: BreakGlassSettings): string {
  if (s.provider === 's3') {
    const host = (s.url ?? `s3.${s.region ?? 'us-east-1'}.amazonaws.com`).replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
    return `${s.protocol}://${host}`;
  }
  const given = s.blobEndpoint && (/^[a-z]+:\/\//i.test(s.blobEndpoint) ? s.blobEndpoint : `${s.protocol}://${s.blobEndpoint}`);
  return (given || `${s.protocol}://${s.accountName ?? ''}.blob.${normalizeSuffix(s.endpointSuffix)}`).replace(/\/+$/, '');
}

/** Whether a host is this machine's loopback: `localhost`, 127.0.0.0/8 or ::1 (also IPv4-mapped). */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare.endsWith('.localhost')) return true;
  const v4 = bare.replace(/^::ffff:/, '');
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return isIP(bare) === 6 && /^(0{0,4}:){2,7}0{0,3}1$/.test(bare);
}

/**
 * The warning for settings that write over plain HTTP to anything but this machine: the
 * requests (with the SAS token, or signed with the key), the export and the manifest cross
 * the network unencrypted, and anyone on the path can read or change them.
 */
export function plainHttpWarning(s: BreakGlassSettings): string | undefined {
  const endpoint = storageEndpoint(s);
  if (!/^http:/i.test(endpoint) || isLoopbackHost(hostOf(endpoint))) return undefined;
  return `The storage endpoint ${endpoint} is plain HTTP: every request${s.provider === 'blob' ? ' (and the SAS token in it)' : ''}, the export and its manifest cross the network unencrypted, where anyone on the path can read or change them. Use HTTPS (protocol "https"); plain HTTP is only for a storage server on this machine.`;
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
