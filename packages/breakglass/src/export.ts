import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Transform, Writable, type Readable } from 'node:stream';
import { pipeline as pipelinePromise } from 'node:stream/promises';
import type { AuditCheckpoint } from '@gatehouse/core';
import { GatehouseError } from '@gatehouse/core/errors';
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
  /** The audit chain's signed head, carried in the manifest so the chain is anchored outside the database. */
  auditCheckpoint?: AuditCheckpoint | undefined;
  now?: Date;
  /** Called with the sealed bytes staged so far (before the upload starts). */
  onProgress?: (bytes: number) => void;
  /** Called with the bytes of the export sent to the storage so far (the upload's own progress). */
  onUpload?: (bytes: number) => void;
  /** Where the sealed file is staged before its upload (default: the system's temp dir). */
  stagingDir?: string | undefined;
}

export interface ExportResult {
  counts: WorkbookCounts;
  bytes: number;
  sha256: string;
  manifest: SignedManifest;
}

/**
 * What a failed run had written: the new workbook, when only its manifest failed after it.
 * The run's history row records it, so nobody has to guess what is in the bucket.
 */
export interface PartialExport {
  objects: { data: string };
  bytes: number;
  sha256: string;
  counts: WorkbookCounts;
}
const partials = new WeakMap<object, PartialExport>();

/** The objects a failed exportBreakGlass() had written, from the error it threw (undefined: none). */
export function partialExport(error: unknown): PartialExport | undefined {
  return typeof error === 'object' && error !== null ? partials.get(error) : undefined;
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

/** S3's limit for one PUT; an export this large would need a multipart upload. */
const MAX_SINGLE_PUT = 5 * 1024 ** 3;

/**
 * One break-glass run: workbook → age → a staged file → storage, then the signed
 * manifest. The workbook is streamed (never whole in memory) and sealed before anything
 * touches disk: only ciphertext is staged (mode 0600, removed afterwards). Staging lets
 * the upload be one plain PUT with a known length — atomic on every S3 and Azure server,
 * and what put-only policies with an ACL condition allow (their multipart parts carry no
 * ACL header and are refused). A run that fails anywhere leaves the previous workbook
 * and manifest as they were. With encryption explicitly off, the plain workbook is held
 * in memory instead, so it never reaches disk either.
 */
export async function exportBreakGlass(opts: ExportOptions): Promise<ExportResult> {
  const now = opts.now ?? new Date();
  const plain = new PassThrough({ highWaterMark: 1024 * 1024 });
  const digest = new Digest(opts.onProgress);
  const sealed: Readable = await sealStream(plain, opts.sealing);
  const stagingDir = opts.stagingDir ?? os.tmpdir();
  await mkdir(stagingDir, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(path.join(stagingDir, 'gatehouse-breakglass-'));
  try {
    const file = path.join(dir, 'export');
    const held: Buffer[] = [];
    const sink: Writable =
      opts.sealing.kind === 'none'
        ? new Writable({
            write(chunk: Buffer, _enc, done) {
              held.push(chunk);
              done();
            },
          })
        : createWriteStream(file, { mode: 0o600 });
    // pipeline() owns the error events from the sealer to the staged file; a failing
    // source tears the pipe down, a failing pipe stops the workbook.
    const staging = pipelinePromise(sealed, digest, sink);
    const writing = writeConnectionWorkbook(opts.source, plain, now).catch((error: unknown) => {
      plain.destroy(error as Error);
      throw error;
    });
    const [counts] = await Promise.all([writing, staging]);
    if (digest.bytes > MAX_SINGLE_PUT)
      throw new GatehouseError('PAYLOAD_TOO_LARGE', `The sealed export is ${digest.bytes} bytes, more than one upload can hold (5 GiB).`);

    if (opts.sealing.kind === 'none') {
      await opts.target.putBytes(opts.names.data, Buffer.concat(held), 'application/octet-stream');
      opts.onUpload?.(digest.bytes);
    } else await opts.target.putFile(opts.names.data, file, digest.bytes, 'application/octet-stream', opts.onUpload);

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
        auditCheckpoint: opts.auditCheckpoint,
      },
      opts.signingKeyPem,
    );
    try {
      await opts.target.putBytes(opts.names.manifest, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), 'application/json');
    } catch (error) {
      if (typeof error === 'object' && error !== null)
        partials.set(error, { objects: { data: opts.names.data }, bytes: digest.bytes, sha256, counts });
      throw error;
    }
    return { counts, bytes: digest.bytes, sha256, manifest };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
