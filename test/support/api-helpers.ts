import { randomBytes, randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { errorCodes } from '@gatehouse/core';
import type { TestApp } from './app.js';

export const API = '/api/v1';

/** A web session as a browser holds it: the cookie header to send and the CSRF token for writes. */
export interface WebSession {
  cookie: string;
  csrfToken: string;
}

/** Signs in through POST /auth/login; `session` is set only when the sign-in succeeded. */
export async function login(
  t: TestApp,
  username: string,
  password: string,
  totp?: string,
): Promise<{ res: LightMyRequestResponse; session: WebSession | undefined }> {
  const res = await t.request('POST', `${API}/auth/login`, { body: { username, password, ...(totp !== undefined ? { totp } : {}) } });
  const cookie = res.cookies.find((c) => c.name === 'gh_session');
  if (res.statusCode !== 200 || !cookie) return { res, session: undefined };
  return { res, session: { cookie: `gh_session=${cookie.value}`, csrfToken: res.json<{ csrfToken: string }>().csrfToken } };
}

/** Signs in and fails the test when that does not work. */
export async function loginOrThrow(t: TestApp, username: string, password: string, totp?: string): Promise<WebSession> {
  const { res, session } = await login(t, username, password, totp);
  if (!session) throw new Error(`sign-in as ${username} failed: ${res.statusCode} ${res.body}`);
  return session;
}

/** Headers of a request made with a web session; `csrf: false` leaves out the CSRF header. */
export function sessionHeaders(session: WebSession, opts: { csrf?: boolean } = {}): Record<string, string> {
  return { cookie: session.cookie, ...(opts.csrf === false ? {} : { 'x-csrf-token': session.csrfToken }) };
}

/** An id that names nothing. */
export const randomId = (): string => randomUUID();

/** A distinct marker string: if it shows up where it should not, the test names which secret leaked. */
export const canary = (what: string): string => `CANARY-${what}-${randomBytes(8).toString('hex')}`;

/** A PEM-shaped private key that carries a canary in its body. */
export const pemWith = (marker: string): string =>
  `-----BEGIN OPENSSH PRIVATE KEY-----\n${marker}\nAAAAB3NzaC1yc2EAAAADAQABAAABAQ\n-----END OPENSSH PRIVATE KEY-----\n`;

/** The error body every failure answers with. */
export interface ErrorBody {
  error: { code: string; message: string; issues?: { path: string; message: string }[]; requestId: string };
}

/** The error body of a response; every API test that reads one also checks its status is its code's (core/src/errors.ts). */
export const errorOf = (res: LightMyRequestResponse): ErrorBody['error'] => {
  const { error } = res.json<ErrorBody>();
  const status = (errorCodes as Record<string, number>)[error.code];
  if (status !== res.statusCode) throw new Error(`${res.statusCode} answered with code ${error.code}, whose status is ${status}`);
  return error;
};

/** Creates a project, a device in it and an account on the device, through the API. */
export async function createInventory(
  t: TestApp,
  token: string,
  names: { project: string; device?: string; account?: string },
  secrets: Record<string, unknown> = { password: 'an-account-password' },
): Promise<{ projectId: string; deviceId: string; accountId: string }> {
  const ok = (res: LightMyRequestResponse) => {
    if (res.statusCode !== 201) throw new Error(`${res.statusCode} ${res.body}`);
    return res.json<{ id: string }>().id;
  };
  const projectId = ok(await t.request('POST', `${API}/projects`, { token, body: { name: names.project } }));
  const deviceId = ok(
    await t.request('POST', `${API}/devices`, {
      token,
      body: { projectId, name: names.device ?? 'host-1', provider: 'aws', protocols: ['ssh'], publicIp: '198.51.100.10' },
    }),
  );
  const accountId = ok(
    await t.request('POST', `${API}/accounts`, { token, body: { deviceId, username: names.account ?? 'root', ...secrets } }),
  );
  return { projectId, deviceId, accountId };
}

/** An audit event as GET /audit/events shows it. */
export interface AuditEventView {
  seq: number;
  action: string;
  outcome: string;
  actorName: string;
  targetId: string | null;
  details: Record<string, unknown>;
}

/** Audit events matching the query (e.g. `{ action: 'auth.login' }`), newest first, read through the API. */
export async function auditEvents(t: TestApp, token: string, query: Record<string, string>): Promise<AuditEventView[]> {
  const res = await t.request('GET', `${API}/audit/events?${new URLSearchParams({ limit: '1000', ...query }).toString()}`, { token });
  if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${res.body}`);
  return res.json<{ items: AuditEventView[] }>().items;
}
