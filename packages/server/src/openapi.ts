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
    const mediaType = schema[MEDIA_TYPE_KEY];
    if (typeof mediaType !== 'string' || !response) continue;
    response[code] = {
      description: schema.description,
      content: { [mediaType]: { schema: { type: 'string', format: 'binary' } } },
    };
  }
  return out;
};
