import { rootCertificates } from 'node:tls';
import { createReadStream } from 'node:fs';
import { pipeline, Readable, Transform } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type ObjectCannedACL,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { guardedHttpAgent, guardedHttpsAgent, type AddressPolicy } from '../address-guard.js';
import { isAwsEndpoint } from '../destination.js';
import {
  networkReason,
  runTestStages,
  succeeds,
  PartsAbortRefused,
  requestLimiter,
  TargetError,
  unansweredReason,
  type ObjectRead,
  Watchdog,
  type StageResult,
  type StorageTarget,
  type TestReport,
} from './target.js';

export interface S3TargetConfig {
  /**
   * `keys` (default): the access key below, nothing else. `default`: the SDK's default
   * credential chain (environment, profile, instance role), for AWS's endpoints only.
   */
  credentials?: 'keys' | 'default' | undefined;
  accessKeyId?: string | undefined;
  secretAccessKey?: string | undefined;
  bucket: string;
  protocol: 'http' | 'https';
  /** The endpoint host[:port] (S3-compatible servers); empty for AWS itself. */
  url?: string | undefined;
  region?: string | undefined;
  pathStyle: boolean;
  /** The canned ACL each object is written with; `none` sends no ACL header. */
  acl: 'bucket-owner-full-control' | 'none';
  /** Extra CA certificates (PEM) trusted besides the system's. */
  caBundle?: string | undefined;
  /** Seconds before a request is given up. */
  timeoutSeconds?: number | undefined;
  /** Where connections may go (default: no link-local or cloud-metadata address). */
  addressPolicy?: AddressPolicy | undefined;
}

interface AwsError {
  name?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const codeOf = (e: unknown) => {
  const err = e as AwsError;
  return err.Code ?? err.name ?? 'Error';
};
const statusOf = (e: unknown) => (e as AwsError).$metadata?.httpStatusCode;

export function s3Endpoint(config: S3TargetConfig): string | undefined {
  if (!config.url) return undefined;
  const host = config.url.replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
  return `${config.protocol}://${host}`;
}

const quiet = () => undefined;
const quietLogger = { trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet };

/** An S3 or S3-compatible bucket, written through the AWS SDK. */
export class S3Target implements StorageTarget {
  readonly location: string;
  private readonly client: S3Client;
  private readonly endpoint: string;
  private readonly timeoutSeconds: number;
  private readonly limit: ReturnType<typeof requestLimiter>;

  constructor(private readonly config: S3TargetConfig) {
    const endpoint = s3Endpoint(config);
    this.endpoint = endpoint ?? `${config.protocol}://s3.${config.region ?? 'us-east-1'}.amazonaws.com`;
    this.location = `s3://${config.bucket} at ${this.endpoint}`;
    this.timeoutSeconds = config.timeoutSeconds ?? 30;
    this.limit = requestLimiter(this.timeoutSeconds, this.endpoint, (error, name) => this.explain(error, name));
    const timeout = this.timeoutSeconds * 1000;
    const policy = config.addressPolicy ?? { allowLinkLocal: false };
    this.client = new S3Client({
      region: config.region || 'us-east-1',
      endpoint,
      forcePathStyle: config.pathStyle,
      credentials: S3Target.credentials(config, endpoint),
      // Streamed bodies must not be re-framed as aws-chunked: S3-compatible servers
      // (s3rver, Ceph RGW) store or refuse them otherwise.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 2,
      // Failures are classified and reported by explain(); the SDK must not write to the
      // server's stderr itself (its default "logger" falls back to the console).
      logger: quietLogger,
      requestHandler: new NodeHttpHandler({
        connectionTimeout: timeout,
        // A backstop only: every request carries the Watchdog's AbortSignal, which gives up
        // after the timeout with no progress and names what was being done. (requestTimeout
        // only logs a warning unless throwOnRequestTimeout is set.)
        socketTimeout: 2 * timeout,
        httpAgent: guardedHttpAgent(policy, { keepAlive: true }),
        httpsAgent: guardedHttpsAgent(policy, {
          keepAlive: true,
          ca: config.caBundle ? [...rootCertificates, config.caBundle] : undefined,
        }),
      }),
    });
  }

  /**
   * The access key, or undefined for the SDK's default chain, which lends the server's own
   * AWS identity: only when chosen, and only to AWS over HTTPS (the settings schema says so
   * to the user; this holds for any other caller too).
   */
  private static credentials(config: S3TargetConfig, endpoint: string | undefined) {
    if (config.credentials === 'default') {
      if ((endpoint && !isAwsEndpoint(endpoint)) || config.protocol !== 'https')
        throw new TargetError(
          'authentication',
          "The server's own AWS identity is used only for AWS endpoints over HTTPS. Give an access key.",
        );
      return undefined;
    }
    if (!config.accessKeyId) throw new TargetError('authentication', 'No access key ID is set. Give the access key ID and secret key.');
    return { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey ?? '' };
  }

  private acl(): { ACL?: ObjectCannedACL } {
    return this.config.acl === 'none' ? {} : { ACL: this.config.acl };
  }

  /**
   * One PutObject with a known length: atomic, and allowed by put-only policies with an ACL
   * condition (a multipart upload's parts carry no ACL and are refused there). The bytes are
   * counted as the request takes them from the file, which is what `onProgress` reports;
   * the upload is given up after the timeout with no progress (a slow one that moves is not).
   */
  async putFile(name: string, file: string, bytes: number, contentType: string, onProgress?: (sentBytes: number) => void): Promise<void> {
    await Watchdog.limit(
      this.timeoutSeconds,
      this.endpoint,
      `writing ${name}`,
      async (watchdog) => {
        let sent = 0;
        const counted = new Transform({
          transform(chunk: Buffer, _enc, done) {
            sent += chunk.length;
            watchdog.touch();
            onProgress?.(sent);
            done(null, chunk);
          },
        });
        const body = pipeline(createReadStream(file), counted, () => undefined);
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.config.bucket,
            Key: name,
            Body: body,
            ContentLength: bytes,
            ContentType: contentType,
            ...this.acl(),
          }),
          { abortSignal: watchdog.signal },
        );
      },
      (error) => this.explain(error, name),
    );
  }

  async putBytes(name: string, body: Buffer, contentType: string): Promise<void> {
    await Watchdog.limit(
      this.timeoutSeconds,
      this.endpoint,
      `writing ${name}`,
      (watchdog) => this.upload(name, body, contentType, watchdog),
      (error) => this.explain(error, name),
    );
  }

  private async upload(name: string, body: Buffer, contentType: string, watchdog: Watchdog): Promise<void> {
    await this.client.send(
      new PutObjectCommand({ Bucket: this.config.bucket, Key: name, Body: body, ContentType: contentType, ...this.acl() }),
      { abortSignal: watchdog.signal },
    );
  }

  async startParts(name: string, contentType: string): Promise<string> {
    const out = await this.limit(`starting the upload in parts of ${name}`, name, (abortSignal) =>
      this.client.send(
        new CreateMultipartUploadCommand({ Bucket: this.config.bucket, Key: name, ContentType: contentType, ...this.acl() }),
        { abortSignal },
      ),
    );
    if (!out.UploadId)
      throw new TargetError('connection', `${this.endpoint} started an upload in parts of ${name} without an upload id.`, false);
    return out.UploadId;
  }

  async putPart(name: string, uploadId: string, number: number, body: Buffer): Promise<string> {
    const out = await this.limit(`writing part ${number} of ${name}`, name, (abortSignal) =>
      this.client.send(
        new UploadPartCommand({
          Bucket: this.config.bucket,
          Key: name,
          UploadId: uploadId,
          PartNumber: number,
          Body: body,
          ContentLength: body.length,
        }),
        { abortSignal },
      ),
    );
    if (!out.ETag) throw new TargetError('connection', `${this.endpoint} took part ${number} of ${name} without an ETag.`, false);
    return out.ETag;
  }

  async completeParts(name: string, uploadId: string, tags: readonly string[], _contentType?: string): Promise<void> {
    await this.limit(`completing the upload in parts of ${name}`, name, (abortSignal) =>
      this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.config.bucket,
          Key: name,
          UploadId: uploadId,
          MultipartUpload: { Parts: tags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        }),
        { abortSignal },
      ),
    );
  }

  async abortParts(name: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.config.bucket, Key: name, UploadId: uploadId }), {
        abortSignal: AbortSignal.timeout(this.timeoutSeconds * 1000),
      });
    } catch (error) {
      const status = statusOf(error);
      if (status === 404 || codeOf(error) === 'NoSuchUpload') return;
      if (status !== undefined) throw new PartsAbortRefused(name, this.location);
      throw this.explain(error, name);
    }
  }

  /** Turns an SDK error into the stage it belongs to and what to do about it. */
  explain(error: unknown, name: string): TargetError {
    const network = networkReason(error, this.endpoint);
    if (network) return new TargetError('connection', network, false);
    if (statusOf(error) === undefined) return new TargetError('connection', unansweredReason(error, this.endpoint), false);
    const code = codeOf(error);
    const bucket = this.config.bucket;
    switch (code) {
      case 'NoSuchBucket':
        return new TargetError('container', `Bucket ${bucket} does not exist at ${this.endpoint}. Create it, or correct the bucket name.`);
      case 'InvalidAccessKeyId':
        return new TargetError('authentication', 'The access key ID is not known to the storage server. Check the access key ID.');
      case 'SignatureDoesNotMatch':
        return new TargetError(
          'authentication',
          'The secret key does not match the access key ID (SignatureDoesNotMatch). Enter the secret key again.',
        );
      case 'ExpiredToken':
      case 'InvalidToken':
        return new TargetError('authentication', 'The session token is expired or invalid. Refresh the credentials.');
      case 'AccessDenied':
      case 'Forbidden':
        return new TargetError(
          'connection',
          `The key is not allowed to write ${name} in bucket ${bucket} (AccessDenied). Apply the writer policy from "./gatehouse breakglass policy".`,
        );
      default:
        // The remote's own code, text and status are not repeated: they would map whatever answers at the URL.
        return new TargetError(
          'connection',
          `Writing ${name} to bucket ${bucket} failed: the server at ${this.endpoint} gave an answer Gatehouse does not know as S3's. Check the URL, the bucket and the storage server's own log.`,
          false,
        );
    }
  }

  /** The three stages and the privilege check, all within one timeout. */
  async test(probeName: string, onStage?: (stage: StageResult) => void): Promise<TestReport> {
    const bucket = this.config.bucket;
    return runTestStages(
      {
        what: `Bucket ${bucket}`,
        missing: `Bucket ${bucket} does not exist at ${this.endpoint}. Create it, or correct the bucket name.`,
        accepted: 'The storage server accepted the key.',
        probeName,
        endpoint: this.endpoint,
        timeoutSeconds: this.timeoutSeconds,
        // A least-privilege key may not HEAD the bucket (403): only its write can then tell.
        look: async (abortSignal) => void (await this.client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal })),
        statusOf,
        notFound: (error) => statusOf(error) === 404,
        upload: (body, watchdog) => this.upload(probeName, body, 'text/plain', watchdog),
        explain: (error, name) => this.explain(error, name),
        excessRights: (abortSignal) => this.excessRights(probeName, abortSignal),
      },
      onStage,
    );
  }

  /** Tries what the platform's key should not be able to do: read, list, delete. */
  private async excessRights(probeName: string, abortSignal: AbortSignal): Promise<string[]> {
    const warnings: string[] = [];
    const bucket = this.config.bucket;
    const read = async () => {
      const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: probeName }), { abortSignal });
      await out.Body?.transformToByteArray();
    };
    if (await succeeds(read))
      warnings.push('The key can READ objects: whoever holds it could download the exports. Give it s3:PutObject only.');
    if (await succeeds(() => this.client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 }), { abortSignal }))) {
      warnings.push('The key can LIST the bucket. Give it s3:PutObject only.');
    }
    if (await succeeds(() => this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: probeName }), { abortSignal }))) {
      warnings.push('The key can DELETE objects: whoever holds it could remove the exports. Give it s3:PutObject only.');
    }
    return warnings;
  }

  async open(name: string): Promise<ObjectRead> {
    const watchdog = new Watchdog(this.timeoutSeconds);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: name }), {
        abortSignal: watchdog.signal,
      });
      if (out.Body instanceof Readable) return { state: 'found', body: watchdog.watch(out.Body) };
      watchdog.stop();
      return { state: 'unreadable', reason: 'the answer had no body' };
    } catch (error) {
      watchdog.stop();
      if (watchdog.fired) return { state: 'unreadable', reason: watchdog.reason(this.endpoint, `reading ${name}`) };
      const code = codeOf(error);
      if (code === 'NoSuchKey' || (code !== 'NoSuchBucket' && statusOf(error) === 404)) return { state: 'missing' };
      if (code === 'NoSuchBucket') return { state: 'unreadable', reason: `bucket ${this.config.bucket} does not exist` };
      if (code === 'AccessDenied' || statusOf(error) === 403)
        return { state: 'unreadable', reason: 'the key may not read the bucket (a put-only key, as recommended, cannot)' };
      return {
        state: 'unreadable',
        reason: networkReason(error, this.endpoint) ?? `the server at ${this.endpoint} did not hand the object out`,
      };
    }
  }
}
