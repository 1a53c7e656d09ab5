import { createHash } from 'node:crypto';
import { PassThrough, pipeline, Transform, type Readable } from 'node:stream';
import { signManifest, type SignedManifest } from './manifest.js';
import { sealStream, type Sealing } from './seal.js';
import type { StorageTarget } from './targets/target.js';
import { writeConnectionWorkbook, type BreakGlassSource, type WorkbookCounts } from './workbook.js';

/** The stable object names of one target: overwritten by every run, so only the latest is kept. */
export interface ExportNames {
  data: string;
  manifest: string;
}

/** Object names under a prefix (`gatehouse/` → `gatehouse/breakglass.xlsx.age`, `gatehouse/breakglass.manifest.json`). */
export function exportNames(prefix: string, sealing: Sealing['kind']): ExportNames {
  const p = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
  return { data: `${p}breakglass.xlsx${sealing === 'none' ? '' : '.age'}`, manifest: `${p}breakglass.manifest.json` };
}

export interface ExportOptions {
  source: BreakGlassSource;
  sealing: Sealing;
  target: StorageTarget;
  names: ExportNames;
  signingKeyPem: string;
  now?: Date;
  /** Called with the bytes uploaded so far. */
  onProgress?: (bytes: number) => void;
}

export interface ExportResult {
  counts: WorkbookCounts;
  bytes: number;
  sha256: string;
  manifest: SignedManifest;
}

/** Counts and hashes what flows through, for the manifest. */
class Digest extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly onProgress?: (bytes: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (error?: Error | null, data?: Buffer) => void) {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onProgress?.(this.bytes);
    done(null, chunk);
  }
}

/**
 * One break-glass run: workbook → age → storage, streamed end to end (the plaintext is
 * never on disk and never whole in memory), then the signed manifest. Each object is
 * replaced atomically by its upload, so a run that fails while writing the workbook
 * leaves the previous workbook and manifest as they were.
 */
export async function exportBreakGlass(opts: ExportOptions): Promise<ExportResult> {
  const now = opts.now ?? new Date();
  const plain = new PassThrough({ highWaterMark: 1024 * 1024 });
  const digest = new Digest(opts.onProgress);
  const sealed: Readable = await sealStream(plain, opts.sealing);

  // pipeline() owns the error events between the sealer and the digest. A failure on
  // either side tears down the other, so neither waits forever: a failing source aborts
  // the upload (the multipart upload is abandoned, the old object stays), a failing
  // upload stops the workbook.
  pipeline(sealed, digest, () => undefined);
  const writing = writeConnectionWorkbook(opts.source, plain, now).catch((error: unknown) => {
    plain.destroy(error as Error);
    throw error;
  });
  const uploading = opts.target.putStream(opts.names.data, digest, 'application/octet-stream').catch((error: unknown) => {
    plain.destroy(error as Error);
    throw error;
  });
  const [counts] = await Promise.all([writing, uploading]);

  const sha256 = digest.hash.digest('hex');
  const manifest = signManifest(
    {
      generatedAt: now.toISOString(),
      object: opts.names.data,
      bytes: digest.bytes,
      sha256,
      sealing: opts.sealing.kind === 'none' ? 'none' : opts.sealing.kind,
      recipients: opts.sealing.kind === 'age' ? [...opts.sealing.recipients] : [],
      counts,
    },
    opts.signingKeyPem,
  );
  await opts.target.putBytes(opts.names.manifest, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), 'application/json');
  return { counts, bytes: digest.bytes, sha256, manifest };
}
