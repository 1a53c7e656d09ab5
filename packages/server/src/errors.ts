import { errorCodes, GatehouseError, type ErrorCode, type FieldIssue } from '@gatehouse/core';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { INVALID_JSON_MESSAGE } from './json-body.js';

/** The JSON body of every error response. */
export interface ErrorBody {
  error: { code: string; message: string; issues?: readonly FieldIssue[]; requestId: string };
}

/** Answers with the error body; the status is the code's, from the one table (core/src/errors.ts). */
export function sendError(reply: FastifyReply, code: ErrorCode, message: string, issues?: readonly FieldIssue[]) {
  const body: ErrorBody = { error: { code, message, requestId: reply.request.id } };
  if (issues && issues.length > 0) body.error.issues = issues;
  return reply.status(errorCodes[code]).type('application/json; charset=utf-8').send(body);
}

function pathOf(instancePath: string, context: string | undefined): string {
  const parts = instancePath
    .split('/')
    .filter((p) => p !== '')
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : p));
  const joined = parts.reduce((acc, p) => (p.startsWith('[') || acc === '' ? acc + p : `${acc}.${p}`), '');
  const where = context && context !== 'body' ? `${context}.` : '';
  return joined === '' ? (context ?? 'body') : where + joined;
}

/**
 * Turns every error into the JSON error body. Known errors keep their code and message;
 * anything unknown becomes an opaque 500 that is logged with its request id. No message
 * here repeats a value the client sent.
 */
export function handleError(error: FastifyError, req: FastifyRequest, reply: FastifyReply) {
  // An InternalError is a bug: logged and answered as opaquely as an unknown error, below.
  if (error instanceof GatehouseError && error.code !== 'INTERNAL') return sendError(reply, error.code, error.message, error.issues);

  if (hasZodFastifySchemaValidationErrors(error)) {
    const issues: FieldIssue[] = [];
    // fastify-type-provider-zod puts the zod issue's code in `keyword` and its other
    // fields (such as `keys`) directly in `params`.
    const validation = error.validation as unknown as {
      keyword: string;
      instancePath: string;
      message: string;
      params: { keys?: string[] };
    }[];
    for (const v of validation) {
      const unknown = v.keyword === 'unrecognized_keys' ? (v.params.keys ?? []) : null;
      if (unknown) {
        for (const key of unknown)
          issues.push({ path: pathOf(`${v.instancePath}/${key}`, error.validationContext), message: 'is not a known field' });
      } else {
        issues.push({ path: pathOf(v.instancePath, error.validationContext), message: v.message });
      }
    }
    return sendError(
      reply,
      'VALIDATION_FAILED',
      `The request is invalid: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}.`,
      issues,
    );
  }

  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return sendError(
        reply,
        'PAYLOAD_TOO_LARGE',
        'The request body is larger than this server accepts (bodyLimit). Split the import into smaller files.',
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return sendError(reply, 'UNSUPPORTED_MEDIA_TYPE', 'Unsupported Content-Type. Send application/json (or text/csv for imports).');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return sendError(reply, 'BAD_REQUEST', 'The request body is empty. Send a JSON object.');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return sendError(reply, 'BAD_REQUEST', INVALID_JSON_MESSAGE);
    default:
      break;
  }
  // Fastify's JSON parser errors quote the body; never pass their message through.
  if (error instanceof SyntaxError || (error.statusCode === 400 && String(error.code ?? '').startsWith('FST_ERR_CTP'))) {
    return sendError(reply, 'BAD_REQUEST', INVALID_JSON_MESSAGE);
  }
  if (error.statusCode === 429) return sendError(reply, 'RATE_LIMITED', 'Too many requests. Wait a minute and try again.');
  // Any other refusal of the framework's (a bad URL, a bad Content-Length): the request's fault, 400.
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    return sendError(reply, 'BAD_REQUEST', 'The request could not be understood. Check the method, path and body against /api/v1/docs.');
  }
  req.log.error({ err: error }, 'unexpected error');
  return sendError(reply, 'INTERNAL', `Something went wrong on the server. Quote request id ${req.id} to your administrator.`);
}
