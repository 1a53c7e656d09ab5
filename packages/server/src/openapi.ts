import { MEDIA_TYPE_KEY } from '@gatehouse/api';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';

type Transform = typeof jsonSchemaTransform;

/**
 * The OpenAPI document's transform: the zod schemas as JSON Schema, and an answer declared
 * with `fileAnswer` (a recording, a download) as binary content of its own media type
 * instead of a JSON string.
 */
export const openApiTransform: Transform = (input) => {
  const out = jsonSchemaTransform(input);
  const response = (out.schema as { response?: Record<string, Record<string, unknown>> } | undefined)?.response;
  for (const [code, schema] of Object.entries(response ?? {})) {
    const declared: unknown = schema[MEDIA_TYPE_KEY];
    const mediaTypes = typeof declared === 'string' ? [declared] : Array.isArray(declared) ? declared.map(String) : [];
    if (mediaTypes.length === 0 || !response) continue;
    response[code] = {
      description: schema.description,
      content: Object.fromEntries(mediaTypes.map((m) => [m, { schema: { type: 'string', format: 'binary' } }])),
    };
  }
  return out;
};
