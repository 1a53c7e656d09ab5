import { PassThrough } from 'node:stream';
import {
  breakGlassPolicies,
  breakGlassPolicyQuery,
  breakGlassRun,
  breakGlassRunList,
  breakGlassRunParams,
  breakGlassRunProgress,
  breakGlassRunsQuery,
  breakGlassSaveQuery,
  breakGlassSaveResult,
  breakGlassSettingsBody,
  breakGlassSettingsView,
  breakGlassTestAnswer,
  responses,
  type BreakGlassSettingsBody,
  type BreakGlassTestLine,
  type BreakGlassTestReport,
} from '@gatehouse/api';
import { leastPrivilegePolicies, parseConnectionString, plainHttpWarning, secretSettingKeys } from '@gatehouse/breakglass';
import { GatehouseError, NotFoundError } from '@gatehouse/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { admins, auditors } from '../../access.js';
import type { BreakGlassService } from '../../breakglass/service.js';
import type { Services } from '../../services.js';
import { fieldChanges } from '../../audit-details.js';
import { ENCRYPTION_OFF, presentView } from './presenter.js';

/** Break glass: settings, the Test button, runs and their history, policies, the signing key. */
export function breakGlassRoutes(app: FastifyInstance, services: Services, bg: BreakGlassService) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['breakglass'];

  /** Parses a settings body: a pasted connection string fills the Blob fields it holds. */
  const input = (body: BreakGlassSettingsBody) => {
    const { connectionString, ...rest } = body;
    if (typeof connectionString === 'string' && connectionString.trim() !== '')
      return { ...parseConnectionString(connectionString), ...rest, provider: 'blob' };
    return rest;
  };

  r.get(
    '/breakglass/settings',
    {
      config: auditors,
      schema: {
        tags,
        summary: 'Break-glass settings (secrets masked), where they come from, and the manifest signing key',
        response: responses({ 200: breakGlassSettingsView }),
      },
    },
    () => presentView(bg),
  );

  r.put(
    '/breakglass/settings',
    {
      config: admins,
      schema: {
        tags,
        summary:
          'Save the break-glass settings and run the Test; a secret sent as ******** or left out keeps its stored value. ' +
          'With save=if-test-passes the Test runs first and the settings are saved only when it passes ("saved" says which)',
        body: breakGlassSettingsBody,
        querystring: breakGlassSaveQuery,
        response: responses({ 200: breakGlassSaveResult }),
      },
    },
    async (req) => {
      const { origin, settings: before } = await bg.current();
      if (origin === 'mounted') {
        throw new GatehouseError(
          'CONFLICT',
          'The break-glass settings come from a mounted secret (GATEHOUSE_BREAKGLASS_CONFIG) and are read-only here. Change the secret instead.',
        );
      }
      const settings = await bg.merge(input(req.body));
      const plainHttp = plainHttpWarning(settings);
      // Only what changed, before → after (a secret as "changed"): not every field the form sent.
      const details = {
        provider: settings.provider,
        ...fieldChanges(before, settings, secretSettingKeys),
        encryption: settings.encryption,
        ...(plainHttp ? { warnings: [plainHttp] } : {}),
      };
      // Tested first, a failing Test leaves the stored settings (and their working secrets) as they were.
      const tested = req.query.save === 'if-test-passes' ? await bg.test(settings, req) : undefined;
      if (tested && !tested.ok) {
        await services.audit(req, {
          action: 'breakglass.settings_update',
          outcome: 'failure',
          details: { ...details, saved: false, reason: 'the Test failed' },
        });
        return { ...(await presentView(bg)), saved: false, test: tested };
      }
      await services.withAudit(req, async (tx, audit) => {
        await bg.store.save(settings, tx.settings);
        audit({ action: 'breakglass.settings_update', outcome: 'success', details });
      });
      bg.reloadSchedule();
      if (settings.encryption === 'none') req.log.warn(ENCRYPTION_OFF);
      if (plainHttp) req.log.warn(plainHttp);
      const test = tested ?? (await bg.test(settings, req));
      return { ...(await presentView(bg)), saved: true, test };
    },
  );

  r.post(
    '/breakglass/test',
    {
      config: admins,
      schema: {
        tags,
        summary:
          'Run the three-stage Test (container, authentication, connection) and the privilege check; with a body, test those settings without saving; with no body (or {}), the saved settings. ' +
          'With "Accept: application/x-ndjson" the answer is one JSON line per stage as it completes ({"type":"stage",…}), then the report ({"type":"report",…})',
        // No body at all (curl -X POST) tests the saved settings, like an empty object.
        body: breakGlassSettingsBody.nullish(),
        response: responses({ 200: breakGlassTestAnswer }),
      },
    },
    async (req, reply) => {
      let settings;
      if (req.body && Object.keys(req.body).length > 0) settings = await bg.merge(input(req.body));
      else {
        const current = await bg.current();
        if (!current.settings || current.error !== undefined)
          throw new GatehouseError(
            'CONFLICT',
            current.error ? `Break glass cannot be tested: ${current.error}` : 'Break glass is not configured yet.',
          );
        settings = current.settings;
      }
      if (!(req.headers.accept ?? '').includes('application/x-ndjson')) return bg.test(settings, req);
      // Streamed: the page shows each stage when it is done. Bad settings were refused above as a
      // normal JSON error; what fails from here on is reported as the last line. A stream is
      // sent as it is, not through the response schema: each line is a BreakGlassTestLine.
      const lines = new PassThrough();
      const line = (value: BreakGlassTestLine) => lines.write(`${JSON.stringify(value)}\n`);
      bg.test(settings, req, (stage) => line({ type: 'stage', ...stage })).then(
        (report) => {
          line({ type: 'report', ...report });
          lines.end();
        },
        (error: unknown) => {
          req.log.warn({ err: error }, 'break-glass test failed');
          line({ type: 'error', message: error instanceof GatehouseError ? error.message : `The test could not run (request ${req.id}).` });
          lines.end();
        },
      );
      // The type provider types a send by the JSON schema; a stream bypasses the serializer.
      return reply
        .type('application/x-ndjson; charset=utf-8')
        .header('cache-control', 'no-store')
        .send(lines as unknown as BreakGlassTestReport);
    },
  );

  r.post(
    '/breakglass/runs',
    {
      config: admins,
      schema: { tags, summary: 'Run the export now; answers at once with the run to follow', response: responses({ 202: breakGlassRun }) },
    },
    async (req, reply) => {
      const run = await bg.start('manual', req);
      return reply.status(202).send(run);
    },
  );

  r.get(
    '/breakglass/runs',
    {
      config: auditors,
      schema: {
        tags,
        summary: 'Run history, newest first',
        querystring: breakGlassRunsQuery,
        response: responses({ 200: breakGlassRunList }),
      },
    },
    async (req) => ({ items: await bg.runs.list(req.query.limit) }),
  );

  r.get(
    '/breakglass/runs/:id',
    {
      config: auditors,
      schema: {
        tags,
        summary:
          'One run; while it runs, the sealed bytes staged so far (stagedBytes) and the bytes sent to the storage so far (uploadedBytes)',
        params: breakGlassRunParams,
        response: responses({ 200: breakGlassRunProgress }),
      },
    },
    async (req) => {
      const run = await bg.runs.get(req.params.id).catch(() => {
        throw new NotFoundError('Break-glass run', req.params.id);
      });
      const progress = bg.progress.get(run.id);
      return { ...run, stagedBytes: progress?.staged ?? run.bytes, uploadedBytes: progress?.uploaded ?? run.bytes };
    },
  );

  r.get(
    '/breakglass/policy',
    {
      config: admins,
      schema: {
        tags,
        summary: 'Least-privilege policies for the writer (Gatehouse) and the break-glass reader',
        querystring: breakGlassPolicyQuery,
        response: responses({ 200: breakGlassPolicies }),
      },
    },
    async (req) => {
      const { settings } = await bg.current();
      if (!settings)
        throw new GatehouseError(
          'CONFLICT',
          'Save the break-glass settings first: the policies name the bucket or container and the prefix.',
        );
      return leastPrivilegePolicies(settings, req.query);
    },
  );
}
