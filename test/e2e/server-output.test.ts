import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { baseEnv, gatehouseBin, removeTempDirs, startServer, tempDir } from '../support/server.js';

/** `gatehouse server` on a terminal (script gives it one), with what it printed so far. */
interface OnTerminal {
  child: ChildProcess;
  output: () => string;
  url: string;
}

const started: ChildProcess[] = [];

const quiet = { GATEHOUSE_GATEWAY_PORT: '0', GATEHOUSE_AGENT_PORT: '0', GATEHOUSE_VNC_PORT: '0', GATEHOUSE_RDP_PORT: '0' };

async function serverOnTerminal(dataDir: string, args: string[] = []): Promise<OnTerminal> {
  const argv = [process.execPath, gatehouseBin, 'server', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, ...args];
  const command = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  // Its own process group: the test ends script and the server together.
  const child = spawn('script', ['-qec', command, '/dev/null'], {
    env: baseEnv(quiet),
    cwd: path.dirname(dataDir),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  started.push(child);
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (text += d));
  const url = await new Promise<string>((resolve, reject) => {
    const look = () => {
      const match = /^Gatehouse (https:\/\/\S+)\r?$/m.exec(text);
      if (match?.[1]) resolve(match[1]);
    };
    child.stdout?.on('data', look);
    child.once('close', (code) => reject(new Error(`gatehouse server exited (${code}) before listening:\n${text}`)));
  });
  return { child, output: () => text, url };
}

/** Waits until `output()` holds `wanted`, as the server writes asynchronously. */
async function printed(output: () => string, wanted: RegExp): Promise<string> {
  for (;;) {
    if (wanted.test(output())) return output();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function get(url: string, ca: string): Promise<number> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    request(url, { ca, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    })
      .on('error', reject)
      .end();
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('close', () => resolve());
    process.kill(-(child.pid as number), 'SIGTERM');
  });
}

afterEach(async () => {
  await Promise.all(started.splice(0).map(stop));
});
afterAll(() => removeTempDirs());

describe('gatehouse server output', () => {
  it('on a terminal: a readable start banner with what to do next, request lines only at debug, no JSON', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const server = await serverOnTerminal(dataDir);
    const ca = readFileSync(path.join(dataDir, 'tls', 'server.crt'), 'utf8');
    const out = await printed(server.output, /Ctrl-C stops the server/);
    const fingerprint = /^ {2}Certificate SHA-256 {2}(\S+)\r?$/m.exec(out)?.[1];
    expect(fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(out).toContain(`  Console and API      ${server.url}/`);
    expect(out).toContain(`  Certificate file     ${path.join(dataDir, 'tls', 'server.crt')}`);
    expect(out).toContain('  SSH gateway          off');
    expect(out).toContain(path.join(dataDir, 'setup-token'));
    expect(out).toContain(`  ./gatehouse setup --data-dir ${dataDir}`);
    expect(out).toMatch(/^\d\d:\d\d:\d\d WARN {2}No administrator yet\. Create one with: \.\/gatehouse setup/m);
    expect(out).not.toMatch(/^\{/m);

    // At info a request leaves no line; the token in a query string is never printed.
    expect(await get(`${server.url}/api/v1/devices?token=not-for-the-log`, ca)).toBe(401);
    expect(await get(`${server.url}/healthz`, ca)).toBe(200);
    await stop(server.child);
    expect(server.output()).not.toMatch(/\/healthz|\/api\/v1\/devices|not-for-the-log|incoming request/);

    // At debug: one short line per request, the route without its query.
    const debug = await serverOnTerminal(dataDir, ['--log-level', 'debug']);
    expect(await get(`${debug.url}/api/v1/devices?token=not-for-the-log`, ca)).toBe(401);
    const lines = await printed(debug.output, /GET \/api\/v1\/devices 401 \d+ ms/);
    expect(lines).toMatch(/^\d\d:\d\d:\d\d DEBUG GET \/api\/v1\/devices 401 \d+ ms\r?$/m);
    expect(lines).not.toContain('not-for-the-log');
    expect(lines).not.toMatch(/^\{/m);
  });

  it('JSON lines when asked on a terminal (--log-format json), and by default when stdout is not one', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const asked = await serverOnTerminal(dataDir, ['--log-format', 'json']);
    const out = await printed(asked.output, /"msg":"Gatehouse is listening/);
    const logs = out
      .split(/\r?\n/)
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logs.some((l) => l.level === 30 && typeof l.tlsFingerprint === 'string')).toBe(true);
    expect(out).toMatch(/^Certificate SHA-256 fingerprint: \S+\r?$/m);
    await stop(asked.child);

    // A pipe (as under systemd or a container runtime): JSON, with every request.
    const piped = await startServer({ dataDir: path.join(tempDir(), 'data') });
    try {
      expect((await piped.request('/healthz')).status).toBe(200);
      await printed(() => piped.stdout, /request completed/);
      expect(piped.logs.some((l) => l.msg === 'incoming request' && (l.req as { url?: string }).url === '/healthz')).toBe(true);
      expect(piped.stdout).not.toContain('Ctrl-C stops the server');
    } finally {
      await piped.stop();
    }
  });
});

/** The machine's own node (Debian's /usr/bin/node), when it is older than 22: 20 here. */
const oldNode = (() => {
  const found = spawnSync('/usr/bin/node', ['-p', 'process.versions.node'], { encoding: 'utf8' });
  const major = Number(found.stdout?.split('.')[0]);
  return found.status === 0 && major < 22 ? { path: '/usr/bin/node', version: `v${found.stdout.trim()}` } : null;
})();

describe.skipIf(oldNode === null)('the executable on Node.js older than 22', () => {
  it('refuses to run and says how to get Node 24', () => {
    const ran = spawnSync(oldNode!.path, [gatehouseBin, 'server', '--help'], { encoding: 'utf8', env: baseEnv() });
    expect(ran.status).toBe(1);
    expect(ran.stdout).toBe('');
    expect(ran.stderr).toBe(
      `gatehouse: Node.js ${oldNode!.version} is too old; Gatehouse runs on Node.js 24 LTS. From a clone, run ./gatehouse ` +
        '(scripts/node24.sh fetches Node 24 with npm when the system has an older one), or install Node.js 24.\n',
    );
  });
});
