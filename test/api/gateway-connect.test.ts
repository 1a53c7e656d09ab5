import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { directDialer, type SshGateway } from '@gatehouse/gateway';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, auditEvents } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { startBuiltInGateway } from '../support/built-in-gateway.js';
import { dialects } from '../support/db.js';

/** What happens between a gateway sign-in and the connection to the device, through the server's broker. */
describe.each(dialects)('connecting through the built-in gateway on %s', (dialect) => {
  let t: TestApp;
  let gateway: SshGateway;
  let device: net.Server;
  let dir: string;
  let operator: { id: string; username: string; password: string };
  let adminUser: { username: string; password: string; token: string };
  let grantId: string;
  /** Connections that reached the device. */
  const reached: net.Socket[] = [];

  beforeAll(async () => {
    t = await createTestApp(dialect);
    dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-gw-connect-'));
    // The device only has to accept TCP: the credential is fetched once the path to it is open.
    device = net.createServer((socket) => {
      socket.on('error', () => undefined);
      reached.push(socket);
    });
    await new Promise<void>((resolve) => device.listen(0, '127.0.0.1', resolve));
    adminUser = await t.userWithToken('admin');
    const admin = adminUser.token;
    operator = await t.userWithToken('operator');
    const project = (await t.request('POST', `${API}/projects`, { token: admin, body: { name: 'Revoked' } })).json<{ id: string }>();
    const created = await t.request('POST', `${API}/devices`, {
      token: admin,
      body: {
        projectId: project.id,
        name: 'box',
        provider: 'on-prem',
        protocols: ['ssh'],
        privateIp: '127.0.0.1',
        urlPort: String((device.address() as net.AddressInfo).port),
      },
    });
    expect(created.statusCode).toBe(201);
    const deviceId = created.json<{ id: string }>().id;
    await t.request('POST', `${API}/accounts`, { token: admin, body: { deviceId, username: 'root', password: 'secret' } });
    // A database server from a customer's inventory: listed, exported, never brokered.
    const database = await t.request('POST', `${API}/devices`, {
      token: admin,
      body: { projectId: project.id, name: 'orders-db', provider: 'AWS', protocols: ['MySQL'], privateIp: '127.0.0.1' },
    });
    await t.request('POST', `${API}/accounts`, {
      token: admin,
      body: { deviceId: database.json<{ id: string }>().id, username: 'root', password: 'secret' },
    });
    const grant = await t.request('POST', `${API}/grants`, { token: admin, body: { userId: operator.id, projectId: project.id } });
    grantId = grant.json<{ id: string }>().id;
    const direct = directDialer('gatehouse', 5_000);
    gateway = await startBuiltInGateway(t, dir, {
      // The administrator revokes the grant after the user signed in, before the gateway reaches the device.
      dial: async (target, context) => {
        expect((await t.request('DELETE', `${API}/grants/${grantId}`, { token: admin })).statusCode).toBe(204);
        return direct(target, context);
      },
    });
  });
  afterAll(async () => {
    await gateway?.stop();
    for (const socket of reached) socket.destroy();
    await new Promise((resolve) => device?.close(resolve));
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Signs in with the password, runs `command`, and answers what the gateway wrote to stderr. */
  const runThroughGateway = (username: string, password: string, command: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const client = new ssh2.Client();
      client.on('ready', () => {
        client.exec(command, (error, channel) => {
          if (error) return reject(error);
          let stderr = '';
          channel.resume();
          channel.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
          channel.on('close', () => {
            client.end();
            resolve(stderr);
          });
        });
      });
      client.on('error', reject);
      client.connect({ host: '127.0.0.1', port: gateway.port, username, password, readyTimeout: 30_000 });
    });

  it('tells a user that the gateway does not broker a device that lists only such protocols, and does not dial it', async () => {
    const told = await runThroughGateway(`${adminUser.username}:orders-db`, adminUser.password, 'id');
    expect(told).toBe(
      "gatehouse: orders-db is listed for MySQL, which the gateway does not broker (it brokers SSH, SFTP, RDP and VNC). Connect with that protocol's own client, not through Gatehouse; if the device also runs sshd, an administrator can add ssh to its protocols.\r\n",
    );
    expect(reached).toHaveLength(0);
    const denied = await auditEvents(t, adminUser.token, { action: 'gateway.authorize' });
    expect(denied[0]).toMatchObject({ outcome: 'denied', details: { device: 'orders-db', reason: 'protocol not brokered' } });
  });

  it('tells a user whose grant was revoked between sign-in and connect why, not "an internal error"', async () => {
    const told = await runThroughGateway(`${operator.username}:box`, operator.password, 'id');
    expect(told).not.toContain('internal error');
    expect(told).toBe('gatehouse: You have no grant for this account. Ask an administrator for access.\r\n');
    const failed = await t.gatewaySessions.list({ limit: 10 });
    expect(failed.items.map((s) => [s.result, s.reason])).toContainEqual([
      'failure',
      'You have no grant for this account. Ask an administrator for access.',
    ]);
    // The path to the device, opened before the refusal, is closed with it.
    expect(reached).toHaveLength(1);
    await expect.poll(() => reached.filter((socket) => !socket.closed).length).toBe(0);
  });
});
