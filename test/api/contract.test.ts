import { errorBody } from '@gatehouse/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { API } from '../support/api-helpers.js';
import { dialects } from '../support/db.js';

/**
 * Routes not yet moved to a resource module with response schemas (issue 17). The list only
 * shrinks: a route that gains its schemas must leave it (the test below fails otherwise).
 */
const pending = new Set<string>([]);

/** The console's built files, served as they are. */
const staticFiles = new Set<string>(['GET /assets/*']);

/** WebSocket routes answer with an upgrade, not a body; their messages are described in the API's description. */
const upgrades = new Set<string>(['GET /api/v1/terminal', 'GET /api/v1/desktop', 'GET /api/v1/files/visit']);

describe('the API contract', () => {
  let t: TestApp;
  beforeAll(async () => {
    // The route table is the same on either database: the first one this run tests.
    t = await createTestApp(dialects[0] ?? 'sqlite');
  });
  afterAll(() => t.close());

  it('declares a response schema, with the error body for 4xx and 5xx, on every route', () => {
    const missing: string[] = [];
    for (const route of t.routes) {
      const name = `${route.method} ${route.url}`;
      if (route.websocket) {
        expect(upgrades.has(name), `${name} is a WebSocket: list it in upgrades`).toBe(true);
        continue;
      }
      if (staticFiles.has(name)) continue;
      const declared = route.responses.length > 0;
      if (pending.has(name)) {
        expect(declared, `${name} declares its responses now: take it off the pending list`).toBe(false);
        continue;
      }
      if (!declared) missing.push(name);
      else expect(route.responses, name).toEqual(expect.arrayContaining(['4xx', '5xx']));
    }
    expect(missing).toEqual([]);
  });

  it('describes what every documented operation answers in the OpenAPI document', async () => {
    const res = await t.request('GET', `${API}/openapi.json`);
    const doc = res.json<{ paths: Record<string, Record<string, { responses?: Record<string, { content?: unknown }> }>> }>();
    const undescribed: string[] = [];
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        const name = `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`;
        if (pending.has(name) || upgrades.has(name)) continue;
        const codes = Object.keys(op.responses ?? {});
        // A redirect (the OIDC sign-in's start and callback) is the answer of a route a browser follows.
        const success = codes.filter((c) => c.startsWith('2') || c === '302');
        if (success.length === 0 || !codes.includes('4XX')) undescribed.push(`${name}: ${codes.join(',')}`);
        for (const code of success.filter((c) => c !== '302'))
          if (code !== '204' && op.responses?.[code]?.content === undefined) undescribed.push(`${name}: ${code} has no body schema`);
      }
    }
    expect(undescribed).toEqual([]);
  });

  it('describes a file answer as binary content of its own media types, its errors as JSON', async () => {
    const doc = (await t.request('GET', `${API}/openapi.json`)).json<{
      paths: Record<string, { get: { responses: Record<string, { content: Record<string, unknown> }> } }>;
    }>();
    const binary = { schema: { type: 'string', format: 'binary' } };
    const recording = doc.paths[`${API}/sessions/{id}/recording`]?.get.responses;
    // A terminal's recording or a desktop's: each media type it may have.
    expect(recording?.['200']?.content).toEqual({ 'application/x-asciicast': binary, 'application/vnd.gatehouse.rfb': binary });
    expect(Object.keys(recording?.['4XX']?.content ?? {})).toEqual(['application/json']);
    expect(doc.paths[`${API}/files/download`]?.get.responses['200']?.content).toEqual({ 'application/octet-stream': binary });
    expect(doc.paths[`${API}/audit/export`]?.get.responses['200']?.content).toEqual({ 'application/x-ndjson': binary });
  });
});

describe.each(dialects)('an error body on %s', (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(dialect);
  });
  afterAll(() => t.close());

  it('is what the shared error schema says, for a validation failure and a missing resource', async () => {
    const { token } = await t.userWithToken('admin');
    const bad = await t.request('POST', `${API}/ssh-keys`, { token, body: { publicKey: '' } });
    expect(bad.statusCode).toBe(400);
    expect(errorBody.strict().safeParse(bad.json()).success).toBe(true);
    const gone = await t.request('DELETE', `${API}/ssh-keys/nope`, { token });
    expect(gone.statusCode).toBe(404);
    expect(errorBody.safeParse(gone.json()).success).toBe(true);
  });
});
