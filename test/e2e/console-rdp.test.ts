import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, screenshot, showsColourAt, signedInPage } from '../support/browser.js';
import { seedDevice, setupAdminToken } from '../support/seed.js';
import { killServers, removeTempDirs, startServer, tempDir, type GatehouseServer } from '../support/server.js';
import { freePort } from '../support/sshd.js';
import { VNC_TARGET_COLOUR } from '../support/vnc.js';
import { startXrdp, type XrdpTarget } from '../../bench/xrdp.js';

const ADMIN_PASSWORD = 'console rdp admin';
const RDP_USER = 'gh-rdp-console';
const RDP_PASSWORD = 'Rdp-console-pw-1';
/** The renderer's display (RdpRenderer's default size). */
const DESKTOP_WIDTH = 1280;
/** Every printable ASCII character, space to tilde. */
const PRINTABLE = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)).join('');

interface Session {
  id: string;
  kind: string | null;
  result: string;
  reason: string | null;
  recorded: boolean;
}

interface AuditEvent {
  action: string;
  outcome: string;
  details: Record<string, unknown>;
}

/**
 * Browser RDP in Chromium against the real server and one xrdp target whose sessions show a
 * known background and an xterm: the server renders the RDP session (Xvfb, xfreerdp,
 * x11vnc) and the page gets it through the same RFB path as VNC. The page shows the
 * desktop, every printable ASCII character typed reaches the xterm, Disconnect ends the
 * session and its processes, and the recording replays; a refused vaulted password, a
 * device that is down and the gateway's limit (rdpMaxSessions 1) are failures with their
 * audit events and no recording; an administrator's end and the server's stop leave no
 * process behind.
 */
describe('web console: browser RDP desktop', () => {
  let dir: string;
  /** The server's TMPDIR: the renderer's per-session directories, which every renderer process names. */
  let runDir: string;
  let server: GatehouseServer;
  let serverEnv: Record<string, string>;
  let xrdp: XrdpTarget;
  let browser: Browser;
  let page: Page;
  /** What went wrong in each page (script errors, failed requests). */
  const problems: string[][] = [];
  let token: string;
  let typed: string;
  const ids = { box: '', stale: '', down: '' };

  const api = <T>(method: string, route: string, body?: unknown) => server.api<T>(token, method, route, body);
  const sessionsOf = async (deviceId: string) => (await api<{ items: Session[] }>('GET', `/sessions?deviceId=${deviceId}`)).items;
  const startFailures = async (deviceId: string) =>
    (await api<{ items: AuditEvent[] }>('GET', `/audit/events?action=session.start&outcome=failure&targetId=${deviceId}`)).items;
  /** The renderer's processes (Xvfb, xfreerdp, x11vnc): each names its session's directory. */
  const rendererProcesses = (): string[] => {
    try {
      return execFileSync('pgrep', ['-a', '-f', runDir], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };
  /** The session's recording file (`<data>/recordings/<day>/<id>.rfb`). */
  const recordingOf = (sessionId: string): Buffer => {
    const recordings = path.join(dir, 'data', 'recordings');
    const day = readdirSync(recordings).find((d) => existsSync(path.join(recordings, d, `${sessionId}.rfb`)));
    return readFileSync(path.join(recordings, day ?? '', `${sessionId}.rfb`));
  };
  const readTyped = () => {
    try {
      return readFileSync(typed, 'utf8');
    } catch {
      return '';
    }
  };
  const openDesktop = async (p: Page, deviceId: string) => {
    await p.goto(`${server.url}/devices/${deviceId}/desktop?protocol=rdp`);
  };

  beforeAll(async () => {
    dir = tempDir('gatehouse-console-rdp-');
    runDir = path.join(dir, 'run');
    mkdirSync(runDir);
    // The xterm runs as the RDP user and writes each line typed into it to `typed`.
    chmodSync(dir, 0o711);
    const shared = path.join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o777);
    typed = path.join(shared, 'typed');
    xrdp = await startXrdp({
      user: RDP_USER,
      password: RDP_PASSWORD,
      content: ['xterm', '-geometry', '80x8+0+0', '-e', 'sh', '-c', `cat > ${typed}`],
    });
    // No display pool: each session's processes are all there is (the pool is rdp-renderer.test.ts's).
    serverEnv = {
      GATEHOUSE_GATEWAY_PORT: String(await freePort()),
      GATEHOUSE_RDP_MAX_SESSIONS: '1',
      GATEHOUSE_RDP_DISPLAY_POOL: '0',
      TMPDIR: runDir,
    };
    server = await startServer({ dataDir: path.join(dir, 'data'), env: serverEnv });
    ({ token } = await setupAdminToken(server, ADMIN_PASSWORD, dir));
    const projectId = (await api<{ id: string }>('POST', '/projects', { name: 'Lab' })).id;
    const device = async (name: string, port: number, password: string) =>
      (
        await seedDevice(server, token, {
          projectId,
          name,
          protocols: ['rdp'],
          urlPort: `rdp://127.0.0.1:${port}`,
          account: { username: RDP_USER, password },
        })
      ).deviceId;
    ids.box = await device('rdp-box', xrdp.port, RDP_PASSWORD);
    // The same target with a vaulted password it refuses, and a port nothing listens on.
    ids.stale = await device('rdp-stale', xrdp.port, 'not-the-password');
    ids.down = await device('rdp-down', await freePort(), RDP_PASSWORD);

    browser = await launchChromium(server.certFile);
    page = await signedInPage(browser, server.url, 'admin', ADMIN_PASSWORD, problems);
  });

  afterAll(async () => {
    await browser?.close();
    killServers();
    await xrdp?.stop();
    removeTempDirs();
  });

  it('opens the RDP desktop from the device page: the target’s screen, every printable character typed, Disconnect', async () => {
    await page.getByRole('link', { name: 'rdp-box' }).click();
    await page.getByRole('link', { name: 'Open desktop' }).click();
    // The renderer takes seconds: the page says what is happening meanwhile.
    await page.getByText('Starting the RDP session…').waitFor({ timeout: 15_000 });
    await page.getByText('● Recorded').waitFor({ timeout: 60_000 });
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toContain('rdp-box');
    expect(rendererProcesses()).toHaveLength(3);
    const canvas = page.getByTestId('desktop').locator('canvas');
    await canvas.waitFor();
    // Bottom right: the xrdp session's root window colour (the xterm is top left).
    await expect.poll(() => showsColourAt(page, canvas, 0.9, 0.9, VNC_TARGET_COLOUR), { timeout: 20_000 }).toBe(true);
    await screenshot(page, '70-rdp-desktop');

    // Point at the xterm (no window manager: the keyboard follows the pointer), then type.
    const box = (await canvas.boundingBox())!;
    const scale = box.width / DESKTOP_WIDTH;
    await page.mouse.click(box.x + 60 * scale, box.y + 30 * scale);
    await page.keyboard.type(PRINTABLE);
    await page.keyboard.press('Enter');
    await expect.poll(readTyped, { timeout: 20_000 }).toBe(`${PRINTABLE}\n`);

    await page.getByRole('button', { name: 'Disconnect' }).click();
    await page.getByText('You disconnected.').waitFor({ timeout: 15_000 });
    await expect
      .poll(async () => (await sessionsOf(ids.box))[0], { timeout: 15_000 })
      .toMatchObject({
        kind: 'rdp',
        result: 'success',
        recorded: true,
      });
    await expect.poll(rendererProcesses, { timeout: 10_000 }).toEqual([]);
  });

  it('replays the recording in the session page', async () => {
    await page.getByRole('link', { name: 'Replay' }).click();
    await page.getByRole('heading', { name: new RegExp(`admin → rdp-box:${RDP_USER}`) }).waitFor();
    const player = page.getByTestId('player').locator('canvas');
    await player.waitFor({ timeout: 15_000 });
    const position = page.getByLabel('Position');
    const duration = async () => Number(await position.getAttribute('max'));
    await expect.poll(duration).toBeGreaterThan(0);
    await position.fill(String(Math.round((await duration()) / 2)));
    await expect.poll(() => showsColourAt(page, player, 0.9, 0.9, VNC_TARGET_COLOUR), { timeout: 15_000 }).toBe(true);
    await screenshot(page, '71-rdp-replay');
  });

  it('shows a refused vaulted password as a failure: an audit event, no recording, no process left', async () => {
    await openDesktop(page, ids.stale);
    const alert = page.getByRole('alert');
    await alert.waitFor({ timeout: 60_000 });
    expect(await alert.textContent()).toMatch(
      new RegExp(`rdp-stale .*started no desktop session for ${RDP_USER} .*the vaulted password was most likely refused`),
    );
    await screenshot(page, '72-rdp-refused');
    const [event] = await startFailures(ids.stale);
    expect(event?.details.reason).toMatch(/the vaulted password was most likely refused/);
    expect(JSON.stringify(event)).not.toContain('not-the-password');
    const sessions = await sessionsOf(ids.stale);
    expect(sessions.length).toBeGreaterThan(0);
    expect(sessions.every((s) => s.result === 'failure' && !s.recorded)).toBe(true);
    expect(rendererProcesses()).toEqual([]);
  });

  it('names the RDP port, not sshd, when the device is down', async () => {
    await openDesktop(page, ids.down);
    const alert = page.getByRole('alert');
    await alert.waitFor({ timeout: 30_000 });
    const text = (await alert.textContent()) ?? '';
    expect(text).toMatch(/rdp-down \(127\.0\.0\.1:\d+\) refused the connection.*RDP port.*its RDP service runs/);
    expect(text).not.toContain('sshd');
    expect((await startFailures(ids.down)).length).toBeGreaterThan(0);
    expect((await sessionsOf(ids.down)).every((s) => !s.recorded)).toBe(true);
    expect(rendererProcesses()).toEqual([]);
  });

  it('stops the renderer when the browser leaves while the RDP session starts: a failed session, no recording', async () => {
    const leaving = await signedInPage(browser, server.url, 'admin', ADMIN_PASSWORD, []);
    const before = (await sessionsOf(ids.box)).length;
    await openDesktop(leaving, ids.box);
    await leaving.getByText('Starting the RDP session…').waitFor({ timeout: 30_000 });
    await expect.poll(() => rendererProcesses().length, { timeout: 30_000 }).toBeGreaterThan(0);
    await leaving.context().close();
    await expect.poll(rendererProcesses, { timeout: 15_000 }).toEqual([]);
    await expect.poll(async () => (await sessionsOf(ids.box)).length, { timeout: 15_000 }).toBe(before + 1);
    const [left] = await sessionsOf(ids.box);
    expect(left).toMatchObject({ result: 'failure', recorded: false, reason: 'The user hung up before the desktop was open.' });
  });

  it('refuses a second session past rdpMaxSessions with what to do; an administrator’s end stops the first', async () => {
    await openDesktop(page, ids.box);
    await page.getByText('● Recorded').waitFor({ timeout: 60_000 });
    const [live] = await sessionsOf(ids.box);
    expect(live).toMatchObject({ kind: 'rdp', result: 'active' });

    const second = await signedInPage(browser, server.url, 'admin', ADMIN_PASSWORD, problems);
    await openDesktop(second, ids.box);
    const alert = second.getByRole('alert');
    await alert.waitFor({ timeout: 30_000 });
    expect(await alert.textContent()).toContain(
      "The gateway's maximum of 1 browser RDP sessions is reached. Try again when one ends, or ask an administrator to raise rdpMaxSessions",
    );
    await screenshot(second, '73-rdp-limit');
    await second.context().close();
    const limited = (await startFailures(ids.box)).find((e) => String(e.details.reason).includes('maximum of 1 browser RDP sessions'));
    expect(limited).toBeDefined();
    expect(rendererProcesses()).toHaveLength(3);

    await api('POST', `/sessions/${live?.id}/end`, { reason: 'RDP host maintenance' });
    await page.getByText(/RDP host maintenance/).waitFor({ timeout: 15_000 });
    await expect.poll(rendererProcesses, { timeout: 10_000 }).toEqual([]);
    const ended = (await sessionsOf(ids.box)).find((s) => s.id === live?.id);
    expect(ended).toMatchObject({ result: 'failure', recorded: true });
    expect(ended?.reason).toContain('RDP host maintenance');
    expect(problems.flat()).toEqual([]);
  });

  // On a busy machine the browser's next update request used to arrive after the session had
  // dropped its stream, which paused the WebSocket for good: the close then waited ws's 30 s
  // timeout and held the server's stop (issue 21).
  it('stops every renderer process when the server stops', async () => {
    await page.getByRole('button', { name: 'Connect again' }).click();
    await page.getByText('● Recorded').waitFor({ timeout: 60_000 });
    expect(rendererProcesses()).toHaveLength(3);
    await server.stop(20_000);
    await page.getByText('The gateway is stopping.').waitFor({ timeout: 10_000 });
    expect(rendererProcesses()).toEqual([]);

    // Started again: the session ended with the stop's reason (not as abandoned at this start),
    // its end is audited, and its recording, if it got one, holds whole frames only.
    server = await startServer({ dataDir: path.join(dir, 'data'), env: serverEnv, timeoutMs: 90_000 });
    const [stopped] = await sessionsOf(ids.box);
    expect(stopped).toMatchObject({ result: 'failure', reason: 'The gateway is stopping.' });
    const audited = (await api<{ items: AuditEvent[] }>('GET', `/audit/events?targetId=${ids.box}`)).items;
    const end = audited.find((e) => e.details.reason === 'The gateway is stopping.');
    expect(end).toMatchObject({ outcome: 'failure' });
    // session.end once the desktop was open; session.start (a failed connection) when the stop came during the browser's handshake.
    expect(['session.end', 'session.start']).toContain(end?.action);
    if (stopped?.recorded) expect(partialFrameBytes(recordingOf(stopped.id))).toBe(0);
  });
});

/** The bytes after the recording's last whole frame (its header line, then frames of an 8-byte head and a body). */
function partialFrameBytes(recording: Buffer): number {
  let offset = recording.indexOf(0x0a) + 1;
  while (offset + 8 <= recording.length && offset + 8 + recording.readUInt32BE(offset + 4) <= recording.length)
    offset += 8 + recording.readUInt32BE(offset + 4);
  return recording.length - offset;
}
