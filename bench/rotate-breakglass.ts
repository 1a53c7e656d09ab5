/**
 * Rotation after break glass (issue 20): N devices on one private sshd, one account each
 * with a password, exported by break glass to a local S3 server (s3rver), then
 * `POST /breakglass/rotations` as a dry run and applied with a concurrency limit. Prints
 * wall times, devices/s and the server's peak RSS; never asserts. See bench/README.md.
 *
 *   npm run bench:rotate -- [--devices 100] [--concurrency 8]
 *
 * Needs root: throwaway system users `ghrot001…` (created once, kept; their passwords are
 * set again each run), root logging in to the private sshd with a key (the privileged
 * account), /run/sshd. Needs /usr/sbin/sshd, ssh-keygen, age-keygen and s3rver from the
 * devDependencies. Runs on the built packages (`tsc -b` first).
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { RunbookRunView } from '@gatehouse/api';
import {
  ageRecipient,
  api,
  f1,
  f2,
  freePort,
  median,
  onCleanup,
  peakRssKiB,
  runMain,
  setUpGatehouse,
  startGatehouse,
  startS3rver,
  track,
  waitForPort,
} from './ssh-support.js';
import { s3rverBreakGlassSettings } from './s3rver-settings.js';

const { values: opts } = parseArgs({
  options: {
    devices: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '8' },
  },
});
const DEVICES = Number(opts.devices);
const CONCURRENCY = Number(opts.concurrency);
const userOf = (i: number) => `ghrot${String(i).padStart(3, '0')}`;

/** Runs `fn` over `items`, `width` at a time. */
async function inBatches<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  return out;
}

/** The users, each with its password: missing ones created, every password set in one chpasswd. */
function ensureUsers(passwords: Map<string, string>): void {
  for (const user of passwords.keys()) {
    try {
      execFileSync('id', [user], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', user]);
    }
  }
  execFileSync('chpasswd', { input: [...passwords].map(([u, p]) => `${u}:${p}\n`).join('') });
}

/** A private sshd on 127.0.0.1 where root logs in with `rootPublicKey` and the users with their passwords. */
async function startSshd(dir: string, rootPublicKey: string): Promise<number> {
  mkdirSync(path.join(dir, 'authorized_keys'), { recursive: true });
  chmodSync(dir, 0o711);
  chmodSync(path.join(dir, 'authorized_keys'), 0o755);
  writeFileSync(path.join(dir, 'authorized_keys', 'root'), `${rootPublicKey}\n`, { mode: 0o644 });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_key')]);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const port = await freePort();
  writeFileSync(
    path.join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(dir, 'host_key')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'UsePAM no',
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication no',
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys', '%u')}`,
      'StrictModes no',
      'UseDNS no',
      'MaxStartups 400',
      'MaxSessions 400',
      'LogLevel ERROR',
      'Match User root',
      '  PermitRootLogin prohibit-password',
      '',
    ].join('\n'),
  );
  track(spawn('/usr/sbin/sshd', ['-D', '-f', path.join(dir, 'sshd_config'), '-E', path.join(dir, 'sshd.log')], { stdio: 'ignore' }));
  await waitForPort(port);
  return port;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-rotate-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const passwords = new Map(Array.from({ length: DEVICES }, (_, k) => [userOf(k + 1), `bench-${randomBytes(9).toString('base64url')}`]));
  let t = performance.now();
  ensureUsers(passwords);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench-root', '-f', path.join(dir, 'root_key')]);
  const rootKey = readFileSync(path.join(dir, 'root_key'), 'utf8');
  const sshdPort = await startSshd(path.join(dir, 'sshd'), readFileSync(path.join(dir, 'root_key.pub'), 'utf8').trim());
  const dataDir = path.join(dir, 'data');
  const g = await startGatehouse(dataDir);
  const token = await setUpGatehouse(g, dataDir, 'bench rotate admin password');
  const call = <T>(method: string, route: string, body?: unknown) => api<T>(g, token, method, route, body);

  const project = await call<{ id: string }>('POST', '/projects', { name: 'Fleet' });
  const deviceIds = await inBatches([...passwords], 8, async ([user, password]) => {
    const { id } = await call<{ id: string }>('POST', '/devices', {
      projectId: project.id,
      name: `fleet-${user}`,
      provider: 'on-prem',
      protocols: ['ssh'],
      privateIp: '127.0.0.1',
      urlPort: String(sshdPort),
    });
    await call('POST', '/accounts', { deviceId: id, username: user, password });
    return id;
  });
  console.log(`set-up: ${DEVICES} users, devices and accounts in ${f1((performance.now() - t) / 1000)} s`);

  // The export: s3rver in the temporary directory, sealed to a fresh age identity.
  const s3Port = await startS3rver(dir);
  await call('PUT', '/breakglass/settings', s3rverBreakGlassSettings({ endpoint: `127.0.0.1:${s3Port}`, recipient: ageRecipient(dir) }));
  t = performance.now();
  const { id: exportId } = await call<{ id: string }>('POST', '/breakglass/runs');
  for (;;) {
    const run = await call<{ result: string; error: string | null }>('GET', `/breakglass/runs/${exportId}`);
    if (run.result === 'success') break;
    if (run.result !== 'running') throw new Error(`the export failed: ${run.error}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(`break-glass export: ${f1((performance.now() - t) / 1000)} s`);
  // The privileged account of each device, added after the export so it is not rotated itself.
  await inBatches(deviceIds, 8, (deviceId) => call('POST', '/accounts', { deviceId, username: 'root', privateKey: rootKey }));

  const rotate = async (apply: boolean): Promise<{ run: RunbookRunView; seconds: number }> => {
    const started = performance.now();
    const { id } = await call<RunbookRunView>('POST', '/breakglass/rotations', { export: exportId, apply, concurrency: CONCURRENCY });
    let last = '';
    for (;;) {
      const run = await call<RunbookRunView>('GET', `/runbook-runs/${id}`);
      const c = run.counts;
      const line = `  ${c.done}/${c.total} devices · ${c.success} SUCCESS · ${c.failed} FAILED · ${c.unverified} CHANGED-BUT-UNVERIFIED`;
      if (line !== last) process.stderr.write(`${line}\n`);
      last = line;
      if (run.state === 'finished') return { run, seconds: (performance.now() - started) / 1000 };
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  /** Median milliseconds per device item and per step, from the run's own timings. */
  const breakdown = (run: RunbookRunView): string => {
    const items = run.items ?? [];
    const per = new Map<string, number[]>();
    for (const item of items) {
      if (item.startedAt && item.finishedAt)
        per.set('item', [...(per.get('item') ?? []), Date.parse(item.finishedAt) - Date.parse(item.startedAt)]);
      for (const s of item.steps) per.set(s.id, [...(per.get(s.id) ?? []), s.durationMs]);
    }
    return [...per].map(([id, ms]) => `${id} ${Math.round(median(ms))} ms`).join(', ');
  };
  console.log(`load average before: ${os.loadavg().map(f2).join(' ')}`);
  const dry = await rotate(false);
  console.log(`dry run: ${dry.run.counts.total} devices listed in ${f1(dry.seconds)} s`);
  const applied = await rotate(true);
  const accounts = (applied.run.items ?? []).flatMap((i) => i.accounts);
  const rotated = accounts.filter((a) => a.result === 'rotated').length;
  const stillWorking = accounts.filter((a) => a.fileCredentialWorks !== false).length;
  console.log(
    `rotate-after-breakglass: ${DEVICES} devices in ${f1(applied.seconds)} s = ${f1(DEVICES / applied.seconds)} devices/s ` +
      `(concurrency ${CONCURRENCY}); ${rotated}/${accounts.length} rotated, ${stillWorking} file credentials not shown dead; ` +
      `server peak RSS ${f1(peakRssKiB(g.pid) / 1024)} MiB`,
  );
  console.log(`  medians, dry run: ${breakdown(dry.run)}`);
  console.log(`  medians, applied: ${breakdown(applied.run)}`);
  console.log(`load average after: ${os.loadavg().map(f2).join(' ')}`);
}

runMain(main);
