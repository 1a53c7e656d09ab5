import { randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import {
  fileDownload,
  fileListing,
  fileLocation,
  fileUploaded,
  fileVisitStart,
  responses,
  type FileEntry,
  type FileLocation,
  type FileVisitMessage,
} from '@gatehouse/api';
import { ConflictError, GatehouseError } from '@gatehouse/core';
import type { GatewaySessions } from '@gatehouse/db';
import type { GatewaySftp } from '@gatehouse/gateway';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { FileEntryWithStats, SFTPWrapper, Stats } from 'ssh2';
import { connectors } from '../../access.js';
import { caller } from '../../auth.js';
import type { Services } from '../../services.js';
import { acceptStart } from '../started-socket.js';
import { gatewayTargetOf, openFailure, type WebTerminal } from '../../terminal.js';

const typeOf = (s: Stats): FileEntry['type'] =>
  s.isDirectory() ? 'directory' : s.isFile() ? 'file' : s.isSymbolicLink() ? 'link' : 'other';

/** Where a symbolic link points and what is there (`type: null` when nothing is: a dangling link). */
async function linkOf(sftp: SFTPWrapper, path: string): Promise<FileEntry['link']> {
  const [target, stats] = await Promise.all([
    new Promise<string>((resolve) => sftp.readlink(path, (e, t) => resolve(e ? '?' : t))),
    new Promise<Stats | null>((resolve) => sftp.stat(path, (e, st) => resolve(e ? null : st))),
  ]);
  return { target, type: stats === null ? null : stats.isDirectory() ? 'directory' : stats.isFile() ? 'file' : 'other' };
}

/** An SFTP status error as a sentence that names the path, never the bytes. */
function sftpProblem(error: unknown, path: string): GatehouseError {
  const code = (error as { code?: number }).code;
  if (code === 2) return new GatehouseError('NOT_FOUND', `${path} does not exist on the device.`);
  if (code === 3) return new GatehouseError('FORBIDDEN', `The device's account may not access ${path}.`);
  return new GatehouseError('BAD_REQUEST', `The device refused the operation on ${path}: ${(error as Error).message}.`);
}

/** A file browser visit's SFTP session, for its user, device and account only. */
interface Visit {
  userId: string;
  deviceId: string;
  accountId: string | undefined;
  files: GatewaySftp;
}

/** The SFTP session a request uses, and what to do when the request is done with it. */
interface Lease {
  sftp: GatewaySftp['sftp'];
  /** Ends a request's own SFTP session; a visit's stays open for the next request. */
  release(): void;
}

/** Opens and lends the SFTP sessions of the file browser's requests, and keeps this process's visits. */
interface FileSessions {
  /** Opens SFTP for the request's device and account, or throws the gateway's reason. */
  open(req: FastifyRequest, q: FileLocation): Promise<GatewaySftp>;
  /** The request's visit's SFTP session, or one of its own. */
  lease(req: FastifyRequest, q: FileLocation): Promise<Lease>;
  /** Keeps `files` as a visit of the caller's; answers its id. */
  addVisit(req: FastifyRequest, location: Omit<Visit, 'userId' | 'files'>, files: GatewaySftp): string;
  endVisit(id: string): void;
}

function fileSessions(services: Services, terminal: WebTerminal, sessions: GatewaySessions): FileSessions {
  const visits = new Map<string, Visit>();
  /** Prefixes this process's visit ids, so that another replica knows they are not its own. */
  const replica = randomUUID();

  const open = async (req: FastifyRequest, q: FileLocation): Promise<GatewaySftp> => {
    const auth = caller(req);
    const { target, device } = await gatewayTargetOf(services, auth, q.deviceId, q.accountId);
    const since = new Date(Date.now() - 1000).toISOString();
    try {
      return await terminal.files(auth.user, target, req.ip);
    } catch (error) {
      // The gateway recorded why it refused (no permission, no gateway online in a segment, unreachable).
      const recent = await sessions.list({ userId: auth.user.id, deviceId: device.id, from: since, limit: 1 });
      const reason = recent.items[0]?.result === 'failure' ? recent.items[0].reason : null;
      throw new ConflictError(reason ?? openFailure(error, req));
    }
  };

  return {
    open,
    async lease(req, q) {
      // Another replica's visit cannot be reached from here: a session of its own, checked by
      // the gateway like any other (it lends nothing of the visit's).
      if (q.visit === undefined || (q.visit.includes('.') && !q.visit.startsWith(`${replica}.`))) {
        const files = await open(req, q);
        return { sftp: files.sftp, release: () => files.close() };
      }
      const visit = visits.get(q.visit);
      // Another user's visit, or one for another device or account, answers as one that ended.
      if (!visit || visit.userId !== caller(req).user.id || visit.deviceId !== q.deviceId || visit.accountId !== q.accountId) {
        throw new ConflictError(
          "This file browser's SFTP session has ended (its page was closed, or the gateway ended it). Reload the page.",
        );
      }
      return { sftp: visit.files.sftp, release: () => undefined };
    },
    addVisit(req, location, files) {
      const id = `${replica}.${randomUUID()}`;
      visits.set(id, { userId: caller(req).user.id, ...location, files });
      return id;
    },
    endVisit(id) {
      visits.delete(id);
    },
  };
}

/** Releases the request's SFTP session once its reply is done. */
const finish = (files: Lease, reply: FastifyReply) => {
  reply.raw.once('close', () => files.release());
};

/** The stats of `path`, or the SFTP status as a sentence that names it. */
const statOf = (sftp: GatewaySftp['sftp'], path: string) =>
  new Promise<Stats>((resolve, reject) => sftp.stat(path, (e, s) => (e ? reject(sftpProblem(e, path)) : resolve(s))));

/** The directory at `path` (resolved), directories (and links to them) first, then by name. */
async function listDirectory(sftp: GatewaySftp['sftp'], path: string) {
  const dir = await new Promise<string>((resolve, reject) =>
    sftp.realpath(path, (e, p) => (e ? reject(sftpProblem(e, path)) : resolve(p))),
  );
  const list = await new Promise<FileEntryWithStats[]>((resolve, reject) =>
    sftp.readdir(dir, (e, l) => (e ? reject(sftpProblem(e, dir)) : resolve(l))),
  );
  const entries: FileEntry[] = await Promise.all(
    list
      .filter((f) => f.filename !== '.' && f.filename !== '..')
      .map(async (f) => {
        const type = typeOf(f.attrs);
        const entry: FileEntry = {
          name: f.filename,
          type,
          size: f.attrs.size,
          modifiedAt: f.attrs.mtime ? new Date(f.attrs.mtime * 1000).toISOString() : null,
        };
        return type === 'link' ? { ...entry, link: await linkOf(sftp, posix.join(dir, f.filename)) } : entry;
      }),
  );
  const isDir = (e: FileEntry) => e.type === 'directory' || e.link?.type === 'directory';
  entries.sort((a, b) => (isDir(a) !== isDir(b) ? (isDir(a) ? -1 : 1) : a.name.localeCompare(b.name)));
  return { path: dir, parent: dir === '/' ? null : posix.dirname(dir), entries };
}

/**
 * The file's bytes; SFTP ends only once the device has closed the file (after the last
 * byte), so the gateway logs the download as complete. A client that goes away early
 * ends it at once, and the gateway logs the download as cut off.
 */
function readToTheEnd(files: Lease, path: string, reply: FastifyReply) {
  const stream = files.sftp.createReadStream(path);
  stream.once('close', () => files.release());
  reply.raw.once('close', () => {
    if (!stream.readableEnded) {
      stream.destroy();
      files.release();
    }
  });
  return stream;
}

/** GET /files/visit: a page's visit, one SFTP session kept for its requests until the socket closes. */
function visitRoute(app: FastifyInstance, services: Services, files: FileSessions) {
  app.get(
    '/files/visit',
    {
      websocket: true,
      config: connectors,
      schema: {
        tags: ['sessions'],
        summary:
          "File browser visit (WebSocket): one SFTP session through the built-in gateway for the page's /files requests (their visit), until the socket closes",
      },
    },
    (socket: WebSocket, req: FastifyRequest) => {
      const send = (m: FileVisitMessage) => socket.readyState === socket.OPEN && socket.send(JSON.stringify(m));
      const refuse = acceptStart(socket, req, services, {
        start: fileVisitStart,
        what: 'file browser',
        begin: (s) => {
          files.open(req, { deviceId: s.deviceId, accountId: s.accountId, path: '.' }).then(
            (sftp) => {
              if (socket.readyState !== socket.OPEN) return sftp.close();
              const id = files.addVisit(req, { deviceId: s.deviceId, accountId: s.accountId }, sftp);
              socket.once('close', () => {
                files.endVisit(id);
                sftp.close();
              });
              sftp.sftp.once('close', () => {
                files.endVisit(id);
                send({
                  type: 'ended',
                  message: 'The SFTP session ended (the gateway or an administrator ended it). Reload the page to open a new one.',
                });
                socket.close(1000, 'ended');
              });
              send({ type: 'ready', visit: id });
            },
            (error: unknown) => refuse(error instanceof GatehouseError ? error.message : openFailure(error, req)),
          );
        },
      });
    },
  );
}

/** GET /files: a directory's entries. */
function listRoute(app: FastifyInstance, files: FileSessions) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/files',
    {
      config: connectors,
      schema: {
        tags: ['sessions'],
        summary: 'List a directory on a device over SFTP through the built-in gateway (logged and audited like sftp)',
        querystring: fileLocation,
        response: responses({ 200: fileListing }),
      },
    },
    async (req, reply) => {
      const lease = await files.lease(req, req.query);
      finish(lease, reply);
      return listDirectory(lease.sftp, req.query.path);
    },
  );
}

/** GET /files/download: a file's bytes, streamed. */
function downloadRoute(app: FastifyInstance, files: FileSessions) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/files/download',
    {
      config: connectors,
      schema: {
        tags: ['sessions'],
        summary: 'Download a file from a device over SFTP through the built-in gateway',
        querystring: fileLocation,
        response: responses({ 200: fileDownload }),
      },
    },
    async (req, reply) => {
      const lease = await files.lease(req, req.query);
      const path = req.query.path;
      const stats = await statOf(lease.sftp, path).catch((error: unknown) => {
        lease.release();
        throw error;
      });
      if (!stats.isFile()) {
        lease.release();
        throw new GatehouseError('BAD_REQUEST', `${path} is not a file.`);
      }
      const name = posix.basename(path).replace(/["\\\r\n]/g, '_');
      return reply
        .type('application/octet-stream')
        .header('content-length', stats.size)
        .header(
          'content-disposition',
          `attachment; filename="${name.replace(/[^\x20-\x7e]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(name)}`,
        )
        .send(readToTheEnd(lease, path, reply));
    },
  );
}

/** PUT /files: the body streamed to a file on the device. */
function uploadRoute(app: FastifyInstance, files: FileSessions) {
  app.withTypeProvider<ZodTypeProvider>().put(
    '/files',
    {
      config: connectors,
      bodyLimit: Number.MAX_SAFE_INTEGER,
      schema: {
        tags: ['sessions'],
        summary: 'Upload a file (the body, application/octet-stream) to a path on a device over SFTP through the built-in gateway',
        querystring: fileLocation,
        response: responses({ 201: fileUploaded }),
      },
    },
    async (req, reply) => {
      if (!(req.headers['content-type'] ?? '').startsWith('application/octet-stream')) {
        throw new GatehouseError('UNSUPPORTED_MEDIA_TYPE', 'Send the file as the body with Content-Type: application/octet-stream.');
      }
      const lease = await files.lease(req, req.query);
      finish(lease, reply);
      const path = req.query.path;
      try {
        await pipeline(req.body as Readable, lease.sftp.createWriteStream(path));
      } catch (error) {
        throw sftpProblem(error, path);
      }
      const stats = await statOf(lease.sftp, path);
      return reply.status(201).send({ path, size: stats.size });
    },
  );
}

/**
 * The console's file browser: list, download and upload over SFTP through the built-in
 * gateway, signed in like the browser terminal, so the gateway checks the policy, logs every
 * operation (path, size, direction, result) and audits it as for `sftp`. A page opens a
 * visit (GET /files/visit, a WebSocket): one SFTP session that serves every request carrying
 * its id until the page closes the socket, so one visit is one session with one log. A
 * request without a visit is a session of its own, and so is one whose visit another replica
 * holds (`<replica>.<id>`: behind a load balancer the page's requests may land anywhere).
 * When the gateway refuses, the reason it recorded is the answer.
 */
export function fileRoutes(app: FastifyInstance, services: Services, terminal: WebTerminal, sessions: GatewaySessions) {
  // Uploads are streamed to the device as they arrive, never held whole in memory.
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
  const files = fileSessions(services, terminal, sessions);
  visitRoute(app, services, files);
  listRoute(app, files);
  downloadRoute(app, files);
  uploadRoute(app, files);
}
