import { describe, expect, it } from 'vitest';
import { isLoopbackHost, plainHttpWarning } from './destination.js';
import { breakGlassSettings } from './settings.js';

const recipient = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
const s3 = (extra: Record<string, unknown>) =>
  breakGlassSettings.parse({
    provider: 's3',
    executeTime: '03:00',
    accessKeyId: 'AKIAEXAMPLE',
    secretAccessKey: 'secret',
    bucket: 'breakglass',
    ageRecipients: [recipient],
    ...extra,
  });
const blob = (extra: Record<string, unknown>) =>
  breakGlassSettings.parse({
    provider: 'blob',
    executeTime: '03:00',
    accountName: 'gatehouse',
    sasToken: 'sv=1&sig=x',
    container: 'breakglass',
    ageRecipients: [recipient],
    ...extra,
  });

describe('plain HTTP warning', () => {
  it('knows loopback hosts: localhost, 127.0.0.0/8 and ::1, also IPv4-mapped', () => {
    for (const host of [
      'localhost',
      'LOCALHOST',
      'minio.localhost',
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '[::1]',
      '0:0:0:0:0:0:0:1',
      '::ffff:127.0.0.1',
    ])
      expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['10.0.0.5', '128.0.0.1', 'localhost.example.com', 's3.amazonaws.com', '::2', '[2001:db8::1]', '0.0.0.1'])
      expect(isLoopbackHost(host), host).toBe(false);
  });

  it('warns for HTTP to another machine, on S3 and Blob, and names the endpoint', () => {
    expect(plainHttpWarning(s3({ protocol: 'http', url: 'minio.internal:9000' }))).toMatch(
      /^The storage endpoint http:\/\/minio\.internal:9000 is plain HTTP: every request, the export/,
    );
    // No URL: AWS itself, over HTTP.
    expect(plainHttpWarning(s3({ protocol: 'http' }))).toContain('http://s3.us-east-1.amazonaws.com');
    expect(plainHttpWarning(blob({ protocol: 'http' }))).toContain(
      'http://gatehouse.blob.core.windows.net is plain HTTP: every request (and the SAS token in it)',
    );
    // The scheme of a full blobEndpoint is the one used.
    expect(plainHttpWarning(blob({ protocol: 'https', blobEndpoint: 'http://10.0.0.5:10000/gatehouse' }))).toContain(
      'http://10.0.0.5:10000/gatehouse',
    );
  });

  it('does not warn over HTTPS, nor to a storage server on this machine', () => {
    expect(plainHttpWarning(s3({ protocol: 'https', url: 'minio.internal:9000' }))).toBeUndefined();
    expect(plainHttpWarning(s3({ protocol: 'http', url: '127.0.0.1:9000' }))).toBeUndefined();
    expect(plainHttpWarning(s3({ protocol: 'http', url: 'http://localhost:9000' }))).toBeUndefined();
    expect(plainHttpWarning(s3({ protocol: 'http', url: '[::1]:9000' }))).toBeUndefined();
    expect(plainHttpWarning(blob({ protocol: 'http', blobEndpoint: 'http://127.0.0.1:10000/devstoreaccount1' }))).toBeUndefined();
    expect(plainHttpWarning(blob({ protocol: 'https' }))).toBeUndefined();
  });
});
