import { errorCodes, type ErrorCode } from '@gatehouse/core/errors';
import { z } from 'zod';

/**
 * Building blocks every resource's schemas use. A response schema names every field the
 * client may see: the server serialises through it, so a field not named here never
 * leaves the server, and the console and the CLI read their types from the same place.
 */

/** `:id` in a path. */
export const idParams = z.strictObject({ id: z.string().min(1).max(100) });

/** A timestamp as the API writes it: ISO-8601 in UTC. */
export const timestamp = z.string();

/** `{ items: [...] }`, the shape of every list that is not paged. */
export const listOf = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item) });

/** A paged list: the page's items, how many match in all, and the page asked for. */
export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), total: z.number().int(), limit: z.number().int(), offset: z.number().int() });

/** No body (204). */
export const noContent = z.null().describe('No content');

/** The body of every error: a stable code, a message that says what to do, the fields at fault. */
export const errorBody = z.object({
  error: z.object({
    code: z.enum(Object.keys(errorCodes) as [ErrorCode, ...ErrorCode[]]),
    message: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    requestId: z.string(),
  }),
});
export type ErrorBody = z.infer<typeof errorBody>;

/**
 * A route's answers: its successes as given, and the error body for every 4xx and 5xx, so
 * the OpenAPI document describes each answer a client can get.
 */
export function responses<T extends Record<number, z.ZodType>>(ok: T) {
  return { ...ok, '4xx': errorBody, '5xx': errorBody };
}

/** Where a non-JSON answer's media type is kept for the OpenAPI document (`fileAnswer`). */
export const MEDIA_TYPE_KEY = 'x-media-type';

/**
 * An answer that is a file, not JSON (a recording, a download): the route sends a stream,
 * which the server passes on as it is, never through a schema (hence unknown). The OpenAPI
 * document shows it as `mediaType` (or each of several) with binary content and this description.
 */
export const fileAnswer = (mediaType: string | readonly string[], description: string) =>
  z.unknown().meta({ description, [MEDIA_TYPE_KEY]: mediaType });
