import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteGatewayProcess, stopGateways } from '../support/gateway.js';
import { sshCommand } from '../support/ssh-client.js';
import { freeRanges, ip, isRoot, reachable } from '../support/netns.js';
import { killServers, removeTempDirs, setupAdmin, startServer, tempDir, type GatehouseServer, savedToken } from '../support/server.js';
import { ensureSystemUser, freePort, TEST_USER_PASSWORD, TestSshd } from '../support/sshd.js';

const API = '/api/v1';
const DEVICE_USER = 'gh-test-pw';
const DEVICE_PASSWORD = TEST_USER_PASSWORD;
const ADMIN_PASSWORD = 'netns admin password';

/**
 * Two /24s this machine does not use, for the management link and the device network. Both
 * live only inside namespaces this test makes; an unreachable route keeps anything sent to
 * the device network from leaving.
 */
const [LINK, LAN] = (
  isRoot ? freeRanges(['203.0.113', '198.51.100', '198.18.7', '198.19.7', '192.0.2'], 2) : ['203.0.113', '198.51.100']
) as [string, string];
const HOST_SIDE = `${LINK}.1`;
const GATEWAY_SIDE = `${LINK}.2`;
const GATEWAY_LAN = `${LAN}.1`;
const DEVICE = `${LAN}.2`;

/**
 * The deployment the segments exist for: a device on a network only its gateway reaches.
 * Two network namespaces made here: the gateway's (linked to this one by a veth pair, the
 * management link) and the device's (linked only to the gateway's, no forwarding, no route
 * back). The server, in this namespace, cannot open a socket to the device; a connection
 * through the built-in gateway reaches it through the remote gateway.
 */
describe.skipIf(!isRoot)('a device only its segment gateway can reach (network namespaces)', () => {
  const tag = randomBytes(3).toString('hex');
  const gwNs = `gh-gw-${tag}`;
  const devNs = `gh-dev-${tag}`;
  const hostIf = `ghh${tag}`;
  let dir: string;
  let server: GatehouseServer;
  let sshd: TestSshd;
  let gateway: RemoteGatewayProcess;
  let sshPort: number;
  let token: string;

  const api = async <T>(method: string, route: string, body?: unknown): Promise<T> => {
    const res = await server.request(`${API}${route}`, { method, body, headers: { authorization: `Bearer ${token}` } });
    if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${res.body}`);
    return (res.body === '' ? undefined : JSON.parse(res.body)) as T;
  };
  const ssh = (user: string, command: string) => sshCommand(sshPort, user, command, ADMIN_PASSWORD);

  beforeAll(async () => {
    dir = tempDir('gatehouse-netns-');
    ip('netns', 'add', gwNs);
    ip('netns', 'add', devNs);
    // Management link: this namespace ↔ the gateway's.
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'mgmt0', 'netns', gwNs);
    ip('addr', 'add', `${HOST_SIDE}/24`, 'dev', hostIf);
    ip('link', 'set', hostIf, 'up');
    ip('-n', gwNs, 'addr', 'add', `${GATEWAY_SIDE}/24`, 'dev', 'mgmt0');
    ip('-n', gwNs, 'link', 'set', 'mgmt0', 'up');
    ip('-n', gwNs, 'link', 'set', 'lo', 'up');
    // Device network: the gateway's namespace ↔ the device's, and nothing else.
    ip('-n', gwNs, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', devNs);
    ip('-n', gwNs, 'addr', 'add', `${GATEWAY_LAN}/24`, 'dev', 'lan0');
    ip('-n', gwNs, 'link', 'set', 'lan0', 'up');
    ip('-n', devNs, 'addr', 'add', `${DEVICE}/24`, 'dev', 'eth0');
    ip('-n', devNs, 'link', 'set', 'eth0', 'up');
    ip('-n', devNs, 'link', 'set', 'lo', 'up');
    // From here the device network is unreachable, at once and locally: nothing leaves the machine.
    ip('route', 'add', 'unreachable', `${LAN}.0/24`);

    ensureSystemUser(DEVICE_USER, { password: DEVICE_PASSWORD });
    sshd = await TestSshd.start(path.join(dir, 'sshd'), { listenAddress: DEVICE, port: 22, netns: devNs });
    sshPort = await freePort();
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(sshPort) } });
    const credentials = path.join(dir, 'credentials.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    token = savedToken(credentials);
    const { publicKey: serverKey } = await api<{ publicKey: string }>('GET', '/gateways/server-key');
    gateway = await RemoteGatewayProcess.start({ dataDir: path.join(dir, 'gw'), serverKey, host: GATEWAY_SIDE, port: 9443, netns: gwNs });
  });

  afterAll(async () => {
    await stopGateways();
    killServers();
    await sshd?.stop();
    for (const ns of [gwNs, devNs]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // Not made: beforeAll failed early.
      }
    }
    try {
      ip('link', 'del', hostIf);
    } catch {
      // Gone with the namespace.
    }
    try {
      ip('route', 'del', 'unreachable', `${LAN}.0/24`);
    } catch {
      // Not added.
    }
    removeTempDirs();
  });

  it('reaches the isolated device through its gateway, never directly', async () => {
    // What the server's namespace can and cannot reach.
    expect(await reachable(GATEWAY_SIDE, 9443)).toBe(true);
    expect(await reachable(DEVICE, 22)).toBe(false);

    const registered = await api<{ status: string; statusReason: string | null }>('POST', '/gateways', {
      name: 'lab-gw',
      segment: 'gateway-lab',
      address: gateway.address,
      publicKey: gateway.publicKey,
    });
    expect(registered.status, registered.statusReason ?? '').toBe('online');

    const project = await api<{ id: string }>('POST', '/projects', { name: 'Isolated' });
    for (const [name, tags] of [
      ['lab-box', ['gateway-lab']],
      ['stray-box', []],
    ] as const) {
      const device = await api<{ id: string }>('POST', '/devices', {
        projectId: project.id,
        name,
        provider: 'on-prem',
        protocols: ['ssh'],
        privateIp: DEVICE,
        tags,
      });
      await api('POST', '/accounts', { deviceId: device.id, username: DEVICE_USER, password: DEVICE_PASSWORD });
    }

    const run = await ssh('admin:lab-box', 'hostname -I; echo reached');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(DEVICE);
    expect(run.stdout).toContain('reached');
    const { items } = await api<{ items: { deviceName: string; gateway: string; segment: string | null; result: string }[] }>(
      'GET',
      '/sessions?limit=10',
    );
    expect(items.find((s) => s.deviceName === 'lab-box')).toMatchObject({ gateway: 'lab-gw', segment: 'gateway-lab', result: 'success' });
    // The device's sshd saw the gateway's address, not the server's.
    expect(sshd.log).toContain(`from ${GATEWAY_LAN}`);

    // Untagged, it may be given to the default gateway first: that one cannot reach it, and
    // the connection fails over to the one that can.
    for (let i = 0; i < 4; i++) {
      const stray = await ssh('admin:stray-box', 'echo ok');
      expect(stray.stdout, stray.stderr).toBe('ok\n');
    }

    // In tunnel mode only the default gateway may reach devices: from here it cannot.
    await api('PUT', '/gateway-settings', { tunnelMode: true });
    const tunnelled = await ssh('admin:lab-box', 'echo never');
    expect(tunnelled.code).toBe(255);
    expect(tunnelled.stdout).toBe('');
    expect(tunnelled.stderr).toContain(`default: lab-box (${DEVICE}:22) is unreachable from the gateway`);
    await api('PUT', '/gateway-settings', { tunnelMode: false });
  });
});
