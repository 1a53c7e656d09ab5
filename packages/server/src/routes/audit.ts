import { Readable } from 'node:stream';
import { allAuditEvents, listAuditEvents, verifyAuditChain } from '@gatehouse/db';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../services.js';

const readers = { access: ['admin', 'auditor'] } as const;

/** The audit log: query, export as JSON lines, verify the hash chain. */
export function auditRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/audit/events',
    {
      config: readers,
      schema: {
        tags: ['audit'],
        summary: 'List audit events',
        querystring: z.strictObject({
          afterSeq: z.coerce.number().int().min(0).optional(),
          beforeSeq: z.coerce.number().int().min(1).optional(),
          action: z.string().max(100).optional(),
          actor: z.string().max(100).optional(),
          targetId: z.string().max(100).optional(),
          outcome: z.enum(['success', 'failure', 'denied']).optional(),
          order: z.enum(['asc', 'desc']).default('desc'),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
        }),
      },
    },
    async (req) => ({ items: await listAuditEvents(services.db, { ...req.query, actorName: req.query.actor }) }),
  );

  r.get(
    '/audit/export',
    { config: readers, schema: { tags: ['audit'], summary: 'All audit events as JSON lines, oldest first' } },
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
    { config: readers, schema: { tags: ['audit'], summary: 'Verify the hash chain of the whole audit log' } },
    async (req) => {
      const result = await verifyAuditChain(services.db);
      await services.audit(req, { action: 'audit.verify', outcome: result.ok ? 'success' : 'failure', details: { events: result.events } });
      return result;
    },
  );
}
