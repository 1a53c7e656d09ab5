import { describe, expect, it } from 'vitest';
import { parseConnectionString } from './connection-string.js';

describe('an Azure connection string', () => {
  it("splits the portal's SAS form (BlobEndpoint, SharedAccessSignature) for the server and the console alike", () => {
    expect(
      parseConnectionString('BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2024-01-01&sp=cw&sig=abc%3D'),
    ).toEqual({
      protocol: 'https',
      blobEndpoint: 'https://acct.blob.core.windows.net/',
      sasToken: 'sv=2024-01-01&sp=cw&sig=abc%3D',
    });
  });

  it('splits the account-key form, the suffix written as a URL too', () => {
    expect(
      parseConnectionString('DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5;EndpointSuffix=https://core.windows.net/'),
    ).toEqual({ protocol: 'http', accountName: 'acct', accountKey: 'a2V5', endpointSuffix: 'core.windows.net' });
  });

  it('holds nothing for text that is not one', () => {
    expect(parseConnectionString('hello')).toEqual({});
  });
});
