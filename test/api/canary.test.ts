import { hashToken } from '@gatehouse/db';
import { currentTotp } from '@gatehouse/server';
import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, canary, errorOf, pemWith, randomId, sessionHeaders, type WebSession } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

type RequestOptions = Parameters<TestApp['request']>[2];

/** Every response the test saw, with the secrets it is allowed to show. */
interface Seen {
  what: string;
  text: string;
  allowed: ReadonlySet<string>;
}

const tables = [
  'projects',
  'devices',
  'accounts',
  'users',
  'web_sessions',
  'api_tokens',
  'grants',
  'audit_events',
  'audit_head',
  'vault_keys',
  'settings',
];

describe.each(dialects)('secrets never leak on %s', (dialect) => {
  let t: TestApp;
  const seen: Seen[] = [];
  /** Secret label → value: planted canaries, and the random secrets the server hands out once. */
  const secrets = new Map<string, string>();
  const plant = (label: string) => {
    const value = canary(label);
    secrets.set(label, value);
    return value;
  };
  const secret = (label: string) => secrets.get(label) ?? '';

  const call = async (method: string, url: string, opts: RequestOptions = {}, allowed: string[] = []): Promise<LightMyRequestResponse> => {
    const res = await t.request(method, url, opts);
    seen.push({
      what: `${method} ${url} → ${res.statusCode}`,
      text: `${JSON.stringify(res.headers)}\n${res.body}`,
      allowed: new Set(allowed),
    });
    return res;
  };
  const expectStatus = (res: LightMyRequestResponse, status: number) => expect(res.statusCode, res.body.slice(0, 300)).toBe(status);
  let sessions = 0;
  const loginAs = async (username: string, password: string, totp?: string): Promise<WebSession> => {
    // Each session token may appear only in the response that set it.
    const label = `session-${++sessions}`;
    const res = await call('POST', `${API}/auth/login`, { body: { username, password, ...(totp ? { totp } : {}) } }, [label]);
    expectStatus(res, 200);
    const value = res.cookies.find((c) => c.name === 'gh_session')?.value ?? '';
    expect(value).toMatch(/^gatehouse_ses_[A-Za-z0-9_-]{43}$/);
    secrets.set(label, value);
    return { cookie: `gh_session=${value}`, csrfToken: res.json<{ csrfToken: string }>().csrfToken };
  };

  let adminToken: string;
  let ids: { projectId: string; deviceId: string; accountId: string; operatorId: string; auditorId: string };

  beforeAll(async () => {
    t = await createTestApp(dialect);
  });
  afterAll(() => t.close());

  it('plants secrets through every write that takes one', async () => {
    const setupToken = plant('setup-token');
    await t.services.settings.set('setup_token_hash', hashToken(setupToken));
    const adminPassword = plant('admin-pw');
    expectStatus(
      await call('POST', `${API}/setup`, {
        body: { setupToken: plant('wrong-setup-token'), username: 'root-admin', password: adminPassword },
      }),
      401,
    );
    expectStatus(await call('POST', `${API}/setup`, { body: { setupToken, username: 'root-admin', password: adminPassword } }), 201);
    expectStatus(await call('POST', `${API}/setup`, { body: { setupToken, username: 'other', password: adminPassword } }), 409);

    const adminSession = await loginAs('root-admin', adminPassword);
    const created = await call(
      'POST',
      `${API}/tokens`,
      { headers: sessionHeaders(adminSession), body: { name: 'automation', scope: 'full' } },
      ['api-token'],
    );
    expectStatus(created, 201);
    adminToken = created.json<{ token: string }>().token;
    secrets.set('api-token', adminToken);
    const token = adminToken;

    const operator = await call('POST', `${API}/users`, {
      token,
      body: { username: 'op', role: 'operator', password: plant('operator-pw') },
    });
    expectStatus(operator, 201);
    const auditor = await call('POST', `${API}/users`, {
      token,
      body: { username: 'aud', role: 'auditor', password: plant('auditor-pw') },
    });
    expectStatus(auditor, 201);
    const auditorId = auditor.json<{ id: string }>().id;
    expectStatus(await call('PATCH', `${API}/users/${auditorId}`, { token, body: { password: plant('auditor-pw-2') } }), 200);

    const project = await call('POST', `${API}/projects`, { token, body: { name: 'Vaulted', description: 'holds canaries' } });
    const projectId = project.json<{ id: string }>().id;
    const device = await call('POST', `${API}/devices`, {
      token,
      body: { projectId, name: 'vault-1', provider: 'on-prem', protocols: ['ssh'], privateIp: '10.0.0.5' },
    });
    const deviceId = device.json<{ id: string }>().id;
    const account = await call('POST', `${API}/accounts`, {
      token,
      body: {
        deviceId,
        username: 'root',
        password: plant('account-pw'),
        privateKey: pemWith(plant('private-key')),
        pemFileName: 'root.pem',
        passphrase: plant('passphrase'),
        extraCredential: { enable: plant('extra-credential') },
      },
    });
    expectStatus(account, 201);
    const accountId = account.json<{ id: string }>().id;
    const second = await call('POST', `${API}/accounts`, {
      token,
      body: { deviceId, username: 'backup', password: plant('account-pw-old') },
    });
    expectStatus(
      await call('PATCH', `${API}/accounts/${second.json<{ id: string }>().id}`, { token, body: { password: plant('account-pw-new') } }),
      200,
    );
    const operatorId = operator.json<{ id: string }>().id;
    expectStatus(await call('POST', `${API}/grants`, { token, body: { userId: operatorId, projectId } }), 201);

    const rows = [
      {
        project: 'Imported',
        device: 'imp-1',
        provider: 'gcp',
        protocols: ['ssh'],
        account: 'svc',
        password: plant('import-json-pw'),
        private_key: pemWith(plant('import-json-key')),
        passphrase: plant('import-json-pp'),
        extra_credential: { token: plant('import-json-extra') },
      },
    ];
    expectStatus(await call('POST', `${API}/inventory/import`, { token, body: { rows } }), 200);
    const csv = [
      'project,device,provider,protocols,public_ip,private_ip,url_port,access_type,tags,account,password,private_key,pem_file_name,passphrase,extra_credential',
      `Imported,imp-2,aws,ssh;rdp,203.0.113.9,,,direct,a;b,admin,${plant('import-csv-pw')},,,,"{""enable"":""${plant('import-csv-extra')}""}"`,
    ].join('\n');
    expectStatus(await call('POST', `${API}/inventory/import`, { token, payload: csv, headers: { 'content-type': 'text/csv' } }), 200);
    ids = { projectId, deviceId, accountId, operatorId, auditorId };
  });

  it('plants TOTP secrets and changed passwords through the sign-in flows', async () => {
    const opSession = await loginAs('op', secret('operator-pw'));
    const enroll = await call('POST', `${API}/auth/totp/enroll`, { headers: sessionHeaders(opSession) }, ['totp-secret']);
    expectStatus(enroll, 200);
    const totpSecret = enroll.json<{ secret: string }>().secret;
    secrets.set('totp-secret', totpSecret);
    expectStatus(
      await call('POST', `${API}/auth/totp/confirm`, { headers: sessionHeaders(opSession), body: { code: currentTotp(totpSecret) } }),
      200,
    );
    // The confirm used this period's code, and a code is good once: sign in with the next one.
    const withTotp = await loginAs('op', secret('operator-pw'), currentTotp(totpSecret, 1));
    expectStatus(
      await call('POST', `${API}/auth/password`, {
        headers: sessionHeaders(withTotp),
        body: { currentPassword: plant('wrong-current-pw'), newPassword: plant('rejected-new-pw') },
      }),
      400,
    );
    expectStatus(
      await call('POST', `${API}/auth/password`, {
        headers: sessionHeaders(withTotp),
        body: { currentPassword: secret('operator-pw'), newPassword: plant('operator-pw-2') },
      }),
      200,
    );
    expectStatus(await call('POST', `${API}/auth/logout`, { headers: sessionHeaders(withTotp) }), 200);
  });

  it('keeps canaries out of failed sign-ins and bad requests', async () => {
    const token = adminToken;
    const failures: [string, RequestOptions, number][] = [
      ['/auth/login', { body: { username: 'root-admin', password: plant('wrong-login-pw') } }, 401],
      ['/auth/login', { body: { username: 'no-such-user', password: plant('unknown-user-pw') } }, 401],
      ['/auth/login', { body: { username: 'op', password: secret('operator-pw-2') } }, 401],
      ['/auth/login', { body: { username: 'op', password: plant('wrong-op-pw'), totp: '123456' } }, 401],
      ['/auth/login', { body: { username: 'aud', password: 12345, note: plant('login-unknown-field') } }, 400],
      [
        '/auth/login',
        { payload: `{"username":"aud","password":"${plant('login-bad-json')}"`, headers: { 'content-type': 'application/json' } },
        400,
      ],
      [
        '/accounts',
        { token, payload: `{"deviceId":"x","password":"${plant('account-bad-json')}",}`, headers: { 'content-type': 'application/json' } },
        400,
      ],
      [
        '/accounts',
        {
          token,
          body: {
            deviceId: ids.deviceId,
            username: 'typed',
            password: [plant('password-in-array')],
            passphrase: { nested: plant('passphrase-in-object') },
            privateKey: plant('not-a-pem-key'),
            extraCredential: plant('extra-as-string'),
            secretNotes: plant('unknown-account-field'),
          },
        },
        400,
      ],
      ['/tokens', { token, body: { name: 'x', token: plant('unknown-token-field') } }, 400],
      ['/users', { token, body: { username: 'odd', role: plant('role-value'), password: plant('odd-user-pw') } }, 400],
      ['/setup', { body: { setupToken: plant('late-setup-token'), username: 'late', password: plant('late-admin-pw') } }, 409],
      [`/accounts/${ids.accountId}/reveal`, { token, body: { reason: 'x', extra: plant('reveal-unknown-field') } }, 400],
      [
        '/inventory/import',
        {
          token,
          body: [
            { project: 'Bad', device: 'b', provider: 'nope', account: 'a', password: plant('bad-row-pw') },
            {
              project: 'Bad',
              device: 'c',
              provider: 'aws',
              account: 'a',
              private_key: plant('bad-row-key'),
              notes: plant('bad-row-column'),
            },
          ],
        },
        400,
      ],
      [
        '/inventory/import',
        {
          token,
          payload: `project,device,provider,account,password,extra_credential\nBad,b,aws,a,${plant('bad-csv-pw')},${plant('bad-csv-extra')}\n"Bad,"${plant('bad-csv-quote')}`,
          headers: { 'content-type': 'text/csv' },
        },
        400,
      ],
      [
        '/inventory/import',
        {
          token,
          payload: `project,device,provider,account,password,secret_notes\nBad,b,aws,a,${plant('bad-csv-pw-2')},${plant('bad-csv-column')}\n`,
          headers: { 'content-type': 'text/csv' },
        },
        400,
      ],
    ];
    for (const [path, opts, status] of failures) expectStatus(await call('POST', `${API}${path}`, opts), status);
    const patch = await call('PATCH', `${API}/accounts/${ids.accountId}`, { token, body: { privateKey: plant('patch-not-pem') } });
    expectStatus(patch, 400);
    expect(errorOf(patch).issues?.map((i) => i.path)).toEqual(['privateKey']);
    expectStatus(
      await call('PATCH', `${API}/users/${ids.auditorId}`, { token, body: { password: 'x', other: plant('user-unknown-field') } }),
      400,
    );
  });

  it('shows no secret in any read, list, export or audit response', async () => {
    const token = adminToken;
    const auditorSession = await loginAs('aud', secret('auditor-pw-2'));
    const created = await call('POST', `${API}/tokens`, { headers: sessionHeaders(auditorSession), body: { name: 'aud', scope: 'full' } }, [
      'auditor-api-token',
    ]);
    const auditorToken = created.json<{ token: string }>().token;
    secrets.set('auditor-api-token', auditorToken);
    // Codes are good once and the earlier test used this period's and the next: forget them,
    // so this test does not wait for the clock (replay is tested in auth.test.ts).
    await t.services.users.update(ids.operatorId, { totp_last_step: null });
    const operatorSession = await loginAs('op', secret('operator-pw-2'), currentTotp(secret('totp-secret')));
    const { projectId, deviceId, accountId, operatorId, auditorId } = ids;
    // Every GET route of the table, with real ids where this test made the resource, plus the
    // variants that change what is shown.
    const realIds: Record<string, string> = { users: operatorId, projects: projectId, devices: deviceId, accounts: accountId };
    const reads = [
      ...t.routes
        .filter((r) => r.method === 'GET')
        .map((r) =>
          r.url
            .replace(/\/([a-z-]+)\/:id/g, (_m, kind: string) => `/${kind}/${realIds[kind] ?? randomId()}`)
            .replace('/runbooks/:name', '/runbooks/ResetAccess'),
        ),
      `${API}/users/${auditorId}`,
      `${API}/devices?search=vault`,
      `${API}/inventory/export?format=csv`,
      `${API}/audit/events?limit=1000&order=asc`,
    ];
    expect(reads.filter((url) => url.includes('/:'))).toEqual([]);
    for (const url of reads) {
      const callers = [
        { token },
        { token: auditorToken },
        { headers: sessionHeaders(auditorSession) },
        { headers: sessionHeaders(operatorSession) },
      ];
      for (const opts of callers) {
        const res = await call('GET', url, opts);
        expect(res.statusCode, `${url}: ${res.body.slice(0, 200)}`).toBeLessThan(500);
      }
    }
    // Every planted account secret is in the vault: the reveal shows it, to an administrator only.
    const revealed = await call('POST', `${API}/accounts/${accountId}/reveal`, { token, body: { reason: 'canary check' } }, [
      'account-pw',
      'private-key',
      'passphrase',
      'extra-credential',
    ]);
    expectStatus(revealed, 200);
    for (const label of ['account-pw', 'private-key', 'passphrase', 'extra-credential']) expect(revealed.body).toContain(secret(label));
    const exported = await call('GET', `${API}/inventory/export?format=csv`, { token });
    expect(exported.body).toContain('********');
  });

  it('finds no secret in any response it was not meant for, in the log, in the audit log, or unencrypted in the database', async () => {
    expect(secrets.size).toBeGreaterThan(40);
    const problems: string[] = [];
    for (const response of seen) {
      for (const [label, value] of secrets) {
        if (!response.allowed.has(label) && response.text.includes(value)) problems.push(`${label} in ${response.what}`);
      }
    }
    const logs = t.logs.text;
    expect(logs).toContain('incoming request');
    for (const [label, value] of secrets) if (logs.includes(value)) problems.push(`${label} in the log`);

    const audit = await t.request('GET', `${API}/audit/export`, { token: adminToken });
    expect(audit.body.split('\n').length).toBeGreaterThan(30);
    for (const [label, value] of secrets) if (audit.body.includes(value)) problems.push(`${label} in the audit log`);

    for (const table of tables) {
      const rows = await sql`select * from ${sql.table(table)}`.execute(t.database.db.kysely);
      const text = JSON.stringify(rows.rows);
      for (const [label, value] of secrets) if (text.includes(value)) problems.push(`${label} unencrypted in table ${table}`);
    }
    expect(problems).toEqual([]);
  });
});
