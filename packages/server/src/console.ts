import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import { webRoot } from '@gatehouse/web';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { everyone } from './access.js';

/**
 * The Content-Security-Policy of every page the server sends: scripts only from the
 * server's own files (no inline script, no JavaScript eval), no frames, no plugins, no
 * other origin. The API docs have their own (`DOCS_CONTENT_SECURITY_POLICY`).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  // 'wasm-unsafe-eval' lets the page compile WebAssembly (the terminal emulator of the
  // session player) and nothing else: JavaScript eval stays forbidden.
  "script-src 'self' 'wasm-unsafe-eval'",
  // The terminal (xterm.js) and the session player write <style> elements and style
  // attributes at run time; styles cannot run code, scripts stay 'self' only.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The Content-Security-Policy of the API docs (swagger-ui, `/api/v1/docs`): its page loads
 * only its own script files (no inline script, no eval), so scripts stay 'self'. Its React
 * components set style attributes, and its icons are data: images. "Try it out" calls the
 * API on the same origin.
 */
export const DOCS_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Serves the web console (packages/web, built by `npm run build` into its dist/): hashed
 * assets under /assets/, cached for a year, and index.html, never cached, for any other GET
 * that asks for HTML outside /api/ (the console's own paths, such as /devices/…). Returns
 * the not-found handler's part: true when it answered the request with the console.
 */
export async function registerConsole(
  app: FastifyInstance,
  root = webRoot,
): Promise<(req: FastifyRequest, reply: FastifyReply) => boolean> {
  // Scripts and styles go Brotli- or gzip-compressed to browsers that accept it (copies made at build).
  await app.register(fastifyStatic, { root, serve: false, preCompressed: true });
  app.get('/assets/*', { config: everyone, schema: { hide: true } }, (req, reply) => {
    const file = (req.params as { '*': string })['*'];
    return reply.sendFile(file, path.join(root, 'assets'), { immutable: true, maxAge: '365d', dotfiles: 'deny' });
  });

  const indexFile = path.join(root, 'index.html');
  // Read once, at the first page: a rebuilt console is picked up by a restart.
  let index: Buffer | null | undefined;
  return (req, reply) => {
    const url = req.url.split('?')[0] ?? '/';
    const page =
      (req.method === 'GET' || req.method === 'HEAD') && !url.startsWith('/api/') && (req.headers.accept ?? '').includes('text/html');
    if (!page) return false;
    index ??= existsSync(indexFile) ? readFileSync(indexFile) : null;
    if (index === null) {
      void reply
        .status(503)
        .type('text/plain; charset=utf-8')
        .header('cache-control', 'no-store')
        .send('The web console is not built. Run "npm run build" in the Gatehouse checkout, then restart the server.\n');
      return true;
    }
    void reply.status(200).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(index);
    return true;
  };
}
