import { mkdirSync, readFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { launchChromium as launchPinnedChromium } from '../../bench/chromium.js';

/** Where the console tests keep their screenshots (CI keeps the folder as an artifact; the README names it). */
export const SCREENSHOTS = fileURLToPath(new URL('../../artifacts/screenshots/', import.meta.url));

/**
 * Headless Chromium trusting the server whose certificate is in `certFile` (by its key's pin:
 * see bench/chromium.ts), and the certificates in `alsoTrust` (PEM) the same way.
 */
export async function launchChromium(certFile: string, alsoTrust: readonly string[] = []): Promise<Browser> {
  return launchPinnedChromium(readFileSync(certFile), { alsoTrust });
}

/**
 * A page that records what would be a bug in any console page: a script error, a console
 * error (CSP violations are reported there), or a request that failed.
 */
export async function newPage(context: BrowserContext): Promise<{ page: Page; problems: string[] }> {
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // The API's expected refusals (a wrong field, 401 before sign-in) are answered, not broken.
    if (m.type() === 'error' && !/status of (4\d\d)/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('requestfailed', (r) => {
    // ERR_ABORTED is a request the page gave up: a navigation (page.goto, a link) cancels what
    // is in flight, and Chromium also reports a streamed no-store response (the API's JSON
    // lines, such as the break-glass Test) so once its body was read to the end. The server's
    // own faults still show: as HTTP error statuses (console errors above) or failed tests.
    if (r.failure()?.errorText === 'net::ERR_ABORTED') return;
    problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText ?? ''}`);
  });
  return { page, problems };
}

/** A full-page screenshot into SCREENSHOTS/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Signs in on the console's page with a password (for users without TOTP) and waits for the devices page. */
export async function signIn(page: Page, url: string, username: string, password: string): Promise<void> {
  await page.goto(url);
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Devices' }).waitFor();
}

/** A signed-in page in a context of its own (its own cookies), 1280 × 900; its problems are collected into `problems`. */
export async function signedInPage(browser: Browser, url: string, username: string, password: string, problems: string[][]): Promise<Page> {
  const p = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } }));
  problems.push(p.problems);
  await signIn(p.page, url, username, password);
  return p.page;
}

/** The mean colour of a region of the page, from a screenshot of it (what a user sees). */
export async function regionColour(
  page: Page,
  clip: { x: number; y: number; width: number; height: number },
): Promise<{ r: number; g: number; b: number }> {
  const { width, height, channels, pixels } = decodePng(await page.screenshot({ clip }));
  const sum = { r: 0, g: 0, b: 0 };
  for (let i = 0; i < width * height; i++) {
    sum.r += pixels[i * channels]!;
    sum.g += pixels[i * channels + 1]!;
    sum.b += pixels[i * channels + 2]!;
  }
  const n = width * height;
  return { r: Math.round(sum.r / n), g: Math.round(sum.g / n), b: Math.round(sum.b / n) };
}

/**
 * Whether `where` (a desktop's canvas) shows `colour` at (fx, fy) of its box, given as
 * fractions of it: the mean of a 6 × 6 px screenshot there, within 3 of each channel (the
 * canvas is scaled).
 */
export async function showsColourAt(
  page: Page,
  where: Locator,
  fx: number,
  fy: number,
  colour: { r: number; g: number; b: number },
): Promise<boolean> {
  await where.scrollIntoViewIfNeeded();
  const box = await where.boundingBox();
  if (!box) throw new Error('The element is not on the page.');
  const c = await regionColour(page, { x: box.x + fx * box.width - 3, y: box.y + fy * box.height - 3, width: 6, height: 6 });
  return Math.abs(c.r - colour.r) <= 3 && Math.abs(c.g - colour.g) <= 3 && Math.abs(c.b - colour.b) <= 3;
}

/** Chromium's screenshots: 8-bit RGB or RGBA, not interlaced. Answers the unfiltered pixels. */
function decodePng(png: Buffer): { width: number; height: number; channels: number; pixels: Uint8Array } {
  let offset = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const data: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    const body = png.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      const colourType = body[9];
      if (body[8] !== 8 || (colourType !== 2 && colourType !== 6) || body[12] !== 0)
        throw new Error('Only 8-bit RGB(A) PNGs, not interlaced.');
      channels = colourType === 6 ? 4 : 3;
    } else if (type === 'IDAT') data.push(body);
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(data));
  const stride = width * channels;
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const value = raw[y * (stride + 1) + 1 + x]!;
      const left = x >= channels ? pixels[y * stride + x - channels]! : 0;
      const up = y > 0 ? pixels[(y - 1) * stride + x]! : 0;
      const upLeft = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels]! : 0;
      const p = left + up - upLeft;
      const paeth =
        Math.abs(p - left) <= Math.abs(p - up) && Math.abs(p - left) <= Math.abs(p - upLeft)
          ? left
          : Math.abs(p - up) <= Math.abs(p - upLeft)
            ? up
            : upLeft;
      const predictor = [0, left, up, (left + up) >> 1, paeth][filter ?? 0] ?? 0;
      pixels[y * stride + x] = (value + predictor) & 0xff;
    }
  }
  return { width, height, channels, pixels };
}

/** Opens a page of the top bar's "System management" menu (Users and roles, Gateways, Single sign-on, Break glass backup). */
export async function openSystemPage(page: Page, name: string): Promise<void> {
  const nav = page.getByRole('navigation', { name: 'Main' });
  await nav.getByText('System management').click();
  await nav.getByRole('link', { name, exact: true }).click();
}

/** What the console's browser terminal shows, row by row (xterm.js renders each row as a div). */
export function terminalScreen(page: Page): Promise<string> {
  return page.getByTestId('terminal').locator('.xterm-rows').innerText();
}

/** Plays the session page's terminal recording at 4× (asciinema-player starts on a click): the player, whose text is its screen. */
export async function playRecording(page: Page): Promise<Locator> {
  await page.getByRole('button', { name: '4×' }).click();
  const player = page.getByTestId('player');
  await player.locator('.ap-player').waitFor();
  await player.click();
  return player;
}
