import type { Agent } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { AnonymousCredential, ContainerClient, StorageSharedKeyCredential, type StoragePipelineOptions } from '@azure/storage-blob';
import { guardedHttpAgent, guardedHttpsAgent, type AddressPolicy } from '../address-guard.js';
import { normalizeSuffix } from './connection-string.js';
import {
  networkReason,
  runTestStages,
  succeeds,
  requestLimiter,
  TargetError,
  unansweredReason,
  type ObjectRead,
  Watchdog,
  type StageResult,
  type StorageTarget,
  type TestReport,
} from './target.js';

export interface BlobTargetConfig {
  /** Needed with an account key (it signs as the account) and without a blobEndpoint. */
  accountName?: string | undefined;
  /** The account key; or leave empty and give a SAS token. */
  accountKey?: string | undefined;
  /** A SAS token (`sv=…&sig=…`); a create/write-only SAS is the least-privilege set-up. */
  sasToken?: string | undefined;
  container: string;
  protocol: 'http' | 'https';
  /** `core.windows.net` for Azure's public cloud. */
  endpointSuffix: string;
  /** A full blob endpoint (e.g. Azurite's `http://127.0.0.1:10000/devstoreaccount1`); overrides account + suffix. */
  blobEndpoint?: string | undefined;
  caBundle?: string | undefined;
  timeoutSeconds?: number | undefined;
  /** Where connections may go (default: no link-local or cloud-metadata address). */
  addressPolicy?: AddressPolicy | undefined;
}

interface AzureError {
  code?: string;
  statusCode?: number;
  details?: { errorCode?: string };
}
const codeOf = (e: unknown) => (e as AzureError).details?.errorCode ?? (e as AzureError).code ?? 'Error';
/** The HTTP status of the answer, undefined when none came. */
const statusOf = (e: unknown) => (e as AzureError).statusCode;

/** An Azure Blob container, written through the Azure SDK. */
export class BlobTarget implements StorageTarget {
  readonly location: string;
  private readonly container: ContainerClient;
  private readonly endpoint: string;
  private readonly timeoutSeconds: number;
  private readonly limit: ReturnType<typeof requestLimiter>;

  constructor(private readonly config: BlobTargetConfig) {
    this.timeoutSeconds = config.timeoutSeconds ?? 30;
    // A blobEndpoint given as host[:port][/path] takes the protocol setting's scheme.
    const given =
      config.blobEndpoint &&
      (/^[a-z]+:\/\//i.test(config.blobEndpoint) ? config.blobEndpoint : `${config.protocol}://${config.blobEndpoint}`);
    this.endpoint = (given || `${config.protocol}://${config.accountName}.blob.${normalizeSuffix(config.endpointSuffix)}`).replace(
      /\/+$/,
      '',
    );
    this.location = `container ${config.container} at ${this.endpoint}`;
    this.limit = requestLimiter(this.timeoutSeconds, this.endpoint, (error, name) => this.explain(error, name));
    const policy = config.addressPolicy ?? { allowLinkLocal: false };
    // One agent serves every request of the pipeline, so it must match the endpoint's
    // scheme; it also means no proxy from the environment, whose address could not be checked.
    const options: StoragePipelineOptions & { agent?: Agent; redirectOptions?: { maxRetries: number } } = {
      // tryTimeoutInMs is only sent to the server (`&timeout=`): the client-side limit is the Watchdog's AbortSignal.
      retryOptions: { maxTries: 2, tryTimeoutInMs: this.timeoutSeconds * 1000 },
      agent: /^http:/i.test(this.endpoint)
        ? guardedHttpAgent(policy, { keepAlive: true })
        : guardedHttpsAgent(policy, { keepAlive: true, ca: config.caBundle ? [...rootCertificates, config.caBundle] : undefined }),
      // A redirect would carry the SAS token or a signed request to another host.
      redirectOptions: { maxRetries: 0 },
    };
    const url = `${this.endpoint}/${encodeURIComponent(config.container)}`;
    if (config.accountKey) {
      if (!config.accountName) throw new TargetError('authentication', 'An account key needs the storage account name. Give accountName.');
      this.container = new ContainerClient(url, new StorageSharedKeyCredential(config.accountName, config.accountKey), options);
    } else {
      const sas = (config.sasToken ?? '').replace(/^\?/, '');
      this.container = new ContainerClient(sas ? `${url}?${sas}` : url, new AnonymousCredential(), options);
    }
  }

  /**
   * uploadFile stages blocks and commits the list at the end: the blob changes only then.
   * Given up after the timeout with no bytes sent (a slow upload that moves is not).
   */
  async putFile(name: string, file: string, _bytes: number, contentType: string, onProgress?: (sentBytes: number) => void): Promise<void> {
    await Watchdog.limit(
      this.timeoutSeconds,
      this.endpoint,
      `writing ${name}`,
      (watchdog) =>
        this.container.getBlockBlobClient(name).uploadFile(file, {
          blobHTTPHeaders: { blobContentType: contentType },
          concurrency: 2,
          abortSignal: watchdog.signal,
          onProgress: (p) => {
            watchdog.touch();
            onProgress?.(p.loadedBytes);
          },
        }),
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
    await this.container
      .getBlockBlobClient(name)
      .upload(body, body.length, { blobHTTPHeaders: { blobContentType: contentType }, abortSignal: watchdog.signal });
  }

  /**
   * Blocks are staged under ids that start with a fresh upload id, so a later upload's
   * blocks never mix with an earlier one's.
   */
  startParts(): Promise<string> {
    return Promise.resolve(randomBytes(6).toString('hex'));
  }

  async putPart(name: string, uploadId: string, number: number, body: Buffer): Promise<string> {
    // Block ids are base64 of equal length within a blob.
    const blockId = Buffer.from(`${uploadId}-${String(number).padStart(6, '0')}`).toString('base64');
    await this.limit(`writing block ${number} of ${name}`, name, (abortSignal) =>
      this.container.getBlockBlobClient(name).stageBlock(blockId, body, body.length, { abortSignal }),
    );
    return blockId;
  }

  async completeParts(name: string, _uploadId: string, tags: readonly string[], contentType: string): Promise<void> {
    await this.limit(`committing the blocks of ${name}`, name, (abortSignal) =>
      this.container
        .getBlockBlobClient(name)
        .commitBlockList([...tags], { blobHTTPHeaders: { blobContentType: contentType }, abortSignal }),
    );
  }

  /**
   * Azure has no abort: blocks never committed go with the blob's next commit (the whole
   * upload that follows an abandoned one) or after a week.
   */
  abortParts(): Promise<void> {
    return Promise.resolve();
  }

  explain(error: unknown, name: string): TargetError {
    const network = networkReason(error, this.endpoint);
    if (network) return new TargetError('connection', network, false);
    if (statusOf(error) === undefined) return new TargetError('connection', unansweredReason(error, this.endpoint), false);
    const code = codeOf(error);
    const container = this.config.container;
    switch (code) {
      case 'ContainerNotFound':
        return new TargetError(
          'container',
          `Container ${container} does not exist in ${this.endpoint}. Create it, or correct the container name.`,
        );
      case 'AuthenticationFailed':
      case 'AuthorizationFailure':
      case 'InvalidAuthenticationInfo':
        return new TargetError(
          'authentication',
          `The storage account at ${this.endpoint} did not accept the credentials (${code}). Check the endpoint, the account name and key, or that the SAS token is for this account and container and not expired.`,
        );
      case 'AuthorizationPermissionMismatch':
      case 'AuthorizationResourceTypeMismatch':
      case 'AuthorizationServiceMismatch':
        return new TargetError(
          'connection',
          `The credentials may not write ${name} in container ${container} (${code}). Use a SAS with create and write permissions on the container.`,
        );
      default:
        // The remote's own code, text and status are not repeated: they would map whatever answers at the URL.
        return new TargetError(
          'connection',
          `Writing ${name} to container ${container} failed: the server at ${this.endpoint} gave an answer Gatehouse does not know as Azure Blob's. Check the endpoint, the container and the storage account's log.`,
          false,
        );
    }
  }

  /** The three stages and the privilege check, all within one timeout. */
  async test(probeName: string, onStage?: (stage: StageResult) => void): Promise<TestReport> {
    const container = this.config.container;
    return runTestStages(
      {
        what: `Container ${container}`,
        missing: `Container ${container} does not exist in ${this.endpoint}. Create it, or correct the container name.`,
        accepted: 'The storage account accepted the credentials.',
        probeName,
        endpoint: this.endpoint,
        timeoutSeconds: this.timeoutSeconds,
        // A write-only SAS may not read the container's properties: only its write can then tell.
        look: async (abortSignal) => void (await this.container.getProperties({ abortSignal })),
        statusOf,
        notFound: (error) => codeOf(error) === 'ContainerNotFound',
        upload: (body, watchdog) => this.upload(probeName, body, 'text/plain', watchdog),
        explain: (error, name) => this.explain(error, name),
        excessRights: (abortSignal) => this.excessRights(probeName, abortSignal),
      },
      onStage,
    );
  }

  private async excessRights(probeName: string, abortSignal: AbortSignal): Promise<string[]> {
    const warnings: string[] = [];
    const blob = this.container.getBlockBlobClient(probeName);
    if (await succeeds(() => blob.downloadToBuffer(0, undefined, { abortSignal }))) {
      warnings.push('The credentials can READ blobs: whoever holds them could download the exports. Use a SAS with create and write only.');
    }
    if (await succeeds(() => this.container.listBlobsFlat({ abortSignal }).byPage({ maxPageSize: 1 }).next())) {
      warnings.push('The credentials can LIST the container. Use a SAS with create and write only.');
    }
    if (await succeeds(() => blob.delete({ abortSignal }))) {
      warnings.push('The credentials can DELETE blobs: whoever holds them could remove the exports. Use a SAS with create and write only.');
    }
    return warnings;
  }

  async open(name: string): Promise<ObjectRead> {
    const watchdog = new Watchdog(this.timeoutSeconds);
    try {
      const out = await this.container.getBlockBlobClient(name).download(0, undefined, { abortSignal: watchdog.signal });
      const body = out.readableStreamBody;
      if (body) return { state: 'found', body: watchdog.watch(Readable.from(body)) };
      watchdog.stop();
      return { state: 'unreadable', reason: 'the answer had no body' };
    } catch (error) {
      watchdog.stop();
      if (watchdog.fired) return { state: 'unreadable', reason: watchdog.reason(this.endpoint, `reading ${name}`) };
      const code = codeOf(error);
      if (code === 'BlobNotFound') return { state: 'missing' };
      if (code === 'ContainerNotFound') return { state: 'unreadable', reason: `container ${this.config.container} does not exist` };
      if (code.startsWith('Authorization') || code === 'AuthenticationFailed' || statusOf(error) === 403)
        return {
          state: 'unreadable',
          reason: 'the credentials may not read the container (a create/write-only SAS, as recommended, cannot)',
        };
      return {
        state: 'unreadable',
        reason: networkReason(error, this.endpoint) ?? `the server at ${this.endpoint} did not hand the blob out`,
      };
    }
  }
}
