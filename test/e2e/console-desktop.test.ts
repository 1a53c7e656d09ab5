import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, newPage, screenshot, showsColourAt, signIn } from '../support/browser.js';
import { seedDevice, setupAdminToken } from '../support/seed.js';
import { killServers, removeTempDirs, startServer, tempDir, type GatehouseServer } from '../support/server.js';
import { freePort } from '../support/sshd.js';
import { startVncTarget, stopVncTargets, VNC_TARGET_COLOUR, VNC_TARGET_SIZE, type RunningVncTarget } from '../support/vnc.js';

const ADMIN_PASSWORD = 'console desktop admin';
const VNC_PASSWORD = 'vault-pw';
/** Every printable ASCII character, space to tilde. */
const PRINTABLE = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)).join('');

interface Session {
  id: string;
  kind: string | null;
  result: string;
  reason: string | null;
  recorded: boolean;
  endedAt: string | null;
}

/** TCP connections established to `port` on this machine (the gateway's to the VNC target). */
const connectionsTo = (port: number) =>
  execFileSync('ss', ['-Htn', 'state', 'established', `( dport = :${port} )`])
    .toString()
    .trim()
    .split('\n')
    .filter(Boolean).length;

/**
 * The browser desktop in Chromium against the real server, its built-in gateway and a
 * TigerVNC target with a known background and an xterm: the page shows the desktop (a
 * screenshot region has the target's colour), every printable ASCII character typed in the
 * page reaches the xterm, the clipboard goes both ways, Disconnect ends the session, and the
 * recording replays in the session page with seek. Closing the tab instead ends the session
 * too: the device connection closes, the recording replays, `session.end` is audited.
 */
describe('web console: browser VNC desktop and its replay', () => {
  let dir: string;
  let server: GatehouseServer;
  let target: RunningVncTarget;
  let browser: Browser;
  let page: Page;
  let problems: string[];
  let token: string;
  let deviceId: string;
  let wrongId: string;
  let typed: string;

  const api = <T>(method: string, route: string, body?: unknown) => server.api<T>(token, method, route, body);

  beforeAll(async () => {
    dir = tempDir('gatehouse-console-desktop-');
    typed = path.join(dir, 'typed');
    // The xterm (top left, over the background) writes each line typed into it to `typed`.
    target = await startVncTarget({
      kind: 'tigervnc',
      password: VNC_PASSWORD,
      content: ['xterm', '-geometry', '80x8+0+0', '-e', 'sh', '-c', `cat > ${typed}`],
    });
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(await freePort()) } });
    ({ token } = await setupAdminToken(server, ADMIN_PASSWORD, dir));
    const project = await api<{ id: string }>('POST', '/projects', { name: 'Lab' });
    const desk = async (name: string, password: string) =>
      (
        await seedDevice(server, token, {
          projectId: project.id,
          name,
          protocols: ['vnc'],
          urlPort: target.port,
          account: { username: 'desktop', password },
        })
      ).deviceId;
    deviceId = await desk('vnc-box', VNC_PASSWORD);
    // The same desktop with a vaulted password it refuses.
    wrongId = await desk('vnc-stale', 'stale-pw');

    browser = await launchChromium(server.certFile);
    ({ page, problems } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } })));
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
  });

  afterAll(async () => {
    await browser?.close();
    killServers();
    await stopVncTargets();
    removeTempDirs();
  });

  it('opens the desktop from the device page: the target’s screen, every printable character typed, the clipboard both ways', async () => {
    await page.getByRole('link', { name: 'vnc-box' }).click();
    await page.getByRole('link', { name: 'Open desktop' }).click();
    await page.getByText('● Recorded').waitFor({ timeout: 30_000 });
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toContain('vnc-box');
    const canvas = page.getByTestId('desktop').locator('canvas');
    await canvas.waitFor();
    // Bottom right: the root window's solid colour (the xterm is top left).
    await expect.poll(() => showsColourAt(page, canvas, 0.9, 0.9, VNC_TARGET_COLOUR), { timeout: 15_000 }).toBe(true);
    await screenshot(page, '60-desktop');

    // Point at the xterm (no window manager: the keyboard follows the pointer), then type.
    const box = (await canvas.boundingBox())!;
    const scale = box.width / VNC_TARGET_SIZE.width;
    await page.mouse.click(box.x + 60 * scale, box.y + 30 * scale);
    await page.keyboard.type(PRINTABLE);
    await page.keyboard.press('Enter');
    const readTyped = () => {
      try {
        return readFileSync(typed, 'utf8');
      } catch {
        return '';
      }
    };
    await expect.poll(readTyped, { timeout: 20_000 }).toBe(`${PRINTABLE}\n`);

    // Clipboard, page → desktop: the X clipboard of the target has it.
    await page.getByText('Clipboard', { exact: true }).click();
    await page.getByLabel('To the desktop').fill('from the page: ~!@#$%^&*()_+{}|:"<>?');
    await page.getByRole('button', { name: 'Send to the desktop' }).click();
    const xclipboard = () => {
      try {
        return execFileSync('xclip', ['-o', '-selection', 'clipboard'], { env: target.env, timeout: 5000 }).toString();
      } catch {
        return '';
      }
    };
    await expect.poll(xclipboard, { timeout: 15_000 }).toBe('from the page: ~!@#$%^&*()_+{}|:"<>?');
    // Desktop → page: an X client takes the clipboard; the page shows what it holds.
    const owner = spawn('xclip', ['-quiet', '-selection', 'clipboard'], { env: target.env, stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      owner.stdin.end('from the desktop 42');
      await expect.poll(() => page.getByTestId('desktop-clipboard').inputValue(), { timeout: 15_000 }).toBe('from the desktop 42');
    } finally {
      owner.kill();
    }
    await screenshot(page, '61-desktop-clipboard');

    await page.getByRole('button', { name: 'Disconnect' }).click();
    await page.getByText('You disconnected.').waitFor({ timeout: 15_000 });
    await screenshot(page, '62-desktop-closed');
    await expect
      .poll(async () => (await api<{ items: Session[] }>('GET', `/sessions?deviceId=${deviceId}&limit=1`)).items[0], { timeout: 15_000 })
      .toMatchObject({ kind: 'vnc', result: 'success', recorded: true });
  });

  it('replays the recording in the session page: play, pause and seek show the desktop as it was', async () => {
    await page.getByRole('link', { name: 'Replay' }).click();
    await page.getByRole('heading', { name: /admin → vnc-box:desktop/ }).waitFor();
    const player = page.getByTestId('player').locator('canvas');
    await player.waitFor({ timeout: 15_000 });
    const position = page.getByLabel('Position');
    const duration = async () => Number(await position.getAttribute('max'));
    await expect.poll(duration).toBeGreaterThan(0);
    const time = page.getByTestId('player-time');
    const background = () => showsColourAt(page, player, 0.9, 0.9, VNC_TARGET_COLOUR);
    await position.fill(String(Math.round((await duration()) / 2)));
    await expect.poll(background, { timeout: 15_000 }).toBe(true);
    // Played to the end at 4×, then back to a quarter (a new decoder fed from the first frame).
    await page.getByRole('button', { name: '4×' }).click();
    await page.getByRole('button', { name: 'Play' }).click();
    await expect.poll(() => time.textContent(), { timeout: 30_000 }).toMatch(/^(\d+:\d\d) \/ \1$/);
    await page.getByRole('button', { name: 'Play' }).waitFor();
    await position.fill(String(Math.round((await duration()) / 4)));
    await expect.poll(background, { timeout: 15_000 }).toBe(true);
    await screenshot(page, '63-desktop-replay');
  });

  it('ends the session when the page is closed mid-session: the device connection closes, the recording replays, the end is audited', async () => {
    const tab = await page.context().newPage();
    await tab.goto(`${server.url}/devices/${deviceId}/desktop`);
    await tab.getByText('● Recorded').waitFor({ timeout: 30_000 });
    const canvas = tab.getByTestId('desktop').locator('canvas');
    await expect.poll(() => showsColourAt(tab, canvas, 0.9, 0.9, VNC_TARGET_COLOUR), { timeout: 15_000 }).toBe(true);
    const [live] = (await api<{ items: Session[] }>('GET', `/sessions?deviceId=${deviceId}&limit=1`)).items;
    expect(live).toMatchObject({ kind: 'vnc', result: 'active' });
    expect(connectionsTo(target.port)).toBe(1);

    // No Disconnect: the tab goes away, as when the user closes it.
    await tab.close();
    await expect
      .poll(async () => (await api<{ items: Session[] }>('GET', `/sessions?deviceId=${deviceId}&limit=1`)).items[0]?.endedAt, {
        timeout: 15_000,
      })
      .not.toBeNull();
    const [ended] = (await api<{ items: Session[] }>('GET', `/sessions?deviceId=${deviceId}&limit=1`)).items;
    expect(ended).toMatchObject({ id: live?.id, kind: 'vnc', result: 'success', recorded: true });
    await expect.poll(() => connectionsTo(target.port), { timeout: 15_000 }).toBe(0);
    const ends = await api<{ items: { outcome: string; details: Record<string, unknown> }[] }>(
      'GET',
      `/audit/events?action=session.end&targetId=${deviceId}`,
    );
    expect(ends.items.find((e) => e.details.sessionId === live?.id)).toMatchObject({ outcome: 'success', details: { kind: 'vnc' } });

    // What the tab showed until it closed replays at any position, though the recording is under
    // a second long and most of it passed before the desktop drew anything (issue 21).
    await page.goto(`${server.url}/sessions/${live?.id}`);
    const player = page.getByTestId('player').locator('canvas');
    await player.waitFor({ timeout: 15_000 });
    const position = page.getByLabel('Position');
    const max = async () => Number(await position.getAttribute('max'));
    await expect.poll(max).toBeGreaterThan(0);
    const shown = () => showsColourAt(page, player, 0.9, 0.9, VNC_TARGET_COLOUR);
    await expect.poll(shown, { timeout: 15_000 }).toBe(true);
    for (const share of [1, 0.5, 0.1, 0]) {
      await position.fill(String(Math.round((await max()) * share)));
      await expect.poll(shown, { timeout: 15_000 }).toBe(true);
    }
  });

  it('shows the server’s reason when the desktop refuses the vaulted password, and records no session as started', async () => {
    await page.goto(`${server.url}/devices/${wrongId}/desktop`);
    const alert = page.getByRole('alert');
    await alert.waitFor({ timeout: 30_000 });
    expect(await alert.textContent()).toMatch(/vnc-stale .*refused the vaulted VNC password/);
    await screenshot(page, '64-desktop-refused');
    const sessions = await api<{ items: Session[] }>('GET', `/sessions?deviceId=${wrongId}`);
    expect(sessions.items.every((x) => x.result === 'failure' && !x.recorded)).toBe(true);
    expect(problems).toEqual([]);
  });
});
