import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { API_TOKEN_PREFIX, type Role } from '@gatehouse/core';
import { openDatabase, openVault, type DialectName } from '@gatehouse/db';
import { buildApp, createLogger, hashPassword, loadServerConfig, loadTls, type GatehouseApp } from '@gatehouse/server';
import type { LightMyRequestResponse } from 'fastify';
import { createTestDatabase, type TestDatabase } from './db.js';

/** Every line the app logged, for tests that check what reached the log. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void) {
    this.lines.push(
      ...chunk
        .toString('utf8')
        .split('\n')
        .filter((l) => l !== ''),
    );
    done();
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

export interface TestApp extends GatehouseApp {
  database: TestDatabase;
  logs: LogCapture;
  masterKey: Buffer;
  /** Sends a request with a bearer token (or none). */
  request(
    method: string,
    url: string,
    opts?: { token?: string | undefined; body?: unknown; headers?: Record<string, string>; payload?: string; remoteAddress?: string },
  ): Promise<LightMyRequestResponse>;
  /** Creates a user of this role with an API token; returns both. */
  userWithToken(role: Role, username?: string): Promise<{ id: string; username: string; password: string; token: string }>;
  close(): Promise<void>;
}

/**
 * The real API, in process, on a fresh database of either kind. With `tls`, the app is
 * built with the server's certificate and TLS settings (as `gatehouse server` builds it),
 * for tests that listen and connect over TLS; `inject` works either way.
 */
export async function createTestApp(
  dialect: DialectName,
  overrides: Record<string, unknown> = {},
  opts: { tls?: boolean } = {},
): Promise<TestApp> {
  const database = await createTestDatabase(dialect);
  const masterKey = randomBytes(32);
  const logs = new LogCapture();
  const config = loadServerConfig({ env: {}, flags: { dataDir: database.dataDir, logLevel: 'debug', port: 0, ...overrides } });
  const vault = await openVault(database.db, masterKey);
  const tls = opts.tls ? await loadTls({ dataDir: database.dataDir }) : null;
  const https = tls && { cert: tls.cert, key: tls.key };
  const built = await buildApp({ config, db: database.db, vault, logger: createLogger('debug', logs), https });
  const request: TestApp['request'] = (method, url, opts = {}) =>
    built.app.inject({
      method: method as 'GET',
      url,
      headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers },
      ...(opts.remoteAddress !== undefined ? { remoteAddress: opts.remoteAddress } : {}),
      ...(opts.payload !== undefined ? { payload: opts.payload } : opts.body !== undefined ? { payload: opts.body as object } : {}),
    });
  let counter = 0;
  return {
    ...built,
    database,
    logs,
    masterKey,
    request,
    async userWithToken(role, username) {
      const name = username ?? `${role}${++counter}`;
      const password = `pw-${randomBytes(12).toString('hex')}`;
      const user = await built.services.users.create({ username: name, role, passwordHash: await hashPassword(password) });
      const token = `${API_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
      await built.services.users.createToken({ userId: user.id, name: 'test', token, expiresAt: null });
      return { id: user.id, username: name, password, token };
    },
    async close() {
      await built.app.close();
      await database.cleanup();
    },
  };
}

/**
 * Another server on a test app's database, as a second replica would be (PostgreSQL): its
 * own pool, vault and `replica` name; the built-in gateway and jobs are not started.
 */
export async function createReplicaApp(
  t: TestApp,
  overrides: Record<string, unknown> = {},
): Promise<GatehouseApp & { close(): Promise<void> }> {
  const db = await openDatabase({ dataDir: t.database.dataDir, databaseUrl: t.database.databaseUrl });
  const config = loadServerConfig({ env: {}, flags: { dataDir: t.database.dataDir, port: 0, ...overrides } });
  const built = await buildApp({
    config,
    db,
    vault: await openVault(db, t.masterKey),
    logger: createLogger('debug', new LogCapture()),
    https: null,
  });
  return {
    ...built,
    async close() {
      await built.app.close();
      await db.close();
    },
  };
}
