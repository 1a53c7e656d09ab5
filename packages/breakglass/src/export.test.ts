import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateBlobSASQueryParameters, ContainerSASPermissions, StorageSharedKeyCredential, ContainerClient } from '@azure/storage-blob';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syntheticSource as source } from '../../../test/support/breakglass-source.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, startS3rver } from '../../../test/support/storage.js';
import { exportBreakGlass, exportNames } from './export.js';
import { generateSigningKey, verifyManifest } from './manifest.js';
import { BlobTarget, type BlobTargetConfig } from './targets/blob.js';
import { parseConnectionString } from './targets/connection-string.js';
import { S3Target, type S3TargetConfig } from './targets/s3.js';
import { TargetError } from './targets/target.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-export-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const signing = generateSigningKey();
let identityFile: string;
let recipient: string;
beforeAll(async () => {
  const identity = await generateX25519Identity();
  recipient = await identityToRecipient(identity);
  identityFile = path.join(work, 'identity.txt');
  writeFileSync(identityFile, `${identity}\n`, { mode: 0o600 });
});

const sealing = () => ({ kind: 'age' as const, recipients: [recipient] });

/** What a break-glass holder does: decrypt with the stock age CLI and read the sheet. */
function openWithStockTools(sealedFile: string): string {
  const xlsx = `${sealedFile}.xlsx`;
  execFileSync('age', ['-d', '-i', identityFile, '-o', xlsx, sealedFile]);
  return execFileSync('xlsx2csv', ['-n', 'Ops', xlsx], { encoding: 'utf8' });
}

describe('export to S3 (s3rver)', () => {
  let s3: Awaited<ReturnType<typeof startS3rver>>;
  let config: S3TargetConfig;
  const aws = (args: string[]) =>
    execFileSync('/usr/bin/aws', [...args, '--endpoint-url', `http://${s3.endpoint}`], {
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: 'S3RVER',
        AWS_SECRET_ACCESS_KEY: 'S3RVER',
        AWS_DEFAULT_REGION: 'us-east-1',
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      },
      encoding: 'utf8',
    });
  beforeAll(async () => {
    s3 = await startS3rver({ buckets: ['breakglass'] });
    config = {
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
      bucket: 'breakglass',
      protocol: 'http',
      url: s3.endpoint,
      pathStyle: true,
      acl: 'bucket-owner-full-control',
    };
  });
  afterAll(() => s3.stop());

  it('passes the three test stages and warns that a full-rights key can read, list and delete', async () => {
    const seen: string[] = [];
    const report = await new S3Target(config).test('gatehouse/.probe', (s) => seen.push(s.stage));
    expect(seen).toEqual(['container', 'authentication', 'connection']);
    expect(report.stages.map((s) => s.ok)).toEqual([true, true, true]);
    expect(report.privilegeWarnings.join(' ')).toMatch(/READ.*LIST.*DELETE/s);
  });

  it('fails the container stage for a missing bucket, naming it', async () => {
    const report = await new S3Target({ ...config, bucket: 'no-such-bucket' }).test('gatehouse/.probe');
    expect(report.ok).toBe(false);
    expect(report.stages[0]).toMatchObject({ stage: 'container', ok: false, message: expect.stringContaining('no-such-bucket') as string });
    expect(report.stages[2]?.ok).toBeNull();
  });

  it('fails the container stage with a reason when nothing listens', async () => {
    const report = await new S3Target({ ...config, url: '127.0.0.1:9' }).test('gatehouse/.probe');
    expect(report.stages[0]).toMatchObject({ ok: false, message: expect.stringContaining('connection refused') as string });
  });

  it('exports a sealed workbook that the aws CLI downloads, age decrypts and the manifest vouches for', async () => {
    const target = new S3Target(config);
    const names = exportNames('gatehouse/', 'age');
    const result = await exportBreakGlass({ source: source(3), sealing: sealing(), target, names, signingKeyPem: signing.privateKeyPem });
    expect(result.counts).toMatchObject({ projects: 1, devices: 3, accounts: 3 });

    const sealedFile = path.join(work, 's3.xlsx.age');
    aws(['s3', 'cp', `s3://breakglass/${names.data}`, sealedFile]);
    const manifestFile = path.join(work, 's3.manifest.json');
    aws(['s3', 'cp', `s3://breakglass/${names.manifest}`, manifestFile]);
    const check = verifyManifest(readFileSync(manifestFile, 'utf8'), signing.publicKeyPem);
    if (!check.ok) throw new Error(check.reason);
    expect(check.manifest.sha256).toBe(createHash('sha256').update(readFileSync(sealedFile)).digest('hex'));
    expect(readFileSync(sealedFile).subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    const csv = openWithStockTools(sealedFile);
    expect(csv.split('\n')[0]).toBe(
      'Provider,Device name,Protocol,Public IP address,Private IP address,URL/Port,Access type,Account,Password,PEM file name,Extra credential',
    );
    expect(csv).toContain('dev-000002');
  });

  it('leaves the previous export and manifest intact when a run fails mid-way, also in a multipart upload', async () => {
    const target = new S3Target(config);
    const names = exportNames('intact/', 'age');
    await exportBreakGlass({
      source: source(10, { tag: 'good' }),
      sealing: sealing(),
      target,
      names,
      signingKeyPem: signing.privateKeyPem,
    });
    const before = path.join(work, 'before.age');
    aws(['s3', 'cp', `s3://breakglass/${names.data}`, before]);
    const manifestBefore = aws(['s3', 'cp', `s3://breakglass/${names.manifest}`, '-']);

    // Large enough for several 8 MiB parts before the source dies.
    let uploaded = 0;
    const failing = exportBreakGlass({
      source: source(10_000, { projects: 20, failAt: { project: 15, row: 5000 }, tag: 'bad', passwordBytes: 96 }),
      sealing: sealing(),
      target,
      names,
      signingKeyPem: signing.privateKeyPem,
      onProgress: (b) => (uploaded = b),
    });
    await expect(failing).rejects.toThrow('database went away');
    expect(uploaded).toBeGreaterThan(16 * 1024 * 1024);

    const after = path.join(work, 'after.age');
    aws(['s3', 'cp', `s3://breakglass/${names.data}`, after]);
    expect(readFileSync(after).equals(readFileSync(before))).toBe(true);
    expect(aws(['s3', 'cp', `s3://breakglass/${names.manifest}`, '-'])).toBe(manifestBefore);
    expect(openWithStockTools(after)).toContain('good-000009');
  }, 120_000);

  it('fails with the TLS reason against a self-signed HTTPS endpoint unless its CA is configured', async () => {
    const tls = await startS3rver({ buckets: ['breakglass'], tls: true });
    try {
      const https = { ...config, protocol: 'https' as const, url: tls.endpoint };
      const refused = await new S3Target(https).test('gatehouse/.probe');
      expect(refused.stages[0]).toMatchObject({ ok: false, message: expect.stringContaining('not trusted') as string });
      const trusted = await new S3Target({ ...https, caBundle: tls.certPem }).test('gatehouse/.probe');
      expect(trusted.stages.map((s) => s.ok)).toEqual([true, true, true]);
    } finally {
      await tls.stop();
    }
  });
});

describe('export to Azure Blob (Azurite)', () => {
  let azurite: Awaited<ReturnType<typeof startAzurite>>;
  let config: BlobTargetConfig;
  beforeAll(async () => {
    azurite = await startAzurite();
    config = {
      accountName: AZURITE_ACCOUNT,
      accountKey: AZURITE_KEY,
      container: 'breakglass',
      protocol: 'http',
      endpointSuffix: 'core.windows.net',
      blobEndpoint: azurite.blobEndpoint,
    };
    await new ContainerClient(`${azurite.blobEndpoint}/breakglass`, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).create();
  });
  afterAll(() => azurite.stop());

  it('splits a pasted connection string into the fields', () => {
    expect(
      parseConnectionString(
        'DefaultEndpointsProtocol=https; AccountName=azuredemoaccount; AccountKey=b+I9M3OMegXlFeutCyT4ABnBomOSvDz0d/YPyh1NohN6dLJcFytMPVL9WKXMcfX7ffyuuiZkpaRR+ASt32keUz==; EndpointSuffix=core.windows.net',
      ),
    ).toEqual({
      protocol: 'https',
      accountName: 'azuredemoaccount',
      accountKey: 'b+I9M3OMegXlFeutCyT4ABnBomOSvDz0d/YPyh1NohN6dLJcFytMPVL9WKXMcfX7ffyuuiZkpaRR+ASt32keUz==',
      endpointSuffix: 'core.windows.net',
    });
  });

  it('passes the three stages with the account key and warns about its excess rights', async () => {
    const report = await new BlobTarget(config).test('gatehouse/.probe');
    expect(report.stages.map((s) => s.ok)).toEqual([true, true, true]);
    expect(report.privilegeWarnings).toHaveLength(3);
  });

  it('fails the authentication stage with a wrong key', async () => {
    const report = await new BlobTarget({ ...config, accountKey: Buffer.from(randomBytes(64)).toString('base64') }).test(
      'gatehouse/.probe',
    );
    expect(report.stages[1]).toMatchObject({ stage: 'authentication', ok: false });
    expect(report.stages[1]?.message).toMatch(/did not accept the credentials/);
  });

  it('exports with a create/write-only SAS, whose privilege check passes', async () => {
    const sas = generateBlobSASQueryParameters(
      { containerName: 'breakglass', permissions: ContainerSASPermissions.parse('cw'), expiresOn: new Date(Date.now() + 3_600_000) },
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    ).toString();
    const writer = new BlobTarget({ ...config, accountKey: undefined, sasToken: sas });
    const report = await writer.test('gatehouse/.probe');
    expect(report.stages.map((s) => s.ok)).toEqual([true, true, true]);
    expect(report.privilegeWarnings).toEqual([]);

    const names = exportNames('gatehouse', 'age');
    const result = await exportBreakGlass({
      source: source(5),
      sealing: sealing(),
      target: writer,
      names,
      signingKeyPem: signing.privateKeyPem,
    });
    const reader = new ContainerClient(`${azurite.blobEndpoint}/breakglass`, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
    const sealedFile = path.join(work, 'blob.xlsx.age');
    writeFileSync(sealedFile, await reader.getBlockBlobClient(names.data).downloadToBuffer());
    const manifest = (await reader.getBlockBlobClient(names.manifest).downloadToBuffer()).toString();
    const check = verifyManifest(manifest, signing.publicKeyPem);
    expect(check.ok && check.manifest.sha256).toBe(result.sha256);
    expect(openWithStockTools(sealedFile)).toContain('dev-000004');
  });

  it('fails the container stage for a missing container', async () => {
    const report = await new BlobTarget({ ...config, container: 'missing' }).test('gatehouse/.probe');
    expect(report.stages[0]).toMatchObject({ stage: 'container', ok: false, message: expect.stringContaining('missing') as string });
  });

  it('refuses a self-signed HTTPS endpoint unless its CA is configured', async () => {
    const tls = await startAzurite({ tls: true });
    try {
      const https = { ...config, protocol: 'https' as const, blobEndpoint: tls.blobEndpoint };
      await new ContainerClient(`${tls.blobEndpoint}/breakglass`, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY), {
        agent: new (await import('node:https')).Agent({ ca: tls.certPem }),
      } as never)
        .create()
        .catch(() => undefined);
      const refused = await new BlobTarget(https).test('gatehouse/.probe');
      expect(refused.stages[0]).toMatchObject({ ok: false, message: expect.stringContaining('not trusted') as string });
      const trusted = await new BlobTarget({ ...https, caBundle: tls.certPem }).test('gatehouse/.probe');
      expect(trusted.stages.map((s) => s.ok)).toEqual([true, true, true]);
    } finally {
      await tls.stop();
    }
  });

  it('reports a failed upload as a TargetError with its stage', async () => {
    const target = new BlobTarget({ ...config, container: 'missing' });
    const run = exportBreakGlass({
      source: source(2),
      sealing: sealing(),
      target,
      names: exportNames('x', 'age'),
      signingKeyPem: signing.privateKeyPem,
    });
    await expect(run).rejects.toBeInstanceOf(TargetError);
    await expect(run).rejects.toMatchObject({ stage: 'container' });
  });
});
