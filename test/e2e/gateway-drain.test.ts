import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { launchChromium, screenshot, signedInPage } from '../support/browser.js';
import { RemoteGatewayProcess, stopGateways } from '../support/gateway.js';
import { seedDevice, setupAdminToken } from '../support/seed.js';
import { cli, killServers, removeTempDirs, startServer, tempDir, type GatehouseServer } from '../support/server.js';
import { sshCommand } from '../support/ssh-client.js';
import { ensureSystemUser, freePort, TEST_USER_PASSWORD, TestSshd } from '../support/sshd.js';

const DEVICE_USER = 'gh-test-pw';
const ADMIN_PASSWORD = 'drain admin password';
const SEGMENT = 'gateway-drain';

interface Session {
  id: string;
  deviceName: string;
  gateway: string;
  result: string;
  startedAt: string;
}
interface AuditEvent {
  action: string;
  outcome: string;
  details: { gateway?: string; reason?: string; name?: string; changed?: boolean };
}

describe('draining a gateway: new sessions fail over or are refused, a live one goes on', () => {
  let dir: string;
  let server: GatehouseServer;
  let sshd: TestSshd;
  let sshPort: number;
  let entryPort: number;
  let token: string;
  let credentials: string;
  const gateways: Record<string, RemoteGatewayProcess> = {};
  let browser: Browser | undefined;
  let projectId: string;

  const ssh = (port: number, command: string) => sshCommand(port, 'admin:seg-box', command, ADMIN_PASSWORD);
  const gh = (...args: string[]) =>
    cli([...args, '--url', server.url, '--ca', server.certFile], { env: { GATEHOUSE_CREDENTIALS: credentials } });
  const api = <T>(method: string, route: string) => server.api<T>(token, method, route);
  const auditOf = async (action: string) => (await api<{ items: AuditEvent[] }>('GET', `/audit/events?action=${action}&limit=100`)).items;

  beforeAll(async () => {
    dir = tempDir('gatehouse-drain-');
    ensureSystemUser(DEVICE_USER, { password: TEST_USER_PASSWORD });
    sshd = await TestSshd.start(path.join(dir, 'sshd'));
    sshPort = await freePort();
    entryPort = await freePort();
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(sshPort) } });
    ({ credentials, token } = await setupAdminToken(server, ADMIN_PASSWORD, dir));
    const serverKey = (await api<{ publicKey: string }>('GET', '/gateways/server-key')).publicKey;
    for (const name of ['d1', 'd2']) {
      const g = await RemoteGatewayProcess.start({
        dataDir: path.join(dir, `gw-${name}`),
        serverKey,
        // d1 has its own SSH entry too: a drained gateway's entry refuses new sessions.
        ...(name === 'd1' ? { sshPort: entryPort } : {}),
      });
      gateways[name] = g;
      await server.api(token, 'POST', '/gateways', { name, segment: SEGMENT, address: g.address, publicKey: g.publicKey });
    }
    ({ id: projectId } = await server.api<{ id: string }>(token, 'POST', '/projects', { name: 'Drain' }));
    await seedDevice(server, token, {
      projectId,
      name: 'seg-box',
      protocols: ['ssh'],
      tags: [SEGMENT],
      urlPort: sshd.port,
      account: { username: DEVICE_USER, password: TEST_USER_PASSWORD },
    });
  });

  afterAll(async () => {
    await browser?.close();
    await stopGateways();
    killServers();
    await sshd?.stop();
    removeTempDirs();
  });

  it('fails new sessions over to the other gateway, then refuses saying so, while the live session finishes', async () => {
    // A session that lives until the test lets it end (the loop runs on the device).
    const flag = `/tmp/gh-drain-${randomBytes(6).toString('hex')}`;
    const live = ssh(sshPort, `echo started; while [ ! -e ${flag} ]; do sleep 0.1; done; echo still-alive`);
    const carrying = await vi.waitFor(
      async () => {
        const s = (await api<{ items: Session[] }>('GET', '/sessions?limit=20')).items.find(
          (i) => i.deviceName === 'seg-box' && i.result === 'active',
        );
        if (!s) throw new Error('the session to seg-box has not started yet');
        return s;
      },
      { timeout: 30_000, interval: 100 },
    );
    const drained = carrying.gateway;
    const other = drained === 'd1' ? 'd2' : 'd1';

    const drain = await gh('gateways', 'drain', drained);
    expect(drain.stdout, drain.stderr).toContain(`Gateway ${drained} is draining`);
    expect(drain.stdout).toContain('1 live session goes on');
    const table = await gh('gateways', 'list');
    expect(table.stdout).toMatch(new RegExp(`^${drained}\\s+${SEGMENT}\\s+online, draining`, 'm'));

    // Every new session goes through the other gateway of the segment.
    const before = (await auditOf('gateway.select')).length;
    for (let i = 0; i < 4; i++) expect((await ssh(sshPort, 'echo new')).stdout).toBe('new\n');
    const after = await auditOf('gateway.select');
    const selections = after.slice(0, after.length - before);
    expect(selections.map((e) => e.details.gateway)).toEqual([other, other, other, other]);

    // Draining the other too leaves the segment nothing: the refusal says why.
    expect((await gh('gateways', 'drain', other)).code).toBe(0);
    const refused = await ssh(sshPort, 'echo never');
    expect(refused.code).toBe(255);
    expect(refused.stderr).toContain(`Every online gateway in segment ${SEGMENT} is draining`);
    expect((await auditOf('gateway.select'))[0]).toMatchObject({
      outcome: 'failure',
      details: { reason: 'every gateway in segment draining' },
    });
    // d1's own SSH entry refuses too (it is one of the two): the server answers its sign-in.
    const entry = await ssh(entryPort, 'echo never');
    expect(entry.stderr).toContain('This gateway (d1) is draining');

    // The session that was live before goes on to its end.
    writeFileSync(flag, '');
    const finished = await live;
    rmSync(flag);
    expect(finished.stdout).toBe('started\nstill-alive\n');
    expect(finished.code).toBe(0);

    expect((await gh('gateways', 'resume', drained)).stdout).toContain(`Gateway ${drained} takes new sessions again`);
    expect((await gh('gateways', 'undrain', other)).code).toBe(0);
    expect((await ssh(sshPort, 'echo back')).stdout).toBe('back\n');
    const changes = [...(await auditOf('gateway.drain')), ...(await auditOf('gateway.resume'))];
    expect(changes.filter((e) => e.details.changed)).toHaveLength(4);
    expect(existsSync(flag)).toBe(false);
  });

  it('drains from the console with a confirm, and shows devices no gateway can reach, at 1366 and 390 px', async () => {
    browser = await launchChromium(server.certFile);
    const problems: string[][] = [];
    const page = await signedInPage(browser, server.url, 'admin', ADMIN_PASSWORD, problems);
    const { deviceId: lonelyId } = await seedDevice(server, token, {
      projectId,
      name: 'lonely-box',
      protocols: ['ssh'],
      tags: ['gateway-nobody'],
      urlPort: sshd.port,
      account: { username: DEVICE_USER, password: TEST_USER_PASSWORD },
    });
    const shots = async (p: Page, name: string) => {
      await p.setViewportSize({ width: 1366, height: 900 });
      await screenshot(p, `drain-${name}-1366`);
      await p.setViewportSize({ width: 390, height: 844 });
      await screenshot(p, `drain-${name}-390`);
      await p.setViewportSize({ width: 1366, height: 900 });
    };

    await page.goto(`${server.url}/gateways`);
    const row = page.locator('tr[data-gateway="d2"]');
    const asked = new Promise<string>((resolve) =>
      page.once('dialog', (dialog) => {
        resolve(dialog.message());
        void dialog.accept();
      }),
    );
    await row.getByRole('button', { name: 'Drain' }).click();
    expect(await asked).toContain('Drain d2? No new session will go through it');
    await row.getByText('draining', { exact: true }).waitFor();
    await row.getByRole('button', { name: 'Resume' }).waitFor();
    // The built-in gateway's address is the host the console was reached on, not 0.0.0.0.
    const builtIn = page.locator('tr[data-gateway="default"]');
    expect(await builtIn.textContent()).toContain(`127.0.0.1:${sshPort}`);
    expect(await builtIn.textContent()).toContain('built into the server');
    await shots(page, 'gateways');
    page.once('dialog', (dialog) => void dialog.accept());
    await row.getByRole('button', { name: 'Resume' }).click();
    await row.getByRole('button', { name: 'Drain' }).waitFor();
    expect((await auditOf('gateway.drain'))[0]).toMatchObject({ details: { name: 'd2', changed: true } });

    await page.goto(`${server.url}/devices`);
    const lonely = page.getByRole('row', { name: /lonely-box/ });
    await lonely.getByText('no gateway').waitFor();
    expect(
      await page
        .getByRole('row', { name: /seg-box/ })
        .getByText('no gateway')
        .count(),
    ).toBe(0);
    // The search box fills its place (it was 11rem in a 22rem slot: its placeholder cut, then a gap before Project).
    const search = await page.getByLabel('Search devices').boundingBox();
    const project = await page.getByText('Project', { exact: true }).first().boundingBox();
    expect(search?.width).toBeGreaterThan(300);
    expect((project?.x ?? 0) - ((search?.x ?? 0) + (search?.width ?? 0))).toBeLessThan(24);
    await shots(page, 'devices');

    await page.goto(`${server.url}/devices/${lonelyId}`);
    await page.getByText('No gateway can reach this device now.').waitFor();
    await page.getByText('No gateway is registered in gateway-nobody').waitFor();
    // Open terminal and Files are disabled buttons (no longer links), the reason their title and description.
    expect(await page.getByRole('link', { name: /Open terminal|Files/ }).count()).toBe(0);
    const terminal = page.getByRole('button', { name: 'Open terminal' });
    const files = page.getByRole('button', { name: 'Files' });
    for (const b of [terminal, files]) {
      expect(await b.isDisabled()).toBe(true);
      expect(await b.getAttribute('title')).toMatch(/^No gateway can reach this device now\. .*No gateway is registered in gateway-nobody/);
      expect(await b.getAttribute('aria-describedby')).toBe('gateway-refusal');
    }
    expect((await terminal.boundingBox())?.height).toBe((await files.boundingBox())?.height);
    await shots(page, 'device-unreachable');
    expect(problems.flat()).toEqual([]);
  });
});
