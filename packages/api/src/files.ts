import { z } from 'zod';
import { fileAnswer, timestamp } from './common.js';

/** The console's file browser: SFTP on a device through the built-in gateway (`/files`). */

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const VISIT_ID = new RegExp(`^(?:${UUID}\\.)?${UUID}$`, 'i');

/** Which device (and account) and which path: a directory to list, a file to download or upload. */
export const fileLocation = z.strictObject({
  deviceId: z.string().min(1).max(100),
  accountId: z.string().min(1).max(100).optional(),
  path: z
    .string()
    .max(4096)
    .refine((p) => !/[\u0000-\u001f]/.test(p), 'must not contain control characters')
    .default('.'),
  /**
   * The file browser's visit (GET /files/visit): its one SFTP session serves the request.
   * Without it, the request is a session of its own. `<replica>.<id>`, both UUIDs: the
   * replica that holds the visit (a plain UUID names none).
   */
  visit: z.string().regex(VISIT_ID, 'must be the visit id the file browser WebSocket answered').optional(),
});
export type FileLocation = z.input<typeof fileLocation>;

export const fileEntry = z.object({
  name: z.string(),
  type: z.enum(['file', 'directory', 'link', 'other']),
  size: z.number(),
  modifiedAt: timestamp.nullable(),
  /** A symbolic link's target as stored, and what it points to (`null`: nothing, a dangling link). */
  link: z.object({ target: z.string(), type: z.enum(['file', 'directory', 'other']).nullable() }).optional(),
});
export type FileEntry = z.infer<typeof fileEntry>;

/** A directory: its full path, its parent (null at `/`), directories first, then by name. */
export const fileListing = z.object({ path: z.string(), parent: z.string().nullable(), entries: z.array(fileEntry) });
export type FileListing = z.infer<typeof fileListing>;

export const fileDownload = fileAnswer('application/octet-stream', "The file's bytes, named in Content-Disposition");

/** Where the upload was written, and its size there. */
export const fileUploaded = z.object({ path: z.string(), size: z.number() });
export type FileUploaded = z.infer<typeof fileUploaded>;

/**
 * The file browser's visit (`GET /files/visit`, a WebSocket): the first message is the
 * session's CSRF token and which device (and account); the server opens one SFTP session
 * through the built-in gateway and answers its id, which the page's `/files` requests carry
 * as `visit` until the page closes the socket (that ends the SFTP session).
 */
export const fileVisitStart = z.strictObject({
  type: z.literal('start'),
  csrfToken: z.string().max(200),
  deviceId: z.string().min(1).max(100),
  accountId: z.string().min(1).max(100).optional(),
});
export type FileVisitStart = z.infer<typeof fileVisitStart>;

/** The visit is open (its id), was refused, or its SFTP session ended (the gateway or an administrator ended it). */
export type FileVisitMessage = { type: 'ready'; visit: string } | { type: 'error'; message: string } | { type: 'ended'; message: string };
