import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, createInventory } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
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
    t = await createTestApp(dialect, { breakglassRetryDelays: '0' });
    admin = (await t.userWithToken('admin')).token;
  });
  afterAll(() => t.close());

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
    // A target that no longer exists keeps its id, with no name.
    expect((await t.request('DELETE', `${API}/devices/${deviceId}`, { token: admin })).statusCode).toBe(204);
    const [gone] = await list(`action=device.create&targetId=${deviceId}`);
    expect(gone).toMatchObject({ targetId: deviceId, targetName: null });
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
      return event?.details as { fields: string[]; changes: Record<string, { before: unknown; after: unknown }> };
    };

    const first = await save(settings);
    expect(first.changes.bucket).toEqual({ before: null, after: 'breakglass' });
    expect(first.changes.secretAccessKey).toEqual({ before: null, after: '********' });

    // The whole form sent again with one field changed and the secret as the mask: one change.
    const second = await save({ ...settings, executeTime: '04:30', secretAccessKey: '********' });
    expect(second.fields).toEqual(['executeTime']);
    expect(second.changes).toEqual({ executeTime: { before: '03:00', after: '04:30' } });

    // A new secret is recorded as changed, never by value.
    const third = await save({ ...settings, executeTime: '04:30', secretAccessKey: 'audit-list-second-secret' });
    expect(third.changes).toEqual({ secretAccessKey: { before: '********', after: '********' } });
    const all = JSON.stringify(await list('limit=1000'));
    expect(all).not.toContain('audit-list-first-secret');
    expect(all).not.toContain('audit-list-second-secret');
  });
});
