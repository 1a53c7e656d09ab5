import { Readable } from 'node:stream';
import {
  auditEventList,
  auditEventQuery,
  auditExport,
  auditVerification,
  auditVerifyBody,
  responses,
  signedAuditCheckpoint,
} from '@gatehouse/api';
import { auditCheckpointIn, GatehouseError, ValidationError } from '@gatehouse/core';
import { allAuditEvents, auditTargetNames, listAuditEvents, verifyAuditChain } from '@gatehouse/db';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { auditors } from '../../access.js';
import type { AuditCheckpoints } from '../../audit-checkpoints.js';
import type { Services } from '../../services.js';

/**
 * The audit log: query, export as JSON lines, verify the hash chain, sign checkpoints of
 * it. Nothing here changes a record: its events (an export, a verification) go through
 * services.audit.
 */
export function auditRoutes(app: FastifyInstance, services: Services, checkpoints: AuditCheckpoints) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/audit/events',
    {
      config: auditors,
      schema: {
        tags: ['audit'],
        summary: "List audit events, each with its target's name when the target still exists",
        querystring: auditEventQuery,
        response: responses({ 200: auditEventList }),
      },
    },
    async (req) => {
      const events = await listAuditEvents(services.db, { ...req.query, actorName: req.query.actor });
      const names = await auditTargetNames(services.db, events);
      return { items: events.map((e) => ({ ...e, targetName: names.get(`${e.targetType}:${e.targetId}`) ?? null })) };
    },
  );

  r.get(
    '/audit/export',
    {
      config: auditors,
      schema: { tags: ['audit'], summary: 'All audit events as JSON lines, oldest first', response: responses({ 200: auditExport }) },
    },
    async (req, reply) => {
      await services.audit(req, { action: 'audit.export', outcome: 'success' });
      // Streamed a page at a time: the log may be far larger than memory should hold.
      const lines = async function* () {
        for await (const e of allAuditEvents(services.db)) yield `${JSON.stringify(e)}\n`;
      };
      return reply.type('application/x-ndjson').send(Readable.from(lines()));
    },
  );

  r.get(
    '/audit/verify',
    {
      config: auditors,
      schema: {
        tags: ['audit'],
        summary: 'Verify the hash chain of the whole audit log, and that it holds the newest checkpoint this server signed',
        response: responses({ 200: auditVerification }),
      },
    },
    async (req) => {
      const result = await verifyAuditChain(services.db, { checkpoint: checkpoints.newest() });
      await services.audit(req, { action: 'audit.verify', outcome: result.ok ? 'success' : 'failure', details: { events: result.events } });
      return result;
    },
  );

  r.post(
    '/audit/verify',
    {
      config: auditors,
      schema: {
        tags: ['audit'],
        summary: 'Verify the hash chain against a checkpoint kept outside the database (a checkpoint, or a break-glass manifest)',
        body: auditVerifyBody,
        response: responses({ 200: auditVerification }),
      },
    },
    async (req) => {
      const found = auditCheckpointIn(req.body.checkpoint);
      const check = found.ok ? checkpoints.check(found.checkpoint) : found;
      if (!check.ok) {
        await services.audit(req, { action: 'audit.verify', outcome: 'failure', details: { checkpointRefused: check.reason } });
        const message = `The checkpoint cannot be trusted: ${check.reason}.`;
        throw new ValidationError(message, [{ path: 'checkpoint', message }]);
      }
      const result = await verifyAuditChain(services.db, { checkpoint: check.checkpoint });
      await services.audit(req, {
        action: 'audit.verify',
        outcome: result.ok ? 'success' : 'failure',
        details: { events: result.events, checkpointSeq: check.checkpoint.seq },
      });
      return result;
    },
  );

  r.get(
    '/audit/checkpoint',
    {
      config: auditors,
      schema: {
        tags: ['audit'],
        summary: "The audit chain's head signed now, and the public key that verifies it: keep both outside the database",
        response: responses({ 200: signedAuditCheckpoint }),
      },
    },
    async () => {
      const checkpoint = await checkpoints.sign();
      if (!checkpoint) {
        throw new GatehouseError(
          'CONFLICT',
          'The audit chain does not verify, so no checkpoint is signed. GET /audit/verify names where it breaks.',
        );
      }
      return { checkpoint, publicKeyPem: checkpoints.publicKeyPem, keyId: checkpoints.keyId };
    },
  );
}
