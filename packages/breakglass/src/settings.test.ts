import { describe, expect, it } from 'vitest';
import { breakGlassSettings } from './settings.js';

const blob = {
  provider: 'blob',
  executeTime: '03:00',
  container: 'breakglass',
  sasToken: 'sv=2024-01-01&sp=cw&sig=abc',
  encryption: 'passphrase',
  passphrase: 'pw',
};

describe('the blob endpoint', () => {
  it('refuses a SAS URL pasted as the endpoint, by field, pointing to sasToken, without echoing it', () => {
    const result = breakGlassSettings.safeParse({ ...blob, blobEndpoint: 'https://acct.blob.core.windows.net/?sv=2024&sig=SECRETSIG' });
    expect(result.success).toBe(false);
    const issues = result.error?.issues ?? [];
    expect(issues.map((i) => i.path.join('.'))).toEqual(['blobEndpoint']);
    expect(issues[0]?.message).toMatch(/query string.*sasToken/);
    expect(JSON.stringify(issues)).not.toContain('SECRETSIG');
  });

  it('takes an endpoint with a path (Azurite) and no query string', () => {
    const result = breakGlassSettings.safeParse({ ...blob, blobEndpoint: 'http://127.0.0.1:10000/devstoreaccount1' });
    expect(result.success).toBe(true);
  });
});

describe('the S3 url', () => {
  it('refuses a query string by field', () => {
    const result = breakGlassSettings.safeParse({
      provider: 's3',
      executeTime: '03:00',
      bucket: 'breakglass',
      accessKeyId: 'AKIA',
      secretAccessKey: 'secret',
      url: 's3.example.com/?X-Amz-Signature=abc',
      encryption: 'passphrase',
      passphrase: 'pw',
    });
    expect(result.error?.issues.map((i) => i.path.join('.'))).toEqual(['url']);
  });
});
