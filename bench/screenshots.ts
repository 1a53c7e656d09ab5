/**
 * Screenshots of every console page at a phone's and a laptop's width: starts a real
 * `gatehouse server` (embedded database, built-in SSH gateway) and a private sshd as the
 * devices, fills it with sample data (projects, devices, an operator and an auditor, a
 * recorded terminal session, a registered remote gateway, a maintenance request, a runbook
 * run, break glass configured against s3rver and run once, a VNC device (Xtigervnc) and an
 * RDP device (xrdp) whose desktops open in the page; the audit log fills by itself),
 * then opens each page in Debian's Chromium and saves
 * artifacts/screenshots/<page>-<width>.png at 390 px and 1366 px. Not a benchmark: it
 * measures nothing; a page that does not load is named and the script exits 1.
 *
 *   npm run screenshots -- [--keep] [--only devices,gateways]
 *
 * Needs /usr/bin/chromium, sshpass and age-keygen, and root (a machine user `gh-bench` for
 * the devices' account, as the SSH benchmark uses). `--keep` leaves the data directory and
 * prints its path. `--only` takes the pages' names (the files' names before `-<width>.png`)
 * and photographs only those.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './chromium.js';
import {
  addSshDevice,
  ageRecipient,
  api,
  check,
  ensureUser,
  gatehouseHost,
  onCleanup,
  ROOT,
  runCommand,
  runMain,
  setUpGatehouse,
  sshCommand,
  sshConfig,
  startGatehouse,
  startS3rver,
  startSshd,
  type Gatehouse,
} from './ssh-support.js';
import { s3rverBreakGlassSettings } from './s3rver-settings.js';
import { startVncTarget, VNC_BACKGROUND } from './vnc-target.js';
import { startXrdp } from './xrdp.js';

const OUT = path.join(ROOT, 'artifacts', 'screenshots');
const WIDTHS = [390, 1366];
const ADMIN_PASSWORD = 'screenshots admin password';
const OPERATOR = { username: 'otto', password: 'screenshots operator password' };
const AUDITOR = { username: 'audrey', password: 'screenshots auditor password' };
const DEVICE_PASSWORD = 'pw-screenshots-8d2a41c7';

const { values: opts } = parseArgs({ options: { keep: { type: 'boolean', default: false }, only: { type: 'string' } } });
/** The pages to photograph (`--only`), or every page. */
const only = opts.only === undefined ? undefined : new Set(opts.only.split(',').map((name) => name.trim()));
const wanted = (shot: Shot): boolean => only === undefined || only.has(shot.name);

interface Shot {
  /** The file's name before `-<width>.png`. */
  name: string;
  /** The console path to open. */
  path: string;
  /** Who is signed in: admin (default), or none for the sign-in and set-up pages. */
  as?: 'admin' | 'operator' | 'auditor' | 'nobody';
  /** What shows the page is ready (a CSS or text selector); default the first heading. */
  ready?: string;
  /** A desktop page: ready once its canvas shows the device's background (bottom right). */
  desktop?: boolean;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-screenshots-'));
  onCleanup(() => (opts.keep ? console.log(`Kept ${dir}`) : rmSync(dir, { recursive: true, force: true })));
  mkdirSync(OUT, { recursive: true });
  // sshd reads the authorized keys as the devices' account: the path must be traversable.
  chmodSync(dir, 0o711);

  // The devices: a private sshd whose gh-bench account the vault holds a key for.
  ensureUser(DEVICE_PASSWORD);
  const deviceKey = path.join(dir, 'device_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', deviceKey]);
  const sshd = await startSshd(dir, 'sshd', 'ERROR', readFileSync(`${deviceKey}.pub`, 'utf8').trim());

  // Break glass's bucket: s3rver.
  const s3Port = await startS3rver(dir);

  const dataDir = path.join(dir, 'data');
  const g = await startGatehouse(dataDir, { GATEHOUSE_AGENT_PORT: '0', GATEHOUSE_VNC_PORT: '0', GATEHOUSE_RDP_PORT: '0' });
  const browser = await launchChromium(g.cert);
  onCleanup(() => void browser.close());

  // The first-run set-up page, before set-up.
  const failures: string[] = [];
  const setup: Shot = { name: 'setup', path: '/', as: 'nobody', ready: 'text=set-up token' };
  if (wanted(setup)) await shoot(browser, g, setup, failures);

  const token = await setUpGatehouse(g, dataDir, ADMIN_PASSWORD);
  const ids = await seed(g, token, sshd.port, readFileSync(deviceKey, 'utf8'), s3Port, dir);
  const desktops = await seedDesktops(g, token, dir);

  const all: Shot[] = [
    { name: 'sign-in', path: '/', as: 'nobody', ready: 'button:has-text("Sign in")' },
    { name: 'devices', path: '/devices', ready: 'table.data tbody tr' },
    { name: 'device', path: `/devices/${ids.device}` },
    { name: 'device-no-gateway', path: `/devices/${ids.segmentDevice}` },
    { name: 'device-files', path: `/devices/${ids.device}/files`, ready: 'tr[data-file]' },
    { name: 'device-terminal', path: `/devices/${ids.device}/terminal`, ready: '.xterm' },
    { name: 'projects', path: '/projects' },
    { name: 'requests', path: '/requests' },
    { name: 'sessions', path: '/sessions', ready: 'table tbody tr' },
    { name: 'session', path: `/sessions/${ids.session}` },
    { name: 'audit', path: '/audit', ready: 'table tbody tr' },
    { name: 'account', path: '/account' },
    { name: 'users', path: '/users', ready: 'text=otto' },
    { name: 'gateways', path: '/gateways', ready: 'text=office1-a' },
    { name: 'breakglass', path: '/breakglass', ready: 'text=Run history' },
    { name: 'runbooks', path: '/runbooks' },
    { name: 'runbook-run', path: `/runbooks/runs/${ids.run}` },
    { name: 'import', path: '/import' },
    { name: 'device-desktop-vnc', path: `/devices/${desktops.vnc}/desktop`, desktop: true },
    { name: 'device-desktop-rdp', path: `/devices/${desktops.rdp}/desktop?protocol=rdp`, desktop: true },
    { name: 'operator-devices', path: '/devices', as: 'operator', ready: 'table.data tbody tr' },
    { name: 'operator-sessions', path: '/sessions', as: 'operator' },
    { name: 'auditor-audit', path: '/audit', as: 'auditor', ready: 'table tbody tr' },
  ];
  const shots = [setup, ...all].filter(wanted);
  const unknown = [...(only ?? [])].filter((name) => !shots.some((shot) => shot.name === name));
  if (unknown.length > 0)
    failures.push(`--only: no page is named ${unknown.join(', ')} (pages: ${[setup, ...all].map((s) => s.name).join(', ')})`);
  for (const shot of shots.filter((shot) => shot !== setup)) await shoot(browser, g, shot, failures);
  console.log(`${shots.length * WIDTHS.length - failures.length} screenshots in ${path.relative(process.cwd(), OUT) || OUT}`);
  if (failures.length > 0) throw new Error(`Pages that did not load:\n${failures.join('\n')}`);
}

/** Sample data through the API; answers the ids the pages need. */
async function seed(g: Gatehouse, token: string, sshdPort: number, privateKey: string, s3Port: number, dir: string) {
  const call = <T>(method: string, route: string, body?: unknown) => api<T>(g, token, method, route, body);
  const payments = await call<{ id: string }>('POST', '/projects', { name: 'Payments', description: 'Card processing' });
  const lab = await call<{ id: string }>('POST', '/projects', { name: 'Lab' });
  const device = await addSshDevice(g, token, { projectId: payments.id, name: 'db-1', port: sshdPort, privateKey });
  await addSshDevice(g, token, { projectId: payments.id, name: 'web-1', port: sshdPort, privateKey, extra: { tags: ['web', 'frontend'] } });
  await addSshDevice(g, token, { projectId: lab.id, name: 'build-box-with-a-long-name', port: sshdPort, privateKey });
  const segmentDevice = await addSshDevice(g, token, {
    projectId: payments.id,
    name: 'branch-router',
    port: sshdPort,
    privateKey,
    extra: { tags: ['gateway-office1'], publicIp: '203.0.113.7' },
  });
  await call('POST', '/devices', { projectId: lab.id, name: 'win-desk', provider: 'azure', protocols: ['rdp'], privateIp: '10.0.0.9' });

  // A remote gateway that was registered but never started (offline), in the segment of branch-router.
  const gatewayKey = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  await call('POST', '/gateways', { name: 'office1-a', segment: 'gateway-office1', address: '10.1.0.5:9443', publicKey: gatewayKey });

  const operator = await call<{ id: string }>('POST', '/users', { ...OPERATOR, role: 'operator' });
  await call('POST', '/grants', { userId: operator.id, projectId: payments.id });
  await call('POST', '/users', { ...AUDITOR, role: 'auditor' });

  // A recorded terminal session through the built-in gateway (the admin's password, a terminal).
  const config = path.join(dir, 'ssh_config');
  writeFileSync(config, sshConfig([gatehouseHost('db-1.gatehouse', g.gatewayPort, 'admin+db-1')], path.join(dir, 'device_key')));
  check(
    await runCommand(sshCommand(config, 'db-1.gatehouse', 'echo hello from db-1; uname -a; ls -la', ['-tt'], ADMIN_PASSWORD)),
    'ssh through the gateway',
  );
  const sessions = await call<{ items: { id: string }[] }>('GET', '/sessions');
  const session = sessions.items[0]?.id;
  if (session === undefined) throw new Error('The ssh session was not recorded');

  await call('POST', '/requests', { projectId: payments.id, durationMinutes: 60, reason: 'Patch the database host (CHG-1042)' });
  const run = await call<{ id: string }>('POST', '/runbook-runs', {
    runbook: 'TroubleshootSSH',
    deviceIds: [device],
    privilegedAccount: 'gh-bench',
  });

  // Break glass against s3rver, sealed with age; one run.
  await call(
    'PUT',
    '/breakglass/settings?save=always',
    s3rverBreakGlassSettings({ endpoint: `127.0.0.1:${s3Port}`, recipient: ageRecipient(dir) }),
  );
  await call('POST', '/breakglass/runs');
  return { device, segmentDevice, session, run: run.id };
}

/** A VNC device (Xtigervnc) and an RDP device (xrdp) on this machine, each with a vaulted password; answers their ids. */
async function seedDesktops(g: Gatehouse, token: string, dir: string): Promise<{ vnc: string; rdp: string }> {
  const call = <T>(method: string, route: string, body?: unknown) => api<T>(g, token, method, route, body);
  const password = 'shots-vnc';
  const vnc = await startVncTarget(dir, password, 1024, 640, 'echo VNC desktop of desk-vnc; exec sh');
  const xrdp = await startXrdp({ user: 'gh-shots-rdp', password: 'Rdp-screenshots-1', content: ['xterm', '-geometry', '80x8+0+0'] });
  onCleanup(() => void xrdp.stop());
  const lab = (await call<{ items: { id: string; name: string }[] }>('GET', '/projects')).items.find((p) => p.name === 'Lab');
  const device = async (name: string, protocol: 'vnc' | 'rdp', port: number, username: string, secret: string) => {
    const created = await call<{ id: string }>('POST', '/devices', {
      projectId: lab?.id,
      name,
      provider: 'on-prem',
      protocols: [protocol],
      privateIp: '127.0.0.1',
      urlPort: `${protocol}://127.0.0.1:${port}`,
    });
    await call('POST', '/accounts', { deviceId: created.id, username, password: secret });
    return created.id;
  };
  return {
    vnc: await device('desk-vnc', 'vnc', vnc.port, 'vnc', password),
    rdp: await device('desk-rdp', 'rdp', xrdp.port, xrdp.user, 'Rdp-screenshots-1'),
  };
}

/** Opens `shot` for its user at each width and saves the screenshots; a failure is noted, not thrown. */
async function shoot(browser: Browser, g: Gatehouse, shot: Shot, failures: string[]): Promise<void> {
  for (const width of WIDTHS) {
    const context = await browser.newContext({ viewport: { width, height: 900 } });
    try {
      const page = await context.newPage();
      const who = shot.as ?? 'admin';
      if (who !== 'nobody') await signIn(page, g.url, who);
      await page.goto(new URL(shot.path, g.url).href);
      await page
        .locator(shot.ready ?? 'h1, h2')
        .first()
        .waitFor({ timeout: 20_000 });
      if (shot.desktop) await desktopShown(page);
      // Lazy pages and their data: wait until nothing is loading.
      await page.waitForLoadState('networkidle').catch(() => undefined);
      await page.screenshot({ path: path.join(OUT, `${shot.name}-${width}.png`), fullPage: true });
    } catch (error) {
      failures.push(`${shot.name} at ${width} px: ${(error as Error).message.split('\n')[0]}`);
    } finally {
      await context.close();
    }
  }
}

/** Waits until the desktop's canvas shows the device's background near its bottom-right corner (the RDP session takes seconds). */
async function desktopShown(page: Page): Promise<void> {
  await page.waitForFunction(
    (c) => {
      // The bench is built without the DOM's types: what this function uses of the page.
      type Canvas = {
        width: number;
        height: number;
        getContext(kind: '2d'): { getImageData(...xywh: number[]): { data: Uint8ClampedArray } } | null;
      };
      const { document } = globalThis as unknown as { document: { querySelector(selector: string): Canvas | null } };
      const canvas = document.querySelector('[data-testid="desktop"] canvas');
      const context = canvas && canvas.width >= 10 ? canvas.getContext('2d') : null;
      if (!canvas || !context) return false;
      const [r, g, b] = context.getImageData(canvas.width - 5, canvas.height - 5, 1, 1).data;
      return Math.abs(r! - c.r) < 8 && Math.abs(g! - c.g) < 8 && Math.abs(b! - c.b) < 8;
    },
    VNC_BACKGROUND,
    { polling: 250, timeout: 60_000 },
  );
}

async function signIn(page: Page, url: string, who: 'admin' | 'operator' | 'auditor'): Promise<void> {
  const user = who === 'admin' ? { username: 'admin', password: ADMIN_PASSWORD } : who === 'operator' ? OPERATOR : AUDITOR;
  await page.goto(url);
  await page.getByLabel('User name').fill(user.username);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Devices' }).waitFor();
}

runMain(main);
