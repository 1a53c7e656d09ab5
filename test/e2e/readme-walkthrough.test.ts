import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pty from 'node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeLowPort } from '../support/agent.js';
import { isRoot } from '../support/netns.js';
import { baseEnv, killServers, removeTempDirs, startServer, tempDir, type GatehouseServer } from '../support/server.js';
import { ensureSystemUser, generateKeyPair, TestSshd } from '../support/sshd.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const ADMIN_PASSWORD = 'walkthrough admin password';
/** The device account the README vaults (`deploy` on db-1): a machine user the device's sshd logs in. */
const DEVICE_ACCOUNT = 'deploy';
const DEVICE_PASSWORD = 'pw-walkthrough-3e8b1f0c';
/** The README's device address (a documentation range) stands for where the test's sshd listens. */
const README_DEVICE_ADDRESS = '203.0.113.7';

interface ReadmeCommand {
  /** 1-based line in README.md. */
  line: number;
  command: string;
}

/**
 * The README's fenced `sh` blocks, one command a line (a trailing `\` joins the next), in
 * order. A block after `<!-- walkthrough: skip … -->` is one a test cannot run (the
 * server that blocks, the whole suite): the README says so, not a list kept here.
 */
function readmeCommands(readme: string): ReadmeCommand[] {
  const lines = readme.split('\n');
  const commands: ReadmeCommand[] = [];
  let inBlock = false;
  let skip = false;
  let pending: ReadmeCommand | undefined;
  lines.forEach((text, i) => {
    if (!inBlock) {
      if (/^```(sh|bash|shell)\s*$/.test(text)) {
        inBlock = true;
        const before = lines.slice(0, i).findLast((l) => l.trim() !== '') ?? '';
        skip = /^<!-- walkthrough: skip\b/.test(before);
      }
      return;
    }
    if (text.startsWith('```')) {
      inBlock = false;
      return;
    }
    if (skip || text.trim() === '' || text.trimStart().startsWith('#')) return;
    const current = pending ?? { line: i + 1, command: '' };
    const continued = text.endsWith('\\');
    current.command += continued ? `${text.slice(0, -1)} ` : text;
    pending = continued ? current : undefined;
    if (!continued) commands.push(current);
  });
  return commands;
}

/** What a README command printed on its terminal, and how it exited. */
interface Ran {
  exitCode: number;
  output: string;
}

/** A prompt a newcomer answers at the keyboard: the first time `when` matches the end of the output, `send` is typed. */
interface Answer {
  when: RegExp;
  send: string;
}

/**
 * A newcomer's walk through README.md from a clone, as root on the machine running the
 * server: every command of its `sh` blocks in order, exactly as written, on a terminal
 * (prompts are answered), up to and including the first SSH session through the gateway.
 * The test starts the server the README's `bash scripts/start.sh` would (embedded database,
 * built-in gateway, HTTPS console) and a real sshd as the device db-1. Each command runs in
 * a mount namespace whose home directory is a fresh one (ssh reads ~/.ssh from the user's
 * passwd entry, not $HOME), so nothing of the machine's own ~/.ssh or ~/.config is read or
 * written.
 */
describe.skipIf(!isRoot)('README walk-through', () => {
  let dir: string;
  let work: string;
  let home: string;
  let server: GatehouseServer;
  let sshd: TestSshd;

  beforeAll(async () => {
    dir = tempDir('gatehouse-readme-');
    chmodSync(dir, 0o755);
    // ./gatehouse runs npm ci first when node_modules is not current: not inside a test.
    const installed = spawnSync('bash', ['-c', 'source scripts/node24.sh && gatehouse_installed'], { cwd: repo });
    expect(installed.status, 'node_modules is older than package-lock.json or built for another Node: npm ci first').toBe(0);
    // The clone's directory as the reader has it: ./gatehouse, and ./data made by the server.
    work = path.join(dir, 'clone');
    mkdirSync(work);
    symlinkSync(path.join(repo, 'gatehouse'), path.join(work, 'gatehouse'));
    home = path.join(dir, 'home');
    mkdirSync(path.join(home, '.ssh'), { recursive: true, mode: 0o700 });
    // The newcomer's own SSH key, as most have one.
    generateKeyPair(path.join(home, '.ssh'), 'id_ed25519');

    ensureSystemUser(DEVICE_ACCOUNT, { password: DEVICE_PASSWORD });
    sshd = await TestSshd.start(path.join(dir, 'sshd'), { port: await freeLowPort() });
    server = await startServer({ dataDir: path.join(work, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(await freeLowPort()) } });
  });

  afterAll(async () => {
    killServers();
    await sshd?.stop();
    removeTempDirs();
  });

  /** Runs one README command on a terminal in the clone's directory, answering prompts. */
  function run(command: string, answers: Answer[]): Promise<Ran> {
    const pending = [...answers];
    const script = 'mount --bind "$WALK_HOME" "$HOME" && cd "$WALK_CLONE" && eval "$WALK_COMMAND"';
    const env = baseEnv({
      HOME: os.userInfo().homedir,
      // The test's server listens on a port of its own, not the README's default (443 as root).
      GATEHOUSE_URL: server.url,
      WALK_HOME: home,
      WALK_CLONE: work,
      WALK_COMMAND: command,
    });
    const term = pty.spawn('unshare', ['--mount', '--propagation', 'private', '--', 'bash', '-c', script], {
      name: 'xterm',
      cols: 200,
      rows: 50,
      cwd: work,
      env,
    });
    let output = '';
    return new Promise((resolve) => {
      const timer = setTimeout(() => term.kill('SIGKILL'), 40_000);
      term.onData((data) => {
        output += data;
        const i = pending.findIndex((a) => a.when.test(output));
        if (i >= 0) term.write(`${pending.splice(i, 1)[0]?.send}\r`);
      });
      term.onExit(({ exitCode }) => {
        clearTimeout(timer);
        resolve({ exitCode, output });
      });
    });
  }

  it('runs every README command up to the first SSH session through the gateway', async () => {
    const commands = readmeCommands(readFileSync(path.join(repo, 'README.md'), 'utf8'));
    const firstSsh = commands.findIndex((c) => /^ssh\s/.test(c.command));
    expect(firstSsh, 'README.md shows no ssh command').toBeGreaterThan(0);
    const walk = commands.slice(0, firstSsh + 1);
    const answers: Answer[] = [
      { when: /New administrator password[^\n]*: *$/, send: ADMIN_PASSWORD },
      { when: /Password of \S+ on \S+: *$/, send: DEVICE_PASSWORD },
      // The device's shell (sh's prompt): a command whose answer is not its own echo, then out.
      { when: /\$ $/, send: 'echo "walked-$((6*7))-$(id -un)"; exit' },
    ];
    const transcript: string[] = [];
    for (const { line, command } of walk) {
      const actual = command.replaceAll(README_DEVICE_ADDRESS, `127.0.0.1 --url-port ${sshd.port}`);
      const ran = await run(actual, answers);
      transcript.push(`README.md:${line}: ${command}\n${ran.output}`);
      expect(ran.exitCode, `${transcript.join('\n')}\nexited ${ran.exitCode}`).toBe(0);
    }
    const said = transcript.join('\n');
    // What the README says these commands do.
    expect(said).toMatch(/Administrator admin created/);
    expect(said).toMatch(/db-1[^\n]*Payments|Payments[^\n]*db-1/);
    expect(said).toMatch(/^1 device\.\r?$/m);
    expect(existsSync(path.join(work, 'password.txt')), 'password.txt is deleted once stored').toBe(false);
    // The first SSH session reached the device as its vaulted account.
    expect(said).toContain(`walked-42-${DEVICE_ACCOUNT}`);
    expect(readFileSync(path.join(home, '.ssh', 'config'), 'utf8')).toContain('Host db-1.gatehouse');
  });
});
