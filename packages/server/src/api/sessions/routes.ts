import { createReadStream } from 'node:fs';
import {
  fileAnswer,
  fileOperationList,
  gatewaySession,
  idParams,
  recordingSigningKey,
  responses,
  sessionEnd,
  sessionEnded,
  sessionListQuery,
  sessionPage,
} from '@gatehouse/api';
import {
  ConflictError,
  GatehouseError,
  NotFoundError,
  publicKeyDerFingerprint,
  RFB_RECORDING_MEDIA_TYPE,
  signingKeyFingerprint,
} from '@gatehouse/core';
import { recordingFormatOf, type GatewaySessions } from '@gatehouse/db';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { admins, staff } from '../../access.js';
import { caller } from '../../auth.js';
import { recordingFile } from '../../gateway/recordings.js';
import type { StorageTarget } from '@gatehouse/breakglass';
import type { RecordingSignatures } from '../../gateway/recording-signatures.js';
import type { GatewayService } from '../../gateway/service.js';
import type { Services } from '../../services.js';

const ASCIICAST_MEDIA_TYPE = 'application/x-asciicast';

/** Sessions through gateways, their file operations and recordings; ending a live one. */
export function sessionRoutes(
  app: FastifyInstance,
  services: Services,
  sessions: GatewaySessions,
  gateways: GatewayService,
  signatures: Pick<RecordingSignatures, 'publicKeyPem'>,
  /** The recordings' object store, when recordings are uploaded: played from there once not on local disk. */
  store?: Pick<StorageTarget, 'open'>,
) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['sessions'];

  /**
   * The session, if the caller may see it: administrators and auditors see every one, an
   * operator only their own; any other answers as one that does not exist.
   */
  const visibleSession = async (req: FastifyRequest, id: string) => {
    const session = await sessions.find(id);
    const { user } = caller(req);
    if (!session || (user.role === 'operator' && session.userId !== user.id)) throw new NotFoundError('Session', id);
    return session;
  };

  r.get(
    '/sessions',
    {
      config: staff,
      schema: {
        tags,
        summary:
          'List sessions through gateways, newest first (failed connections too, with their reason); an operator gets only their own',
        querystring: sessionListQuery,
        response: responses({ 200: sessionPage }),
      },
    },
    async (req) => {
      const { user } = caller(req);
      if (user.role !== 'operator') return sessions.list(req.query);
      // Another user's id names nothing an operator may see.
      if (req.query.userId !== undefined && req.query.userId !== user.id) return { items: [], total: 0 };
      return sessions.list({ ...req.query, userId: user.id });
    },
  );

  r.get(
    '/sessions/signing-key',
    {
      config: staff,
      schema: {
        tags,
        summary: "The public key that verifies recordings' signatures (the audit checkpoint key): keep a copy to check recordings offline",
        response: responses({ 200: recordingSigningKey }),
      },
    },
    () => {
      const { publicKeyPem } = signatures;
      return { publicKeyPem, keyId: signingKeyFingerprint(publicKeyPem), publicKeyFingerprint: publicKeyDerFingerprint(publicKeyPem) };
    },
  );

  r.get(
    '/sessions/:id',
    {
      config: staff,
      schema: {
        tags,
        summary: 'Show a session (an operator: one of their own)',
        params: idParams,
        response: responses({ 200: gatewaySession }),
      },
    },
    async (req) => visibleSession(req, req.params.id),
  );

  r.post(
    '/sessions/:id/end',
    {
      config: admins,
      schema: {
        tags,
        summary: 'End a live session now: the user is told the reason, the recording is closed, and it is audited',
        params: idParams,
        body: sessionEnd,
        response: responses({ 200: sessionEnded }),
      },
    },
    async (req) => {
      const session = await sessions.find(req.params.id);
      if (!session) throw new NotFoundError('Session', req.params.id);
      if (session.result !== 'active') throw new ConflictError('The session has already ended.');
      const who = caller(req).user.username;
      const reason = req.body?.reason ? `${who} ended this session: ${req.body.reason}` : `${who} ended this session.`;
      // The gateway holding the session ends it, and records the end in the session's row as
      // for any session that ends (a remote one over its link): this event records the request.
      const ended = await gateways.endSession(session, reason);
      await services.audit(req, {
        action: 'session.terminate',
        outcome: ended ? 'success' : 'failure',
        targetType: 'session',
        targetId: session.id,
        details: {
          gateway: session.entryGateway,
          device: session.deviceName,
          user: session.username,
          ...(ended ? {} : { reason: 'not live at the gateway' }),
        },
      });
      if (!ended) throw new ConflictError(`Gateway ${session.entryGateway} has no such live session: it has ended.`);
      return { ended: true as const };
    },
  );

  r.get(
    '/sessions/:id/file-operations',
    {
      config: staff,
      schema: {
        tags,
        summary: "The session's SFTP/SCP operations in order: path, size, direction (upload/download) or change, result",
        params: idParams,
        response: responses({ 200: fileOperationList }),
      },
    },
    async (req) => {
      const session = await visibleSession(req, req.params.id);
      return { items: await sessions.fileOperations(session.id) };
    },
  );

  r.get(
    '/sessions/:id/recording',
    {
      config: staff,
      schema: {
        tags,
        summary:
          "The session's recording: a terminal's as asciicast v2 (playable with asciinema), a desktop's as Gatehouse's RFB recording (the console's player)",
        params: idParams,
        response: responses({
          200: fileAnswer(
            [ASCIICAST_MEDIA_TYPE, RFB_RECORDING_MEDIA_TYPE],
            "The recording, as its session's recordingFormat says: asciicast v2 (a JSON header line, then one JSON event a line), or RFB (a JSON header line, then frames: u32 BE milliseconds, u32 BE length, the bytes the user was sent)",
          ),
        }),
      },
    },
    async (req, reply) => {
      const session = await visibleSession(req, req.params.id);
      const relative = await sessions.recordingOf(req.params.id);
      if (relative === undefined) throw new NotFoundError('Recording of session', req.params.id);
      const recording = await recordingFile(services.config.dataDir, relative);
      // Not on local disk: streamed from the recordings' object store when it holds it.
      const stored = !recording && store && session.recordingStore ? await store.open(session.recordingStore) : undefined;
      if (stored?.state === 'unreadable')
        throw new GatehouseError(
          'BAD_GATEWAY',
          `The recording is in object storage, which cannot hand it out now: ${stored.reason}. Try again later.`,
        );
      if (!recording && stored?.state !== 'found') throw new NotFoundError('Recording file of session', req.params.id);
      await services.audit(req, { action: 'session.recording_read', outcome: 'success', targetType: 'session', targetId: req.params.id });
      const rfb = recordingFormatOf(relative) === 'rfb';
      reply
        .type(rfb ? RFB_RECORDING_MEDIA_TYPE : ASCIICAST_MEDIA_TYPE)
        .header('content-disposition', `attachment; filename="${req.params.id.replace(/[^A-Za-z0-9-]/g, '')}.${rfb ? 'rfb' : 'cast'}"`);
      if (recording) return reply.header('content-length', recording.size).send(createReadStream(recording.file));
      return reply.send(stored?.state === 'found' ? stored.body : undefined);
    },
  );
}
