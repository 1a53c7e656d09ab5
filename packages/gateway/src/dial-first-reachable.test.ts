import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthorizedTarget } from './broker.js';
import { dialFirstReachable } from './dial-first-reachable.js';

/** A port nothing listens on: bound once, then closed. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const targetOn = (port: number): AuthorizedTarget => ({
  projectId: 'p',
  projectName: 'p',
  deviceId: 'd',
  deviceName: 'db-1',
  accountId: 'a',
  accountUsername: 'root',
  host: '127.0.0.1',
  port,
  segment: 'office1',
  accessType: 'ssh',
});

const noIdentity = () => Promise.reject(new Error('no remote gateway is tried here'));

describe('dialFirstReachable', () => {
  let device: net.Server;
  let open: number;
  beforeAll(async () => {
    device = net.createServer((socket) => socket.end());
    await new Promise<void>((resolve) => device.listen(0, '127.0.0.1', resolve));
    open = (device.address() as net.AddressInfo).port;
  });
  afterAll(() => new Promise((resolve) => device.close(resolve)));

  it('connects through the first candidate that reaches the device, keeping the failed tries', async () => {
    const seen: string[] = [];
    const outcome = await dialFirstReachable(targetOn(open), [{ name: 'a1' }, { name: 'a2' }], {
      identity: noIdentity,
      timeoutMs: 2_000,
      onFailedTry: async (candidate) => void seen.push(candidate.name),
    });
    expect(outcome).toMatchObject({ ok: true, gateway: 'a1', failedOver: [] });
    if (outcome.ok) outcome.socket.destroy();
    expect(seen).toEqual([]);
  });

  it('tells the user what every candidate answered when none reaches the device', async () => {
    const port = await closedPort();
    const seen: string[] = [];
    const outcome = await dialFirstReachable(targetOn(port), [{ name: 'a1' }, { name: 'a2' }], {
      identity: noIdentity,
      timeoutMs: 2_000,
      onFailedTry: async (candidate, _failed, linkError) => void seen.push(`${candidate.name}:${linkError === undefined}`),
    });
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(seen).toEqual(['a1:true', 'a2:true']);
    expect(outcome.failedOver.map((t) => t.gateway)).toEqual(['a1', 'a2']);
    expect(outcome.reason).toBe(
      `No gateway of segment office1 could reach db-1 (127.0.0.1:${port}). ` +
        `a1: db-1 (127.0.0.1:${port}) refused the connection: nothing listens on that port. Check the device's address and port, and that sshd runs. ` +
        `a2: db-1 (127.0.0.1:${port}) refused the connection: nothing listens on that port. Check the device's address and port, and that sshd runs.`,
    );
  });

  it('names the desktop protocol’s port and server, not sshd, when a VNC or RDP device refuses', async () => {
    const port = await closedPort();
    const reasons = await Promise.all(
      (['vnc', 'rdp'] as const).map(async (protocol) => {
        const outcome = await dialFirstReachable({ ...targetOn(port), segment: null, protocol }, [{ name: 'built-in' }], {
          identity: noIdentity,
          timeoutMs: 2_000,
        });
        return outcome.ok ? 'connected' : outcome.reason;
      }),
    );
    expect(reasons).toEqual([
      `built-in: db-1 (127.0.0.1:${port}) refused the connection: nothing listens on that port. ` +
        `Check the device's address and VNC port (vnc://host:port in its URL/Port, else 5900), and that its VNC server runs.`,
      `built-in: db-1 (127.0.0.1:${port}) refused the connection: nothing listens on that port. ` +
        `Check the device's address and RDP port (rdp://host:port in its URL/Port, else 3389), and that its RDP service runs.`,
    ]);
  });
});
