import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OUTPUT_CAP, OUTPUT_CUT_MARKER, closeRetryDelayMs, hookPayload, runHook, type HookWindow } from './hooks.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-hooks-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes an executable shell script and returns its path. */
async function script(name: string, body: string, mode = 0o755): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, mode);
  return file;
}

const window: HookWindow = {
  id: '7a0c6a4e-31b4-4a8e-9a55-1f0b1f7d2c10',
  project: { id: 'p-1', name: 'Payments' },
  devices: [{ id: 'd-1', name: 'db-1', privateIp: '10.0.0.5', publicIp: null, tags: ['db'] }],
  users: ['alice'],
  accounts: ['root'],
  startsAt: '2026-12-06T10:00:00.000Z',
  endsAt: '2026-12-06T11:00:00.000Z',
  reason: 'Patch the kernel — ünïcode and "quotes"',
  ticket: 'CHG-42',
  requestedBy: 'alice',
  approvedBy: ['bob'],
};

const run = (executable: string | null, payload = hookPayload('open', window), extra: { webhookUrl?: string; timeoutMs?: number } = {}) =>
  runHook({ executable, webhookUrl: extra.webhookUrl ?? null, timeoutMs: extra.timeoutMs ?? 10_000 }, payload);

/** A process that no longer runs (gone, or a zombie no one has reaped yet). */
async function isGone(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat === '' || / Z /.test(stat.slice(stat.lastIndexOf(')')));
}

describe('hookPayload', () => {
  it('copies only the named fields, so a record with a secret on it does not reach the hook', () => {
    const device = { ...window.devices[0]!, password: 'device-secret', sshKey: 'PRIVATE KEY' };
    const payload = hookPayload('close', { ...window, devices: [device] }, 'revoked');
    expect(JSON.stringify(payload)).not.toMatch(/device-secret|PRIVATE KEY/);
    expect(payload).toEqual({
      phase: 'close',
      reason: 'revoked',
      window: { ...window, devices: [{ id: 'd-1', name: 'db-1', privateIp: '10.0.0.5', publicIp: null, tags: ['db'] }] },
    });
  });
});

describe('runHook: the program', () => {
  it('gets the payload as JSON on stdin, intact', async () => {
    const cat = await run(await script('cat.sh', 'cat'));
    expect(cat).toMatchObject({ ok: true, exitCode: 0, signal: null, error: null });
    expect(JSON.parse(cat.output)).toEqual(hookPayload('open', window));

    // Larger than a pipe's buffer, with multi-byte characters.
    const devices = Array.from({ length: 2000 }, (_, i) => ({
      id: `d-${i}`,
      name: `gerät-${i}`,
      privateIp: `10.0.${i % 250}.1`,
      tags: ['ü'],
    }));
    const big = hookPayload('open', { ...window, devices });
    const hashed = await run(await script('hash.sh', 'sha256sum'), big);
    expect(hashed.ok).toBe(true);
    expect(hashed.output.split(' ')[0]).toBe(createHash('sha256').update(JSON.stringify(big)).digest('hex'));
  });

  it('a failing exit code is a failure, with stdout and stderr kept', async () => {
    const result = await run(await script('fail.sh', 'echo starting the bastion\necho quota exceeded >&2\nexit 3'));
    expect(result).toMatchObject({ ok: false, exitCode: 3, signal: null });
    expect(result.output).toBe('starting the bastion\nquota exceeded\n');
    expect(result.error).toContain('exit code 3');
  });

  it('kills the whole process group at the timeout: a child it started is gone too', async () => {
    const pidFile = path.join(dir, 'child.pid');
    const hook = await script('hang.sh', `sleep 300 &\necho $! > ${pidFile}\necho waiting\nwait`);
    const result = await run(hook, undefined, { timeoutMs: 500 });
    expect(result).toMatchObject({ ok: false, exitCode: null, signal: 'SIGKILL', output: 'waiting\n' });
    expect(result.error).toContain('did not finish within 0.5 s');
    expect(result.error).toContain('maintenanceHookTimeoutSeconds');
    expect(result.durationMs).toBeLessThan(5000);
    const child = Number(await readFile(pidFile, 'utf8'));
    await expect.poll(() => isGone(child)).toBe(true);
  });

  it('runs with a minimal environment: none of the server’s variables or secrets', async () => {
    const saved = { key: process.env.GATEHOUSE_MASTER_KEY, db: process.env.DATABASE_URL };
    process.env.GATEHOUSE_MASTER_KEY = 'a'.repeat(64);
    process.env.DATABASE_URL = 'postgres://gatehouse:db-secret@127.0.0.1/gatehouse';
    try {
      const result = await run(await script('env.sh', 'env'), hookPayload('close', window, 'expired'));
      expect(result.ok).toBe(true);
      const names = result.output.split('\n').map((line) => line.split('=')[0]);
      expect(names).toEqual(expect.arrayContaining(['PATH', 'LANG', 'GATEHOUSE_HOOK_PHASE', 'GATEHOUSE_WINDOW_ID']));
      expect(names.filter((n) => n?.startsWith('GATEHOUSE_')).sort()).toEqual(['GATEHOUSE_HOOK_PHASE', 'GATEHOUSE_WINDOW_ID']);
      expect(names).not.toContain('DATABASE_URL');
      expect(result.output).not.toMatch(/aaaaaaaa|db-secret/);
      expect(result.output).toContain('GATEHOUSE_HOOK_PHASE=close\n');
      expect(result.output).toContain(`GATEHOUSE_WINDOW_ID=${window.id}\n`);
    } finally {
      for (const [name, value] of [
        ['GATEHOUSE_MASTER_KEY', saved.key],
        ['DATABASE_URL', saved.db],
      ] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('keeps at most 64 KiB of output, marked where it was cut', async () => {
    const result = await run(await script('loud.sh', "head -c 300000 /dev/zero | tr '\\0' x\necho done >&2"));
    expect(result.ok).toBe(true);
    expect(Buffer.byteLength(result.output)).toBeLessThanOrEqual(OUTPUT_CAP);
    expect(result.output.endsWith(OUTPUT_CUT_MARKER)).toBe(true);
    expect(result.output.startsWith('x'.repeat(60_000))).toBe(true);
  });

  it('a missing, non-executable or directory program is an error naming the setting, not a crash', async () => {
    const missing = await run(path.join(dir, 'no-such-hook'));
    expect(missing).toMatchObject({ ok: false, exitCode: null, output: '' });
    expect(missing.error).toContain('does not exist');
    expect(missing.error).toContain('maintenanceOpenHook (GATEHOUSE_MAINTENANCE_OPEN_HOOK)');

    const plain = await run(await script('plain.sh', 'exit 0', 0o644), hookPayload('close', window, 'expired'));
    expect(plain.ok).toBe(false);
    expect(plain.error).toContain('is not executable');
    expect(plain.error).toContain('maintenanceCloseHook (GATEHOUSE_MAINTENANCE_CLOSE_HOOK)');

    const folder = await run(dir);
    expect(folder.ok).toBe(false);
    expect(folder.error).toContain('is not a file');
  });

  it('nothing configured is nothing to fail', async () => {
    expect(await run(null)).toMatchObject({ ok: true, exitCode: null, output: '', error: null });
  });
});

describe('runHook: the webhook', () => {
  const received: { contentType: string | undefined; body: string }[] = [];
  let status = 204;
  let url: string;
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      received.push({ contentType: req.headers['content-type'], body });
      res.writeHead(status).end();
    });
  });
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('gets the same JSON as the program', async () => {
    received.length = 0;
    status = 204;
    const payload = hookPayload('open', window);
    const result = await run(await script('cat-too.sh', 'cat'), payload, { webhookUrl: url });
    expect(result).toMatchObject({ ok: true, error: null });
    expect(received).toEqual([{ contentType: 'application/json', body: result.output }]);
    expect(JSON.parse(received[0]!.body)).toEqual(payload);
  });

  it('a refusing or unreachable webhook is a failure, even when the program succeeded', async () => {
    status = 500;
    const refused = await run(await script('ok.sh', 'exit 0'), undefined, { webhookUrl: url });
    expect(refused).toMatchObject({ ok: false, exitCode: 0 });
    expect(refused.error).toContain('The maintenance hook webhook refused the call');

    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const unreachable = await run(null, undefined, { webhookUrl: deadUrl });
    expect(unreachable.ok).toBe(false);
    expect(unreachable.error).toMatch(/the maintenance hook webhook/i);
  });
});

describe('closeRetryDelayMs', () => {
  it('doubles from the base per attempt, spread by at most ±20 %', () => {
    expect(closeRetryDelayMs(1, 5000, () => 0.5)).toBe(5000);
    expect(closeRetryDelayMs(2, 5000, () => 0.5)).toBe(10_000);
    expect(closeRetryDelayMs(4, 5000, () => 0.5)).toBe(40_000);
    expect(closeRetryDelayMs(3, 5000, () => 0)).toBe(16_000);
    expect(closeRetryDelayMs(3, 5000, () => 0.999_999)).toBeCloseTo(24_000, -1);
    for (let attempt = 1; attempt <= 8; attempt++) {
      const expected = 5000 * 2 ** (attempt - 1);
      for (let i = 0; i < 50; i++) {
        const delay = closeRetryDelayMs(attempt, 5000);
        expect(delay).toBeGreaterThanOrEqual(expected * 0.8);
        expect(delay).toBeLessThanOrEqual(expected * 1.2);
      }
    }
  });

  it('never waits more than 15 minutes, however many attempts failed', () => {
    for (const attempt of [9, 12, 30, 1000]) {
      const delay = closeRetryDelayMs(attempt, 5000);
      expect(delay).toBeLessThanOrEqual(15 * 60_000);
      expect(delay).toBeGreaterThanOrEqual(0.8 * 15 * 60_000);
    }
  });
});
