import { recordingSignatureSchema } from '@gatehouse/core';
import { z } from 'zod';
import { listOf, timestamp } from './common.js';

/** Sessions through gateways, their SFTP operations and terminal recordings (`/sessions`). */

/** A time with its offset, as the stored UTC text so that it compares as time does. */
const isoTime = z.iso.datetime({ offset: true }).transform((s) => new Date(s).toISOString());

export const sessionListQuery = z.strictObject({
  deviceId: z.string().max(100).optional(),
  userId: z.string().max(100).optional(),
  user: z.string().max(100).optional().describe('part of the user name'),
  device: z.string().max(200).optional().describe('part of the device name'),
  from: isoTime.optional().describe('started at or after (ISO 8601)'),
  to: isoTime.optional().describe('started before (ISO 8601)'),
  result: z.enum(['active', 'success', 'failure']).optional().describe('active: live sessions'),
  transfers: z
    .enum(['true', 'false'])
    .optional()
    .transform((v) => v === 'true')
    .describe('true: only sessions that uploaded or downloaded a file'),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  offset: z.coerce.number().int().min(0).default(0),
});
export type SessionListQuery = z.input<typeof sessionListQuery>;

/** One proxied channel, a connection while it carried no channel, or a failed connection. */
export const gatewaySession = z.object({
  id: z.string(),
  userId: z.string().nullable(),
  username: z.string(),
  projectId: z.string().nullable(),
  projectName: z.string(),
  deviceId: z.string().nullable(),
  deviceName: z.string(),
  accountId: z.string().nullable(),
  accountUsername: z.string(),
  /** The gateway that reached the device. */
  gateway: z.string(),
  /** The device's gateway segment at the time, or null. */
  segment: z.string().nullable(),
  /** The gateway the user connected to (it signed them in and recorded the session). */
  entryGateway: z.string(),
  /**
   * `forward`: a forwarded TCP connection (`ssh -L`), its destination as the command;
   * `connection`: a connection that carried no channel for a moment (`ssh -N`); null for a failed connection.
   */
  kind: z.enum(['shell', 'exec', 'sftp', 'forward', 'connection', 'vnc', 'rdp']).nullable(),
  command: z.string().nullable(),
  remoteAddress: z.string().nullable(),
  startedAt: timestamp,
  endedAt: timestamp.nullable(),
  /** Bytes from the user to the device, and back: counted while the session is live, final once it ended. */
  bytesIn: z.number(),
  bytesOut: z.number(),
  /** Files uploaded and downloaded (successful SFTP or scp transfers). */
  uploads: z.number().int(),
  downloads: z.number().int(),
  result: z.enum(['active', 'success', 'failure']),
  exitStatus: z.number().int().nullable(),
  reason: z.string().nullable(),
  /** Whether a recording exists (GET /sessions/:id/recording). */
  recorded: z.boolean(),
  /** The recording's format: `asciicast` (a terminal's, asciicast v2) or `rfb` (a desktop's RFB stream); null without one. */
  recordingFormat: z.enum(['asciicast', 'rfb']).nullable(),
  /**
   * The SSH key exchange the user's connection to the gateway negotiated (`mlkem768x25519-sha256` is post-quantum,
   * `curve25519-sha256` is not); null for a session that is not SSH or that predates the record.
   */
  userKex: z.string().nullable().optional(),
  /** The SSH key exchange the gateway's connection to the device negotiated; null as `userKex`. */
  deviceKex: z.string().nullable().optional(),
  /**
   * The finished recording's SHA-256 (hex); for an SFTP session with a recordings' object store, that of its operation log
   * (JSON lines); null while the session runs, without either, or before it is signed.
   */
  recordingSha256: z.string().nullable().optional(),
  /**
   * The server's Ed25519 signature over the recording (the document written beside it as `<recording>.sig`):
   * check a downloaded copy offline with `gatehouse sessions verify <file> --public-key <file>`.
   */
  recordingSignature: recordingSignatureSchema.nullable().optional(),
  /**
   * Where the recording lives: its object name in the recordings' object store once the store confirmed it
   * (GATEHOUSE_RECORDING_STORE_CONFIG), null while it is only on the server's disk. For an SFTP session, its
   * signed operation log's object name (`<day>/<id>.sftp.jsonl`; the operations are also at GET /sessions/:id/file-operations).
   */
  recordingStore: z.string().nullable().optional(),
});
export type GatewaySession = z.infer<typeof gatewaySession>;

/** The public half of the key that signs recordings (and audit checkpoints): keep a copy to verify recordings offline. */
export const recordingSigningKey = z.object({
  publicKeyPem: z.string(),
  /** `SHA256:<base64>` of the raw key, as in each signature's `keyId`. */
  keyId: z.string(),
  /** SHA-256 (hex) of the DER SubjectPublicKeyInfo, as in each signature's `publicKeyFingerprint`. */
  publicKeyFingerprint: z.string(),
});
export type RecordingSigningKey = z.infer<typeof recordingSigningKey>;

/** A page of sessions, newest first, and how many match in all. */
export const sessionPage = z.object({ items: z.array(gatewaySession), total: z.number().int() });
export type SessionPage = z.infer<typeof sessionPage>;

export const sessionEnd = z.strictObject({ reason: z.string().trim().min(1).max(500).optional() }).optional();
export type SessionEnd = z.input<typeof sessionEnd>;

export const sessionEnded = z.object({ ended: z.literal(true) });
export type SessionEnded = z.infer<typeof sessionEnded>;

/** One finished SFTP (or legacy scp) operation: `op` is upload, download or a change (mkdir, rename, remove…). */
export const fileOperation = z.object({
  id: z.string(),
  seq: z.number().int(),
  at: timestamp,
  op: z.string(),
  path: z.string(),
  target: z.string().nullable(),
  bytes: z.number(),
  result: z.enum(['success', 'failure']),
  error: z.string().nullable(),
});
export type FileOperation = z.infer<typeof fileOperation>;

export const fileOperationList = listOf(fileOperation);
export type FileOperationList = z.infer<typeof fileOperationList>;
