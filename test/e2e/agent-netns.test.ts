import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AgentProcess, enrollAgent, freeLowPort, stopAgents, type EnrolledAgent } from '../support/agent.js';
import { launchChromium, newPage, signIn } from '../support/browser.js';
import { runClient } from '../support/ssh-client.js';
import { freeRanges, ip, isRoot, reachable } from '../support/netns.js';
import { killServers, removeTempDirs, setupAdmin, startServer, tempDir, type GatehouseServer, savedToken } from '../support/server.js';
import { ensureSystemUser } from '../support/sshd.js';

const API = '/api/v1';
/** The account's OS user on the device: no password anywhere, the agent needs none. */
const DEVICE_USER = 'gh-test-agent';
const ADMIN_PASSWORD = 'agent netns admin password';
const OPERATOR = 'olga';
const OPERATOR_PASSWORD = 'agent netns operator password';

const run = (command: string, ...args: string[]) => execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** A /24 this machine does not use, for the device's link. */
const LINK = isRoot ? (freeRanges(['198.18.9', '198.19.9', '203.0.113', '198.51.100', '192.0.2'], 1)[0] as string) : '198.18.9';
/** This namespace's end of the device's only link: where the server is, for the device. */
const HOST_SIDE = `${LINK}.1`;
const DEVICE = `${LINK}.2`;

interface Session {
  id: string;
  username: string;
  deviceName: string;
  accountUsername: string;
  gateway: string;
  kind: string | null;
  command: string | null;
  result: string;
  exitStatus: number | null;
  reason: string | null;
  startedAt: string;
  endedAt: string | null;
  recorded: boolean;
}

interface AuditEvent {
  seq: number;
  action: string;
  outcome: string;
  actorName: string;
  details: Record<string, unknown>;
}

interface AgentView {
  id: string;
  linkState: string;
  linkGateway?: string | null;
  lastContactAt: string | null;
  revokedAt: string | null;
}

/**
 * Session-Manager-style access: the device is a network namespace whose only link is a veth
 * pair to this one; nothing in it listens (no sshd, no agent port) and the agent, running in
 * it as root, dials out to the server's agent port on this side of the link. Every way in —
 * native ssh, sftp, scp, the browser terminal — goes through that outbound link, as the
 * account's OS user, recorded and audited as sshd sessions are.
 */
describe.skipIf(!isRoot)('a device reached only through its host agent (network namespace, no inbound port)', () => {
  const tag = randomBytes(3).toString('hex');
  const ns = `gh-agent-${tag}`;
  const hostIf = `gha${tag}`;
  let dir: string;
  let stateDir: string;
  let server: GatehouseServer;
  let agent: AgentProcess;
  let enrolled: EnrolledAgent;
  let forwarder: net.Server | undefined;
  let browser: Browser | undefined;
  let gatewayPort: number;
  let agentPort: number;
  let token: string;
  let deviceId: string;
  let accountId: string;

  const api = <T>(method: string, route: string, body?: unknown) => server.api<T>(token, method, route, body);
  const ssh = (args: string[], stdin?: string) =>
    runClient('ssh', ['-p', String(gatewayPort), `${OPERATOR}:dark-box@127.0.0.1`, ...args], { password: OPERATOR_PASSWORD, stdin });
  const sessions = async () => (await api<{ items: Session[] }>(`GET`, `/sessions?deviceId=${deviceId}&limit=100`)).items;
  /** The newest session that matches, once the gateway recorded its end. */
  const endedSession = (match: (s: Session) => boolean) =>
    vi.waitFor(
      async () => {
        const found = (await sessions()).find(match);
        if (!found?.endedAt) throw new Error(`no such ended session yet: ${JSON.stringify(found)}`);
        return found;
      },
      { timeout: 15_000, interval: 100 },
    );
  const lastSeq = async () => (await api<{ items: AuditEvent[] }>('GET', '/audit/events?limit=1')).items[0]?.seq ?? 0;
  const auditSince = async (seq: number) =>
    (await api<{ items: AuditEvent[] }>('GET', `/audit/events?afterSeq=${seq}&order=asc&limit=1000`)).items;
  const agentView = async () => (await api<{ agent: AgentView | null }>('GET', `/devices/${deviceId}/agent`)).agent;
  /** The device namespace's TCP connections to the server's agent port, as `ss` lists them there. */
  const linkConnections = () =>
    ip('netns', 'exec', ns, 'ss', '-Htn', 'state', 'established', 'dst', `${HOST_SIDE}:${agentPort}`).split('\n').filter(Boolean);
  /** Resolves once the server shows the agent's link up, with contact after `since`; fails at once if the agent exits. */
  const linkUp = (since = 0) =>
    Promise.race([
      vi.waitFor(
        async () => {
          const view = await agentView();
          if (view?.linkState !== 'up' || Date.parse(view.lastContactAt ?? '') < since)
            throw new Error(`the agent's link is not up: ${JSON.stringify(view)}\n${agent.log}`);
          return view;
        },
        { timeout: 15_000, interval: 100 },
      ),
      agent.exited.then((status) => {
        throw new Error(`the agent exited (${status.code ?? status.signal}):\n${agent.log}`);
      }),
    ]);
  /** The processes in the device's namespace, by command name. */
  const deviceProcesses = () =>
    ip('netns', 'pids', ns)
      .split('\n')
      .filter(Boolean)
      .map((pid) => {
        try {
          return { pid: Number(pid), comm: readFileSync(`/proc/${pid}/comm`, 'utf8').trim() };
        } catch {
          return { pid: Number(pid), comm: '' }; // gone meanwhile
        }
      });

  beforeAll(async () => {
    dir = tempDir('gatehouse-agent-netns-');
    stateDir = path.join(dir, 'device', 'state');
    ip('netns', 'add', ns);
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('addr', 'add', `${HOST_SIDE}/24`, 'dev', hostIf);
    ip('link', 'set', hostIf, 'up');
    ip('-n', ns, 'addr', 'add', `${DEVICE}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ensureSystemUser(DEVICE_USER);

    gatewayPort = await freeLowPort('0.0.0.0');
    agentPort = await freeLowPort('0.0.0.0');
    server = await startServer({
      dataDir: path.join(dir, 'data'),
      env: {
        GATEHOUSE_GATEWAY_PORT: String(gatewayPort),
        // The agent listener binds the gateway's host: every address, so the device's link reaches it too.
        GATEHOUSE_GATEWAY_HOST: '0.0.0.0',
        GATEHOUSE_AGENT_PORT: String(agentPort),
        GATEHOUSE_AGENT_ADDRESS: `${HOST_SIDE}:${agentPort}`,
      },
    });
    const credentials = path.join(dir, 'credentials.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    token = savedToken(credentials);

    const project = await api<{ id: string }>('POST', '/projects', { name: 'Agents' });
    deviceId = (
      await api<{ id: string }>('POST', '/devices', {
        projectId: project.id,
        name: 'dark-box',
        provider: 'on-prem',
        protocols: ['ssh', 'sftp'],
        privateIp: DEVICE,
      })
    ).id;
    accountId = (await api<{ id: string }>('POST', '/accounts', { deviceId, username: DEVICE_USER })).id;
    const operator = await api<{ id: string }>('POST', '/users', { username: OPERATOR, role: 'operator', password: OPERATOR_PASSWORD });
    await api('POST', '/grants', { userId: operator.id, projectId: project.id, deviceId });

    // The server as the device reaches it: its HTTPS port on this side of the device's link
    // (the server itself listens on 127.0.0.1 only, as a server behind a proxy would).
    const httpsPort = Number(new URL(server.url).port);
    forwarder = net.createServer((socket) => {
      const upstream = net.connect({ host: '127.0.0.1', port: httpsPort });
      socket.pipe(upstream).pipe(socket);
      socket.once('error', () => upstream.destroy());
      upstream.once('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => forwarder?.listen(0, HOST_SIDE, resolve));
    const { port: forwardedPort } = forwarder.address() as net.AddressInfo;

    const { installCommand } = await api<{ installCommand: string }>('POST', `/devices/${deviceId}/agent-tokens`, {});
    expect(installCommand).toContain(`--server ${server.url} `);
    const enrollment = await enrollAgent({ installCommand, stateDir, server: `https://${HOST_SIDE}:${forwardedPort}`, netns: ns });
    expect(enrollment.result.code, enrollment.result.stderr).toBe(0);
    enrolled = enrollment.agent as EnrolledAgent;
    forwarder.close();
    agent = AgentProcess.start({ stateDir, netns: ns });
    await linkUp();
  });

  afterAll(async () => {
    await browser?.close();
    await stopAgents();
    forwarder?.close();
    killServers();
    try {
      // What a killed agent left running there (its sessions' processes).
      for (const { pid } of deviceProcesses()) process.kill(pid, 'SIGKILL');
    } catch {
      // No namespace: beforeAll failed early.
    }
    try {
      ip('netns', 'del', ns);
    } catch {
      // Not made.
    }
    try {
      ip('link', 'del', hostIf);
    } catch {
      // Gone with the namespace.
    }
    removeTempDirs();
  });

  it('runs no sshd and listens on nothing in the device: its one connection is the agent’s, out to the server', async () => {
    expect(ip('netns', 'exec', ns, 'ss', '-Hltnu').trim()).toBe('');
    expect(deviceProcesses().map((p) => p.comm)).not.toContain('sshd');
    for (const port of [22, agentPort, gatewayPort]) expect(await reachable(DEVICE, port), `${DEVICE}:${port}`).toBe(false);
    expect(linkConnections()).toHaveLength(1);
    expect(await agentView()).toMatchObject({ id: enrolled.agentId, linkState: 'up', linkGateway: 'default', revokedAt: null });
  });

  it('runs a command over native ssh as the account’s OS user: output, exit status, session row, recording and audit', async () => {
    const seq = await lastSeq();
    const command = 'id -un; echo out-$((6*7)); echo err >&2; exit 3';
    const result = await ssh([command]);
    expect(result.stdout.toString(), result.stderr).toBe(`${DEVICE_USER}\nout-42\n`);
    expect(result.stderr).toContain('err');
    expect(result.code).toBe(3);

    const session = await endedSession((s) => s.kind === 'exec' && s.command === command);
    expect(session).toMatchObject({
      username: OPERATOR,
      accountUsername: DEVICE_USER,
      gateway: 'default',
      result: 'success',
      exitStatus: 3,
      recorded: true,
    });
    const cast = await server.request(`${API}/sessions/${session.id}/recording`, { headers: { authorization: `Bearer ${token}` } });
    expect(cast.status).toBe(200);
    expect(cast.body).toContain('out-42');
    expect(existsSync(path.join(server.dataDir, 'recordings', session.startedAt.slice(0, 10), `${session.id}.cast`))).toBe(true);

    const events = await auditSince(seq);
    const of = (action: string) => events.filter((e) => e.action === action);
    expect(of('gateway.auth').map((e) => [e.actorName, e.outcome])).toContainEqual([OPERATOR, 'success']);
    expect(of('session.start')).toContainEqual(expect.objectContaining({ outcome: 'success', actorName: OPERATOR }));
    expect(of('session.start').some((e) => e.details.sessionId === session.id)).toBe(true);
    expect(of('session.end').find((e) => e.details.sessionId === session.id)?.details).toMatchObject({
      account: DEVICE_USER,
      exitStatus: 3,
    });
  });

  it('serves an interactive pty shell, and follows window changes', async () => {
    const scripted = await ssh(['-tt'], 'echo shell-$((40+2)); id -un\nexit 0\n');
    expect(scripted.code, scripted.stderr).toBe(0);
    expect(scripted.stdout.toString()).toContain('shell-42');
    expect(scripted.stdout.toString()).toContain(DEVICE_USER);
    const shell = await endedSession((s) => s.kind === 'shell');
    expect(shell).toMatchObject({ result: 'success', exitStatus: 0, recorded: true });

    // A raw SSH client resizes its terminal: the shell on the device sees each size.
    const sizes = await new Promise<string>((resolve, reject) => {
      const client = new ssh2.Client();
      let seen = '';
      const timer = setTimeout(() => {
        client.end();
        reject(new Error(`no window change seen within 15 s; the terminal showed:\n${seen}`));
      }, 15_000);
      client.on('keyboard-interactive', (_n, _i, _l, prompts, finish) => finish(prompts.map(() => OPERATOR_PASSWORD)));
      client.on('error', reject);
      client.on('ready', () => {
        client.shell({ term: 'xterm', rows: 24, cols: 80 }, (error, stream) => {
          if (error) return reject(error);
          stream.on('data', (d: Buffer) => {
            seen += d.toString('utf8');
            if (/(?:^|\s)24 80\r?$/m.test(seen) && !seen.includes('resized')) {
              seen += 'resized';
              stream.setWindow(40, 132, 0, 0);
              stream.write('stty size; exit 0\n');
            }
          });
          stream.on('close', () => {
            clearTimeout(timer);
            client.end();
            resolve(seen);
          });
          stream.write('stty size\n');
        });
      });
      client.connect({ host: '127.0.0.1', port: gatewayPort, username: `${OPERATOR}:dark-box`, tryKeyboard: true, readyTimeout: 15_000 });
    });
    expect(sizes).toMatch(/(?:^|\s)24 80\r?$/m);
    expect(sizes).toMatch(/(?:^|\s)40 132\r?$/m);
  });

  it('lists and downloads files in the file browser (SFTP through the built-in gateway and the agent)', async () => {
    const name = `browse-${randomBytes(4).toString('hex')}.txt`;
    const home = path.join('/home', DEVICE_USER);
    writeFileSync(path.join(home, name), 'seen through the agent\n');
    try {
      const listing = await api<{ path: string; entries: { name: string; type: string }[] }>(
        'GET',
        `/files?deviceId=${deviceId}&accountId=${accountId}&path=.`,
      );
      expect(listing.path).toBe(home);
      expect(listing.entries).toContainEqual(expect.objectContaining({ name, type: 'file' }));
      const res = await server.request(
        `${API}/files/download?deviceId=${deviceId}&accountId=${accountId}&path=${encodeURIComponent(`${home}/${name}`)}`,
        {
          headers: { authorization: `Bearer ${token}` },
        },
      );
      expect(res.status, res.body).toBe(200);
      expect(res.body).toBe('seen through the agent\n');
    } finally {
      rmSync(path.join(home, name), { force: true });
    }
    const browsed = (await sessions()).filter((s) => s.kind === 'sftp' && s.gateway === 'default');
    expect(browsed.length).toBeGreaterThanOrEqual(2);
  });

  it('copies files with sftp and scp both ways, byte for byte, owned by the account’s OS user', async () => {
    const payload = randomBytes(256 * 1024 + 7);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const local = path.join(dir, 'upload.bin');
    writeFileSync(local, payload);
    const name = `agent-${randomBytes(4).toString('hex')}`;
    const home = path.join('/home', DEVICE_USER);
    const login = ['-P', String(gatewayPort), '-o', `User=${OPERATOR}:dark-box`];
    try {
      const sftp = await runClient('sftp', [...login, '-b', '-', '127.0.0.1'], {
        password: OPERATOR_PASSWORD,
        stdin: `put ${local} ${name}.sftp\nget ${name}.sftp ${local}.sftp-back\n`,
      });
      expect(sftp.code, sftp.stderr).toBe(0);
      expect(sha(readFileSync(`${local}.sftp-back`))).toBe(sha(payload));
      expect(statSync(path.join(home, `${name}.sftp`)).uid).toBe(Number(run('id', '-u', DEVICE_USER).trim()));

      const up = await runClient('scp', [...login, local, `127.0.0.1:${name}.scp`], { password: OPERATOR_PASSWORD });
      expect(up.code, up.stderr).toBe(0);
      const down = await runClient('scp', [...login, `127.0.0.1:${name}.scp`, `${local}.scp-back`], { password: OPERATOR_PASSWORD });
      expect(down.code, down.stderr).toBe(0);
      expect(sha(readFileSync(`${local}.scp-back`))).toBe(sha(payload));
      expect(sha(readFileSync(path.join(home, `${name}.scp`)))).toBe(sha(payload));
    } finally {
      for (const suffix of ['sftp', 'scp']) rmSync(path.join(home, `${name}.${suffix}`), { force: true });
    }
    const transfers = (await sessions()).filter((s) => s.kind === 'sftp');
    expect(transfers.length).toBeGreaterThanOrEqual(3);
    const ops = (
      await Promise.all(
        transfers.map((s) => api<{ items: { op: string; bytes: number; result: string }[] }>('GET', `/sessions/${s.id}/file-operations`)),
      )
    ).flatMap((r) => r.items.filter((o) => o.op === 'upload' || o.op === 'download').map((o) => [o.op, o.bytes, o.result]));
    expect(ops).toEqual(
      expect.arrayContaining([
        ['upload', payload.length, 'success'],
        ['download', payload.length, 'success'],
      ]),
    );
  });

  it('runs a command in the browser terminal', async () => {
    browser = await launchChromium(server.certFile);
    const { page, problems } = await newPage(await browser.newContext({ viewport: { width: 1100, height: 700 } }));
    await signIn(page, server.url, OPERATOR, OPERATOR_PASSWORD);
    await page.goto(`${server.url}/devices/${deviceId}/terminal`);
    await page.getByText('Connected · recorded').waitFor({ timeout: 20_000 });
    await page.getByTestId('terminal').click();
    await page.keyboard.type('echo from-the-browser-$((6*7)) as $(id -un); exit 0\n');
    await page.getByText('The session ended (exit status 0).').waitFor({ timeout: 15_000 });
    expect(await page.getByTestId('terminal').locator('.xterm-rows').innerText()).toContain(`from-the-browser-42 as ${DEVICE_USER}`);
    expect(problems).toEqual([]);
    const session = await endedSession((s) => s.kind === 'shell' && s.username === OPERATOR);
    expect(session).toMatchObject({ result: 'success', exitStatus: 0, recorded: true });
  });

  /** An ssh session that stays live (until `stop` ends it), once its row says it is. */
  const liveSession = async (tag: string) => {
    const command = `echo ${tag}; exec sleep 30`;
    const ended = ssh([command]);
    await vi.waitFor(
      async () => {
        if (!(await sessions()).some((s) => s.result === 'active' && s.command === command)) throw new Error('the session is not live yet');
      },
      { timeout: 15_000, interval: 100 },
    );
    return { ended, row: () => endedSession((s) => s.command === command) };
  };

  it('ends a live session when the agent’s link is cut, saying so in its row; the agent links again by itself', async () => {
    // The link's connection (the only one before the session's own).
    const [control] = linkConnections();
    const controlPort = /\S+:(\d+)\s+\S+\s*$/.exec(control ?? '')?.[1];
    expect(controlPort, control).toBeDefined();
    const live = await liveSession('cut');
    const cutAt = Date.now();
    // As a firewall or NAT that forgets the connection would: reset, in the device's namespace.
    ip('netns', 'exec', ns, 'ss', '-K', '-Htn', 'dst', `${HOST_SIDE}:${agentPort}`, 'sport', '=', `:${controlPort}`);
    const ended = await live.ended;
    expect(ended.code).not.toBe(0);
    expect(ended.ms).toBeLessThan(15_000);
    expect(await live.row()).toMatchObject({ result: 'failure', reason: "The agent's link was lost." });
    // The agent ended it on the device too: no process of it is left there.
    await vi.waitFor(
      () => {
        if (deviceProcesses().some((p) => p.comm === 'sleep')) throw new Error('the session’s process still runs on the device');
      },
      { timeout: 5000, interval: 50 },
    );
    await linkUp(cutAt);
    const again = await ssh(['echo relinked']);
    expect(again.stdout.toString(), again.stderr).toBe('relinked\n');
  });

  it('ends a live session when the agent is killed, with the reason in its row; restarted, the agent links again', async () => {
    const live = await liveSession('killed');
    const killedAt = Date.now();
    agent.kill();
    await agent.exited;
    const ended = await live.ended;
    expect(ended.code).not.toBe(0);
    expect(ended.ms).toBeLessThan(15_000);
    const row = await live.row();
    expect(row.result).toBe('failure');
    // The session's own connection and the link close together when the process dies: the
    // gateway waits a moment for the link's reason, and either way the row says it was the agent.
    expect(row.reason).toMatch(
      /^(The agent's link was lost\.|The connection to the agent of dark-box closed: the agent stopped, or its network dropped\.)$/,
    );
    // The session's own process outlived it only to hang up the session: nothing of it is left on the device.
    await vi.waitFor(
      () => {
        if (deviceProcesses().some((p) => p.comm === 'sleep')) throw new Error('the session’s process still runs on the device');
      },
      { timeout: 5000, interval: 50 },
    );
    const meanwhile = await ssh(['echo never']);
    expect(meanwhile.code).toBe(255);
    expect(meanwhile.stderr).toContain('The agent of dark-box is not connected');

    agent = AgentProcess.start({ stateDir, netns: ns });
    await linkUp(killedAt);
    const again = await ssh(['echo back']);
    expect(again.stdout.toString(), again.stderr).toBe('back\n');
  });

  it('revocation drops the link, refuses new sessions, and keeps the agent out (audited)', async () => {
    const seq = await lastSeq();
    await api('POST', `/agents/${enrolled.agentId}/revoke`);
    // The gateway said bye without retry on the live link, and the link is gone.
    await vi.waitFor(
      () => {
        if (!agent.log.includes('"retry":false') || linkConnections().length > 0) throw new Error(`the link is still up:\n${agent.log}`);
      },
      { timeout: 10_000, interval: 100 },
    );
    const refused = await ssh(['echo never']);
    expect(refused.code).toBe(255);
    expect(refused.stdout.toString()).toBe('');

    // Told not to retry, it has not knocked again meanwhile (it would within 0.5 s after a plain drop).
    expect((await auditSince(seq)).filter((e) => e.action === 'agent.link')).toEqual([]);
    expect(agent.exitStatus).toBeUndefined();

    // Started again (as systemd would after a reboot), it is refused at once and does not get a link.
    await agent.stop();
    agent = AgentProcess.start({ stateDir, netns: ns });
    await vi.waitFor(
      () => {
        if (!agent.log.includes('"retry":false') || linkConnections().length > 0) throw new Error(`not refused yet:\n${agent.log}`);
      },
      { timeout: 10_000, interval: 100 },
    );
    const failures = (await auditSince(seq)).filter((e) => e.action === 'agent.link');
    expect(failures).toEqual([
      expect.objectContaining({
        outcome: 'failure',
        details: expect.objectContaining({ agentId: enrolled.agentId, reason: 'the agent was revoked' }) as unknown,
      }),
    ]);
    expect(await agentView()).toMatchObject({ linkState: 'down', revokedAt: expect.any(String) as unknown });
    // It waits, linkless, instead of knocking again at once.
    expect(agent.exitStatus).toBeUndefined();
  });

  // A device whose agent is revoked is reached at its address again (its sshd, if any); when
  // nothing answers there, the user is told the agent was revoked and what to do.
  it('tells a user connecting to the device of a revoked agent that its agent was revoked', async () => {
    const refused = await ssh(['echo never']);
    expect(refused.code).toBe(255);
    expect(refused.stderr).toContain('Its host agent was revoked on');
    expect(refused.stderr).toContain('enroll a new agent');
  });
});
