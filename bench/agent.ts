/**
 * Host agent benchmark (issue 19): connection setup and throughput through the agent path
 * (ssh → built-in gateway → `gatehouse agent run` on its outbound link) against the
 * gateway-to-sshd path and OpenSSH direct, in one run; then the agent's idle RSS and CPU
 * with its link up. Prints figures, ratios and the issue's targets; never asserts. See
 * bench/README.md.
 *
 *   npm run bench:agent -- [--size-mib 256] [--runs 2] [--setup-runs 10] [--idle-seconds 30] [--keep]
 *
 * Needs root (a throwaway user `gh-bench`, the OS user the agent's sessions run as;
 * /run/sshd), /usr/sbin/sshd, ssh, ssh-keygen and sshpass. Runs on the built packages:
 * `tsc -b` first, then this file compiled by bench/tsconfig.json into bench/dist.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  addSshDevice,
  api,
  check,
  CIPHER,
  cpuSeconds,
  ensureUser,
  f1,
  f2,
  freePort,
  gatehouseEnv,
  GATEHOUSE_BIN,
  gatehouseHost,
  isStopping,
  KEX,
  launcherFlags,
  machineCpuSeconds,
  median,
  MiB,
  negotiatedOf,
  onCleanup,
  peakRssKiB,
  percentile,
  processStat,
  ROOT,
  rssKiB,
  runCommand,
  runGatehouseCli,
  runMain,
  setUpGatehouse,
  sshCommand as sshLine,
  sshConfig,
  startGatehouse,
  startSshd,
  track,
  transfer as transferThrough,
  writeTextFile,
  BENCH_USER,
  type Gatehouse,
  type Run,
  type SshCommand,
} from './ssh-support.js';

const SSHD_DEVICE = 'bench-box';
const AGENT_DEVICE = 'bench-agent';
/** Issue 19's targets for the agent at rest. */
const RSS_TARGET_MIB = 40;
/** "Idle CPU ≈ 0", read as at most this share of one core over the idle window (a busy loop would be ~100 %). */
const IDLE_CPU_TARGET_PERCENT = 0.5;

const { values: opts } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '256' },
    runs: { type: 'string', default: '2' },
    'setup-runs': { type: 'string', default: '10' },
    'idle-seconds': { type: 'string', default: '30' },
    keep: { type: 'boolean', default: false },
  },
});
const SIZE = Number(opts['size-mib']) * MiB;
const RUNS = Number(opts.runs);
const SETUP_RUNS = Number(opts['setup-runs']);
const IDLE_SECONDS = Number(opts['idle-seconds']);
if (![SIZE, RUNS, SETUP_RUNS, IDLE_SECONDS].every((n) => Number.isInteger(n) && n > 0))
  throw new Error('--size-mib, --runs, --setup-runs and --idle-seconds take positive whole numbers');

type PathName = 'direct' | 'gateway' | 'agent';
const PATHS: PathName[] = ['direct', 'gateway', 'agent'];
const LABEL: Record<PathName, string> = {
  direct: 'OpenSSH direct',
  gateway: 'Gatehouse gateway → sshd',
  agent: 'Gatehouse gateway → agent',
};
const via = (p: PathName) => p !== 'direct';
const perPath = (): Record<PathName, number[]> => ({ direct: [], gateway: [], agent: [] });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Clients {
  config: string;
  adminPassword: string;
}

/** The ssh command line for a path; the Gatehouse paths sign in with the admin's password through sshpass (-e). */
function sshCommand(c: Clients, p: PathName, remote: string, extra: string[] = []): SshCommand {
  return sshLine(c.config, p, remote, extra, via(p) ? c.adminPassword : undefined);
}

function runSsh(c: Clients, p: PathName, remote: string, extra: string[] = []): Promise<Run> {
  return runCommand(sshCommand(c, p, remote, extra));
}

/** A command's stdout, rejecting on a non-zero exit. */
function commandOutput({ file, args, env }: SshCommand): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${file} exited ${code}: ${err}`))));
  });
}

// ---------------------------------------------------------------------------------------
// The agent

interface DeviceAgent {
  agent: { id: string; linkState: 'never' | 'up' | 'down'; linkGateway?: string | null; version: string } | null;
}

/** Waits until the device's agent shows its link up (the server writes it as the link comes up). */
async function linkUp(g: Gatehouse, token: string, deviceId: string, agentExited: () => string | undefined): Promise<DeviceAgent> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const exited = agentExited();
    if (exited !== undefined) throw new Error(`the agent exited before its link was up:\n${exited}`);
    const answer = await api<DeviceAgent>(g, token, 'GET', `/devices/${deviceId}/agent`);
    if (answer.agent?.linkState === 'up') return answer;
    if (Date.now() > deadline) throw new Error(`the agent's link was not up within 30 s: ${JSON.stringify(answer.agent)}`);
    await sleep(100);
  }
}

/**
 * `gatehouse agent run --state-dir <dir>` with the launcher's Node flags, as root (it runs
 * sessions as the account's OS user); its output goes to `logFile`.
 */
function startAgent(stateDir: string, logFile: string): { pid: number; exited: () => string | undefined } {
  const child = track(
    spawn(process.execPath, [...launcherFlags(), GATEHOUSE_BIN, 'agent', 'run', '--state-dir', stateDir], {
      env: gatehouseEnv({}),
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const log = createWriteStream(logFile, { mode: 0o600 });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exit: string | undefined;
  child.once('exit', (code, signal) => {
    // At the end the temporary directory (and the log) may be gone already.
    if (isStopping()) return;
    exit = `exit ${code ?? signal}; its output:\n${readFileSync(logFile, 'utf8').slice(-3000)}`;
    console.error(`the agent exited early: ${exit}`);
  });
  return { pid: child.pid as number, exited: () => exit };
}

/** The processes a process has started and not yet reaped (`/proc/<pid>/task/<tid>/children`). */
function childPids(pid: number): string[] {
  const out: string[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(...readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean));
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** Context switches of all of a process's threads so far: how often it woke up. */
function contextSwitches(pid: number): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      for (const m of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) n += Number(m[1]);
    } catch {
      // the thread ended
    }
  }
  return n;
}

/**
 * The agent's session processes (its children, one per session) while a transfer runs: each
 * one's own CPU (utime + stime, without the `cat` it runs) and peak RSS (VmHWM), read every
 * 50 ms and once more at the end, since a session process exits with its session and its
 * /proc entry with it.
 */
function watchSessionProcesses(agentPid: number): () => { cpuSeconds: number; peakKiB: number } {
  const cpu = new Map<string, number>();
  let peakKiB = 0;
  const read = () => {
    for (const pid of childPids(agentPid)) {
      try {
        cpu.set(pid, cpuSeconds(Number(pid)));
        peakKiB = Math.max(peakKiB, peakRssKiB(Number(pid)));
      } catch {
        // It exited meanwhile.
      }
    }
  };
  read();
  const timer = setInterval(read, 50);
  return () => {
    clearInterval(timer);
    read();
    return { cpuSeconds: [...cpu.values()].reduce((a, b) => a + b, 0), peakKiB };
  };
}

/** A process's resident set in KiB: VmRSS, and its parts RssAnon (its own memory) and RssFile (mapped files: the node binary's pages, shared with every Node process). */
function residentKiB(pid: number): { rss: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') };
}

/** The resident set of a Node process that loads nothing (`node` with the launcher's flags, idle): the floor under any agent written for Node. */
async function nodeFloorKiB(): Promise<{ rss: number; anon: number; file: number }> {
  const child = track(spawn(process.execPath, [...launcherFlags(), '-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' }));
  try {
    await sleep(1500);
    return residentKiB(child.pid as number);
  } finally {
    child.kill('SIGTERM');
  }
}

interface Idle {
  /** VmRSS, RssAnon and RssFile at the end of the window, KiB. */
  resident: { rss: number; anon: number; file: number };
  cpuMs: number;
  seconds: number;
  wakeupsPerSecond: number;
  linkState: string;
}

/** The agent left alone for IDLE_SECONDS: CPU (utime + stime) over the window, RSS at its end, the link state after. */
async function idleWindow(g: Gatehouse, token: string, deviceId: string, pid: number): Promise<Idle> {
  const cpu0 = cpuSeconds(pid);
  const switches0 = contextSwitches(pid);
  const t0 = performance.now();
  await sleep(IDLE_SECONDS * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const cpuMs = (cpuSeconds(pid) - cpu0) * 1000;
  const wakeupsPerSecond = (contextSwitches(pid) - switches0) / seconds;
  const resident = residentKiB(pid);
  const linkState = (await api<DeviceAgent>(g, token, 'GET', `/devices/${deviceId}/agent`)).agent?.linkState ?? 'no agent';
  return { resident, cpuMs, seconds, wakeupsPerSecond, linkState };
}

/** Removes the recordings the Gatehouse transfers left (GiBs otherwise; see ssh-gateway.ts on this VM's page cache). */
async function removeRecordings(dir: string): Promise<void> {
  // The gateway closes the recording as the session ends, around when ssh exits.
  await sleep(500);
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir, { recursive: true, encoding: 'utf8' })) if (f.endsWith('.cast')) rmSync(path.join(dir, f));
}

// ---------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark makes a throwaway user, starts sshd and the agent');
  for (const bin of ['/usr/sbin/sshd', '/usr/bin/sshpass'])
    if (!existsSync(bin)) throw new Error(`${bin} is missing (apt-get install openssh-server sshpass)`);
  if (!existsSync(path.join(ROOT, 'packages', 'cli', 'dist', 'agent', 'main.js')))
    throw new Error('the agent runtime is not built (packages/cli/dist/agent/main.js): npx tsc -b');

  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-agent-'));
  chmodSync(dir, 0o711);
  if (opts.keep) console.log(`temporary directory (kept): ${dir}`);
  else onCleanup(() => rmSync(dir, { recursive: true, force: true }));

  const load = os.loadavg();
  console.log(`Host agent benchmark: ${SIZE / MiB} MiB per transfer, ${RUNS} runs each; setup of ${SETUP_RUNS}; idle ${IDLE_SECONDS} s`);
  console.log(
    `cipher ${CIPHER}, key exchange ${KEX} (client legs); ${os.cpus().length} CPUs, Node ${process.version}, load ${load.map(f2).join(' ')}`,
  );
  if ((load[0] ?? 0) > os.cpus().length)
    console.log(`the machine is busy (load ${f2(load[0] ?? 0)} on ${os.cpus().length} CPUs): figures will move between runs`);
  console.log(spawnSync('ssh', ['-V'], { encoding: 'utf8' }).stderr.trim());

  // The device: a private sshd for the OpenSSH and gateway paths, and the OS user the agent's sessions run as.
  ensureUser(`pw-${randomBytes(12).toString('hex')}`);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'gatehouse-bench', '-f', path.join(dir, 'client_key')]);
  const sshd = await startSshd(dir, 'device', 'VERBOSE', readFileSync(path.join(dir, 'client_key.pub'), 'utf8').trim());
  const dataFile = path.join(dir, 'data.txt');
  writeTextFile(dataFile, SIZE);

  const adminPassword = `admin-${randomBytes(9).toString('hex')}`;
  const dataDir = path.join(dir, 'data');
  const agentPort = await freePort();
  const gatehouse = await startGatehouse(dataDir, { GATEHOUSE_AGENT_PORT: String(agentPort) });
  const token = await setUpGatehouse(gatehouse, dataDir, adminPassword);
  const project = await api<{ id: string }>(gatehouse, token, 'POST', '/projects', { name: 'Bench' });
  await addSshDevice(gatehouse, token, {
    projectId: project.id,
    name: SSHD_DEVICE,
    port: sshd.port,
    privateKey: readFileSync(path.join(dir, 'client_key'), 'utf8'),
  });
  // The agent's device points at a port nothing listens on, so a session that did not go
  // through the agent fails instead of reaching the sshd. Its account holds no secret: the
  // server signs a grant for each session.
  const nowhere = await freePort();
  const { id: agentDeviceId } = await api<{ id: string }>(gatehouse, token, 'POST', '/devices', {
    projectId: project.id,
    name: AGENT_DEVICE,
    provider: 'on-prem',
    protocols: ['ssh'],
    privateIp: '127.0.0.1',
    urlPort: String(nowhere),
  });
  await api(gatehouse, token, 'POST', '/accounts', { deviceId: agentDeviceId, username: BENCH_USER });

  // Enrollment as an administrator's install command does it, then the agent on its link.
  const { token: joinToken, installCommand } = await api<{ token: string; installCommand: string }>(
    gatehouse,
    token,
    'POST',
    `/devices/${agentDeviceId}/agent-tokens`,
    {},
  );
  const server = /--server (\S+)/.exec(installCommand)?.[1];
  const fingerprint = /--server-fingerprint (\S+)/.exec(installCommand)?.[1];
  if (!server || !fingerprint) throw new Error('the install command names no --server and --server-fingerprint');
  const stateDir = path.join(dir, 'agent-state');
  await runGatehouseCli(
    ['agent', 'enroll', '--server', server, '--server-fingerprint', fingerprint, '--token-stdin', '--state-dir', stateDir],
    {},
    `${joinToken}\n`,
  );
  const agentStarted = performance.now();
  const agent = startAgent(stateDir, path.join(dir, 'agent.log'));
  const linked = await linkUp(gatehouse, token, agentDeviceId, agent.exited);
  console.log(
    `\nagent ${linked.agent?.version} (pid ${agent.pid}) linked to gateway ${linked.agent?.linkGateway ?? '?'} at 127.0.0.1:${agentPort} ` +
      `${f1((performance.now() - agentStarted) / 1000)} s after it started; RSS ${f1(rssKiB(agent.pid) / 1024)} MiB`,
  );

  // 0. The agent at rest, before any session.
  console.log(`\n0. The agent idle for ${IDLE_SECONDS} s with its link up, before any session`);
  const idleFresh = await idleWindow(gatehouse, token, agentDeviceId, agent.pid);

  const config = path.join(dir, 'ssh_config');
  writeFileSync(
    config,
    sshConfig(
      [
        ['Host direct', '  HostName 127.0.0.1', `  Port ${sshd.port}`],
        gatehouseHost('gateway', gatehouse.gatewayPort, `admin:${SSHD_DEVICE}`),
        gatehouseHost('agent', gatehouse.gatewayPort, `admin:${AGENT_DEVICE}`),
      ],
      path.join(dir, 'client_key'),
    ),
    { mode: 0o600 },
  );
  const clients: Clients = { config, adminPassword };

  // Warm-up (the gateway's trust on first use of the sshd's host key) and what the client legs negotiated.
  console.log('\nnegotiated, client leg (key exchange / cipher):');
  for (const p of PATHS) {
    check(await runSsh(clients, p, 'true'), `warm-up ${p}`);
    console.log(`  ${LABEL[p].padEnd(28)} ${negotiatedOf(check(await runSsh(clients, p, 'true', ['-v']), `ssh -v ${p}`))}`);
  }
  const whoami = await commandOutput(sshCommand(clients, 'agent', 'id -un'));
  console.log(`  the agent path's session ran as ${whoami.trim()} (the account's OS user)`);

  // 1. Setup
  console.log(`\n1. Connection setup: \`ssh <path> true\`, ${SETUP_RUNS} runs each, interleaved`);
  const setup = perPath();
  for (let i = 0; i < SETUP_RUNS; i++) for (const p of PATHS) setup[p].push(check(await runSsh(clients, p, 'true'), `setup ${p}`).ms);

  // 2. Throughput
  const throughput: Record<'up' | 'down', Record<PathName, number[]>> = { up: perPath(), down: perPath() };
  const serverMsPerMiB: Record<'up' | 'down', Record<PathName, number[]>> = { up: perPath(), down: perPath() };
  const agentMsPerMiB: Record<'up' | 'down', number[]> = { up: [], down: [] };
  let sessionPeakKiB = 0;
  const machineMsPerMiB: Record<'up' | 'down', Record<PathName, number[]>> = { up: perPath(), down: perPath() };
  const recordings = path.join(dataDir, 'recordings');
  console.log(`\n2. Throughput, ${SIZE / MiB} MiB (MiB/s, from the session start to ssh's exit), ${RUNS} runs, interleaved`);
  const mib = SIZE / MiB;
  for (let r = 0; r < RUNS; r++) {
    for (const direction of ['up', 'down'] as const) {
      for (const p of PATHS) {
        const server0 = processStat(gatehouse.pid);
        const agent0 = cpuSeconds(agent.pid);
        const sessionProcesses = watchSessionProcesses(agent.pid);
        const machine0 = machineCpuSeconds();
        const mibs = await transferThrough((remote) => sshCommand(clients, p, remote), p, direction, dataFile, SIZE);
        const machine = ((machineCpuSeconds().busy - machine0.busy) * 1000) / mib;
        const sessionProcess = sessionProcesses();
        sessionPeakKiB = Math.max(sessionPeakKiB, sessionProcess.peakKiB);
        const server1 = processStat(gatehouse.pid);
        const server = ((server1.user + server1.system - server0.user - server0.system) * 1000) / mib;
        const agentMs = ((cpuSeconds(agent.pid) - agent0 + sessionProcess.cpuSeconds) * 1000) / mib;
        throughput[direction][p].push(mibs);
        machineMsPerMiB[direction][p].push(machine);
        if (via(p)) serverMsPerMiB[direction][p].push(server);
        if (p === 'agent') agentMsPerMiB[direction].push(agentMs);
        console.log(
          `  run ${r + 1} ${direction === 'up' ? 'upload  ' : 'download'} ${LABEL[p].padEnd(26)} ${f1(mibs).padStart(6)}` +
            `   machine ${f2(machine)} ms CPU/MiB` +
            (via(p) ? `; server ${f2(server)}` : '') +
            (p === 'agent' ? `; agent ${f2(agentMs)}` : ''),
        );
        if (via(p)) await removeRecordings(recordings);
      }
    }
  }
  const agentPeak = peakRssKiB(agent.pid);

  // 3. The agent at rest again, after the sessions have ended.
  const deadline = Date.now() + 10_000;
  while (childPids(agent.pid).length > 0 && Date.now() < deadline) await sleep(100);
  const left = childPids(agent.pid).length;
  console.log(
    `\n3. The agent idle for ${IDLE_SECONDS} s with its link up, after the sessions` +
      (left > 0 ? ` (${left} of its session processes still there)` : ''),
  );
  const idleAfter = await idleWindow(gatehouse, token, agentDeviceId, agent.pid);
  const floor = await nodeFloorKiB();

  // Report
  const best = (xs: number[]) => Math.max(...xs);
  const spread = (xs: number[]) => `${f1(Math.min(...xs))}–${f1(Math.max(...xs))}`;
  console.log(`\n## Results (${SIZE / MiB} MiB, ${RUNS} runs: best and spread; setup of ${SETUP_RUNS})\n`);
  console.log('| setup `ssh … true` | median ms | p90 ms |');
  console.log('|---|---|---|');
  for (const p of PATHS) console.log(`| ${LABEL[p]} | ${median(setup[p]).toFixed(0)} | ${percentile(setup[p], 90).toFixed(0)} |`);
  console.log('\n| direction | path | MiB/s | machine ms CPU/MiB | server ms CPU/MiB | agent ms CPU/MiB |');
  console.log('|---|---|---|---|---|---|');
  for (const direction of ['up', 'down'] as const) {
    const name = direction === 'up' ? 'upload (stdin → `cat > /dev/null`)' : 'download (`cat` text → stdout, recorded)';
    for (const p of PATHS) {
      const t = throughput[direction][p];
      console.log(
        `| ${name} | ${LABEL[p]} | ${f1(best(t))} (${spread(t)}) | ${f2(median(machineMsPerMiB[direction][p]))} | ` +
          `${via(p) ? f2(median(serverMsPerMiB[direction][p])) : ''} | ${p === 'agent' ? f2(median(agentMsPerMiB[direction])) : ''} |`,
      );
    }
  }

  const ratio = (x: number, base: number) => `**${f2(x / base)}×**`;
  console.log('\nThe agent path against the others (throughput: best ÷ best, higher is better; setup: median ÷ median, lower is better):');
  console.log('| | agent ÷ direct | agent ÷ gateway → sshd |');
  console.log('|---|---|---|');
  console.log(`| setup | ${ratio(median(setup.agent), median(setup.direct))} | ${ratio(median(setup.agent), median(setup.gateway))} |`);
  for (const direction of ['up', 'down'] as const) {
    const t = throughput[direction];
    console.log(
      `| throughput ${direction === 'up' ? 'upload' : 'download'} | ${ratio(best(t.agent), best(t.direct))} | ` +
        `${ratio(best(t.agent), best(t.gateway))} |`,
    );
  }

  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const mibOf = (kib: number) => kib / 1024;
  const cpuPercent = (i: Idle) => (i.cpuMs / 1000 / i.seconds) * 100;
  console.log('\nThe agent at rest (issue 19: idle RSS ≤ 40 MiB, idle CPU ≈ 0):');
  for (const [name, i] of [
    ['before any session', idleFresh],
    ['after the sessions', idleAfter],
  ] as const) {
    const rss = mibOf(i.resident.rss);
    console.log(
      `  ${name}: RSS ${f1(rss)} MiB (≤ ${RSS_TARGET_MIB} MiB: ${verdict(rss <= RSS_TARGET_MIB)}; ` +
        `anon ${f1(mibOf(i.resident.anon))}, file ${f1(mibOf(i.resident.file))}); ` +
        `CPU ${i.cpuMs.toFixed(0)} ms in ${f1(i.seconds)} s = ${cpuPercent(i).toFixed(3)} % of one core ` +
        `(≈ 0, ≤ ${IDLE_CPU_TARGET_PERCENT} %: ${verdict(cpuPercent(i) <= IDLE_CPU_TARGET_PERCENT)}); ` +
        `${f1(i.wakeupsPerSecond)} context switches/s; link ${i.linkState}`,
    );
  }
  console.log(
    `  peak RSS (VmHWM) over the run, transfers included: the agent's main process ${f1(mibOf(agentPeak))} MiB, ` +
      `a session process ${f1(mibOf(sessionPeakKiB))} MiB (one per session, gone after it)`,
  );
  console.log(
    `  for scale, an idle \`node\` that loads nothing (same flags): RSS ${f1(mibOf(floor.rss))} MiB ` +
      `(anon ${f1(mibOf(floor.anon))}, file ${f1(mibOf(floor.file))}: the node binary's pages, shared between Node processes)`,
  );
}

runMain(main);
