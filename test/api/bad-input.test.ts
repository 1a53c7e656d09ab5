import { Readable } from 'node:stream';
import { SECRET_MASK } from '@gatehouse/core';
import { hashToken } from '@gatehouse/db';
import { parse } from 'csv-parse/sync';
import { inventoryColumns } from '@gatehouse/server';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, auditEvents, errorOf } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

type Column = (typeof inventoryColumns)[number];
type Row = Partial<Record<Column, string>>;

/** An inventory CSV with the export's header; values are quoted when they need it. */
function csvOf(rows: Row[], columns: readonly string[] = inventoryColumns): string {
  const cell = (v: string) => (/[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return (
    [columns.join(','), ...rows.map((r) => columns.map((c) => cell((r as Record<string, string>)[c] ?? '')).join(','))].join('\n') + '\n'
  );
}

const pem = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n';

describe.each(dialects)('bad input on %s', (dialect) => {
  let t: TestApp;
  let small: TestApp;
  let admin: string;
  let smallAdmin: string;
  let projectId: string;

  beforeAll(async () => {
    t = await createTestApp(dialect);
    small = await createTestApp(dialect, { bodyLimit: 2048 });
    admin = (await t.userWithToken('admin')).token;
    smallAdmin = (await small.userWithToken('admin')).token;
    projectId = (await t.request('POST', `${API}/projects`, { token: admin, body: { name: 'Base' } })).json<{ id: string }>().id;
  });
  afterAll(async () => {
    await t.close();
    await small.close();
  });

  const expectAlive = async (app: TestApp) => {
    const res = await app.request('GET', '/healthz');
    expect(res.statusCode).toBe(200);
  };
  const post = (url: string, payload: string, contentType = 'application/json') =>
    t.request('POST', `${API}${url}`, { token: admin, payload, headers: { 'content-type': contentType } });
  const issuePaths = (res: LightMyRequestResponse) => (errorOf(res).issues ?? []).map((i) => i.path);

  it('answers malformed JSON with 400 BAD_REQUEST without echoing the body', async () => {
    for (const payload of [
      '{"name": "half-a-project-xyzzy',
      '{"name": "trailing-comma-xyzzy",}',
      "{'name': 'single-quotes-xyzzy'}",
      '{"name": "two-values-xyzzy"} {"x": 1}',
    ]) {
      const res = await post('/projects', payload);
      expect(res.statusCode, payload).toBe(400);
      expect(errorOf(res)).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('not valid JSON') as string });
      expect(res.body).not.toContain('xyzzy');
      await expectAlive(t);
    }
    const empty = await post('/projects', '');
    expect(empty.statusCode).toBe(400);
    expect(errorOf(empty).code).toBe('BAD_REQUEST');
    const login = await t.request('POST', `${API}/auth/login`, {
      payload: '{"username": "a", "password": "xyzzy',
      headers: { 'content-type': 'application/json' },
    });
    expect(login.statusCode).toBe(400);
    expect(login.body).not.toContain('xyzzy');
    // The import reads its JSON itself (on a worker thread), with the same answer.
    const imported = await post('/inventory/import', '[{"project": "half-a-row-xyzzy');
    expect(imported.statusCode).toBe(400);
    expect(errorOf(imported)).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('not valid JSON') as string });
    expect(imported.body).not.toContain('xyzzy');
    await expectAlive(t);
  });

  it('answers wrong types and unknown fields with 400 VALIDATION_FAILED naming each field path', async () => {
    const device = await t.request('POST', `${API}/devices`, {
      token: admin,
      body: { projectId, name: 'db-1', provider: 'aws', publicIp: '300.1.2.3', tags: ['ok', 'not a tag!'], colour: 'red', size: 3 },
    });
    expect(device.statusCode).toBe(400);
    expect(errorOf(device).code).toBe('VALIDATION_FAILED');
    expect(issuePaths(device).sort()).toEqual(['colour', 'publicIp', 'size', 'tags[1]']);
    expect(errorOf(device).issues).toContainEqual({ path: 'colour', message: 'is not a known field' });
    expect(errorOf(device).message).toMatch(/publicIp .*tags\[1\]/);
    expect(device.body).not.toContain('300.1.2.3');
    await expectAlive(t);

    const types = await t.request('POST', `${API}/devices`, {
      token: admin,
      body: { projectId: 7, name: ['x'], provider: ' ', protocols: 'ssh', accessType: null },
    });
    expect(types.statusCode).toBe(400);
    expect(issuePaths(types).sort()).toEqual(['accessType', 'name', 'projectId', 'protocols', 'provider']);
    expect(errorOf(types).issues).toContainEqual({ path: 'provider', message: 'is required' });

    const nested = await t.request('POST', `${API}/accounts`, {
      token: admin,
      body: { deviceId: 'x', username: 'root', extraCredential: { enable: 5 }, privateKey: 'not a key' },
    });
    expect(issuePaths(nested).sort()).toEqual(['extraCredential.enable', 'privateKey']);

    const body = await post('/projects', '[1, 2]');
    expect(body.statusCode).toBe(400);
    expect(issuePaths(body)).toEqual(['body']);

    const query = await t.request('GET', `${API}/devices?limit=lots&sort=colour&bogus=1`, { token: admin });
    expect(query.statusCode).toBe(400);
    expect(issuePaths(query).sort()).toEqual(['querystring.bogus', 'querystring.limit', 'querystring.sort']);

    const user = await t.request('PATCH', `${API}/users/anyone`, { token: admin, body: { role: 'root', disabled: 'yes', isAdmin: true } });
    expect(user.statusCode).toBe(400);
    expect(issuePaths(user).sort()).toEqual(['disabled', 'isAdmin', 'role']);
    await expectAlive(t);
  });

  const bigCsv = csvOf(Array.from({ length: 80 }, (_, i) => ({ project: 'P', device: `device-${i}`, provider: 'aws' })));
  it.each([
    {
      what: 'a JSON body',
      route: '/projects',
      type: 'application/json',
      payload: JSON.stringify({ name: 'big', description: 'x'.repeat(3000) }),
    },
    { what: 'a CSV import', route: '/inventory/import', type: 'text/csv', payload: bigCsv },
  ])('answers $what over bodyLimit with 413 PAYLOAD_TOO_LARGE', async ({ what, route, type, payload }) => {
    expect(payload.length).toBeGreaterThan(2048);
    const big = await small.request('POST', `${API}${route}`, { token: smallAdmin, payload, headers: { 'content-type': type } });
    expect(big.statusCode).toBe(413);
    expect(errorOf(big).code).toBe('PAYLOAD_TOO_LARGE');
    await expectAlive(small);
    // Below the limit, the same server still accepts requests.
    const fits = await small.request('POST', `${API}/projects`, { token: smallAdmin, body: { name: `small after ${what}` } });
    expect(fits.statusCode).toBe(201);
  });

  it('answers an unsupported Content-Type with 415', async () => {
    for (const type of ['application/xml', 'text/plain', 'application/x-www-form-urlencoded']) {
      const res = await post('/projects', 'name=x', type);
      expect(res.statusCode, type).toBe(415);
      expect(errorOf(res).code).toBe('UNSUPPORTED_MEDIA_TYPE');
      await expectAlive(t);
    }
    const imp = await post('/inventory/import', 'project,device\n', 'application/vnd.ms-excel');
    expect(imp.statusCode).toBe(415);
    await expectAlive(t);
  });

  it('refuses a NUL character in any text with 400 naming the field, on both databases', async () => {
    const cases: [string, string, Parameters<TestApp['request']>[2], string][] = [
      ['POST', `${API}/auth/login`, { body: { username: 'ad\u0000min', password: 'whatever-password' } }, 'username'],
      ['POST', `${API}/tokens`, { token: admin, body: { name: 'ci\u0000' } }, 'name'],
      ['GET', `${API}/devices/abc%00def`, { token: admin }, 'params.id'],
      ['GET', `${API}/audit/events?action=auth.login%00`, { token: admin }, 'querystring.action'],
      [
        'POST',
        `${API}/inventory/import`,
        { token: admin, body: [{ project: 'P', device: 'd', provider: 'aws', url_port: 'x\u0000' }] },
        '[0].url_port',
      ],
      [
        'POST',
        `${API}/accounts`,
        { token: admin, body: { deviceId: 'd', username: 'root', extraCredential: { enable: 'a\u0000b' } } },
        'extraCredential.enable',
      ],
    ];
    for (const [method, url, opts, path] of cases) {
      const res = await t.request(method, url, opts);
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBe(400);
      expect(errorOf(res)).toMatchObject({
        code: 'VALIDATION_FAILED',
        issues: [{ path, message: expect.stringContaining('NUL') as string }],
      });
    }
    await expectAlive(t);
  });

  describe('inventory import', () => {
    const count = async () => {
      const projects = (await t.request('GET', `${API}/projects`, { token: admin })).json<{ items: unknown[] }>().items.length;
      const devices = (await t.request('GET', `${API}/devices`, { token: admin })).json<{ total: number }>().total;
      return { projects, devices };
    };
    const importCsv = (csv: string, query = '') =>
      t.request('POST', `${API}/inventory/import${query}`, { token: admin, payload: csv, headers: { 'content-type': 'text/csv' } });

    it('reports every bad row and field of a CSV and writes nothing', async () => {
      const before = await count();
      const good = { project: 'Import A', device: 'good-1', provider: 'aws', protocols: 'ssh', public_ip: '203.0.113.1', account: 'root' };
      const csv = csvOf([
        { ...good, password: 'pw-1' },
        { project: 'Import A', device: 'no-provider', provider: ' ' },
        { project: 'Import A', device: 'bad-ip', provider: 'gcp', public_ip: '203.0.113.999' },
        // The same device and account again.
        { ...good, password: 'pw-2' },
        { project: 'Import A', device: 'bad-protocol', provider: 'azure', protocols: 'ssh;gopher', tags: 'ok;not ok' },
        { project: 'Import A', device: 'no-account', provider: 'other', password: 'orphan-secret' },
        { project: 'Import A', device: 'bad-key', provider: 'aws', account: 'k', private_key: 'not a key', extra_credential: '{not json' },
        { project: '', device: 'no-project', provider: 'aws' },
      ]);
      const res = await importCsv(csv);
      expect(res.statusCode).toBe(400);
      const error = errorOf(res);
      expect(error.code).toBe('VALIDATION_FAILED');
      expect(error.message).toMatch(/nothing was written/);
      const paths = issuePaths(res);
      expect(paths).toEqual([
        'row 3.provider',
        'row 4.public_ip',
        'row 5.account',
        'row 6.protocols[1]',
        'row 6.tags[1]',
        'row 7.account',
        'row 8.private_key',
        'row 8.extra_credential',
        'row 9.project',
      ]);
      expect(error.issues?.find((i) => i.path === 'row 5.account')?.message).toMatch(/repeats row 2/);
      expect(res.body).not.toContain('orphan-secret');
      expect(await count()).toEqual(before);
      expect((await t.request('GET', `${API}/projects`, { token: admin })).body).not.toContain('Import A');
      expect((await auditEvents(t, admin, { action: 'inventory.import', outcome: 'failure' })).length).toBeGreaterThan(0);
      await expectAlive(t);
    });

    it('names an unknown column, and a row with the wrong number of cells', async () => {
      const unknown = await importCsv(csvOf([{ project: 'X', device: 'x', provider: 'aws' }], [...inventoryColumns, 'colour']));
      expect(unknown.statusCode).toBe(400);
      expect(issuePaths(unknown)).toEqual(['row 2.colour']);
      expect(errorOf(unknown).message).toContain('colour');

      const ragged = await importCsv('project,device,provider\nX,x,aws\nY,y\n');
      expect(ragged.statusCode).toBe(400);
      expect(issuePaths(ragged)).toEqual(['file']);
      expect(errorOf(ragged).message).toMatch(/line 3/);

      const empty = await importCsv('project,device,provider\n');
      expect(empty.statusCode).toBe(400);
      expect(errorOf(empty).issues).toEqual([{ path: 'file', message: 'has no rows' }]);
    });

    it('reports bad JSON rows by index', async () => {
      const res = await t.request('POST', `${API}/inventory/import`, {
        token: admin,
        body: {
          rows: [
            { project: 'J', device: 'j1', provider: 'aws' },
            { project: 'J', device: 'j2', provider: 'aws', public_ip: 42, nickname: 'x' },
          ],
        },
      });
      expect(res.statusCode).toBe(400);
      expect(issuePaths(res).sort()).toEqual(['rows[1].nickname', 'rows[1].public_ip']);
      expect((await t.request('GET', `${API}/projects`, { token: admin })).body).not.toContain('"J"');
    });

    const goodCsv = csvOf([
      {
        project: 'Payments',
        device: 'pay-db',
        provider: 'aws',
        protocols: 'ssh;database',
        public_ip: '203.0.113.10',
        private_ip: '10.1.0.10',
        access_type: 'gateway',
        tags: 'gateway-office1;prod',
        account: 'postgres',
        password: 'pay-db-password',
        private_key: pem,
        pem_file_name: 'pay-db.pem',
        passphrase: 'pay-db-passphrase',
        extra_credential: '{"enable":"pay-db-enable"}',
      },
      {
        project: 'Payments',
        device: 'pay-db',
        provider: 'aws',
        protocols: 'ssh;database',
        account: 'readonly',
        password: 'readonly-password',
      },
      {
        project: 'Payments',
        device: 'pay-web',
        provider: 'azure',
        protocols: 'https',
        url_port: 'https://pay.example.com:8443',
        access_type: 'direct',
      },
      {
        project: 'Network',
        device: 'core-sw',
        provider: 'on-prem',
        protocols: 'telnet',
        private_ip: '10.0.0.1',
        account: 'admin',
        password: 'switch-password',
      },
    ]);

    it('writes nothing on a dry run', async () => {
      const before = await count();
      const res = await importCsv(goodCsv, '?dryRun=true');
      expect(res.statusCode).toBe(200);
      // What the real import would do (its writes ran and were rolled back), and the rows to check.
      expect(res.json()).toMatchObject({ dryRun: true, rows: 4, projectsCreated: 2, devicesCreated: 3, accountsCreated: 3 });
      const preview = res.json<{ preview: { line: string; secrets: Record<string, string> }[] }>().preview;
      expect(preview).toHaveLength(4);
      expect(preview[0]).toMatchObject({ line: 'row 2', secrets: { password: 'set' } });
      expect(res.body).not.toContain('switch-password');
      expect(await count()).toEqual(before);
    });

    it('imports projects, devices and accounts from a good CSV', async () => {
      const before = await count();
      const res = await t.request('POST', `${API}/inventory/import`, {
        token: admin,
        payload: goodCsv,
        headers: { 'content-type': 'text/csv; charset=utf-8' },
      });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({
        rows: 4,
        projectsCreated: 2,
        devicesCreated: 3,
        devicesUpdated: 0,
        accountsCreated: 3,
        accountsUpdated: 0,
        dryRun: false,
      });
      expect(await count()).toEqual({ projects: before.projects + 2, devices: before.devices + 3 });
      const devices = (await t.request('GET', `${API}/devices?search=pay-db`, { token: admin })).json<{ items: { id: string }[] }>();
      expect(devices.items).toHaveLength(1);
      expect(devices.items[0]).toMatchObject({
        name: 'pay-db',
        provider: 'aws',
        protocols: ['ssh', 'database'],
        publicIp: '203.0.113.10',
        tags: ['gateway-office1', 'prod'],
        accessType: 'gateway',
      });
      const accounts = await t.request('GET', `${API}/devices/${devices.items[0]?.id ?? ''}/accounts`, { token: admin });
      expect(accounts.json<{ items: { username: string }[] }>().items.map((a) => a.username)).toEqual(['postgres', 'readonly']);
      expect(accounts.body).not.toContain('pay-db-password');
    });

    it('keeps the stored secrets when the masked export is imported again', async () => {
      const exported = await t.request('GET', `${API}/inventory/export?format=csv`, { token: admin });
      expect(exported.statusCode).toBe(200);
      expect(exported.headers['content-type']).toMatch(/^text\/csv/);
      expect(exported.body.split('\n')[0]).toBe(inventoryColumns.join(','));
      expect(exported.body).toContain(SECRET_MASK);
      for (const secret of ['pay-db-password', 'pay-db-passphrase', 'pay-db-enable', 'BEGIN OPENSSH', 'switch-password']) {
        expect(exported.body).not.toContain(secret);
      }

      const again = await importCsv(exported.body);
      expect(again.statusCode, again.body).toBe(200);
      expect(again.json()).toMatchObject({ projectsCreated: 0, devicesCreated: 0, accountsCreated: 0, accountsUpdated: 3 });

      const device = (await t.request('GET', `${API}/devices?search=pay-db`, { token: admin })).json<{ items: { id: string }[] }>()
        .items[0];
      expect(device).toMatchObject({ protocols: ['ssh', 'database'], tags: ['gateway-office1', 'prod'], privateIp: '10.1.0.10' });
      const accounts = (await t.request('GET', `${API}/devices/${device?.id ?? ''}/accounts`, { token: admin })).json<{
        items: { id: string; username: string; pemFileName: string | null }[];
      }>().items;
      const postgres = accounts.find((a) => a.username === 'postgres');
      expect(postgres?.pemFileName).toBe('pay-db.pem');
      const revealed = await t.request('POST', `${API}/accounts/${postgres?.id ?? ''}/reveal`, {
        token: admin,
        body: { reason: 'import check' },
      });
      expect(revealed.json()).toMatchObject({
        password: 'pay-db-password',
        privateKey: pem,
        passphrase: 'pay-db-passphrase',
        extraCredential: { enable: 'pay-db-enable' },
      });

      // A secret typed over the mask replaces only that secret.
      const edited = exported.body.replace(/(core-sw,[^\n]*,admin,)\*{8}/, '$1new-switch-password');
      expect(edited).not.toBe(exported.body);
      expect((await importCsv(edited)).statusCode).toBe(200);
      const sw = (await t.request('GET', `${API}/devices?search=core-sw`, { token: admin })).json<{ items: { id: string }[] }>().items[0];
      const swAccount = (await t.request('GET', `${API}/devices/${sw?.id ?? ''}/accounts`, { token: admin })).json<{
        items: { id: string }[];
      }>().items[0];
      const swSecrets = await t.request('POST', `${API}/accounts/${swAccount?.id ?? ''}/reveal`, {
        token: admin,
        body: { reason: 'check' },
      });
      expect(swSecrets.json()).toMatchObject({ password: 'new-switch-password' });
      const pgAgain = await t.request('POST', `${API}/accounts/${postgres?.id ?? ''}/reveal`, { token: admin, body: { reason: 'check' } });
      expect(pgAgain.json()).toMatchObject({ password: 'pay-db-password' });
    });

    it('imports JSON rows as well', async () => {
      const res = await t.request('POST', `${API}/inventory/import`, {
        token: admin,
        body: [
          {
            project: 'From JSON',
            device: 'json-1',
            provider: 'gcp',
            protocols: ['ssh'],
            tags: ['a'],
            account: 'svc',
            extra_credential: { k: 'v' },
          },
        ],
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ projectsCreated: 1, devicesCreated: 1, accountsCreated: 1 });
      await expectAlive(t);
    });

    it("reads the provider and protocol spellings customers' inventories use, and exports them as written", async () => {
      type Listed = { id: string; provider: string; providerAsWritten: string; protocols: string[]; protocolsAsWritten: string[] };
      const deviceNamed = async (name: string) =>
        (await t.request('GET', `${API}/devices?search=${name}`, { token: admin })).json<{ items: Listed[] }>().items[0];
      const csv = csvOf([
        { project: 'Spelled', device: 'orders-db', provider: 'AWS', protocols: 'MySQL;SSH', private_ip: '10.2.0.1', account: 'root' },
        { project: 'Spelled', device: 'ledger', provider: 'On-Premises', protocols: 'PostgreSQL, SQL Server ,HTTPS' },
        { project: 'Spelled', device: 'old-switch', provider: 'Hetzner', protocols: 'Telnet;telnet' },
      ]);
      const dry = await importCsv(csv, '?dryRun=true');
      expect(dry.statusCode, dry.body).toBe(200);
      expect(dry.json<{ preview: { provider: string }[] }>().preview.map((r) => r.provider)).toEqual(['AWS', 'On-Premises', 'Hetzner']);
      const res = await importCsv(csv);
      expect(res.statusCode, res.body).toBe(200);
      expect(await deviceNamed('orders-db')).toMatchObject({
        provider: 'aws',
        providerAsWritten: 'AWS',
        protocols: ['mysql', 'ssh'],
        protocolsAsWritten: ['MySQL', 'SSH'],
      });
      expect(await deviceNamed('ledger')).toMatchObject({
        provider: 'on-prem',
        providerAsWritten: 'On-Premises',
        protocols: ['postgresql', 'mssql', 'https'],
        protocolsAsWritten: ['PostgreSQL', 'SQL Server', 'HTTPS'],
      });
      expect(await deviceNamed('old-switch')).toMatchObject({
        provider: 'other',
        providerAsWritten: 'Hetzner',
        protocols: ['telnet'],
        protocolsAsWritten: ['Telnet'],
      });
      // The provider filter and sort go by the value.
      const sorted = (await t.request('GET', `${API}/devices?sort=provider&limit=500`, { token: admin })).json<{ items: Listed[] }>();
      expect(sorted.items.find((d) => d.providerAsWritten === 'AWS')?.provider).toBe('aws');

      const exported = (await t.request('GET', `${API}/inventory/export?format=csv`, { token: admin })).body;
      const rows = parse<Record<string, string>>(exported, { columns: true }).filter((r) => r.project === 'Spelled');
      expect(rows.map((r) => [r.device, r.provider, r.protocols])).toEqual([
        ['ledger', 'On-Premises', 'PostgreSQL;SQL Server;HTTPS'],
        ['old-switch', 'Hetzner', 'Telnet'],
        ['orders-db', 'AWS', 'MySQL;SSH'],
      ]);
      // The export reads back unchanged; a JSON row and a device PATCH keep their spellings too.
      expect((await importCsv(exported)).statusCode).toBe(200);
      expect(await deviceNamed('orders-db')).toMatchObject({ providerAsWritten: 'AWS', protocolsAsWritten: ['MySQL', 'SSH'] });
      const json = await t.request('POST', `${API}/inventory/import`, {
        token: admin,
        body: [{ project: 'Spelled', device: 'ledger', provider: 'Microsoft Azure', protocols: ['MSSQL', 'Postgres'] }],
      });
      expect(json.statusCode, json.body).toBe(200);
      expect(await deviceNamed('ledger')).toMatchObject({
        provider: 'azure',
        providerAsWritten: 'Microsoft Azure',
        protocols: ['mssql', 'postgresql'],
        protocolsAsWritten: ['MSSQL', 'Postgres'],
      });
      const ledger = await deviceNamed('ledger');
      const patched = await t.request('PATCH', `${API}/devices/${ledger?.id ?? ''}`, {
        token: admin,
        body: { provider: 'GCP', protocols: ['ssh'] },
      });
      expect(patched.json()).toMatchObject({ provider: 'gcp', providerAsWritten: 'GCP', protocols: ['ssh'], protocolsAsWritten: ['ssh'] });
    });

    it('exports cells a spreadsheet would run as formulas behind a quote, and imports them back as they were', async () => {
      const names = [
        '=HYPERLINK("https://evil.example/","open")',
        '@SUM(A1:A9)',
        '+cmd|calc',
        '-2+3',
        "'=already quoted",
        "''@twice",
        "'plain quote",
        'plain',
      ];
      const created = await t.request('POST', `${API}/inventory/import`, {
        token: admin,
        body: names.map((device) => ({ project: 'Formulas', device, provider: 'other', url_port: '\t=1+1' })),
      });
      expect(created.statusCode, created.body).toBe(200);

      const exported = await t.request('GET', `${API}/inventory/export?format=csv`, { token: admin });
      const rows = parse<Record<string, string>>(exported.body, { columns: true }).filter((r) => r.project === 'Formulas');
      expect(rows.map((r) => r.device).sort()).toEqual(
        [
          '\'=HYPERLINK("https://evil.example/","open")',
          "'@SUM(A1:A9)",
          "'+cmd|calc",
          "'-2+3",
          "''=already quoted",
          "'''@twice",
          "'plain quote",
          'plain',
        ].sort(),
      );
      expect(rows.map((r) => r.url_port)).toEqual(names.map(() => "'\t=1+1"));

      // The file the export wrote reads back as the same devices with the same fields.
      const again = await importCsv(exported.body);
      expect(again.statusCode, again.body).toBe(200);
      expect(again.json()).toMatchObject({ projectsCreated: 0, devicesCreated: 0 });
      const listed = (await t.request('GET', `${API}/devices?limit=500`, { token: admin })).json<{
        items: { name: string; urlPort: string | null; projectId: string }[];
      }>().items;
      const formulas = listed.filter((d) => names.includes(d.name));
      expect(formulas.map((d) => d.name).sort()).toEqual([...names].sort());
      expect(formulas.every((d) => d.urlPort === '\t=1+1')).toBe(true);

      // A hand-written file: one quote comes off only before a formula character.
      const hand = csvOf([
        { project: 'Formulas by hand', device: "'=one", provider: 'other' },
        { project: 'Formulas by hand', device: "''=two", provider: 'other' },
        { project: 'Formulas by hand', device: "'three", provider: 'other' },
      ]);
      expect((await importCsv(hand)).statusCode).toBe(200);
      const byHand = (await t.request('GET', `${API}/devices?limit=500`, { token: admin })).json<{ items: { name: string }[] }>().items;
      expect(byHand.map((d) => d.name)).toEqual(expect.arrayContaining(['=one', "'=two", "'three"]));
    });
  });
});

describe.each(dialects)('requests without an account on %s', (dialect) => {
  /** No user yet: set-up is still open. */
  let fresh: TestApp;
  /** Set up: one administrator. */
  let done: TestApp;

  beforeAll(async () => {
    [fresh, done] = await Promise.all([createTestApp(dialect), createTestApp(dialect)]);
    await fresh.services.settings.set('setup_token_hash', hashToken('ghsetup_the-right-one'));
    await done.userWithToken('admin');
  });
  afterAll(async () => {
    await fresh.close();
    await done.close();
  });

  const setup = (app: TestApp, payload: string | Readable, headers: Record<string, string> = {}) =>
    app.app.inject({ method: 'POST', url: `${API}/setup`, payload, headers: { 'content-type': 'application/json', ...headers } });

  it('refuses a body nested thousands deep with 400 before any handler walks it', async () => {
    const deep = `${'['.repeat(3000)}${']'.repeat(3000)}`;
    const res = await setup(fresh, deep);
    expect(res.statusCode, res.body).toBe(400);
    expect(errorOf(res)).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('more than 64 levels deep') as string });
    // As an object, a string that looks like nesting, and on an authenticated route too.
    const object = await setup(fresh, `${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}`);
    expect(object.statusCode).toBe(400);
    const quoted = await setup(fresh, JSON.stringify({ setupToken: '['.repeat(3000), username: 'admin', password: 'a\\"[[[{{{ \\' }));
    expect(errorOf(quoted).code).toBe('UNAUTHENTICATED');
    const admin = (await done.userWithToken('admin')).token;
    const authed = await done.request('POST', `${API}/projects`, {
      token: admin,
      payload: deep,
      headers: { 'content-type': 'application/json' },
    });
    expect(authed.statusCode).toBe(400);
    expect((await fresh.request('GET', '/healthz')).statusCode).toBe(200);
  });

  it('answers a body larger than a sign-in needs with 413 on /setup and /auth/*', async () => {
    const big = JSON.stringify({ setupToken: 'x'.repeat(64 * 1024), username: 'admin', password: 'a-long-password' });
    const res = await setup(fresh, big);
    expect(res.statusCode).toBe(413);
    expect(errorOf(res).code).toBe('PAYLOAD_TOO_LARGE');
    const login = await done.request('POST', `${API}/auth/login`, {
      payload: JSON.stringify({ username: 'admin', password: 'x'.repeat(64 * 1024) }),
      headers: { 'content-type': 'application/json' },
    });
    expect(login.statusCode).toBe(413);
    // The longest passwords the API takes still fit, even written as \u escapes.
    const longest = JSON.stringify({ username: 'nobody', password: '\u00e9'.repeat(1024) }).replace(/\u00e9/g, '\\u00e9');
    const fits = await done.request('POST', `${API}/auth/login`, { payload: longest, headers: { 'content-type': 'application/json' } });
    expect(fits.statusCode).toBe(401);
  });

  it('refuses /setup after set-up before reading the body', async () => {
    // 60 MiB, made only as the server reads it: a server that waited for the whole body
    // would read it all (and answer about its JSON).
    const total = 60 * 1024 * 1024;
    let pulled = 0;
    const body = new Readable({
      read() {
        const chunk = Buffer.alloc(Math.min(64 * 1024, total - pulled), 0x20);
        pulled += chunk.length;
        this.push(chunk.length > 0 ? chunk : null);
      },
    });
    const res = await setup(done, body, { 'content-length': String(total) });
    expect(res.statusCode).toBe(409);
    expect(errorOf(res).code).toBe('CONFLICT');
    expect(pulled).toBeLessThan(total / 10);
  });

  it('limits POST /setup to 10 a minute from one address, counted at once', async () => {
    const app = await createTestApp(dialect);
    await app.services.settings.set('setup_token_hash', hashToken('ghsetup_the-right-one'));
    try {
      const body = JSON.stringify({ setupToken: 'ghsetup_wrong', username: 'admin', password: 'a-long-password' });
      const answers = await Promise.all(Array.from({ length: 15 }, () => setup(app, body)));
      const statuses = answers.map((r) => r.statusCode).sort();
      expect(statuses).toEqual([...Array<number>(10).fill(401), ...Array<number>(5).fill(429)]);
    } finally {
      await app.close();
    }
  });
});
