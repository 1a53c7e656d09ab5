import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIPBOARD_READY, findFreeRdp, freerdpArgs, freerdpEnvironment } from './freerdp.js';

const connection = { socketPath: '/run/x/rdp.sock', username: 'ops', sha256Hex: 'ab:cd', width: 1024, height: 768 };

describe('FreeRDP client', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-freerdp-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('auto takes FreeRDP 3 when installed; FreeRDP 2 is found by name, though it prints its version only on a display', async () => {
    const auto = await findFreeRdp('auto');
    expect(auto).toMatchObject({ command: 'xfreerdp3', major: 3 });
    expect(auto.version).toMatch(/^3\.\d+\.\d+$/);
    expect(await findFreeRdp('xfreerdp')).toMatchObject({ command: 'xfreerdp', major: 2 });
    expect(await findFreeRdp('/usr/bin/xfreerdp3')).toMatchObject({ major: 3 });
  });

  it('says what to install or set when the client is missing or is not FreeRDP', async () => {
    await expect(findFreeRdp('xfreerdp9')).rejects.toThrow(
      /^Browser RDP needs FreeRDP: xfreerdp9 is not installed\. Install FreeRDP 3 \(Debian 12: apt-get install -t bookworm-backports freerdp3-x11\) or FreeRDP 2 \(apt-get install freerdp2-x11\) or set rdpClient \(GATEHOUSE_RDP_CLIENT\) to auto\.$/,
    );
    await expect(findFreeRdp('/bin/echo')).rejects.toThrow(/\/bin\/echo did not say it is FreeRDP 2 or 3 \(\/version\)/);
  });

  it('pins the checked certificate and turns standard RDP security off in either version’s syntax', () => {
    const v3 = freerdpArgs({ command: 'xfreerdp3', major: 3, version: '3.10.3' }, connection);
    const v2 = freerdpArgs({ command: 'xfreerdp', major: 2, version: '2' }, connection);
    for (const args of [v2, v3]) {
      expect(args).toEqual(
        expect.arrayContaining([
          '/v:/run/x/rdp.sock',
          '/u:ops',
          '/from-stdin:force',
          '/cert:deny,fingerprint:sha256:ab:cd',
          '/size:1024x768',
        ]),
      );
      // The password never goes on the command line.
      expect(args.some((a) => a.startsWith('/p:'))).toBe(false);
    }
    expect(v3).toContain('/sec:rdp:off');
    expect(v2).toContain('-sec-rdp');
    expect(v3.find((a) => a.startsWith('/log-filters:'))).toContain('com.freerdp.core.rdp:DEBUG');
  });

  it('reads the clipboard channel coming up in either version’s log line', () => {
    expect(CLIPBOARD_READY.test('[11:44:14:504] [11142:11173] [DEBUG][com.freerdp.channels.cliprdr.client] - MonitorReady')).toBe(true);
    expect(
      CLIPBOARD_READY.test(
        '[11:45:19:637] [12696:000031a8] [DEBUG][com.freerdp.channels.cliprdr.client] - [cliprdr_order_recv]: msgType: CB_MONITOR_READY [0x0001] (1), msgFlags: NONE|[0x0000] dataLen: 0',
      ),
    ).toBe(true);
    expect(CLIPBOARD_READY.test('[DEBUG][com.freerdp.channels.cliprdr.client] - [cliprdr_order_recv]: msgType: CB_CLIP_CAPS')).toBe(false);
  });

  it('gives FreeRDP 3 OpenSSL’s legacy provider (MD4 for NLA) in a file of the session’s directory, FreeRDP 2 nothing', async () => {
    expect(await freerdpEnvironment({ command: 'xfreerdp', major: 2, version: '2' }, dir)).toEqual({});
    const env = await freerdpEnvironment({ command: 'xfreerdp3', major: 3, version: '3.10.3' }, dir);
    expect(env.OPENSSL_CONF).toBe(path.join(dir, 'openssl.cnf'));
    expect(readFileSync(env.OPENSSL_CONF!, 'utf8')).toMatch(/legacy = legacy[\s\S]*\[legacy\]\nactivate = 1/);
  });
});

describe('FreeRDP 3 primitives hint', () => {
  let xvfb: ChildProcess;
  const display = ':' + (200 + (process.pid % 500));
  beforeAll(async () => {
    xvfb = spawn('Xvfb', [display, '-nolisten', 'tcp', '-extension', 'GLX'], { stdio: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 500));
  });
  afterAll(() => void xvfb?.kill());

  /** What xfreerdp3 logs of its primitives while it fails to connect to a closed port. */
  const primitivesLog = (env: NodeJS.ProcessEnv) =>
    new Promise<string>((resolve) => {
      const args = ['/v:127.0.0.1:9', '/u:x', '/p:y', '/cert:ignore', '/log-level:WARN', '/log-filters:com.freerdp.primitives:DEBUG'];
      execFile('xfreerdp3', args, { env: { PATH: process.env.PATH, HOME: os.tmpdir(), DISPLAY: display, ...env } }, (_e, out, err) =>
        resolve(`${out}${err}`),
      );
    });

  it('is built and preloaded into FreeRDP 3: no 300 ms benchmark of its primitives before the connection', async () => {
    const client = await findFreeRdp('xfreerdp3');
    expect(client.preload).toMatch(/dist\/native\/freerdp-primitives-hint\.so$/);
    expect(await primitivesLog({})).toMatch(/primitives autodetect, using/);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-freerdp-'));
    try {
      const env = await freerdpEnvironment(client, dir);
      expect(env.LD_PRELOAD).toBe(client.preload);
      expect(await primitivesLog(env)).not.toMatch(/primitives (benchmark|autodetect)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
