import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { verifyManifest, type ExportNames, type StorageTarget } from '@gatehouse/breakglass';

/** A manifest is a few hundred bytes; anything far larger is not one. */
const MANIFEST_LIMIT = 1024 * 1024;

/** What the bucket holds after a run was cut off, as read back from it. */
export type BucketCheck =
  /** The workbook matches a manifest signed by this server; `fromRun` when it was made by the run that was cut off. */
  | { state: 'whole'; generatedAt: string; sha256: string; bytes: number; fromRun: boolean }
  /** The workbook does not match the manifest: the workbook was replaced but the manifest was not (or the reverse). */
  | { state: 'mismatch'; generatedAt: string; manifestSha256: string; sha256: string; bytes: number }
  | { state: 'unsigned'; sha256: string | null }
  | { state: 'missing'; workbook: boolean; manifest: boolean; sha256: string | null }
  | { state: 'unchecked'; reason: string };

async function digest(body: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of body) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

async function text(body: Readable): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of body) {
    bytes += (chunk as Buffer).length;
    if (bytes > MANIFEST_LIMIT) {
      body.destroy();
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Reads the manifest and the workbook back and checks one against the other (size,
 * SHA-256, and the manifest's signature against this server's key): what a run that
 * was cut off left in the bucket, found out rather than assumed.
 */
export async function checkBucket(
  target: StorageTarget,
  names: ExportNames,
  publicKeyPem: string,
  runStartedAt: string,
): Promise<BucketCheck> {
  try {
    const manifestRead = await target.open(names.manifest);
    if (manifestRead.state === 'unreadable') return { state: 'unchecked', reason: manifestRead.reason };
    const manifestText = manifestRead.state === 'found' ? await text(manifestRead.body) : undefined;
    const workbookRead = await target.open(names.data);
    if (workbookRead.state === 'unreadable') return { state: 'unchecked', reason: workbookRead.reason };
    const workbook = workbookRead.state === 'found' ? await digest(workbookRead.body) : undefined;
    if (manifestRead.state === 'missing' || !workbook)
      return { state: 'missing', workbook: !workbook, manifest: manifestRead.state === 'missing', sha256: workbook?.sha256 ?? null };
    const verified = manifestText === undefined ? undefined : verifyManifest(manifestText, publicKeyPem);
    if (!verified?.ok) return { state: 'unsigned', sha256: workbook.sha256 };
    const m = verified.manifest;
    if (m.sha256 !== workbook.sha256 || m.bytes !== workbook.bytes)
      return { state: 'mismatch', generatedAt: m.generatedAt, manifestSha256: m.sha256, ...workbook };
    return { state: 'whole', generatedAt: m.generatedAt, ...workbook, fromRun: Date.parse(m.generatedAt) >= Date.parse(runStartedAt) };
  } catch (error) {
    // A stream that broke off half-way: our words, not the remote's.
    return { state: 'unchecked', reason: `reading it back broke off (${(error as NodeJS.ErrnoException).code ?? 'stream error'})` };
  }
}

const short = (sha256: string) => `SHA-256 ${sha256}`;

/** The sentence the run history, the audit event and the alert give about the bucket. */
export function describeBucket(check: BucketCheck, names: ExportNames): string {
  switch (check.state) {
    case 'whole':
      return check.fromRun
        ? `This run's export reached the bucket whole before the server stopped: ${names.data} matches the manifest of ${check.generatedAt} (${short(check.sha256)}, ${check.bytes} bytes).`
        : `The previous export is intact: ${names.data} matches the manifest of ${check.generatedAt} (${short(check.sha256)}, ${check.bytes} bytes).`;
    case 'mismatch':
      return `The workbook was replaced but the manifest was not: ${names.data} (${short(check.sha256)}, ${check.bytes} bytes) does not match the manifest of ${check.generatedAt} (${short(check.manifestSha256)}), so the offline reader reports the mismatch until a run writes both again.`;
    case 'unsigned':
      return `The manifest ${names.manifest} is not one this server signed (it does not verify against the signing key): the export in the bucket cannot be trusted until a run writes both again.`;
    case 'missing':
      return check.workbook && check.manifest
        ? `The bucket holds no export: neither ${names.data} nor ${names.manifest} exists.`
        : check.workbook
          ? `The bucket holds a manifest but no workbook ${names.data}.`
          : `The bucket holds a workbook (${short(check.sha256 ?? '')}) but no manifest ${names.manifest}.`;
    case 'unchecked':
      return `What the bucket holds was not checked: ${check.reason.replace(/\.$/, '')}. Uploads replace an object only when complete, so ${names.data} is the previous workbook or this run's, never a partial one; the offline reader checks it against the manifest.`;
  }
}
