import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { GatehouseError, NotFoundError } from '@gatehouse/core';
import type { GatewaySessions } from '@gatehouse/db';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { caller } from '../auth.js';
import type { Services } from '../services.js';
import type { GatewayService } from './service.js';
import { admins, auditors } from '../access.js';

const id = z.strictObject({ id: z.string().min(1).max(100) });
/** A time with its offset, as the stored UTC text so that it compares as time does. */
const isoTime = z.iso.datetime({ offset: true }).transform((s) => new Date(s).toISOString());

/** The recordings directory of a data directory. */
export const recordingsDirOf = (dataDir: string) => path.join(dataDir, 'recordings');

/** Sessions through gateways, their recordings, and the devices' trusted SSH host keys. */
export function sessionRoutes(app: FastifyInstance, services: Services, sessions: GatewaySessions, gateways: GatewayService) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/sessions',
    {
      config: auditors,
      schema: {
        tags: ['sessions'],
        summary: 'List sessions through gateways, newest first (failed connections too, with their reason)',
        querystring: z.strictObject({
          deviceId: z.string().max(100).optional(),
          userId: z.string().max(100).optional(),
          user: z.string().max(100).optional().describe('part of the user name'),
          device: z.string().max(200).optional().describe('part of the device name'),
          from: isoTime.optional().describe('started at or after (ISO 8601)'),
          to: isoTime.optional().describe('started before (ISO 8601)'),
          result: z.enum(['active', 'success', 'failure']).optional().describe('active: live sessions'),
          limit: z.coerce.number().int().min(1).max(500).default(50),
          offset: z.coerce.number().int().min(0).default(0),
        }),
      },
    },
    async (req) => sessions.list(req.query),
  );

  r.get('/sessions/:id', { config: auditors, schema: { tags: ['sessions'], summary: 'Show a session', params: id } }, async (req) => {
    const session = await sessions.find(req.params.id);
    if (!session) throw new NotFoundError('Session', req.params.id);
    return session;
  });

  r.post(
    '/sessions/:id/end',
    {
      config: admins,
      schema: {
        tags: ['sessions'],
        summary: 'End a live session now: the user is told the reason, the recording is closed, and it is audited',
        params: id,
        body: z.strictObject({ reason: z.string().trim().min(1).max(500).optional() }).optional(),
      },
    },
    async (req) => {
      const session = await sessions.find(req.params.id);
      if (!session) throw new NotFoundError('Session', req.params.id);
      if (session.result !== 'active') throw new GatehouseError('CONFLICT', 'The session has already ended.');
      const who = caller(req).user.username;
      const reason = req.body?.reason ? `${who} ended this session: ${req.body.reason}` : `${who} ended this session.`;
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
      if (!ended) throw new GatehouseError('CONFLICT', `Gateway ${session.entryGateway} has no such live session: it has ended.`);
      return { ended: true };
    },
  );

  r.get(
    '/sessions/:id/file-operations',
    {
      config: auditors,
      schema: {
        tags: ['sessions'],
        summary: "The session's SFTP/SCP operations in order: path, size, direction (upload/download) or change, result",
        params: id,
      },
    },
    async (req) => {
      const session = await sessions.find(req.params.id);
      if (!session) throw new NotFoundError('Session', req.params.id);
      return { items: await sessions.fileOperations(session.id) };
    },
  );

  r.get(
    '/sessions/:id/recording',
    {
      config: auditors,
      schema: { tags: ['sessions'], summary: "The session's terminal recording (asciicast v2, playable with asciinema)", params: id },
    },
    async (req, reply) => {
      const relative = await sessions.recordingOf(req.params.id);
      if (relative === undefined) throw new NotFoundError('Recording of session', req.params.id);
      const root = recordingsDirOf(services.config.dataDir);
      const file = path.resolve(root, relative);
      if (!file.startsWith(`${root}${path.sep}`))
        throw new GatehouseError('INTERNAL', 'The recording path is outside the recordings directory.');
      const size = await stat(file).then(
        (s) => s.size,
        () => undefined,
      );
      if (size === undefined) throw new NotFoundError('Recording file of session', req.params.id);
      await services.audit(req, { action: 'session.recording_read', outcome: 'success', targetType: 'session', targetId: req.params.id });
      return reply
        .type('application/x-asciicast')
        .header('content-length', size)
        .header('content-disposition', `attachment; filename="${req.params.id.replace(/[^A-Za-z0-9-]/g, '')}.cast"`)
        .send(createReadStream(file));
    },
  );

  r.get(
    '/devices/:id/host-key',
    {
      config: auditors,
      schema: {
        tags: ['sessions'],
        summary: "The device's SSH host key the gateways trust (null before the first connection)",
        params: id,
      },
    },
    async (req) => {
      await services.inventory.getDevice(req.params.id);
      return { hostKey: (await sessions.hostKey(req.params.id)) ?? null };
    },
  );

  r.delete(
    '/devices/:id/host-key',
    {
      config: admins,
      schema: {
        tags: ['sessions'],
        summary: "Forget the device's trusted SSH host key (after checking a changed key); the next connection trusts the key it sees",
        params: id,
      },
    },
    async (req, reply) => {
      await services.inventory.getDevice(req.params.id);
      const before = await sessions.hostKey(req.params.id);
      if (!before || !(await sessions.forgetHostKey(req.params.id))) throw new NotFoundError('Host key of device', req.params.id);
      await services.audit(req, {
        action: 'device.host_key_forget',
        outcome: 'success',
        targetType: 'device',
        targetId: req.params.id,
        details: { algorithm: before.algorithm, fingerprint: before.fingerprint },
      });
      return reply.status(204).send();
    },
  );
}
