import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { generateLinkIdentity } from '@gatehouse/gateway';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { API, createInventory, loginOrThrow, sessionHeaders } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { cliAgainst } from '../support/cli-in-process.js';
import { dialects } from '../support/db.js';

interface Listed {
  action: string;
  targetType: string | null;
  targetId: string | null;
  targetName: string | null;
  ip: string | null;
  details: Record<string, unknown>;
}

/**
 * The audit log as the console reads it: the action filter matches part of an action,
 * targets carry their names, and a settings save records only what it changed.
 */
describe.each(dialects)('audit list on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  const list = async (query: string) => {
    const res = await t.request('GET', `${API}/audit/events?${query}`, { token: admin });
    expect(res.statusCode, res.body).toBe(200);
    return res.json<{ items: Listed[] }>().items;
  };

  beforeAll(async () => {
    t = await createTestApp(dialect, { breakglassRetryDelays: '0' }, { tls: true });
    admin = (await t.userWithToken('admin')).token;
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await t.close();
  });

  it('finds events by part of their action, case-insensitively; action= stays exact', async () => {
    await createInventory(t, admin, { project: 'Lab', device: 'web-1' });
    const byPart = await list('actionContains=CREATE&limit=100');
    expect(new Set(byPart.map((e) => e.action))).toEqual(new Set(['project.create', 'device.create', 'account.create']));
    expect(await list('action=create')).toEqual([]);
    // LIKE's wildcards are plain characters here.
    expect(await list('actionContains=%25')).toEqual([]);
  });

  it("names a device, project or user target, and keeps the client's address", async () => {
    const { deviceId } = await createInventory(t, admin, { project: 'Named', device: 'db-1' });
    const [created] = await list(`action=device.create&targetId=${deviceId}`);
    expect(created).toMatchObject({ targetType: 'device', targetId: deviceId, targetName: 'Named/db-1', ip: '127.0.0.1' });
    const [project] = await list('action=project.create&limit=1');
    expect(project?.targetName).toBe('Named');
    // A target that no longer exists keeps its id, and the name its events recorded when written.
    expect((await t.request('DELETE', `${API}/devices/${deviceId}`, { token: admin })).statusCode).toBe(204);
    const [gone] = await list(`action=device.create&targetId=${deviceId}`);
    expect(gone).toMatchObject({ targetId: deviceId, targetName: 'Named/db-1' });
    const [deleted] = await list(`action=device.delete&targetId=${deviceId}`);
    expect(deleted).toMatchObject({ targetId: deviceId, targetName: 'Named/db-1', details: { targetName: 'Named/db-1' } });
  });

  it('names account, token, grant and gateway targets, and keeps their names once they are deleted', async () => {
    const { projectId, deviceId, accountId } = await createInventory(t, admin, { project: 'Acct', device: 'web-9', account: 'deploy' });
    const ok = async (method: 'POST' | 'PATCH' | 'DELETE', url: string, body?: Record<string, unknown>) => {
      const res = await t.request(method, `${API}${url}`, { token: admin, ...(body ? { body } : {}) });
      expect(res.statusCode, res.body).toBeLessThan(300);
      return res.statusCode === 204 ? { id: '' } : res.json<{ id: string }>();
    };
    const named = async (action: string, targetId: string) => (await list(`action=${action}&targetId=${targetId}`))[0]?.targetName;
    await ok('PATCH', `/accounts/${accountId}`, { password: 'another-account-password' });
    expect(await named('account.create', accountId)).toBe('Acct/web-9:deploy');
    expect(await named('account.update', accountId)).toBe('Acct/web-9:deploy');

    const { id: userId } = await ok('POST', '/users', { username: 'gina', password: 'a-long-enough-password', role: 'operator' });
    const { id: grantId } = await ok('POST', '/grants', { userId, projectId, deviceId, accountId });
    expect(await named('grant.create', grantId)).toBe('gina → Acct/web-9:deploy');
    // An API token is made in a signed-in session.
    const owner = await t.userWithToken('operator');
    const session = await loginOrThrow(t, owner.username, owner.password);
    const made = await t.request('POST', `${API}/tokens`, { headers: sessionHeaders(session), body: { name: 'ci-deploy', scope: 'read' } });
    expect(made.statusCode, made.body).toBe(201);
    const tokenId = made.json<{ id: string }>().id;
    expect(await named('token.create', tokenId)).toBe(`ci-deploy (${owner.username})`);
    const { id: gatewayId } = await ok('POST', '/gateways', {
      name: 'gw-named',
      address: '127.0.0.1:1',
      publicKey: generateLinkIdentity('gw-named').publicKey,
    });
    expect(await named('gateway.register', gatewayId)).toBe('gw-named');

    // Deleted, each still reads by the name it had; the raw JSON keeps the ids.
    await ok('DELETE', `/grants/${grantId}`);
    await ok('DELETE', `/tokens/${tokenId}`);
    await ok('DELETE', `/gateways/${gatewayId}`);
    await ok('DELETE', `/accounts/${accountId}`);
    expect(await named('account.update', accountId)).toBe('Acct/web-9:deploy');
    expect(await named('account.delete', accountId)).toBe('Acct/web-9:deploy');
    expect(await named('grant.delete', grantId)).toBe('gina → Acct/web-9:deploy');
    expect(await named('token.delete', tokenId)).toBe(`ci-deploy (${owner.username})`);
    expect(await named('gateway.delete', gatewayId)).toBe('gw-named');
    const [raw] = await list(`action=account.delete&targetId=${accountId}`);
    expect(raw).toMatchObject({ targetType: 'account', targetId: accountId });
    // The whole project gone: its events stay readable too.
    await ok('DELETE', `/projects/${projectId}`);
    expect(await named('project.delete', projectId)).toBe('Acct');
    expect(await named('device.create', deviceId)).toBe('Acct/web-9');
  });

  it('records only the settings a save changed, before and after, secrets masked', async () => {
    const recipient = await identityToRecipient(await generateX25519Identity());
    const settings = {
      provider: 's3',
      executeTime: '03:00',
      accessKeyId: 'AKIA-audit-list',
      secretAccessKey: 'audit-list-first-secret',
      bucket: 'breakglass',
      protocol: 'http',
      // `.invalid` never resolves (RFC 6761): the Test fails at once.
      url: 'storage.example.invalid:9000',
      pathStyle: true,
      ageRecipients: [recipient],
    };
    const save = async (body: Record<string, unknown>) => {
      const res = await t.request('PUT', `${API}/breakglass/settings?save=always`, { token: admin, body });
      expect(res.statusCode, res.body).toBe(200);
      const [event] = await list('action=breakglass.settings_update&limit=1');
      return event?.details as { fields: string[]; changes: Record<string, unknown> };
    };

    const first = await save(settings);
    expect(first.changes.bucket).toEqual({ before: null, after: 'breakglass' });
    expect(first.changes.secretAccessKey).toBe('changed');

    // The whole form sent again with one field changed and the secret as the mask: one change.
    const second = await save({ ...settings, executeTime: '04:30', secretAccessKey: '********' });
    expect(second.fields).toEqual(['executeTime']);
    expect(second.changes).toEqual({ executeTime: { before: '03:00', after: '04:30' } });

    // A new secret is recorded as changed, never by value.
    const third = await save({ ...settings, executeTime: '04:30', secretAccessKey: 'audit-list-second-secret' });
    expect(third.changes).toEqual({ secretAccessKey: 'changed' });
    const all = JSON.stringify(await list('limit=1000'));
    expect(all).not.toContain('audit-list-first-secret');
    expect(all).not.toContain('audit-list-second-secret');
  });

  it('records only the maintenance settings a save changed; a webhook URL as "changed", never its value', async () => {
    const save = async (body: Record<string, unknown>) => {
      const res = await t.request('PUT', `${API}/maintenance/settings`, { token: admin, body });
      expect(res.statusCode, res.body).toBe(200);
      const [event] = await list('action=maintenance.settings_changed&limit=1');
      return event?.details;
    };
    const hook = 'https://hooks.example.invalid/maintenance?token=audit-list-hook-secret';
    expect(await save({ maxDurationMinutes: 90, requiredApprovals: 1, warnMinutes: 5, notifyWebhookUrl: hook })).toMatchObject({
      fields: ['maxDurationMinutes', 'notifyWebhookUrl'],
      changes: { maxDurationMinutes: { before: 480, after: 90 }, notifyWebhookUrl: 'changed' },
    });
    // The whole form again, the URL as the mask: one change.
    expect(await save({ maxDurationMinutes: 90, requiredApprovals: 1, warnMinutes: 10, notifyWebhookUrl: '********' })).toMatchObject({
      fields: ['warnMinutes'],
      changes: { warnMinutes: { before: 5, after: 10 } },
    });
    expect(JSON.stringify(await list('limit=1000'))).not.toContain('audit-list-hook-secret');
  });

  it("records only the gateway settings and a gateway's fields a save changed", async () => {
    const put = async (body: Record<string, unknown>) => {
      const res = await t.request('PUT', `${API}/gateway-settings`, { token: admin, body });
      expect(res.statusCode, res.body).toBe(200);
      const [event] = await list('action=gateway.settings&limit=1');
      return event?.details;
    };
    expect(await put({ tunnelMode: false, portForwarding: true })).toMatchObject({
      fields: ['portForwarding'],
      changes: { portForwarding: { before: false, after: true } },
    });
    expect(await put({ tunnelMode: false, portForwarding: true })).toMatchObject({ fields: [], changes: {} });
    await put({ portForwarding: false });

    const created = await t.request('POST', `${API}/gateways`, {
      token: admin,
      body: { name: 'gw-audit', segment: 'gateway-dmz', address: '127.0.0.1:1', publicKey: generateLinkIdentity('gw-audit').publicKey },
    });
    expect(created.statusCode, created.body).toBe(201);
    const id = created.json<{ id: string }>().id;
    const patched = await t.request('PATCH', `${API}/gateways/${id}`, {
      token: admin,
      body: { name: 'gw-audit', segment: 'gateway-core', address: '127.0.0.1:1' },
    });
    expect(patched.statusCode, patched.body).toBe(200);
    const [update] = await list(`action=gateway.update&targetId=${id}`);
    expect(update?.details).toMatchObject({ fields: ['segment'], changes: { segment: { before: 'gateway-dmz', after: 'gateway-core' } } });
  });

  it('./gatehouse audit list names each target; --json keeps the ids; a bad --before or --limit names the option', async () => {
    const { accountId } = await createInventory(t, admin, { project: 'Cli', device: 'app-1', account: 'svc' });
    expect((await t.request('DELETE', `${API}/accounts/${accountId}`, { token: admin })).statusCode).toBe(204);
    const gatehouse = await cliAgainst(t, admin);
    const table = await gatehouse('audit', 'list', '--action', 'account.delete', '--limit', '1');
    expect(table.code, table.err).toBe(0);
    expect(table.out).toMatch(/^#\s+TIME\s+ACTOR\s+ACTION\s+TARGET\s+OUTCOME$/m);
    expect(table.out).toContain('account.delete  account Cli/app-1:svc  success');
    expect(table.out).not.toContain(accountId);
    const json = await gatehouse('audit', 'list', '--action', 'account.delete', '--limit', '1', '--json');
    expect(JSON.parse(json.out)).toMatchObject({ items: [{ targetType: 'account', targetId: accountId, targetName: 'Cli/app-1:svc' }] });
    // Not a whole number in range: refused before any request, naming the option (not the API's beforeSeq).
    for (const [option, value] of [
      ['--before', 'yesterday'],
      ['--before', '0'],
      ['--limit', '1.5'],
      ['--limit', '5000'],
    ] as const) {
      const run = await gatehouse('audit', 'list', option, value);
      expect(run.code, `${option} ${value}`).not.toBe(0);
      expect(run.err).toContain(option);
    }
  });
});
