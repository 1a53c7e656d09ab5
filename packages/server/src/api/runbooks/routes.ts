import {
  breakglassRotationCreate,
  idParams,
  listOf,
  noContent,
  pageOf,
  responses,
  runbookCreate,
  runbookDetail,
  runbookRun,
  runbookRunCreate,
  runbookRunListQuery,
  runbookSummary,
} from '@gatehouse/api';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { admins } from '../../access.js';
import { caller } from '../../auth.js';
import type { Services } from '../../services.js';

const nameParams = z.strictObject({ name: z.string().min(1).max(64) });
const versionQuery = z.strictObject({ version: z.coerce.number().int().min(1).optional() });

/** Runbooks, their runs, and rotation after a break-glass export. Administrators only. */
export function runbookRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['runbooks'];
  const { runbooks } = services;

  r.get(
    '/runbooks',
    {
      config: admins,
      schema: {
        tags,
        summary: 'List runbooks: the built-in ones and the newest version of each added one',
        response: responses({ 200: listOf(runbookSummary) }),
      },
    },
    async () => ({ items: await runbooks.list() }),
  );

  r.get(
    '/runbooks/:name',
    {
      config: admins,
      schema: {
        tags,
        summary: 'Show a runbook and its document (the newest version, or ?version=)',
        params: nameParams,
        querystring: versionQuery,
        response: responses({ 200: runbookDetail }),
      },
    },
    async (req) => runbooks.get(req.params.name, req.query.version),
  );

  r.post(
    '/runbooks',
    {
      config: admins,
      schema: {
        tags,
        summary: 'Add a runbook (or a new version of one) from its YAML; problems name the step and field',
        body: runbookCreate,
        response: responses({ 201: runbookDetail }),
      },
    },
    async (req, reply) => reply.code(201).send(await runbooks.add(req.body.yaml, req)),
  );

  r.delete(
    '/runbooks/:name',
    {
      config: admins,
      schema: { tags, summary: 'Remove every version of an added runbook', params: nameParams, response: responses({ 204: noContent }) },
    },
    async (req, reply) => {
      await runbooks.remove(req.params.name, req);
      return reply.code(204).send(null);
    },
  );

  r.post(
    '/runbook-runs',
    {
      config: admins,
      schema: {
        tags,
        summary:
          'Run a runbook on devices (a dry run unless apply): everything is checked before anything runs; a device another run holds is 409',
        body: runbookRunCreate,
        response: responses({ 202: runbookRun }),
      },
    },
    async (req, reply) => {
      const auth = caller(req);
      const run = await runbooks.start(req.body, { id: auth.user.id, username: auth.user.username, visibility: auth.visibility }, req);
      return reply.code(202).send(run);
    },
  );

  r.get(
    '/runbook-runs',
    {
      config: admins,
      schema: {
        tags,
        summary: 'List runbook and rotation runs, newest first',
        querystring: runbookRunListQuery,
        response: responses({ 200: pageOf(runbookRun) }),
      },
    },
    async (req) => ({ ...(await runbooks.runs(req.query)), limit: req.query.limit, offset: req.query.offset }),
  );

  r.get(
    '/runbook-runs/:id',
    {
      config: admins,
      schema: {
        tags,
        summary: 'Show a run with each device and its steps (poll it while state is running for live output)',
        params: idParams,
        response: responses({ 200: runbookRun }),
      },
    },
    async (req) => runbooks.run(req.params.id),
  );

  r.post(
    '/breakglass/rotations',
    {
      config: admins,
      schema: {
        tags,
        summary: 'Rotate every credential a break-glass export holds that still works (a dry run unless apply)',
        body: breakglassRotationCreate,
        response: responses({ 202: runbookRun }),
      },
    },
    async (req, reply) => {
      const auth = caller(req);
      const run = await runbooks.startBreakGlassRotation(req.body ?? {}, { id: auth.user.id, username: auth.user.username }, req);
      return reply.code(202).send(run);
    },
  );
}
