/**
 * Desktop (VNC, browser RDP) benchmark for issue 21. Prints figures and ratios, never
 * asserts. See bench/README.md.
 *
 *   npm run bench:desktop -- [--seconds 4] [--rounds 3] [--geometry 1280x720]
 *     [--browser-runs 5] [--no-gateway] [--no-browser]
 *
 * 1. VNC proxy throughput: framebuffer updates from a real Xtigervnc (an xterm scrolling
 *    on it) to a small RFB client in this process, straight to the device, through
 *    `RfbProxy` in a child process (the gateway's relay with its recorder, nothing else),
 *    and through `gatehouse server`'s VNC port with a one-time token. Two loads per
 *    connection: Raw with full, non-incremental update requests (large, deterministic
 *    bytes) and incremental requests with the encodings a viewer asks for (Tight, ZRLE,
 *    Hextile, CopyRect, Raw). Paths interleave round by round.
 * 2. Browser VNC time to first frame: headless Chromium signed in to the console opens
 *    `/devices/:id/desktop` until the noVNC canvas shows the device's background colour.
 * 3. Browser RDP (first frame, CPU and RSS per session at 1, 5 and 10 sessions): measured
 *    only when the desktop route renders RDP; otherwise printed as skipped with the reason.
 *
 * Needs Xtigervnc, vncpasswd, xsetroot and xterm, /usr/bin/chromium for part 2. Runs on the
 * built packages (`tsc -b`, this file compiled by bench/tsconfig.json into bench/dist).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { CANONICAL_PIXEL_FORMAT, RFB_RECORDING_FORMAT, RFB_RECORDING_VERSION } from '@gatehouse/core';
import * as gatewayModule from '@gatehouse/gateway';
import { ServerMessageFramer, vncAuthResponse, type RfbServerMessage } from '@gatehouse/gateway';
import { type Page } from 'playwright-core';
import { launchChromium } from './chromium.js';
import { ensureSystemUser } from './host.js';
import { startVncTarget, VNC_BACKGROUND, type VncTarget } from './vnc-target.js';
import { startXrdp } from './xrdp.js';
import {
  api,
  cpuSeconds,
  f1,
  f2,
  freePort,
  median,
  MiB,
  onCleanup,
  rssKiB,
  runMain,
  setUpGatehouse,
  startGatehouse,
  track,
  type Gatehouse,
} from './ssh-support.js';

/** The device's background (xsetroot), which the browser's first frame must show. */
const BACKGROUND = VNC_BACKGROUND;
/** What a viewer asks for (noVNC and TigerVNC's order), all of them playable by the recorder's player. */
const VIEWER_ENCODINGS = [7, 16, 5, 1, 0];
const RAW = [0];

/** The device: Xtigervnc with VncAuth, the background and an xterm that keeps scrolling (the bottom right stays background for the browser's check). */
function startTarget(dir: string, password: string, width: number, height: number): Promise<VncTarget> {
  return startVncTarget(dir, password, width, height, 'while :; do ls -l /usr/bin /usr/lib/x86_64-linux-gnu 2>/dev/null; done');
}

// ---------------------------------------------------------------------------------------
// The measuring client: handshake (VncAuth or None, RFB 3.8), canonical pixels, and
// framebuffer updates counted as they are framed (nothing decoded).

interface Load {
  bytes: number;
  updates: number;
  seconds: number;
}

class BenchClient {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private wake: (() => void) | undefined;
  private closed = false;
  private onMessage: ((m: RfbServerMessage) => void) | undefined;
  width = 0;
  height = 0;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.buffered.push(d);
      this.bufferedBytes += d.length;
      this.wake?.();
    });
    const closed = () => {
      this.closed = true;
      this.wake?.();
    };
    socket.on('close', closed);
    socket.on('error', closed);
  }

  static async connect(port: number, password: string | undefined): Promise<BenchClient> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const client = new BenchClient(socket);
    await client.handshake(password);
    return client;
  }

  private async read(bytes: number): Promise<Buffer> {
    while (this.bufferedBytes < bytes) {
      if (this.closed) throw new Error(`The VNC server closed the connection during the handshake.`);
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    const all = Buffer.concat(this.buffered);
    this.buffered = all.length > bytes ? [all.subarray(bytes)] : [];
    this.bufferedBytes = all.length - bytes;
    return all.subarray(0, bytes);
  }

  private async handshake(password: string | undefined): Promise<void> {
    await this.read(12);
    this.socket.write('RFB 003.008\n');
    const types = [...(await this.read((await this.read(1))[0]!))];
    const type = password !== undefined && types.includes(2) ? 2 : 1;
    if (!types.includes(type)) throw new Error(`The server offers security types ${types.join(', ')}.`);
    this.socket.write(Buffer.of(type));
    if (type === 2) this.socket.write(vncAuthResponse(await this.read(16), password ?? ''));
    if ((await this.read(4)).readUInt32BE(0) !== 0)
      throw new Error(`Refused: ${(await this.read((await this.read(4)).readUInt32BE(0))).toString()}`);
    this.socket.write(Buffer.of(1));
    const init = await this.read(24);
    this.width = init.readUInt16BE(0);
    this.height = init.readUInt16BE(2);
    await this.read(init.readUInt32BE(20));
    const setPixelFormat = Buffer.alloc(20);
    setPixelFormat.set(CANONICAL_PIXEL_FORMAT, 4);
    this.socket.write(setPixelFormat);
    const framer = new ServerMessageFramer({ end: (m) => this.onMessage?.(m) });
    const rest = Buffer.concat(this.buffered);
    this.socket.removeAllListeners('data');
    this.socket.on('data', (d: Buffer) => framer.push(d));
    if (rest.length > 0) framer.push(rest);
  }

  private setEncodings(encodings: number[]): void {
    const m = Buffer.alloc(4 + 4 * encodings.length);
    m[0] = 2;
    m.writeUInt16BE(encodings.length, 2);
    encodings.forEach((e, i) => m.writeInt32BE(e, 4 + 4 * i));
    this.socket.write(m);
  }

  private request(incremental: boolean): void {
    const m = Buffer.alloc(10);
    m[0] = 3;
    m[1] = incremental ? 1 : 0;
    m.writeUInt16BE(this.width, 6);
    m.writeUInt16BE(this.height, 8);
    this.socket.write(m);
  }

  /**
   * One update request outstanding at a time for `seconds` (after `warmSeconds` not
   * counted): `raw` asks for the whole screen in Raw each time; otherwise the first request
   * is full and the rest incremental, in the viewer's encodings.
   */
  run(raw: boolean, seconds: number, warmSeconds: number): Promise<Load> {
    this.setEncodings(raw ? RAW : VIEWER_ENCODINGS);
    return new Promise((resolve, reject) => {
      const warmEnd = performance.now() + warmSeconds * 1000;
      let start = 0;
      let stopAt = Infinity;
      const load: Load = { bytes: 0, updates: 0, seconds: 0 };
      const timer = setTimeout(() => reject(new Error('The VNC server stopped sending updates.')), (seconds + warmSeconds + 30) * 1000);
      this.onMessage = (m) => {
        if (m.type !== 0) return;
        const now = performance.now();
        if (start === 0 && now >= warmEnd) {
          start = now;
          stopAt = now + seconds * 1000;
        } else if (start !== 0) {
          load.bytes += m.end - m.start;
          load.updates++;
        }
        if (now >= stopAt) {
          clearTimeout(timer);
          this.onMessage = undefined;
          load.seconds = (now - start) / 1000;
          resolve(load);
        } else this.request(!raw);
      };
      this.request(false);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------
// The relay alone: RfbProxy with its recorder, in its own process (a child of this one),
// as the gateway runs it after both handshakes.

async function proxyChild(
  targetPort: number,
  password: string,
  recordingsDir: string | undefined,
  baseline: string | undefined,
): Promise<void> {
  // --baseline: the relay from another build of the gateway package (e.g. main's, copied aside), same process set-up.
  const gateway = (baseline ? await import(pathToFileURL(path.resolve(baseline, 'index.js')).href) : gatewayModule) as typeof gatewayModule;
  const { acceptVncUser, connectVncTarget, RfbProxy, RfbRecorder, rfbRecordingPath, sendServerInit } = gateway;
  // Exit (rather than die) on the bench's SIGTERM, so that --cpu-prof writes the profile.
  process.once('SIGTERM', () => process.exit(0));
  const server = net.createServer((user) => {
    user.setNoDelay(true);
    void (async () => {
      await acceptVncUser(user, { kind: 'none' }, { timeoutMs: 10_000 });
      const socket = net.connect({ host: '127.0.0.1', port: targetPort });
      socket.setNoDelay(true);
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      const connection = await connectVncTarget(socket, { password, timeoutMs: 10_000, where: 'bench-desk' });
      const startedAt = new Date();
      const recorder =
        recordingsDir === undefined
          ? undefined
          : await RfbRecorder.open(recordingsDir, rfbRecordingPath(randomBytes(8).toString('hex'), startedAt), {
              format: RFB_RECORDING_FORMAT,
              version: RFB_RECORDING_VERSION,
              width: connection.init.width,
              height: connection.init.height,
              name: 'bench-desk',
              pixelFormat: Buffer.from(CANONICAL_PIXEL_FORMAT).toString('hex'),
              startedAt: startedAt.toISOString(),
              protocol: 'vnc',
            });
      sendServerInit(user, connection.init, 'bench-desk');
      await new RfbProxy({ user, target: connection.socket, init: connection.init, recorder }).done;
    })().catch((error: unknown) => {
      console.error('proxy child:', error);
      user.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.send?.({ port: (server.address() as net.AddressInfo).port });
}

/**
 * The relay in a child process; `recordingsDir` undefined: without a recorder; `baseline`: the
 * gateway package from that build directory; `cpuProf`: a V8 CPU profile of the child into it.
 */
async function startProxyChild(
  targetPort: number,
  password: string,
  recordingsDir: string | undefined,
  { baseline, cpuProf }: { baseline?: string | undefined; cpuProf?: string | undefined } = {},
): Promise<{ pid: number; port: number; child: ChildProcess }> {
  const args = [
    ...['--proxy-child', '--target-port', String(targetPort)],
    ...(recordingsDir ? ['--recordings', recordingsDir] : []),
    ...(baseline ? ['--baseline', baseline] : []),
  ];
  const execArgv = cpuProf ? ['--cpu-prof', '--cpu-prof-dir', cpuProf] : [];
  const child = track(fork(fileURLToPath(import.meta.url), args, { env: { ...process.env, BENCH_VNC_PASSWORD: password }, execArgv }));
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`the proxy child exited (${code})`)));
  });
  return { pid: child.pid as number, port, child };
}

// ---------------------------------------------------------------------------------------
// The gateway: `gatehouse server` with its VNC listener, a device for the target, tokens.

interface GatewayPath {
  g: Gatehouse;
  token: string;
  deviceId: string;
  vncPort: number;
  adminPassword: string;
  dataDir: string;
  rdpRunDir: string;
  /** The server's GATEHOUSE_RDP_DISPLAY_POOL. */
  rdpPool: number;
  /** The server's log (JSON lines). */
  log: string;
}

async function startGatewayPath(
  dir: string,
  target: VncTarget,
  password: string,
  rdpPool: number,
  rdpClient: string,
): Promise<GatewayPath | string> {
  const dataDir = path.join(dir, 'gatehouse', 'data');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // The server's TMPDIR holds the RDP renderer's per-session directories, which every renderer process names.
  const rdpRunDir = path.join(dir, 'rdp-run');
  mkdirSync(rdpRunDir, { mode: 0o700 });
  const log = path.join(dir, 'gatehouse.log');
  const vncPort = await freePort();
  let g: Gatehouse;
  try {
    g = await startGatehouse(
      dataDir,
      {
        GATEHOUSE_VNC_PORT: String(vncPort),
        // Listeners not measured here off: their fixed default ports may be taken by other work on the machine.
        GATEHOUSE_AGENT_PORT: '0',
        GATEHOUSE_RDP_PORT: '0',
        // Info: each browser RDP session's start-up timings ('browser RDP session rendered  ms=…  timings={…}').
        GATEHOUSE_LOG_LEVEL: 'info',
        GATEHOUSE_RDP_MAX_SESSIONS: String(Math.max(...RDP_SESSIONS)),
        GATEHOUSE_RDP_DISPLAY_POOL: String(rdpPool),
        GATEHOUSE_RDP_CLIENT: rdpClient,
        TMPDIR: rdpRunDir,
      },
      { log },
    );
  } catch (error) {
    return `gatehouse server did not start with GATEHOUSE_VNC_PORT: ${(error as Error).message.split('\n')[0]}`;
  }
  const adminPassword = randomBytes(12).toString('base64url');
  const token = await setUpGatehouse(g, dataDir, adminPassword);
  const project = await api<{ id: string }>(g, token, 'POST', '/projects', { name: 'bench' });
  const device = await api<{ id: string }>(g, token, 'POST', '/devices', {
    projectId: project.id,
    name: 'bench-desk',
    provider: 'on-prem',
    protocols: ['vnc'],
    privateIp: '127.0.0.1',
    urlPort: String(target.port),
  });
  await api(g, token, 'POST', '/accounts', { deviceId: device.id, username: 'vnc', password });
  const path_: GatewayPath = { g, token, deviceId: device.id, vncPort, adminPassword, dataDir, rdpRunDir, rdpPool, log };
  const probe = await vncToken(path_).catch((error: Error) => error);
  if (probe instanceof Error) return `no VNC token from the server (POST /devices/:id/vnc-token): ${probe.message.slice(0, 160)}`;
  const open = await new Promise<boolean>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: vncPort }, () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
  if (!open) return `nothing listens on the VNC port ${vncPort} (GATEHOUSE_VNC_PORT): the server has no VNC listener`;
  return path_;
}

async function vncToken(p: GatewayPath): Promise<{ token: string; address: string }> {
  return api<{ token: string; address: string }>(p.g, p.token, 'POST', `/devices/${p.deviceId}/vnc-token`, {});
}

// ---------------------------------------------------------------------------------------
// The browser.

/** The page's global object as the functions run in it see it (bench/ has no DOM types). */
interface InPage {
  __wsAt?: number;
  __frameAt?: number;
  __clickAt?: number;
  addEventListener(type: 'click', listener: () => void, capture: boolean): void;
  performance: { now(): number };
  document: {
    querySelector(selector: string): {
      width: number;
      height: number;
      getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null;
    } | null;
  };
  WebSocket: new (url: string | URL, protocols?: string | string[]) => object;
}

/**
 * Opens the desktop page and waits until the canvas shows the background colour near its
 * bottom-right corner: ms from navigation start and from the desktop WebSocket's creation.
 */
async function firstFrame(page: Page, url: string, timeout = 30_000): Promise<{ fromNavigation: number; fromSocket: number }> {
  await page.goto(url, { waitUntil: 'commit' });
  return desktopShown(page, timeout);
}

/**
 * As a user opens it: the device page loaded first (not timed), then a click on its "Open
 * desktop" link (a route change in the page, whose chunk the device page fetched ahead):
 * ms from the click to the target colour in the canvas.
 */
async function firstFrameFromClick(page: Page, devicePage: string, timeout = 30_000): Promise<{ fromClick: number; fromSocket: number }> {
  await page.goto(devicePage);
  const link = page.getByRole('link', { name: 'Open desktop' });
  await link.waitFor({ timeout });
  // The device page's fetch of the desktop chunk, started when the link appeared, is done.
  await page.waitForLoadState('networkidle');
  await link.click();
  const shown = await desktopShown(page, timeout);
  // The page's own time of the click event (after Playwright's checks before it clicks).
  const clickAt = await page.evaluate(() => (globalThis as unknown as InPage).__clickAt ?? NaN);
  return { fromClick: shown.fromNavigation - clickAt, fromSocket: shown.fromSocket };
}

/** Waits until the desktop canvas shows the background colour: ms from the document's start and from the desktop WebSocket. */
async function desktopShown(page: Page, timeout: number): Promise<{ fromNavigation: number; fromSocket: number }> {
  await page
    .waitForFunction(
      (c) => {
        const w = globalThis as unknown as InPage;
        const canvas = w.document.querySelector('[data-testid="desktop"] canvas');
        const context = canvas && canvas.width >= 10 ? canvas.getContext('2d') : null;
        if (!canvas || !context) return false;
        const [r, g, b] = context.getImageData(canvas.width - 5, canvas.height - 5, 1, 1).data;
        const near = Math.abs(r! - c.r) < 8 && Math.abs(g! - c.g) < 8 && Math.abs(b! - c.b) < 8;
        if (near) w.__frameAt = w.performance.now();
        return near;
      },
      BACKGROUND,
      { polling: 'raf', timeout },
    )
    .catch(async (error: Error) => {
      const shown = await page
        .locator('main')
        .innerText()
        .catch(() => '');
      throw new Error(`${error.message.split('\n')[0]}; the page shows: ${shown.replace(/\s+/g, ' ').slice(0, 300)}`);
    });
  const { wsAt, frameAt } = await page.evaluate(() => {
    const w = globalThis as unknown as InPage;
    return { wsAt: w.__wsAt ?? 0, frameAt: w.__frameAt ?? 0 };
  });
  return { fromNavigation: frameAt, fromSocket: frameAt - wsAt };
}

async function browserPart(
  p: GatewayPath,
  runs: number,
  rdpRuns: number,
  rdpClickRuns: number,
  idleSeconds: number,
): Promise<{ vnc: string[]; rdp: string[] }> {
  const browser = await launchChromium(p.g.cert, { handleSignals: false });
  onCleanup(() => void browser.close());
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    await context.addInitScript(() => {
      const w = globalThis as unknown as InPage;
      w.addEventListener('click', () => (w.__clickAt = w.performance.now()), true);
      const Original = w.WebSocket;
      // A Proxy, not a subclass: noVNC checks the socket's prototype for WebSocket's own methods.
      w.WebSocket = new Proxy(Original, {
        construct(target, args: [string | URL, (string | string[])?]) {
          if (String(args[0]).endsWith('/desktop')) w.__wsAt = w.performance.now();
          return Reflect.construct(target, args);
        },
      });
    });
    const page = await context.newPage();
    await page.goto(p.g.url);
    await page.getByLabel('User name').fill('admin');
    await page.getByLabel('Password').fill(p.adminPassword);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Devices' }).waitFor();
    const vnc: string[] = [];
    const times: { fromNavigation: number; fromSocket: number }[] = [];
    for (let i = 0; i < runs; i++) {
      const t = await firstFrame(page, `${p.g.url}/devices/${p.deviceId}/desktop`);
      times.push(t);
      await page.goto('about:blank');
    }
    vnc.push(`| browser VNC, first visit (cold bundle) | ${f1(times[0]!.fromNavigation)} | ${f1(times[0]!.fromSocket)} |`);
    const warm = times.slice(1);
    if (warm.length > 0)
      vnc.push(
        `| browser VNC, again (median of ${warm.length}; range) | ${f1(median(warm.map((t) => t.fromNavigation)))} (${f1(Math.min(...warm.map((t) => t.fromNavigation)))}–${f1(Math.max(...warm.map((t) => t.fromNavigation)))}) | ${f1(median(warm.map((t) => t.fromSocket)))} |`,
      );
    const rdp: string[] = [];
    if (rdpRuns > 0)
      await rdpPart(p, page, rdpRuns, rdpClickRuns, idleSeconds, rdp).catch((error: Error) => rdp.push(`stopped: ${error.message}`));
    else rdp.push('skipped: --rdp-runs 0');
    return { vnc, rdp };
  } finally {
    await browser.close();
  }
}

/** Concurrent browser RDP sessions measured for CPU and RSS. */
const RDP_SESSIONS = [1, 5, 10];
/**
 * The target's users, one per concurrent session (`gh-bench-rdp1`…): xrdp gives a user who
 * signs in again the session they already have, and disconnects the earlier client.
 */
const rdpUser = (i: number) => `gh-bench-rdp${i + 1}`;

/** One process of the machine, from /proc/<pid>/stat (and its command line). */
interface Proc {
  pid: number;
  group: number;
  name: string;
  /** CPU seconds, user + system. */
  cpu: number;
  rssKiB: number;
  cmdline: string;
}

const TICKS = 100;

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({
        pid: Number(entry),
        group: Number(f[2]),
        name,
        cpu: (Number(f[11]) + Number(f[12])) / TICKS,
        rssKiB: (Number(f[21]) * 4096) / 1024,
        cmdline: readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' '),
      });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * The renderer's processes: every member of the process groups whose leader names the run
 * directory (Xvfb, xfreerdp, x11vnc); `sessions`: only those of displays a session uses (an
 * xfreerdp names the same directory), not the pool's waiting ones.
 */
function rendererProcesses(runDir: string, { sessions = false } = {}): Proc[] {
  const all = processes();
  const leaders = all.filter((p) => p.pid === p.group && p.cmdline.includes(runDir));
  const directoryOf = (p: Proc) => new RegExp(`${runDir}/(gatehouse-rdp-[^/ ]+)`).exec(p.cmdline)?.[1];
  const used = new Set(leaders.filter((p) => /^xfreerdp3?$/.test(p.name)).map(directoryOf));
  const groups = new Set(leaders.filter((p) => !sessions || used.has(directoryOf(p))).map((p) => p.group));
  return all.filter((p) => groups.has(p.group));
}

/** Waits (polling /proc) until no session's renderer process is left (only the pool's waiting displays, 2 processes each). */
async function rendererGone(runDir: string, pool = 0, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  const left = () => rendererProcesses(runDir);
  while (left().length > 2 * pool || left().some((p) => /^xfreerdp3?$/.test(p.name))) {
    if (performance.now() > deadline) throw new Error(`renderer processes still running after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface LogEntry {
  level: number;
  msg: string;
  ms?: number;
  timings?: Record<string, number>;
  pooledDisplay?: boolean;
  protocol?: string;
  err?: { message?: string };
}

/** The server's log entries (pino JSON lines: its output is not a terminal). */
function logEntries(log: string): LogEntry[] {
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogEntry);
}

/** The start-up timings the server logged for each browser RDP session so far ('browser RDP session rendered'). */
function loggedTimings(log: string): { steps: Record<string, number>; pooled: boolean }[] {
  return logEntries(log)
    .filter((e) => e.msg === 'browser RDP session rendered')
    .map((e) => ({ steps: { ...e.timings, opened: e.ms ?? NaN }, pooled: e.pooledDisplay === true }));
}

/**
 * The desktop route's timeline of each browser session so far ('browser desktop: first frame
 * relayed'): ms from the page's start message to authorized, opened (rendered and the
 * gateway's RFB handshake with it), the page's RFB handshake, the first update relayed.
 */
function routeTimings(log: string, protocol: string): Record<string, number>[] {
  return logEntries(log)
    .filter((e) => e.msg === 'browser desktop: first frame relayed' && e.protocol === protocol)
    .map((e) => e.timings ?? {});
}

/**
 * Browser RDP against an xrdp target on this machine: time to first frame (`runs` new
 * sessions one after another), then `RDP_SESSIONS` pages open at once, idle, for CPU and RSS
 * per session (renderer process groups summed, plus the server's share).
 */
async function rdpPart(p: GatewayPath, page: Page, runs: number, clickRuns: number, idleSeconds: number, out: string[]): Promise<void> {
  const pool = p.rdpPool;
  const password = `Rdp-${randomBytes(9).toString('base64url')}`;
  const xrdp = await startXrdp({ user: rdpUser(0), password });
  onCleanup(() => void xrdp.stop());
  try {
    const project = await api<{ items: { id: string }[] }>(p.g, p.token, 'GET', '/projects');
    // A device (the same target) per user.
    const urls: string[] = [];
    const devicePages: string[] = [];
    for (let i = 0; i < Math.max(...RDP_SESSIONS); i++) {
      if (i > 0) ensureSystemUser(rdpUser(i), { password });
      const device = await api<{ id: string }>(p.g, p.token, 'POST', '/devices', {
        projectId: project.items[0]!.id,
        name: `bench-rdp-${i + 1}`,
        provider: 'on-prem',
        protocols: ['rdp'],
        privateIp: '127.0.0.1',
        urlPort: `rdp://127.0.0.1:${xrdp.port}`,
      });
      await api(p.g, p.token, 'POST', '/accounts', { deviceId: device.id, username: rdpUser(i), password });
      urls.push(`${p.g.url}/devices/${device.id}/desktop?protocol=rdp`);
      devicePages.push(`${p.g.url}/devices/${device.id}`);
    }
    const url = urls[0]!;

    // First frame: one new session at a time (the page leaves, the renderer stops, the next starts),
    // alternately opened by navigating to the desktop page and by "Open desktop" on the device page.
    const times: { fromNavigation: number; fromSocket: number }[] = [];
    const clicks: { fromClick: number; fromSocket: number; index: number }[] = [];
    for (let i = 0; i < runs + clickRuns; i++) {
      if (i >= runs) clicks.push({ ...(await firstFrameFromClick(page, devicePages[0]!)), index: i });
      else times.push(await firstFrame(page, url));
      await page.goto('about:blank');
      await rendererGone(p.rdpRunDir, pool);
    }
    // Sessions ran one after another: the i-th logged start-up is the i-th first frame's.
    const server = loggedTimings(p.log).slice(0, runs);
    const groups = [
      { name: 'all', of: times.map((_, i) => i) },
      { name: 'display from the pool', of: times.map((_, i) => i).filter((i) => server[i]?.pooled) },
      { name: 'display started for the session', of: times.map((_, i) => i).filter((i) => !server[i]?.pooled) },
    ].filter((g) => g.of.length > 0);
    out.push(
      `first frame (target colour in the canvas), ${runs} new sessions one after another (display pool ${pool}: the first fills it), median (range); target ≤ 1500 ms:\n`,
      '| sessions | n | ms from navigation | ms from the desktop WebSocket | verdict |',
      '|---|---|---|---|---|',
    );
    for (const g of groups) {
      const nav = g.of.map((i) => times[i]!.fromNavigation);
      const socket = g.of.map((i) => times[i]!.fromSocket);
      out.push(
        `| ${g.name} | ${g.of.length} | ${f1(median(nav))} (${range(nav)}) | ${f1(median(socket))} (${range(socket)}) | ${median(nav) <= 1500 ? 'met' : 'NOT met'} |`,
      );
    }
    if (clicks.length > 0) {
      const fromClick = clicks.map((c) => c.fromClick);
      const socket = clicks.map((c) => c.fromSocket);
      out.push(
        '',
        `as a user opens it: "Open desktop" clicked on the device page (loaded before; pooled display, trusted certificate), ${clicks.length} sessions:\n`,
        '| n | ms from the click | ms from the desktop WebSocket | verdict |',
        '|---|---|---|---|',
        `| ${clicks.length} | ${f1(median(fromClick))} (${range(fromClick)}) | ${f1(median(socket))} (${range(socket)}) | ${median(fromClick) <= 1500 ? 'met' : 'NOT met'} |`,
      );
    }
    out.push(
      '',
      'where the time goes on the server (ms from the renderer starting, medians; steps overlap, see bench/README.md):\n',
      '| sessions | certificate known | Xvfb up | x11vnc up | xfreerdp started | dialed | RDP connected | logged on (session rendered) | browser: WebSocket → first frame − rendered |',
      '|---|---|---|---|---|---|---|---|---|',
    );
    for (const g of groups) {
      const t = g.of.map((i) => server[i]?.steps).filter((x): x is Record<string, number> => x !== undefined);
      const socket = g.of.map((i) => times[i]!.fromSocket);
      out.push(
        `| ${g.name} | ${['certificate', 'display', 'vnc', 'xfreerdp', 'dialed', 'connected', 'loggedOn'].map((k) => f1(median(t.map((x) => x[k] ?? NaN)))).join(' | ')} | ${f1(median(socket) - median(t.map((x) => x.opened ?? NaN)))} |`,
      );
    }
    const route = routeTimings(p.log, 'rdp').slice(0, runs);
    out.push(
      '',
      "the desktop route (ms from the page's start message, medians of all; the browser's part = from the WebSocket − first update relayed):\n",
      '| authorized | opened (rendered + RFB handshake with x11vnc) | page RFB handshake | first update relayed | browser: WebSocket → first frame − relayed |',
      '|---|---|---|---|---|',
      `| ${['authorized', 'opened', 'userHandshake', 'firstFrame'].map((k) => f1(median(route.map((x) => x[k] ?? NaN)))).join(' | ')} | ${f1(median(times.map((t) => t.fromSocket)) - median(route.map((x) => x.firstFrame ?? NaN)))} |`,
    );
    out.push('');
    if (idleSeconds === 0) return void out.push('per-session CPU and RSS: skipped (--rdp-idle-seconds 0)');

    // CPU and RSS at 1, 5 and 10 sessions, idle desktops.
    out.push(
      `per browser RDP session, idle desktops, CPU over ${idleSeconds} s; renderer = Xvfb + xfreerdp + x11vnc process groups; target ≤ 150 MiB:\n`,
      '| sessions | first frame ms (median, max; each opened alone) | renderer RSS MiB/session | of which Xvfb / xfreerdp / x11vnc | server RSS MiB/session | total MiB/session | renderer CPU %/session | server CPU %/session | verdict |',
      '|---|---|---|---|---|---|---|---|---|',
    );
    // Sessions open one after another and stay open (1, then up to 5, then up to 10): on this
    // busy machine several xrdp logons at once outlast the renderer's 20 s logon limit.
    const baseRss = rssKiB(p.g.pid);
    const pages: Page[] = [];
    const frames: number[] = [];
    try {
      for (const n of RDP_SESSIONS) {
        while (pages.length < n) {
          const pg = await page.context().newPage();
          pages.push(pg);
          const opened = await firstFrame(pg, urls[pages.length - 1]!, 60_000).catch((error: Error) => error);
          if (opened instanceof Error) {
            const logged = logEntries(p.log)
              .filter((e) => e.level >= 40)
              .map((e) => `${e.msg}${e.err?.message ? `: ${e.err.message}` : ''}`);
            out.push(
              `| ${n} | session ${pages.length} showed no desktop: ${opened.message.slice(0, 300)}; server: ${logged.at(-1) ?? ''} |`,
            );
            return;
          }
          frames.push(opened.fromNavigation);
        }
        const before = rendererProcesses(p.rdpRunDir, { sessions: true });
        const serverCpu0 = cpuSeconds(p.g.pid);
        const t0 = performance.now();
        await new Promise((r) => setTimeout(r, idleSeconds * 1000));
        const after = rendererProcesses(p.rdpRunDir, { sessions: true });
        const wall = (performance.now() - t0) / 1000;
        const cpu0 = new Map(before.map((x) => [x.pid, x.cpu]));
        const rendererCpu = after.reduce((sum, x) => sum + x.cpu - (cpu0.get(x.pid) ?? x.cpu), 0);
        const serverCpu = cpuSeconds(p.g.pid) - serverCpu0;
        const byName = (name: string) => after.filter((x) => x.name.startsWith(name)).reduce((sum, x) => sum + x.rssKiB, 0) / 1024 / n;
        const renderer = after.reduce((sum, x) => sum + x.rssKiB, 0) / 1024 / n;
        const server = Math.max(0, rssKiB(p.g.pid) - baseRss) / 1024 / n;
        const groups = new Set(after.map((x) => x.group)).size;
        out.push(
          `| ${n} (${groups / 3} rendered) | ${f1(median(frames))}, ${f1(Math.max(...frames))} | ${f1(renderer)} | ${f1(byName('Xvfb'))} / ${f1(byName('xfreerdp'))} / ${f1(byName('x11vnc'))} | ${f1(server)} | **${f1(renderer + server)}** | ${f1((rendererCpu / wall / n) * 100)} | ${f1((serverCpu / wall / n) * 100)} | ${renderer + server <= 150 ? 'met' : 'NOT met'} |`,
        );
      }
    } finally {
      await Promise.all(pages.map((pg) => pg.close()));
      await rendererGone(p.rdpRunDir, pool);
    }
  } finally {
    await xrdp.stop();
  }
}

// ---------------------------------------------------------------------------------------

interface PathFigures {
  name: string;
  raw: Load[];
  viewer: Load[];
  /** CPU seconds of the relaying process (the proxy child, the server) per MiB, per round. */
  cpuPerMiB: number[];
  pid: number | null;
}

const mibps = (l: Load) => l.bytes / MiB / l.seconds;
const ups = (l: Load) => l.updates / l.seconds;
const best = (xs: number[]) => Math.max(...xs);
const range = (xs: number[]) => `${f1(Math.min(...xs))}–${f1(Math.max(...xs))}`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '4' },
      rounds: { type: 'string', default: '3' },
      geometry: { type: 'string', default: '1280x720' },
      'browser-runs': { type: 'string', default: '5' },
      'no-gateway': { type: 'boolean', default: false },
      'no-browser': { type: 'boolean', default: false },
      'rdp-runs': { type: 'string', default: '5' },
      // Then sessions opened as a user does: "Open desktop" clicked on the device page.
      'rdp-click-runs': { type: 'string', default: '5' },
      'rdp-idle-seconds': { type: 'string', default: '5' },
      'rdp-pool': { type: 'string', default: '1' },
      // The server's rdpClient: auto (xfreerdp3 when installed), xfreerdp (FreeRDP 2) or xfreerdp3.
      'rdp-client': { type: 'string', default: 'auto' },
      'proxy-child': { type: 'boolean', default: false },
      'target-port': { type: 'string' },
      recordings: { type: 'string' },
      baseline: { type: 'string' },
      'cpu-prof': { type: 'string' },
    },
  });
  if (values['proxy-child'])
    return proxyChild(Number(values['target-port']), process.env.BENCH_VNC_PASSWORD ?? '', values.recordings, values.baseline);
  const cpuProf = values['cpu-prof'] ? path.resolve(values['cpu-prof']) : undefined;
  const baselineDir = values.baseline ? path.resolve(values.baseline) : undefined;
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  const [width, height] = (values.geometry ?? '').split('x').map(Number) as [number, number];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-desktop-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const password = randomBytes(6).toString('base64url').slice(0, 8);

  console.log(
    `${new Date().toISOString()}  ${os.cpus().length} CPUs, load average ${os.loadavg().map(f2).join(' ')}, Node ${process.version}`,
  );
  const target = await startTarget(dir, password, width, height);
  const proxy = await startProxyChild(target.port, password, path.join(dir, 'recordings'), { cpuProf });
  const bare = await startProxyChild(target.port, password, undefined, { cpuProf });
  const baseline = baselineDir
    ? await startProxyChild(target.port, password, path.join(dir, 'recordings'), { baseline: baselineDir, cpuProf })
    : undefined;
  const gateway = values['no-gateway']
    ? 'skipped: --no-gateway'
    : await startGatewayPath(dir, target, password, Number(values['rdp-pool']), values['rdp-client'] ?? 'auto');
  console.log(`Xtigervnc ${target.display} on 127.0.0.1:${target.port} at ${width}x${height}, an xterm scrolling in its top left`);
  if (typeof gateway === 'string') console.log(`gateway path ${gateway}`);

  const paths: (PathFigures & { connect: () => Promise<BenchClient> })[] = [
    {
      name: 'direct (client → Xtigervnc)',
      raw: [],
      viewer: [],
      cpuPerMiB: [],
      pid: null,
      connect: () => BenchClient.connect(target.port, password),
    },
    {
      name: 'RfbProxy in a process (+ recording)',
      raw: [],
      viewer: [],
      cpuPerMiB: [],
      pid: proxy.pid,
      connect: () => BenchClient.connect(proxy.port, undefined),
    },
    {
      name: 'RfbProxy in a process, no recording',
      raw: [],
      viewer: [],
      cpuPerMiB: [],
      pid: bare.pid,
      connect: () => BenchClient.connect(bare.port, undefined),
    },
  ];
  if (baseline)
    paths.push({
      name: `RfbProxy in a process (+ recording), baseline build ${path.basename(baselineDir!)}`,
      raw: [],
      viewer: [],
      cpuPerMiB: [],
      pid: baseline.pid,
      connect: () => BenchClient.connect(baseline.port, undefined),
    });
  if (typeof gateway !== 'string')
    paths.push({
      name: 'gatehouse server VNC port (token, recorded)',
      raw: [],
      viewer: [],
      cpuPerMiB: [],
      pid: gateway.g.pid,
      connect: async () => BenchClient.connect(gateway.vncPort, (await vncToken(gateway)).token),
    });

  for (let round = 1; round <= rounds; round++) {
    for (const p of paths) {
      const client = await p.connect();
      const cpu0 = p.pid ? cpuSeconds(p.pid) : 0;
      const raw = await client.run(true, seconds, 0.5);
      const viewer = await client.run(false, seconds, 0.5);
      if (p.pid) p.cpuPerMiB.push(((cpuSeconds(p.pid) - cpu0) * 1000) / ((raw.bytes + viewer.bytes) / MiB));
      client.close();
      p.raw.push(raw);
      p.viewer.push(viewer);
      console.log(
        `round ${round} ${p.name}: Raw full ${f1(mibps(raw))} MiB/s ${f1(ups(raw))} upd/s; viewer incremental ${f2(mibps(viewer))} MiB/s ${f1(ups(viewer))} upd/s`,
      );
    }
  }

  console.log(`\nVNC framebuffer updates, ${rounds} rounds of ${seconds} s per load, best (range):\n`);
  console.log(
    '| path | Raw full MiB/s | Raw full updates/s | viewer incremental updates/s | viewer MiB/s | relay ms CPU/MiB | relay RSS MiB |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const p of paths) {
    const raw = p.raw.map(mibps);
    const rawU = p.raw.map(ups);
    const viewerU = p.viewer.map(ups);
    const cpu = p.cpuPerMiB.length ? f2(median(p.cpuPerMiB)) : '';
    const rss = p.pid ? f1(rssKiB(p.pid) / 1024) : '';
    console.log(
      `| ${p.name} | ${f1(best(raw))} (${range(raw)}) | ${f1(best(rawU))} (${range(rawU)}) | ${f1(best(viewerU))} (${range(viewerU)}) | ${f2(best(p.viewer.map(mibps)))} | ${cpu} | ${rss} |`,
    );
  }
  const direct = paths[0]!;
  console.log('\n| ratio to direct (best; target ≥ 0.9×) | Raw full MiB/s | viewer updates/s |');
  console.log('|---|---|---|');
  for (const p of paths.slice(1)) {
    const r = best(p.raw.map(mibps)) / best(direct.raw.map(mibps));
    const v = best(p.viewer.map(ups)) / best(direct.viewer.map(ups));
    console.log(`| ${p.name} | **${f2(r)}×** ${r >= 0.9 ? 'met' : 'NOT met'} | **${f2(v)}×** ${v >= 0.9 ? 'met' : 'NOT met'} |`);
  }
  if (typeof gateway === 'string') console.log(`| gatehouse server VNC port | ${gateway} | |`);

  console.log("\nBrowser (headless Chromium, noVNC on the console's desktop page):\n");
  if (typeof gateway === 'string' || values['no-browser']) {
    const why = typeof gateway === 'string' ? `needs the gateway (${gateway})` : '--no-browser';
    console.log(`browser VNC first frame: skipped: ${why}\nbrowser RDP: skipped: ${why}`);
  } else {
    const browser = await browserPart(
      gateway,
      Number(values['browser-runs']),
      Number(values['rdp-runs']),
      Number(values['rdp-click-runs']),
      Number(values['rdp-idle-seconds']),
    ).catch((error: Error) => ({
      vnc: [`browser VNC first frame: skipped: ${error.message.split('\n')[0]}`],
      rdp: ['skipped: the browser did not run'],
    }));
    if (browser.vnc[0]?.startsWith('|')) {
      console.log('| first frame (target colour in the canvas) | ms from navigation | ms from the desktop WebSocket |');
      console.log('|---|---|---|');
    }
    for (const line of browser.vnc) console.log(line);
    const freerdp =
      /browser RDP renders with (FreeRDP [\d.]+)/.exec(readFileSync(gateway.log, 'utf8'))?.[1] ?? 'FreeRDP (version not logged)';
    console.log(
      `\nBrowser RDP (an xrdp target on this machine, rendered by the server: Xvfb + xfreerdp + x11vnc per session; ${freerdp}, --rdp-client ${values['rdp-client']}):\n`,
    );
    for (const line of browser.rdp) console.log(line);
  }
  console.log(`\nload average at the end ${os.loadavg().map(f2).join(' ')}`);
}

runMain(main);
