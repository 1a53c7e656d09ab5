import type { OidcSettings } from '@gatehouse/api';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { API, auditEvents, canary } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { cliAgainst, runCliInProcess, type CliRun } from '../support/cli-in-process.js';
import { dialects } from '../support/db.js';

const ISSUER = 'https://idp.example.test/realms/ops';

/**
 * `gatehouse sso show` and `gatehouse sso set` against the API (issue 24): the fields reach
 * the settings, the client secret is taken from standard input or a file and never printed,
 * and every refusal names the option or field to fix.
 */
describe.each(dialects)('gatehouse sso on %s', (dialect) => {
  let t: TestApp;
  let admin: { token: string };
  let gatehouse: (...args: string[]) => Promise<CliRun>;
  /** `gatehouse <args>` with `stdin` on its standard input. */
  let stdinRun: (stdin: string, ...args: string[]) => Promise<CliRun>;
  const secret = canary('oidc-client-secret');

  const settings = async () => (await t.request('GET', `${API}/sso/oidc/settings`, { token: admin.token })).json<OidcSettings>();
  const failed = (run: CliRun) => {
    expect(run.code, run.out).toBe(1);
    return run.err;
  };

  beforeAll(async () => {
    t = await createTestApp(dialect, {}, { tls: true });
    admin = await t.userWithToken('admin');
    gatehouse = await cliAgainst(t, admin.token);
    const server = `https://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
    stdinRun = (stdin, ...args) =>
      runCliInProcess([...args, '--url', server, '--ca', path.join(t.database.dataDir, 'tls', 'server.crt')], { stdin });
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await t?.close();
  });

  it('refuses what cannot be saved, naming the option or field', async () => {
    expect(failed(await gatehouse('sso', 'set'))).toContain('Nothing to change: give at least one option');
    expect(failed(await gatehouse('sso', 'set', '--enable', '--disable'))).toContain('Give --enable or --disable, not both.');
    expect(failed(await gatehouse('sso', 'set', '--group-role', 'ops'))).toContain(
      "option '--group-role <group=role>' argument 'ops' is invalid. Give it as <group>=<role>, e.g. ops=operator.",
    );
    expect(failed(await gatehouse('sso', 'set', '--require-local-mfa', 'yes'))).toContain('Allowed choices are on, off.');
    expect(failed(await gatehouse('sso', 'set', '--issuer-url', 'http://idp.example.test/'))).toContain(
      'issuerUrl: must be an https:// URL',
    );
    const enabling = failed(await gatehouse('sso', 'set', '--enable', '--issuer-url', ISSUER));
    for (const field of ['clientId', 'clientSecret', 'groupRoles']) expect(enabling).toContain(`  - ${field}: `);
    expect(failed(await stdinRun('\n', 'sso', 'set', '--client-secret-stdin'))).toContain('The client secret on standard input is empty.');
    expect(await settings()).toMatchObject({ enabled: false, issuerUrl: null, clientSecretSet: false });
  });

  it('sets every field, with the secret from standard input, and shows it only as stored', async () => {
    const caFile = path.join(t.database.dataDir, 'tls', 'server.crt');
    const run = await stdinRun(
      `${secret}\n`,
      'sso',
      'set',
      '--enable',
      '--display-name',
      'Ops IdP',
      '--issuer-url',
      ISSUER,
      '--client-id',
      'gatehouse',
      '--client-secret-stdin',
      '--scopes',
      'openid profile,groups',
      '--group-claim',
      'roles',
      '--group-role',
      'gh-admins=admin',
      '--group-role',
      'gh-ops=operator',
      '--require-local-mfa',
      'on',
      '--ca-file',
      caFile,
    );
    expect(run.code, run.err).toBe(0);
    expect(run.out).toContain('Enabled:       yes: the sign-in page shows "Sign in with Ops IdP"');
    expect(run.out).toContain('Client secret: stored');
    expect(run.out).toContain('Group roles:   gh-admins=admin, gh-ops=operator');
    expect(await settings()).toMatchObject({
      enabled: true,
      displayName: 'Ops IdP',
      issuerUrl: ISSUER,
      clientId: 'gatehouse',
      clientSecretSet: true,
      scopes: ['openid', 'profile', 'groups'],
      groupClaim: 'roles',
      groupRoles: [
        { group: 'gh-admins', role: 'admin' },
        { group: 'gh-ops', role: 'operator' },
      ],
      requireLocalMfa: true,
      caPem: expect.stringContaining('-----BEGIN CERTIFICATE-----') as string,
    });

    const shown = await gatehouse('sso', 'show', '--json');
    expect(shown.code, shown.err).toBe(0);
    expect(JSON.parse(shown.out)).toMatchObject({ enabled: true, clientSecretSet: true, requireLocalMfa: true });
    for (const text of [run.out, run.err, shown.out, (await gatehouse('sso', 'show')).out, t.logs.text]) expect(text).not.toContain(secret);
  });

  it('replaces the secret from a file, turns local MFA off, removes the CA and disables, leaving the rest', async () => {
    const file = path.join(t.database.dataDir, 'oidc-secret');
    writeFileSync(file, `${secret}-new\n`, { mode: 0o600 });
    const run = await gatehouse('sso', 'set', '--client-secret-file', file, '--require-local-mfa', 'off', '--no-ca-file', '--disable');
    expect(run.code, run.err).toBe(0);
    expect(run.out).toContain('Enabled:       no');
    expect(run.out).toContain("Provider CA:   the system's CAs");
    expect(run.out).not.toContain(secret);
    expect(await settings()).toMatchObject({
      enabled: false,
      requireLocalMfa: false,
      caPem: null,
      clientId: 'gatehouse',
      clientSecretSet: true,
    });
    const [changed] = await auditEvents(t, admin.token, { action: 'sso.settings_changed' });
    expect(changed?.details).toMatchObject({ changes: { clientSecretEnc: 'changed' } });
    expect(JSON.stringify(changed)).not.toContain(secret);
  });
});
