import type { BreakGlassSettings } from './settings.js';

/** Ready-to-apply least-privilege policies for the two identities of spec/001. */
export interface PolicySet {
  provider: 's3' | 'blob';
  writer: { description: string; documents: { name: string; content: string }[] };
  reader: { description: string; documents: { name: string; content: string }[] };
}

const json = (v: unknown) => JSON.stringify(v, null, 2);

/** The writer (Gatehouse) may only create objects under the prefix; the reader may only list and get. */
export function leastPrivilegePolicies(s: BreakGlassSettings, principals: { writerArn?: string; readerArn?: string } = {}): PolicySet {
  const prefix = s.prefix;
  if (s.provider === 's3') {
    const bucketArn = `arn:aws:s3:::${s.bucket}`;
    const objects = `${bucketArn}/${prefix}*`;
    const writerArn = principals.writerArn ?? 'arn:aws:iam::<platform-account-id>:user/<gatehouse-writer>';
    const readerArn = principals.readerArn ?? 'arn:aws:iam::<break-glass-account-id>:user/<break-glass-reader>';
    const aclCondition = s.acl === 'none' ? {} : { Condition: { StringEquals: { 's3:x-amz-acl': s.acl } } };
    return {
      provider: 's3',
      writer: {
        description: `Gatehouse's key: s3:PutObject on ${s.bucket}/${prefix}* only — no read, no list, no delete.`,
        documents: [
          {
            name: 'IAM policy for the writer (attach to the Gatehouse user or role)',
            content: json({
              Version: '2012-10-17',
              Statement: [
                { Sid: 'GatehouseBreakGlassPutOnly', Effect: 'Allow', Action: ['s3:PutObject'], Resource: objects, ...aclCondition },
              ],
            }),
          },
          {
            name: 'Bucket policy (cross-account: allows the writer to put, and denies it everything else)',
            content: json({
              Version: '2012-10-17',
              Statement: [
                {
                  Sid: 'GatehouseWriterPut',
                  Effect: 'Allow',
                  Principal: { AWS: writerArn },
                  Action: ['s3:PutObject'],
                  Resource: objects,
                  ...aclCondition,
                },
                {
                  Sid: 'GatehouseWriterNothingElse',
                  Effect: 'Deny',
                  Principal: { AWS: writerArn },
                  Action: [
                    's3:GetObject',
                    's3:GetObjectVersion',
                    's3:DeleteObject',
                    's3:DeleteObjectVersion',
                    's3:ListBucket',
                    's3:ListBucketVersions',
                    's3:PutObjectAcl',
                    's3:GetObjectAcl',
                    's3:PutBucketPolicy',
                  ],
                  Resource: [bucketArn, `${bucketArn}/*`],
                },
                {
                  Sid: 'BreakGlassReaderList',
                  Effect: 'Allow',
                  Principal: { AWS: readerArn },
                  Action: ['s3:ListBucket'],
                  Resource: bucketArn,
                  Condition: { StringLike: { 's3:prefix': [`${prefix}*`] } },
                },
                { Sid: 'BreakGlassReaderGet', Effect: 'Allow', Principal: { AWS: readerArn }, Action: ['s3:GetObject'], Resource: objects },
              ],
            }),
          },
        ],
      },
      reader: {
        description: `The break-glass account: list ${s.bucket} under ${prefix} and get those objects; nothing else. Keep its credentials offline.`,
        documents: [
          {
            name: 'IAM policy for the break-glass reader',
            content: json({
              Version: '2012-10-17',
              Statement: [
                {
                  Sid: 'BreakGlassList',
                  Effect: 'Allow',
                  Action: ['s3:ListBucket'],
                  Resource: bucketArn,
                  Condition: { StringLike: { 's3:prefix': [`${prefix}*`] } },
                },
                { Sid: 'BreakGlassGet', Effect: 'Allow', Action: ['s3:GetObject'], Resource: objects },
              ],
            }),
          },
        ],
      },
    };
  }
  const expiry = '<YYYY-MM-DD>';
  const account = s.accountName ?? '<account name>';
  const base = `az storage container generate-sas --account-name ${account} --name ${s.container} --auth-mode key --https-only --expiry ${expiry}`;
  return {
    provider: 'blob',
    writer: {
      description: `Gatehouse's credential: a container SAS with create and write only (cw) — no read, no list, no delete. Paste it as sasToken.`,
      documents: [{ name: 'Azure CLI: make the writer SAS', content: `${base} --permissions cw --output tsv` }],
    },
    reader: {
      description: `The break-glass account: a container SAS with read and list only (rl), kept offline.`,
      documents: [
        { name: 'Azure CLI: make the reader SAS', content: `${base} --permissions rl --output tsv` },
        {
          name: 'Download with the reader SAS',
          content: `az storage blob download --account-name ${account} --container-name ${s.container} --name ${prefix}breakglass.xlsx.age --file breakglass.xlsx.age --sas-token '<reader SAS>'`,
        },
      ],
    },
  };
}
