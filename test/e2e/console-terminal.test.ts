import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, rmSync, symlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, newPage, playRecording, screenshot, signIn } from '../support/browser.js';
import { killServers, removeTempDirs, setupAdmin, startServer, tempDir, type GatehouseServer, savedToken } from '../support/server.js';
import { ensureSystemUser, freePort, TEST_USER_PASSWORD, TestSshd } from '../support/sshd.js';

const API = '/api/v1';
const DEVICE_USER = 'gh-test-pw';
const DEVICE_PASSWORD = TEST_USER_PASSWORD;
const ADMIN_PASSWORD = 'console terminal admin';

interface Session {
  id: string;
  kind: string | null;
  result: string;
  exitStatus: number | null;
  recorded: boolean;
  deviceName: string;
  bytesIn: number;
  uploads: number;
  downloads: number;
}

/** A size as the console shows it (`300.4 KiB`) in bytes. */
const shownBytes = (text: string): number => {
  const m = /([\d.]+) (B|KiB|MiB)/.exec(text);
  return m ? Number(m[1]) * (m[2] === 'MiB' ? 1048576 : m[2] === 'KiB' ? 1024 : 1) : -1;
};

/**
 * The browser terminal, session playback and the audit log in Chromium against the real
 * server, its built-in gateway and an OpenSSH sshd as the device: a command typed in the
 * page runs on the device, the session is recorded like a native ssh one and plays back in
 * the page, the events are in the audit log, and a refusal shows the gateway's reason.
 */
describe('web console: browser terminal, playback and audit', () => {
  let dir: string;
  let server: GatehouseServer;
  let sshd: TestSshd;
  let browser: Browser;
  let page: Page;
  let problems: string[];
  let token: string;
  let deviceId: string;
  let isolatedId: string;
  let gatewayPort: number;
  const cleanups: (() => void)[] = [];

  const api = async <T>(method: string, route: string, body?: unknown): Promise<T> => {
    const res = await server.request(`${API}${route}`, { method, body, headers: { authorization: `Bearer ${token}` } });
    if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${res.body}`);
    return (res.body === '' ? undefined : JSON.parse(res.body)) as T;
  };
  /** What the terminal shows, row by row (xterm.js renders each row as a div). */
  const screen = (where = page.getByTestId('terminal')) => where.locator('.xterm-rows').innerText();

  beforeAll(async () => {
    dir = tempDir('gatehouse-console-term-');
    ensureSystemUser(DEVICE_USER, { password: DEVICE_PASSWORD });
    sshd = await TestSshd.start(path.join(dir, 'sshd'));
    gatewayPort = await freePort();
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(gatewayPort) } });
    const credentials = path.join(dir, 'credentials.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    token = savedToken(credentials);
    const project = await api<{ id: string }>('POST', '/projects', { name: 'Lab' });
    const device = (name: string, tags: string[] = []) =>
      api<{ id: string }>('POST', '/devices', {
        projectId: project.id,
        name,
        provider: 'on-prem',
        protocols: ['ssh', 'sftp'],
        privateIp: '127.0.0.1',
        urlPort: String(sshd.port),
        tags,
      });
    deviceId = (await device('web-box')).id;
    await api('POST', '/accounts', { deviceId, username: DEVICE_USER, password: DEVICE_PASSWORD });
    // Tagged with a segment no gateway serves: the gateway refuses, naming the segment.
    isolatedId = (await device('far-box', ['gateway-nowhere'])).id;
    await api('POST', '/accounts', { deviceId: isolatedId, username: DEVICE_USER, password: DEVICE_PASSWORD });

    browser = await launchChromium(server.certFile);
    ({ page, problems } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } })));
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
  });

  afterAll(async () => {
    for (const c of cleanups) c();
    await browser?.close();
    killServers();
    await sshd?.stop();
    removeTempDirs();
  });

  it('opens a terminal from the device page, runs a command, sees its output and closes it', async () => {
    await page.getByRole('link', { name: 'web-box' }).click();
    await page.getByRole('link', { name: 'Open terminal' }).click();
    await page.getByText('Connected · recorded').waitFor({ timeout: 30_000 });
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe(`Terminal: Lab/web-box:${DEVICE_USER}`);
    await page.getByTestId('terminal').click();
    await page.keyboard.type('echo from-the-browser-$((6*7)); tput cols\n');
    await expect.poll(() => screen(), { timeout: 15_000 }).toContain('from-the-browser-42');
    // The pty has the size of the page's terminal, not a default.
    // (tput's answer may follow the echo's line a moment later.)
    await expect.poll(async () => /from-the-browser-42\s+\d+/.test(await screen()), { timeout: 15_000 }).toBe(true);
    const cols = /from-the-browser-42\s+(\d+)/.exec(await screen())?.[1];
    expect(Number(cols)).toBeGreaterThan(80);
    await screenshot(page, '30-terminal');
    await page.keyboard.type('exit 0\n');
    await page.getByText('The session ended (exit status 0).').waitFor({ timeout: 15_000 });
    await screenshot(page, '31-terminal-closed');

    const sessions = await api<{ items: Session[] }>('GET', `/sessions?deviceId=${deviceId}`);
    expect(sessions.items[0]).toMatchObject({ kind: 'shell', result: 'success', exitStatus: 0, recorded: true });
  });

  it('uploads and downloads a file in the file browser, with matching checksums, one SFTP session for the visit, counted live', async () => {
    const sftpSessions = async () =>
      (await api<{ items: Session[] }>('GET', `/sessions?deviceId=${deviceId}&limit=100`)).items.filter((x) => x.kind === 'sftp');
    const before = new Set((await sftpSessions()).map((x) => x.id));
    const name = `console-upload-${randomBytes(4).toString('hex')}.bin`;
    const content = randomBytes(300 * 1024);
    cleanups.push(() => rmSync(path.join('/home', DEVICE_USER, name), { force: true }));
    const link = `console-link-${randomBytes(4).toString('hex')}`;
    symlinkSync('/tmp', path.join('/home', DEVICE_USER, link));
    cleanups.push(() => rmSync(path.join('/home', DEVICE_USER, link), { force: true }));
    await page.goto(`${server.url}/devices/${deviceId}`);
    await page.getByRole('link', { name: 'Files' }).click();
    // It opens in the account's home directory (once the visit's SFTP session is open).
    await expect.poll(() => page.locator('nav.path').textContent(), { timeout: 20_000 }).toContain(DEVICE_USER);
    // The visit is one live SFTP session: the Sessions page's Live now shows it, its bytes counting up without a reload.
    const live = await page.context().newPage();
    await live.goto(`${server.url}/sessions`);
    await live.getByRole('tab', { name: 'Live now' }).click();
    const liveRow = live.getByRole('table', { name: 'Sessions' }).locator('tbody tr').filter({ hasText: 'sftp' });
    await liveRow.waitFor({ timeout: 15_000 });
    expect(await liveRow.count()).toBe(1);
    expect(shownBytes(await liveRow.getByTestId('bytes').innerText())).toBeLessThan(content.length);
    await page.getByLabel('Upload a file').setInputFiles({ name, mimeType: 'application/octet-stream', buffer: content });
    const row = page.locator(`tr[data-file="${name}"]`);
    await row.waitFor({ timeout: 20_000 });
    expect(await row.textContent()).toContain('300.0 KiB');
    await screenshot(page, '31a-files');
    await expect
      .poll(async () => shownBytes(await liveRow.getByTestId('bytes').innerText()), { timeout: 20_000 })
      .toBeGreaterThan(content.length);
    await expect.poll(() => liveRow.getByTestId('transfers').innerText(), { timeout: 20_000 }).toBe('↑ 1 ↓ 0');
    await screenshot(live, '31b-sessions-live-counting');
    await live.close();
    const [download] = await Promise.all([page.waitForEvent('download'), row.getByRole('link', { name }).click()]);
    const saved = path.join(dir, 'downloaded.bin');
    await download.saveAs(saved);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(sha(readFileSync(saved))).toBe(sha(content));
    // The same name again: replaced only once the user agrees.
    const asked = new Promise<string>((resolve) => page.once('dialog', (d) => (resolve(d.message()), void d.accept())));
    await page.getByLabel('Upload a file').setInputFiles({ name, mimeType: 'application/octet-stream', buffer: content.subarray(0, 2048) });
    expect(await asked).toContain('already exists');
    await expect.poll(() => row.textContent(), { timeout: 20_000 }).toContain('2.0 KiB');
    // A symbolic link shows its target and, to a folder, opens it.
    const linkRow = page.locator(`tr[data-file="${link}"]`);
    expect(await linkRow.textContent()).toContain('→ /tmp');
    await linkRow.getByRole('button', { name: `${link}/` }).click();
    await expect.poll(() => page.locator('nav.path').textContent()).toContain('tmp');

    // Leaving the page ends the visit: its listings, uploads and download were one SFTP session through the gateway, logged like sftp's.
    await page.goto(`${server.url}/sessions`);
    await expect
      .poll(async () => (await sftpSessions()).filter((x) => !before.has(x.id) && x.result !== 'active').length, { timeout: 20_000 })
      .toBe(1);
    const visit = (await sftpSessions()).filter((x) => !before.has(x.id));
    expect(visit).toHaveLength(1);
    expect(visit[0]).toMatchObject({ result: 'success', uploads: 2, downloads: 1 });
    const ops = (
      await api<{ items: { op: string; path: string; bytes: number; result: string }[] }>(
        'GET',
        `/sessions/${visit[0]!.id}/file-operations`,
      )
    ).items;
    expect(ops).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ op: 'upload', bytes: content.length, result: 'success' }),
        expect.objectContaining({ op: 'download', bytes: content.length, result: 'success' }),
        expect.objectContaining({ op: 'upload', bytes: 2048, result: 'success' }),
      ]),
    );
    expect(ops.filter((o) => o.op === 'list').length).toBeGreaterThanOrEqual(3);
    // The Sessions list shows its transfers, and finds it among sessions with transfers.
    await page.getByLabel('With file transfers').check();
    const transferRow = page.locator(`tr[data-session="${visit[0]!.id}"]`);
    await transferRow.waitFor();
    expect(await transferRow.getByTestId('transfers').innerText()).toBe('↑ 2 ↓ 1');
    await expect.poll(() => page.getByRole('table', { name: 'Sessions' }).locator('tbody tr').filter({ hasText: 'shell' }).count()).toBe(0);
    await screenshot(page, '31c-sessions-transfers');
    await page.getByLabel('With file transfers').uncheck();
  });

  it('plays the recording back in the page, with speed and seek', async () => {
    await page.getByRole('link', { name: 'Sessions' }).click();
    await page.getByLabel('Search by device').fill('web');
    // The terminal's session (the file browser's are SFTP sessions, with no recording).
    const row = page.getByRole('table', { name: 'Sessions' }).locator('tbody tr').filter({ hasText: 'shell' }).first();
    await row.getByText('web-box').waitFor();
    await screenshot(page, '32-sessions');
    await row.getByRole('link').click();
    await page.getByRole('heading', { name: `admin → web-box:${DEVICE_USER}` }).waitFor();
    // Start playing, then let it run to the command's output.
    const player = await playRecording(page);
    await expect.poll(() => player.innerText(), { timeout: 20_000 }).toContain('from-the-browser-42');
    await screenshot(page, '33-playback');
    // The player refits to its container when the window narrows and widens again: no cut-off, no scroll bar.
    const shown = player.locator('.ap-player');
    /** Whether the player lies within its container (no cut-off), and how wide it shows. */
    const fits = async () => {
      const [inner, outer] = await Promise.all([shown.boundingBox(), player.boundingBox()]);
      return inner !== null && outer !== null && inner.width > 0 && inner.x + inner.width <= outer.x + outer.width + 1;
    };
    const shownWidth = async () => (await shown.boundingBox())?.width ?? 0;
    /** Whether the player's box scrolls sideways (a scroll bar). */
    const scrollsSideways = () =>
      page.evaluate<boolean>(
        "(() => { const el = document.querySelector('[data-testid=player]'); return el.scrollWidth > el.clientWidth; })()",
      );
    await page.setViewportSize({ width: 390, height: 844 });
    await expect.poll(fits).toBe(true);
    expect(await shownWidth()).toBeLessThan(390);
    expect(await scrollsSideways()).toBe(false);
    await screenshot(page, '33-playback-390');
    await page.setViewportSize({ width: 1366, height: 900 });
    await expect.poll(shownWidth).toBeGreaterThan(900);
    expect(await fits()).toBe(true);
    await page.setViewportSize({ width: 1280, height: 900 });
    // Seek back to the start with the keyboard (asciinema-player: 0 jumps to 0 %): the screen is as it was then.
    await player.press('0');
    await expect.poll(() => player.innerText()).not.toContain('from-the-browser-42');
    const csv = await server.request(`${API}/audit/events?action=session.recording_read`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect((JSON.parse(csv.body) as { items: unknown[] }).items.length).toBeGreaterThan(0);
  });

  it('plays a window resize back as the live terminal showed it: rows cleared before the resize stay cleared', async () => {
    // A short window, so that the terminal grows when the window does (its height is 70vh).
    await page.setViewportSize({ width: 1280, height: 500 });
    await page.goto(`${server.url}/devices/${deviceId}`);
    await page.getByRole('link', { name: 'Open terminal' }).click();
    await page.getByText('Connected · recorded').waitFor({ timeout: 30_000 });
    await page.getByTestId('terminal').click();
    // More rows than the screen has (some scroll off), then the screen and its scrollback cleared as `clear` does.
    await page.keyboard.type("seq -f 'cleared-row-%g' 60; printf '\\033[H\\033[2J\\033[3J'; echo screen-was-cleared\n");
    await expect.poll(() => screen(), { timeout: 15_000 }).toMatch(/^screen-was-cleared$/m);
    await expect.poll(() => screen()).not.toContain('cleared-row-60');
    const rowsBefore = await page.getByTestId('terminal').locator('.xterm-rows > div').count();
    await page.setViewportSize({ width: 1280, height: 900 });
    await expect.poll(() => page.getByTestId('terminal').locator('.xterm-rows > div').count()).toBeGreaterThan(rowsBefore);
    await page.keyboard.type('echo after-the-resize\n');
    await expect.poll(() => screen(), { timeout: 15_000 }).toMatch(/^after-the-resize$/m);
    // The live terminal: the grown screen shows none of the cleared rows.
    expect(await screen()).not.toContain('cleared-row');
    await page.keyboard.type('exit 0\n');
    await page.getByText('The session ended (exit status 0).').waitFor({ timeout: 15_000 });

    // The newest terminal session (the list is newest first).
    const played = (await api<{ items: (Session & { id: string })[] }>('GET', `/sessions?deviceId=${deviceId}`)).items.find(
      (s) => s.kind === 'shell',
    );
    const cast = await server.request(`${API}/sessions/${played!.id}/recording`, { headers: { authorization: `Bearer ${token}` } });
    // The recording has the resize (the .cast was always right; the player's handling of it was not).
    expect(cast.body).toMatch(/"r","\d+x\d+"\]/);
    await page.goto(`${server.url}/sessions/${played!.id}`);
    const player = await playRecording(page);
    // Played to the end: the command after the resize is shown, the rows cleared before it are not.
    await expect.poll(() => player.innerText(), { timeout: 30_000 }).toContain('exit 0');
    const shown = await player.innerText();
    expect(shown).toContain('after-the-resize');
    expect(shown).not.toContain('cleared-row');
    await screenshot(page, '33b-playback-after-resize');
  });

  it('shows a forwarded port (ssh -L) as a forward session with its destination', async () => {
    await api('PUT', '/gateway-settings', { portForwarding: true });
    const destination = `127.0.0.1:${sshd.port}`;
    const localPort = await freePort();
    const tunnel = spawn(
      'sshpass',
      [
        ...['-p', ADMIN_PASSWORD, 'ssh', '-N', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'],
        ...['-o', 'PubkeyAuthentication=no', '-o', 'ExitOnForwardFailure=yes', '-L', `127.0.0.1:${localPort}:${destination}`],
        ...['-p', String(gatewayPort), `admin:web-box:${DEVICE_USER}@127.0.0.1`],
      ],
      { stdio: 'ignore' },
    );
    /** The first bytes the forwarded port answers with (the device's sshd greets first), or nothing. */
    const greeting = () =>
      new Promise<string>((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port: localPort });
        socket.once('data', (d: Buffer) => {
          resolve(d.toString('utf8'));
          socket.destroy();
        });
        socket.once('error', () => resolve(''));
        socket.once('close', () => resolve(''));
      });
    try {
      await expect.poll(greeting, { timeout: 20_000 }).toMatch(/^SSH-2\.0-/);
    } finally {
      tunnel.kill();
      await api('PUT', '/gateway-settings', { portForwarding: false });
    }
    await page.goto(`${server.url}/sessions`);
    const row = page.getByRole('table', { name: 'Sessions' }).locator('tbody tr').filter({ hasText: 'forward' }).first();
    await row.waitFor({ timeout: 15_000 });
    expect(await row.textContent()).toContain(`forward ${destination}`);
    await row.getByRole('link').click();
    await page.getByText('No terminal recording for this session.').waitFor();
    expect(await page.locator('dl.facts').textContent()).toContain(`forward ${destination}`);
    await screenshot(page, '33a-forward-session');
  });

  it('finds the terminal, sign-in and session events in the audit log, follows it live, and shows the chain verified', async () => {
    const verifications = async () => (await api<{ items: unknown[] }>('GET', '/audit/events?action=audit.verify')).items.length;
    const before = await verifications();
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('table', { name: 'Audit events' }).locator('tbody tr[data-action]').first().waitFor();
    // A visit does not verify (each verification is an audit event): the button does, and says when.
    expect(await verifications()).toBe(before);
    await page.getByRole('button', { name: 'Verify the hash chain' }).click();
    await page.getByText('Chain verified').waitFor();
    expect(await verifications()).toBe(before + 1);
    await page.getByLabel('Filter by action').fill('terminal.open');
    const rows = page.getByRole('table', { name: 'Audit events' }).locator('tbody tr[data-action="terminal.open"]');
    await rows.first().waitFor();
    expect(await rows.first().textContent()).toContain('Lab/web-box');
    // Part of an action is enough.
    await page.getByLabel('Filter by action').fill('way.au');
    await page.locator('tr[data-action="gateway.auth"]').filter({ hasText: 'web-terminal' }).first().waitFor();
    await page.getByLabel('Filter by action').fill('');
    await page.getByLabel('Follow live').check();
    await api('POST', '/projects', { name: 'Followed' });
    await page.locator('tr[data-action="project.create"]').filter({ hasText: 'Followed' }).waitFor({ timeout: 10_000 });
    await screenshot(page, '34-audit');
    await page.getByLabel('Follow live').uncheck();
    // At 390 px each event stacks its fields, all of them within the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    const first = page.getByRole('table', { name: 'Audit events' }).locator('tbody tr[data-action]').first();
    for (const label of ['Time', 'Actor', 'Action', 'Outcome', 'Target', 'Details']) {
      const cell = first.locator(`td[data-label="${label}"]`);
      const box = await cell.boundingBox();
      expect(box, label).not.toBeNull();
      expect(box!.x + box!.width, label).toBeLessThanOrEqual(390);
    }
    await screenshot(page, '34-audit-390');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('lets an administrator end a live session from the Sessions page: the user is told, the recording is closed', async () => {
    // The user's terminal in one browser context, the administrator's Sessions page in another.
    const user = await newPage(await browser.newContext({ viewport: { width: 1000, height: 700 } }));
    await signIn(user.page, server.url, 'admin', ADMIN_PASSWORD);
    await user.page.goto(`${server.url}/devices/${deviceId}/terminal`);
    await user.page.getByText('Connected · recorded').waitFor({ timeout: 30_000 });
    // Opened by its URL alone, it took the device's only account and keeps it in the URL.
    expect(await user.page.getByRole('heading', { level: 1 }).textContent()).toBe(`Terminal: Lab/web-box:${DEVICE_USER}`);
    expect(user.page.url()).toContain('?account=');
    await page.goto(`${server.url}/sessions`);
    await page.getByRole('tab', { name: 'Live now' }).click();
    const live = page.getByRole('table', { name: 'Sessions' }).locator('tbody tr').filter({ hasText: 'live' }).first();
    await live.waitFor({ timeout: 15_000 });
    await screenshot(page, '34a-sessions-live');
    // At 390 px the End button stays on the screen, and works there.
    await page.setViewportSize({ width: 390, height: 844 });
    const end = live.getByRole('button', { name: 'End' });
    const box = await end.boundingBox();
    expect(box).not.toBeNull();
    expect(box!.x + box!.width).toBeLessThanOrEqual(390);
    await screenshot(page, '34a-sessions-live-390');
    page.once('dialog', (d) => void d.accept());
    await end.click();
    await expect.poll(() => screen(user.page.getByTestId('terminal')), { timeout: 15_000 }).toContain('admin ended this session');
    await user.page.getByText('Closed', { exact: true }).waitFor({ timeout: 15_000 });
    // The end says who ended it, as a warning.
    await user.page.locator('p.warning').filter({ hasText: 'admin ended this session' }).waitFor();
    const ended = await api<{ items: Session[] }>('GET', `/sessions?deviceId=${deviceId}&limit=1`);
    expect(ended.items[0]).toMatchObject({ kind: 'shell', recorded: true });
    expect(ended.items[0]?.result).not.toBe('active');
    const events = await api<{ items: { outcome: string }[] }>('GET', '/audit/events?action=session.terminate');
    expect(events.items[0]?.outcome).toBe('success');
    await user.page.context().close();
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('shows the gateway reason when no gateway serves the device’s segment, with an audit event', async () => {
    await page.goto(`${server.url}/devices/${isolatedId}/terminal`);
    await expect.poll(() => screen(), { timeout: 20_000 }).toContain('gateway-nowhere');
    await page.getByText('Closed', { exact: true }).waitFor({ timeout: 15_000 });
    await page.locator('.error-note[role="alert"]').waitFor();
    await screenshot(page, '35-terminal-refused');
    // The file browser gives the same reason.
    await page.goto(`${server.url}/devices/${isolatedId}/files`);
    await page.getByRole('alert').filter({ hasText: 'gateway-nowhere' }).waitFor({ timeout: 20_000 });
    await screenshot(page, '36-files-refused');
    const failures = await api<{ items: { details: Record<string, unknown> }[] }>(
      'GET',
      '/audit/events?action=gateway.select&outcome=failure',
    );
    expect(JSON.stringify(failures.items)).toContain('gateway-nowhere');
    expect(problems).toEqual([]);
  });

  it("refuses a terminal WebSocket without the session's CSRF token, or from another origin", async () => {
    const guessed = await page.evaluate<string>(`new Promise((resolve) => {
      const ws = new WebSocket('wss://' + location.host + '/api/v1/terminal');
      ws.onopen = () => ws.send(JSON.stringify({ type: 'start', csrfToken: 'guess', deviceId: '${deviceId}', cols: 80, rows: 24 }));
      ws.onmessage = (e) => resolve(String(e.data));
      ws.onclose = () => resolve('closed');
    })`);
    expect(guessed).toContain('CSRF token is missing or wrong');

    // A page of another site: its Origin is refused before the start message is read.
    const cookie = (await page.context().cookies()).find((c) => c.name === 'gh_session');
    const foreign = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`${server.url.replace('https', 'wss')}/api/v1/terminal`, {
        ca: readFileSync(server.certFile),
        origin: 'https://attacker.example',
        headers: { cookie: `gh_session=${cookie?.value ?? ''}` },
      });
      ws.on('message', (d: Buffer) => resolve(d.toString('utf8')));
      ws.on('error', reject);
    });
    expect(foreign).toContain('may only be opened from the Gatehouse console');

    // The file browser's visit begins the same way; a visit id that is not the caller's open one serves nothing.
    const visitGuessed = await page.evaluate<string>(`new Promise((resolve) => {
      const ws = new WebSocket('wss://' + location.host + '/api/v1/files/visit');
      ws.onopen = () => ws.send(JSON.stringify({ type: 'start', csrfToken: 'guess', deviceId: '${deviceId}' }));
      ws.onmessage = (e) => resolve(String(e.data));
      ws.onclose = () => resolve('closed');
    })`);
    expect(visitGuessed).toContain('CSRF token is missing or wrong');
    const stranger = await server.request(`${API}/files?deviceId=${deviceId}&path=.&visit=${randomUUID()}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(stranger.status).toBe(409);
    expect(stranger.body).toContain('has ended');
  });
});
