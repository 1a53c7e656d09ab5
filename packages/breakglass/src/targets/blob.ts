import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';
import { AnonymousCredential, ContainerClient, StorageSharedKeyCredential, type StoragePipelineOptions } from '@azure/storage-blob';
import { normalizeSuffix } from './connection-string.js';
import { networkReason, runTestStages, succeeds, TargetError, type StageResult, type StorageTarget, type TestReport } from './target.js';

export interface BlobTargetConfig {
  accountName: string;
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
}

interface AzureError {
  statusCode?: number;
  code?: string;
  details?: { errorCode?: string };
}
const codeOf = (e: unknown) => (e as AzureError).details?.errorCode ?? (e as AzureError).code ?? 'Error';
const statusOf = (e: unknown) => (e as AzureError).statusCode;

/** An Azure Blob container, written through the Azure SDK. */
export class BlobTarget implements StorageTarget {
  readonly location: string;
  private readonly container: ContainerClient;
  private readonly endpoint: string;

  constructor(private readonly config: BlobTargetConfig) {
    this.endpoint = (
      config.blobEndpoint ?? `${config.protocol}://${config.accountName}.blob.${normalizeSuffix(config.endpointSuffix)}`
    ).replace(/\/+$/, '');
    this.location = `container ${config.container} at ${this.endpoint}`;
    const options: StoragePipelineOptions & { agent?: Agent } = {
      retryOptions: { maxTries: 2, tryTimeoutInMs: (config.timeoutSeconds ?? 30) * 1000 },
    };
    if (config.caBundle) options.agent = new Agent({ keepAlive: true, ca: [...rootCertificates, config.caBundle] });
    const url = `${this.endpoint}/${encodeURIComponent(config.container)}`;
    if (config.accountKey) {
      this.container = new ContainerClient(url, new StorageSharedKeyCredential(config.accountName, config.accountKey), options);
    } else {
      const sas = (config.sasToken ?? '').replace(/^\?/, '');
      this.container = new ContainerClient(sas ? `${url}?${sas}` : url, new AnonymousCredential(), options);
    }
  }

  /** uploadFile stages blocks and commits the list at the end: the blob changes only then. */
  async putFile(name: string, file: string, _bytes: number, contentType: string): Promise<void> {
    try {
      await this.container.getBlockBlobClient(name).uploadFile(file, { blobHTTPHeaders: { blobContentType: contentType }, concurrency: 2 });
    } catch (error) {
      throw this.explain(error, name);
    }
  }

  async putBytes(name: string, body: Buffer, contentType: string): Promise<void> {
    try {
      await this.container.getBlockBlobClient(name).upload(body, body.length, { blobHTTPHeaders: { blobContentType: contentType } });
    } catch (error) {
      throw this.explain(error, name);
    }
  }

  explain(error: unknown, name: string): TargetError {
    const network = networkReason(error, this.endpoint);
    if (network) return new TargetError('connection', network);
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
          `The storage account did not accept the credentials (${code}). Check the account name and key, or that the SAS token is valid and not expired.`,
        );
      case 'AuthorizationPermissionMismatch':
      case 'AuthorizationResourceTypeMismatch':
      case 'AuthorizationServiceMismatch':
        return new TargetError(
          'connection',
          `The credentials may not write ${name} in container ${container} (${code}). Use a SAS with create and write permissions on the container.`,
        );
      default:
        return new TargetError('connection', `Writing ${name} to container ${container} failed: ${code} (HTTP ${statusOf(error) ?? '?'}).`);
    }
  }

  async test(probeName: string, onStage?: (stage: StageResult) => void): Promise<TestReport> {
    const container = this.config.container;
    return runTestStages(
      {
        what: `Container ${container}`,
        missing: `Container ${container} does not exist in ${this.endpoint}. Create it, or correct the container name.`,
        accepted: 'The storage account accepted the credentials.',
        exists: async () => {
          // A write-only SAS may not read the container's properties: only its write can then tell.
          try {
            await this.container.getProperties();
            return true;
          } catch (error) {
            return networkReason(error, this.endpoint) ?? (codeOf(error) === 'ContainerNotFound' ? false : undefined);
          }
        },
        probeName,
        write: () => this.putBytes(probeName, Buffer.from(`Gatehouse break-glass probe ${new Date().toISOString()}\n`), 'text/plain'),
        excessRights: () => this.excessRights(probeName),
      },
      onStage,
    );
  }

  private async excessRights(probeName: string): Promise<string[]> {
    const warnings: string[] = [];
    const blob = this.container.getBlockBlobClient(probeName);
    if (await succeeds(() => blob.downloadToBuffer())) {
      warnings.push('The credentials can READ blobs: whoever holds them could download the exports. Use a SAS with create and write only.');
    }
    if (await succeeds(() => this.container.listBlobsFlat().byPage({ maxPageSize: 1 }).next())) {
      warnings.push('The credentials can LIST the container. Use a SAS with create and write only.');
    }
    if (await succeeds(() => blob.delete())) {
      warnings.push('The credentials can DELETE blobs: whoever holds them could remove the exports. Use a SAS with create and write only.');
    }
    return warnings;
  }
}
