import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

/**
 * The runbook API: documents validated with problems naming the step and field, the
 * built-ins' names reserved, and runs refused before anything is created when a
 * request is wrong (input, device, privileged account) or a device is busy.
 */
describe.each(dialects)('runbook API on %s', (dialect) => {
  let t: TestApp;
  let admin: { id: string; username: string; token: string };
  let operator: { token: string };
  let withRoot: string;
  let withoutRoot: string;
  /** Accepts TCP and says nothing: a run's sign-in to "the gateway" waits, so its device stays locked. */
  let silent: net.Server;
  const sockets = new Set<net.Socket>();

  beforeAll(async () => {
    t = await createTestApp(dialect);
    admin = await t.userWithToken('admin');
    operator = await t.userWithToken('operator', 'ops');
    const project = (await t.request('POST', `${API}/projects`, { token: admin.token, body: { name: 'Lab' } })).json<{ id: string }>();
    const device = async (name: string) =>
      (
        await t.request('POST', `${API}/devices`, {
          token: admin.token,
          body: { projectId: project.id, name, provider: 'on-prem', protocols: ['ssh'], privateIp: '127.0.0.1', urlPort: '22' },
        })
      ).json<{ id: string }>().id;
    withRoot = await device('web-1');
    withoutRoot = await device('web-2');
    await t.request('POST', `${API}/accounts`, {
      token: admin.token,
      body: { deviceId: withRoot, username: 'root', password: 'root-Password-1' },
    });
    await t.request('POST', `${API}/accounts`, {
      token: admin.token,
      body: { deviceId: withoutRoot, username: 'app', password: 'app-Password-1' },
    });
    silent = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.runbookGateway.gateway = { host: '127.0.0.1', port: (silent.address() as net.AddressInfo).port, hostKeyFingerprint: 'SHA256:none' };
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    silent?.close();
    await t?.services.runbooks.idle();
    await t?.close();
  });

  const post = (url: string, body: unknown, token = admin.token) => t.request('POST', `${API}${url}`, { token, body });
  const runCount = async () => (await t.request('GET', `${API}/runbook-runs`, { token: admin.token })).json<{ total: number }>().total;

  it('lists the built-in runbooks with their inputs and steps', async () => {
    const res = await t.request('GET', `${API}/runbooks`, { token: admin.token });
    expect(res.statusCode).toBe(200);
    const items = res.json<{ items: { name: string; builtIn: boolean; steps: { id: string }[] }[] }>().items;
    expect(items.filter((r) => r.builtIn).map((r) => r.name)).toEqual(['ResetAccess', 'TroubleshootSSH']);
    const detail = await t.request('GET', `${API}/runbooks/TroubleshootSSH`, { token: admin.token });
    expect(detail.json<{ yaml: string }>().yaml).toContain('name: TroubleshootSSH');
  });

  it('refuses a document whose fix names no earlier check, naming the step and field', async () => {
    const yaml = 'name: Broken\nversion: 1\nsteps:\n  - { id: restart, type: fix, for: running, title: restart, run: "true" }\n';
    const res = await post('/runbooks', { yaml });
    expect(res.statusCode).toBe(400);
    expect(res.json<{ error: { message: string } }>().error.message).toContain(
      'steps[0] (restart).for: names "running", which is not an earlier check',
    );
  });

  it('refuses an unknown step type, and YAML that does not parse', async () => {
    const unknown = await post('/runbooks', { yaml: 'name: Odd\nversion: 1\nsteps:\n  - { id: boot, type: reboot, title: reboot }\n' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json<{ error: { message: string } }>().error.message).toContain('steps[0] (boot).type: unknown step type "reboot"');
    const bad = await post('/runbooks', { yaml: 'name: [unclosed\n' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ error: { message: string } }>().error.message).toContain('YAML');
  });

  it('adds, shows and removes a runbook; a built-in name is reserved', async () => {
    const yaml = 'name: Uptime\nversion: 2\nsteps:\n  - { id: up, type: check, title: uptime answers, run: uptime }\n';
    const added = await post('/runbooks', { yaml });
    expect(added.statusCode, added.body).toBe(201);
    expect(added.json()).toMatchObject({ name: 'Uptime', version: 2, builtIn: false, createdBy: admin.username });
    expect((await t.request('GET', `${API}/runbooks/Uptime?version=2`, { token: admin.token })).json<{ yaml: string }>().yaml).toBe(yaml);
    const reserved = await post('/runbooks', { yaml: yaml.replace('Uptime', 'ResetAccess') });
    expect(reserved.statusCode).toBe(409);
    expect((await t.request('DELETE', `${API}/runbooks/Uptime`, { token: admin.token })).statusCode).toBe(204);
    expect((await t.request('GET', `${API}/runbooks/Uptime`, { token: admin.token })).statusCode).toBe(404);
    expect((await t.request('DELETE', `${API}/runbooks/TroubleshootSSH`, { token: admin.token })).statusCode).toBe(409);
  });

  it('refuses a run with a missing input, naming it, and creates nothing', async () => {
    const res = await post('/runbook-runs', { runbook: 'ResetAccess', deviceIds: [withRoot], apply: true });
    expect(res.statusCode).toBe(400);
    expect(res.json<{ error: { message: string } }>().error.message).toContain('ResetAccess needs input account');
    const unknown = await post('/runbook-runs', { runbook: 'TroubleshootSSH', deviceIds: [withRoot], inputs: { prot: 22 } });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json<{ error: { message: string } }>().error.message).toContain('TroubleshootSSH has no input "prot"');
    const badValue = await post('/runbook-runs', { runbook: 'TroubleshootSSH', deviceIds: [withRoot], inputs: { sshdConfig: 'relative' } });
    expect(badValue.statusCode).toBe(400);
    expect(badValue.json<{ error: { message: string } }>().error.message).toContain('input sshdConfig must be an absolute path');
    expect(await runCount()).toBe(0);
  });

  it('refuses a run when a device has no privileged account, naming the device, and creates nothing for any device', async () => {
    const res = await post('/runbook-runs', { runbook: 'TroubleshootSSH', deviceIds: [withRoot, withoutRoot], apply: true });
    expect(res.statusCode).toBe(400);
    expect(res.json<{ error: { message: string } }>().error.message).toBe(
      'web-2 has no privileged account "root" in the vault: add one, or name one with privilegedAccount.',
    );
    const unknownRunbook = await post('/runbook-runs', { runbook: 'NoSuch', deviceIds: [withRoot] });
    expect(unknownRunbook.statusCode).toBe(400);
    const unknownDevice = await post('/runbook-runs', { runbook: 'TroubleshootSSH', deviceIds: ['no-such-device'] });
    expect(unknownDevice.statusCode).toBe(400);
    expect(await runCount()).toBe(0);
  });

  it('operators see no runbooks and run none', async () => {
    expect((await t.request('GET', `${API}/runbooks`, { token: operator.token })).statusCode).toBe(403);
    expect((await post('/runbook-runs', { runbook: 'TroubleshootSSH', deviceIds: [withRoot] }, operator.token)).statusCode).toBe(403);
  });

  it('8 runs at once on one device: exactly one is accepted, the others are 409 naming the device and the run', async () => {
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => post('/runbook-runs', { runbook: 'TroubleshootSSH', deviceIds: [withRoot] })),
    );
    const codes = answers.map((a) => a.statusCode).sort();
    expect(codes).toEqual([202, 409, 409, 409, 409, 409, 409, 409]);
    const accepted = answers.find((a) => a.statusCode === 202)?.json<{ id: string; items: { deviceName: string; state: string }[] }>();
    expect(accepted?.items).toEqual([expect.objectContaining({ deviceName: 'web-1' })]);
    for (const refused of answers.filter((a) => a.statusCode === 409)) {
      expect(refused.json<{ error: { message: string } }>().error.message).toMatch(/web-1|busy/);
    }
    const named = answers.filter((a) => a.statusCode === 409 && a.body.includes(accepted?.id ?? 'none'));
    expect(named.length).toBeGreaterThan(0);
    const shown = await t.request('GET', `${API}/runbook-runs/${accepted?.id}`, { token: admin.token });
    expect(shown.json()).toMatchObject({ kind: 'runbook', apply: false, privilegedAccount: 'root', runbook: { name: 'TroubleshootSSH' } });
    expect(await runCount()).toBe(1);
  });
});
