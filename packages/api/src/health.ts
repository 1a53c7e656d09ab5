import { z } from 'zod';

/** `GET /healthz`: the process answers. */
export const health = z.object({ status: z.literal('ok'), version: z.string() });
export type Health = z.infer<typeof health>;

/** `GET /readyz`: the database answers (503 with `not ready` when it does not). */
export const readiness = z.object({
  status: z.enum(['ready', 'not ready']),
  database: z.enum(['sqlite', 'postgres']),
  /** Why not ready: the database does not answer, or migrations are running. */
  reason: z.string().optional(),
});
export type Readiness = z.infer<typeof readiness>;

/** `GET /api/v1/openapi.json`: this document (OpenAPI 3), as @fastify/swagger builds it. */
export const openApiDocument = z.looseObject({ openapi: z.string(), info: z.looseObject({ title: z.string(), version: z.string() }) });
