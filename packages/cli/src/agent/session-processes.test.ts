import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { signAgentGrant } from '@gatehouse/core/agent-protocol';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AgentProcess, stopAgents } from '../../../../test/support/agent.js';
import { enrolledAgent, testServerKey, TestAgentGateway } from '../../../../test/support/agent-gateway.js';
import { ensureSystemUser } from '../../../../test/support/sshd.js';
import { sshPublicKeyBlob } from './openssh-key.js';

/**
 * `gatehouse agent run` as built (`npm run build` first: it forks `dist/agent/session-main.js`)
 * against a TLS listener playing the gateway: every session runs in a session process of
 * its own, which is gone after the session; a grant spent in one is refused in another;
 * a session process that crashes leaves the agent and its link up.
 */
const USER = 'gh-agent-fork';
const server = testServerKey();
const sessionMain = new URL('../../dist/agent/session-main.js', import.meta.url);
let gateway: TestAgentGateway;
let agent: AgentProcess;
let agentId: string;
let hostKeyBlob: Buffer;

beforeAll(async () => {
  if (!existsSync(sessionMain)) throw new Error('packages/cli/dist/agent/session-main.js is missing: npm run build first');
  ensureSystemUser(USER);
  gateway = await TestAgentGateway.start('default');
  const enrolled = enrolledAgent(server, [gateway.entry()]);
  agentId = enrolled.state.agentId;
  hostKeyBlob = sshPublicKeyBlob(enrolled.privateKey);
  gateway.welcome = () => ({ t: 'welcome', gateway: 'default', heartbeatMs: 5000, gateways: enrolled.state.gateways });
  agent = AgentProcess.start({ stateDir: enrolled.stateDir });
  await vi.waitFor(() => expect(gateway.control?.hello.agentId).toBe(agentId), { timeout: 10_000 });
});

afterAll(async () => {
  await stopAgents();
  await gateway.close();
});

const grantFor = () =>
  signAgentGrant(
    { agentId, deviceId: 'device-test', accountId: 'account-1', osUser: USER, userId: 'u1', userName: 'Alice' },
    server.privateKey,
  );

/** The agent's session processes: its own children (their sessions' processes are theirs). */
function sessionProcesses(): number[] {
  const pids: number[] = [];
  for (const tid of readdirSync(`/proc/${agent.pid}/task`)) {
    try {
      pids.push(...readFileSync(`/proc/${agent.pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    } catch {
      // The thread ended.
    }
  }
  return pids;
}

async function signIn(password: string): Promise<ssh2.Client> {
  const sock = await gateway.open();
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    client.once('ready', () => resolve(client));
    client.once('error', reject);
    client.connect({ sock, username: USER, password, readyTimeout: 10_000, hostVerifier: (key: Buffer) => key.equals(hostKeyBlob) });
  });
}

function exec(client: ssh2.Client, command: string): Promise<{ stdout: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error, stream) => {
      if (error) return reject(error);
      let stdout = '';
      let code: number | null = null;
      stream.on('data', (b: Buffer) => (stdout += b.toString()));
      stream.stderr.on('data', () => undefined);
      stream.on('exit', (c: number | null) => (code = c));
      stream.on('close', () => resolve({ stdout, code }));
    });
  });
}

const logLines = () =>
  agent.log
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; reason?: string; code?: number | null; signal?: string | null });

describe('gatehouse agent run: a session process per session', () => {
  it('runs a session in its own process, which is gone once the session ended', async () => {
    expect(sessionProcesses()).toEqual([]);
    const client = await signIn(grantFor());
    const [child] = sessionProcesses();
    expect(sessionProcesses()).toHaveLength(1);
    expect(readFileSync(`/proc/${child}/cmdline`, 'utf8')).toContain('session-main.js');
    expect(await exec(client, 'id -un; exit 3')).toEqual({ stdout: `${USER}\n`, code: 3 });
    client.end();
    await vi.waitFor(() => expect(sessionProcesses()).toEqual([]));
    expect(logLines().filter((l) => l.msg === 'session process failed')).toEqual([]);
  });

  it('refuses a grant in a second session process that the first one spent: the nonce is spent in the agent’s main process', async () => {
    const grant = grantFor();
    const first = await signIn(grant);
    await expect(signIn(grant)).rejects.toThrow(/authentication methods failed/);
    expect(
      logLines()
        .filter((l) => l.msg === 'session refused')
        .map((l) => l.reason),
    ).toEqual(['a grant used before']);
    // A fresh grant still works beside the first session, each in its own process.
    const second = await signIn(grantFor());
    // The refused one's process ends with its connection.
    await vi.waitFor(() => expect(sessionProcesses()).toHaveLength(2));
    expect((await exec(second, 'id -un')).stdout).toBe(`${USER}\n`);
    first.end();
    second.end();
    await vi.waitFor(() => expect(sessionProcesses()).toEqual([]));
    // No grant ever reaches the log.
    expect(agent.log).not.toContain(grant.slice(3, 40));
  });

  it('outlives a session process that crashes: it logs the crash, keeps its link and serves the next session', async () => {
    const controls = gateway.controls.length;
    const client = await signIn(grantFor());
    client.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const [child] = sessionProcesses();
    process.kill(child as number, 'SIGSEGV');
    await closed;
    await vi.waitFor(() =>
      expect(logLines().find((l) => l.msg === 'session process failed')).toMatchObject({ code: null, signal: 'SIGSEGV' }),
    );
    expect(agent.exitStatus).toBeUndefined();
    expect(gateway.controls.length).toBe(controls);
    const next = await signIn(grantFor());
    expect((await exec(next, 'echo still here')).stdout).toBe('still here\n');
    next.end();
    await vi.waitFor(() => expect(sessionProcesses()).toEqual([]));
  });

  it('on SIGTERM hangs up live sessions, leaves no session process and exits 0', async () => {
    const client = await signIn(grantFor());
    client.on('error', () => undefined);
    client.exec('sleep 975', () => undefined);
    const running = () => {
      try {
        return execFileSync('pgrep', ['-u', USER, '-f', 'sleep 975'], { encoding: 'utf8' }).trim() !== '';
      } catch {
        return false;
      }
    };
    await vi.waitFor(() => expect(running()).toBe(true));
    const children = sessionProcesses();
    expect(children).toHaveLength(1);
    expect(await agent.stop()).toEqual({ code: 0, signal: null });
    await vi.waitFor(() => expect(running()).toBe(false));
    for (const pid of children) expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(logLines().map((l) => l.msg)).toContain('agent stopped');
  });
});
