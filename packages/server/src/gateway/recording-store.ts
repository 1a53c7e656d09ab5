import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { GatewaySessions } from '@gatehouse/db';
import { blobSettings, s3Settings, type AddressPolicy, type StorageTarget } from '@gatehouse/breakglass';
import { GatehouseError } from '@gatehouse/core';
import { z } from 'zod';
import { targetFor } from '../breakglass/run.js';
import type { AuditCheckpointKey } from '../audit-checkpoint-key.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { RecordingSignatures } from './recording-signatures.js';
import { RecordingUploads } from './recording-uploads.js';
import { SftpLogs } from './sftp-logs.js';

// Break glass's connection fields, without its schedule and sealing.
const notStorage = {
  executeTime: true,
  timeZone: true,
  encryption: true,
  ageRecipients: true,
  passphrase: true,
  alertWebhookUrl: true,
} as const;
const storeFields = {
  prefix: z
    .string()
    .regex(/^[A-Za-z0-9!_.*'()/-]*$/, "may hold letters, digits and ! _ . * ' ( ) / - only")
    .max(200)
    .default('recordings/'),
  /** Keep the local copy after the store confirmed the upload (default: remove it). */
  keepLocal: z.boolean().default(false),
  /** Seconds before one request to the store is given up (and retried): the store's own, not break glass's. */
  timeoutSeconds: z.number().int().min(1).max(3600).default(30),
};

/**
 * The recordings' object store (GATEHOUSE_RECORDING_STORE_CONFIG, a JSON file): an S3 bucket
 * or an Azure container as break glass names one, with a bucket and key of its own.
 */
export const recordingStoreSettings = z.discriminatedUnion('provider', [
  s3Settings.omit(notStorage).extend(storeFields),
  blobSettings.omit(notStorage).extend(storeFields),
]);
export type RecordingStoreSettings = z.infer<typeof recordingStoreSettings>;

/** Reads and checks the store's settings file; every problem named by its field. */
export function loadRecordingStoreSettings(file: string): RecordingStoreSettings {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? 'not JSON';
    throw new GatehouseError(
      'CONFIG_INVALID',
      `Cannot read the recording store settings ${file} (${why}): give a JSON file, as docs/OPERATIONS.md shows.`,
    );
  }
  const parsed = recordingStoreSettings.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'provider'} ${i.message}`).join('; ');
    throw new GatehouseError('CONFIG_INVALID', `The recording store settings in ${file} are not valid: ${problems}.`);
  }
  return parsed.data;
}

/** The store's target, with the break-glass storage code. */
export function recordingStoreTarget(
  s: RecordingStoreSettings,
  timeoutSeconds: number,
  addressPolicy?: AddressPolicy,
): Promise<StorageTarget> {
  return targetFor(s, timeoutSeconds, addressPolicy);
}

/**
 * Uploads every recording once it is signed, and every SFTP session's operation log once
 * written and signed; queues at start the recordings signed earlier and not in the store
 * yet whose file is still here, and writes the SFTP logs not in the store yet.
 */
export async function startRecordingUploads(o: {
  settings: RecordingStoreSettings;
  retryDelaysMs: number[];
  recordingsDir: string;
  sessions: GatewaySessions;
  signatures: RecordingSignatures;
  /** The server's signing key (SFTP logs are signed with it as recordings are). */
  key: Pick<AuditCheckpointKey, 'privateKeyPem'>;
  metrics: Metrics;
  logger: Logger;
}): Promise<{ uploads: RecordingUploads; sftpLogs: SftpLogs; target: StorageTarget; prefix: string }> {
  const target = await recordingStoreTarget(o.settings, o.settings.timeoutSeconds);
  const uploads = new RecordingUploads({
    target,
    recordingsDir: o.recordingsDir,
    prefix: o.settings.prefix,
    keepLocal: o.settings.keepLocal,
    retryDelaysMs: o.retryDelaysMs,
    stored: (id, name) => o.sessions.markStored(id, name),
    logger: o.logger,
    onBacklog: (n) => o.metrics.recordingUploads(n),
  });
  o.signatures.onSigned((id, file) => uploads.add(id, file));
  for (const { id, recording } of await o.sessions.unstoredRecordings()) {
    const file = path.resolve(o.recordingsDir, recording);
    if (file.startsWith(`${o.recordingsDir}${path.sep}`) && existsSync(file)) uploads.add(id, file);
  }
  const sftpLogs = new SftpLogs({
    sessions: o.sessions,
    recordingsDir: o.recordingsDir,
    key: o.key,
    written: (id, file) => uploads.add(id, file),
    logger: o.logger,
  });
  void sftpLogs.writePending().catch((error: unknown) => o.logger.error({ err: error }, 'could not list the SFTP session logs to upload'));
  return { uploads, sftpLogs, target, prefix: o.settings.prefix };
}
