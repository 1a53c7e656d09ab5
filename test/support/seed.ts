import path from 'node:path';
import { savedToken, setupAdmin, type GatehouseServer } from './server.js';

/**
 * `gatehouse setup` for an e2e test's administrator, with the CLI's credentials in
 * `<dir>/credentials.json` (for the test's own CLI calls): that file and the API token in it.
 */
export async function setupAdminToken(
  server: GatehouseServer,
  password: string,
  dir: string,
): Promise<{ credentials: string; token: string }> {
  const credentials = path.join(dir, 'credentials.json');
  await setupAdmin(server, password, { env: { GATEHOUSE_CREDENTIALS: credentials } });
  return { credentials, token: savedToken(credentials) };
}

/** A device seedDevice adds: a peer of the test on this machine, listening at `urlPort`, with one vaulted account. */
export interface SeedDevice {
  projectId: string;
  name: string;
  protocols: string[];
  /** Its tags (a `gateway-…` tag puts it in that segment). */
  tags?: string[];
  /** A port, or a URL with one (`vnc://127.0.0.1:5901`). */
  urlPort: string | number;
  account: { username: string; password?: string; privateKey?: string };
}

/** Adds the device (on-prem, at 127.0.0.1) and its account through the API as `token`: their ids. */
export async function seedDevice(
  server: GatehouseServer,
  token: string,
  seed: SeedDevice,
): Promise<{ deviceId: string; accountId: string }> {
  const { account, urlPort, ...device } = seed;
  const { id: deviceId } = await server.api<{ id: string }>(token, 'POST', '/devices', {
    ...device,
    provider: 'on-prem',
    privateIp: '127.0.0.1',
    urlPort: String(urlPort),
  });
  const { id: accountId } = await server.api<{ id: string }>(token, 'POST', '/accounts', { deviceId, ...account });
  return { deviceId, accountId };
}
