import { execFileSync } from 'node:child_process';
import { signAgentGrant, AGENT_GRANT_TTL_MS, AGENT_CLOCK_SKEW_MS } from '@gatehouse/core/agent-protocol';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { enrolledAgent, testServerKey, TestAgentGateway } from '../../../../test/support/agent-gateway.js';
import { ensureSystemUser } from '../../../../test/support/sshd.js';
import { AgentLink } from './link.js';
import { jsonLogger } from './log.js';
import { opensshPrivateKey, sshPublicKeyBlob } from './openssh-key.js';
import { AgentSessionServer } from './session-server.js';

/** The agent's runtime end to end against a TLS listener playing the gateway: dial-back, sign-in with a grant, sessions as the OS user. */
const USER = 'gh-agent-test';
const server = testServerKey();
const logLines: string[] = [];
let gateway: TestAgentGateway;
let link: AgentLink;
let sessions: AgentSessionServer;
let hostKeyBlob: Buffer;
let agentId: string;
let groups: string;

beforeAll(async () => {
  ensureSystemUser(USER);
  // A supplementary group: a session has the user's groups (a login's), never the agent's.
  execFileSync('groupadd', ['-f', 'gh-agent-extra']);
  execFileSync('usermod', ['-aG', 'gh-agent-extra', USER]);
  groups = execFileSync('id', ['-G', USER], { encoding: 'utf8' }).trim();
  gateway = await TestAgentGateway.start('default');
  const agent = enrolledAgent(server, [gateway.entry()]);
  agentId = agent.state.agentId;
  gateway.welcome = () => ({ t: 'welcome', gateway: 'default', heartbeatMs: 5000, gateways: agent.state.gateways });
  hostKeyBlob = sshPublicKeyBlob(agent.privateKey);
  const logger = jsonLogger((line) => void logLines.push(line));
  sessions = new AgentSessionServer({ agentId, serverKey: server.publicKey, hostKey: opensshPrivateKey(agent.privateKey), logger });
  link = new AgentLink({ agent, version: '0.1.0', hostname: 'web-1', logger, onAttach: (s, g) => sessions.handle(s, g), baseDelayMs: 20 });
  link.start();
  await vi.waitFor(() => expect(link.linkedTo).toBe('default'));
});

afterAll(async () => {
  link.stop();
  sessions.close();
  await gateway.close();
});

const grantFor = (osUser = USER, now = new Date()) =>
  signAgentGrant(
    { agentId, deviceId: 'device-test', accountId: 'account-1', osUser, userId: 'u1', userName: 'Alice' },
    server.privateKey,
    now,
  );

async function signIn(password: string, username = USER): Promise<ssh2.Client> {
  const sock = await gateway.open();
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    client.once('ready', () => resolve(client));
    client.once('error', reject);
    client.connect({ sock, username, password, readyTimeout: 5_000, hostVerifier: (key: Buffer) => key.equals(hostKeyBlob) });
  });
}

function exec(client: ssh2.Client, command: string): Promise<{ stdout: string; code: number | null; signal?: string }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error, stream) => {
      if (error) return reject(error);
      let stdout = '';
      let code: number | null = null;
      let signal: string | undefined;
      stream.on('data', (b: Buffer) => (stdout += b.toString()));
      stream.stderr.on('data', () => undefined);
      stream.on('exit', (c: number | null, s?: string) => {
        code = c;
        signal = s;
      });
      stream.on('close', () => resolve({ stdout, code, ...(signal ? { signal } : {}) }));
    });
  });
}

describe('AgentSessionServer through AgentLink', () => {
  it('runs a command as the OS user the grant names, with its exit status', async () => {
    const client = await signIn(grantFor());
    try {
      expect(await exec(client, 'id -un; echo "$HOME"; exit 3')).toEqual({ stdout: `${USER}\n/home/${USER}\n`, code: 3 });
      expect(groups.split(' ')).toHaveLength(2);
      expect((await exec(client, 'id -G')).stdout.trim()).toBe(groups);
      expect(await exec(client, 'kill -TERM $$')).toEqual({ stdout: '', code: null, signal: 'SIGTERM' });
    } finally {
      client.end();
    }
  });

  it('gives a shell a terminal that follows window changes', async () => {
    const client = await signIn(grantFor());
    try {
      const shell = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
        client.shell({ term: 'xterm-256color', cols: 80, rows: 24 }, (e, s) => (e ? reject(e) : resolve(s))),
      );
      let out = '';
      shell.on('data', (b: Buffer) => (out += b.toString()));
      const exited = new Promise<number>((resolve) => shell.on('exit', (code: number) => resolve(code)));
      shell.write('stty size; echo "T=$TERM U=$(id -un) G=$(id -G)"\n');
      await vi.waitFor(() => expect(out).toMatch(`24 80`));
      await vi.waitFor(() => expect(out).toMatch(`T=xterm-256color U=${USER} G=${groups}`));
      shell.setWindow(30, 100, 0, 0);
      shell.write('stty size\n');
      await vi.waitFor(() => expect(out).toMatch('30 100'));
      shell.write('exit 5\n');
      expect(await exited).toBe(5);
    } finally {
      client.end();
    }
  });

  it('serves sftp as the user: a file it writes is the user’s', async () => {
    const client = await signIn(grantFor());
    try {
      const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) => client.sftp((e, s) => (e ? reject(e) : resolve(s))));
      const file = `/home/${USER}/from-agent.txt`;
      await new Promise<void>((resolve, reject) => sftp.writeFile(file, 'hello', (e) => (e ? reject(e) : resolve())));
      const names = await new Promise<string[]>((resolve, reject) =>
        sftp.readdir(`/home/${USER}`, (e, list) => (e ? reject(e) : resolve(list.map((l) => l.filename)))),
      );
      expect(names).toContain('from-agent.txt');
      const uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }));
      const stat = await new Promise<ssh2.Stats>((resolve, reject) => sftp.stat(file, (e, s) => (e ? reject(e) : resolve(s))));
      expect(stat.uid).toBe(uid);
    } finally {
      client.end();
    }
  });

  it('refuses a forged, expired, reused or other-user grant, and anything but a password', async () => {
    const forged = signAgentGrant(
      { agentId, deviceId: 'd', accountId: 'a', osUser: USER, userId: 'u', userName: 'Mallory' },
      testServerKey().privateKey,
    );
    await expect(signIn(forged)).rejects.toThrow(/authentication methods failed/);
    const expired = grantFor(USER, new Date(Date.now() - AGENT_GRANT_TTL_MS - AGENT_CLOCK_SKEW_MS - 5_000));
    await expect(signIn(expired)).rejects.toThrow(/authentication methods failed/);
    await expect(signIn(grantFor('root'))).rejects.toThrow(/authentication methods failed/);
    const once = grantFor();
    (await signIn(once)).end();
    await expect(signIn(once)).rejects.toThrow(/authentication methods failed/);
    const reasons = logLines.map((l) => JSON.parse(l) as { msg: string; reason?: string }).filter((l) => l.msg === 'session refused');
    expect(reasons.map((r) => r.reason)).toEqual([
      'the signature is not the server’s',
      'an expired grant',
      'a grant for another OS user',
      'a grant used before',
    ]);
    // No grant ever reaches the log.
    expect(logLines.join('')).not.toContain(once.slice(3, 40));
  });

  it('ends the session’s processes when the connection is lost, with or without a terminal', async () => {
    const running = (pattern: string) => {
      try {
        return execFileSync('pgrep', ['-u', USER, '-f', pattern], { encoding: 'utf8' }).trim() !== '';
      } catch {
        return false;
      }
    };
    const sock = await gateway.open();
    const client = await new Promise<ssh2.Client>((resolve, reject) => {
      const c = new ssh2.Client();
      c.once('ready', () => resolve(c)).once('error', reject);
      c.connect({ sock, username: USER, password: grantFor(), hostVerifier: (key: Buffer) => key.equals(hostKeyBlob) });
    });
    client.on('error', () => undefined);
    client.shell({ term: 'xterm' }, (e, shell) => shell?.write('sleep 987\n'));
    client.exec('sleep 986', () => undefined);
    await vi.waitFor(() => expect(running('sleep 98[67]') && running('sleep 986') && running('sleep 987')).toBe(true));
    sock.destroy();
    await vi.waitFor(() => expect(running('sleep 98[67]')).toBe(false));
  });

  it('after a hostile frame drops the link, the agent links again and sessions work', async () => {
    const before = gateway.controls.length;
    gateway.send('{"t":"shell","cmd":"id"}\n');
    await vi.waitFor(() => expect(gateway.controls.length).toBe(before + 1));
    await vi.waitFor(() => expect(link.linkedTo).toBe('default'));
    const client = await signIn(grantFor());
    expect((await exec(client, 'id -un')).stdout).toBe(`${USER}\n`);
    client.end();
  });
});
