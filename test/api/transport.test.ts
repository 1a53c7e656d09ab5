import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

/** Completes a TLS handshake with the server, or rejects with the handshake's error. */
function handshake(port: number, opts: ConnectionOptions): Promise<{ protocol: string | null; cipher: string }> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts }, () => {
      const result = { protocol: socket.getProtocol(), cipher: socket.getCipher().name };
      socket.end();
      resolve(result);
    });
    socket.once('error', reject);
  });
}

// TLS and the response headers do not depend on the database: one dialect is enough (the
// first this run tests; the Node.js 24 run has PostgreSQL only).
describe('transport security', () => {
  let t: TestApp;
  let port: number;

  beforeAll(async () => {
    t = await createTestApp(dialects[0] ?? 'postgres', {}, { tls: true });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    port = (t.app.server.address() as { port: number }).port;
  });
  afterAll(() => t.close());

  it('refuses TLS 1.2 suites without forward secrecy or with CBC, and TLS 1.1', async () => {
    for (const cipher of [
      'AES128-SHA',
      'AES256-SHA',
      'AES128-GCM-SHA256',
      'AES256-GCM-SHA384',
      'ECDHE-RSA-AES128-SHA',
      'ECDHE-RSA-AES256-SHA384',
    ]) {
      await expect(handshake(port, { maxVersion: 'TLSv1.2', ciphers: cipher }), cipher).rejects.toThrow(/handshake failure|no cipher/i);
    }
    await expect(handshake(port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })).rejects.toThrow();
  });

  it('accepts TLS 1.2 with ECDHE and an AEAD cipher, prefers it when a client offers both, and speaks TLS 1.3', async () => {
    for (const cipher of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']) {
      expect(await handshake(port, { maxVersion: 'TLSv1.2', ciphers: cipher })).toEqual({ protocol: 'TLSv1.2', cipher });
    }
    const mixed = await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA:AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384' });
    expect(mixed.cipher).toBe('ECDHE-RSA-AES256-GCM-SHA384');
    expect((await handshake(port, {})).protocol).toBe('TLSv1.3');
  });

  it('serves the API docs with a CSP that allows no inline script and no framing', async () => {
    for (const url of [`${API}/docs`, `${API}/docs/static/swagger-initializer.js`, `${API}/docs/json`]) {
      const res = await t.request('GET', url);
      expect(res.statusCode, url).toBe(200);
      const csp = String(res.headers['content-security-policy']);
      const directives = new Map(
        csp
          .split(';')
          .map((d) => d.trim().split(/\s+/))
          .map(([name, ...values]) => [name, values]),
      );
      expect(directives.get('script-src'), url).toEqual(["'self'"]);
      expect(directives.get('default-src'), url).toEqual(["'none'"]);
      expect(directives.get('frame-ancestors'), url).toEqual(["'none'"]);
      expect(res.headers['x-frame-options'], url).toBe('DENY');
    }
    // The page itself has no inline script for that CSP to block.
    const page = await t.request('GET', `${API}/docs`);
    expect(page.body).toContain('swagger-ui-bundle.js');
    expect(page.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  });
});
