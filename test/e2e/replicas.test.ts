import { randomBytes, randomUUID } from 'node:crypto';
import { cpSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ageKeygen, s3rverBreakGlassSettings, startHeldWorkbookUpload, waitFor, writeBulkInventory } from '../support/breakglass-e2e.js';
import { launchChromium, newPage, signIn, terminalScreen } from '../support/browser.js';
import { queryPostgres } from '../support/e2e-sql.js';
import { seedDevice } from '../support/seed.js';
import {
  cli,
  e2eDatabase,
  killServers,
  removeTempDirs,
  savedToken,
  setupAdmin,
  startServer,
  tempDir,
  type E2eDatabase,
  type GatehouseServer,
} from '../support/server.js';
import { openSsh } from '../support/ssh-client.js';
import { ensureSystemUser, freePort, TEST_USER_PASSWORD, TestSshd } from '../support/sshd.js';

/**
 * Two `gatehouse server` replicas on one PostgreSQL database (issue 24), presenting one
 * certificate as behind a load balancer: an end asked on one replica ends a session held by
 * the other's built-in gateway; a console signed in on one replica opens the terminal and
 * the file browser on the other; killing the leader in the middle of a break-glass export
 * leaves exactly one export that completes, redone by the other replica, which takes over
 * the scheduled jobs, while an SSH session and a browser terminal through it stay up and the
 * killed leader's session is recorded as ended by its sweep.
 */
const DEVICE_USER = 'ghreplica';
const ADMIN_PASSWORD = 'replica admin password';
const METRICS_TOKEN = 'replicas-test-metrics-scrape-token';

interface Session {
  id: string;
  result: string;
  reason: string | null;
  entryGateway: string;
}
interface LiveSession extends Session {
  kind: string | null;
}
interface RunView {
  id: string;
  result: string;
  trigger: string;
  errorStage: string | null;
}

describe('two server replicas on one PostgreSQL', () => {
  let dir: string;
  let database: E2eDatabase;
  let sshd: TestSshd;
  let held: Awaited<ReturnType<typeof startHeldWorkbookUpload>>;
  const replicas: { server: GatehouseServer; gatewayPort: number }[] = [];
  let token: string;
  let credentials: string;
  let deviceId: string;
  let browser: Browser;

  /** The process id in the first `host:pid:uuid` (a lease holder, a session's replica) the query answers. */
  const pidFrom = async (sql: string, params: unknown[]): Promise<number | undefined> => {
    const { rows } = await queryPostgres<{ holder: string | null }>(database, sql, params);
    return rows[0]?.holder ? Number(rows[0].holder.split(':')[1]) : undefined;
  };
  const leaderPid = () => pidFrom("select holder from leases where name = 'leader' and expires_at > $1", [new Date().toISOString()]);
  /** The replica whose built-in gateway holds a session. */
  const holderPid = (sessionId: string) => pidFrom('select replica as holder from gateway_sessions where id = $1', [sessionId]);
  /** `gatehouse_leader` as a replica's /metrics says it: 1 while it runs the scheduled jobs. */
  const leads = async (server: GatehouseServer): Promise<boolean> => {
    const res = await server.request('/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    const value = /^gatehouse_leader (\d)$/m.exec(res.body)?.[1];
    if (value === undefined) throw new Error(`No gatehouse_leader in /metrics (${res.status})`);
    return value === '1';
  };
  /** The live browser terminal session (a shell) held by `server`'s replica. */
  const liveShellOn = async (server: GatehouseServer): Promise<LiveSession | undefined> => {
    const { items } = await server.api<{ items: LiveSession[] }>(token, 'GET', '/sessions?result=active');
    for (const item of items) if (item.kind === 'shell' && (await holderPid(item.id)) === server.pid) return item;
    return undefined;
  };
  /** A console page in a browser context of its own, signed in on `server`. */
  const consoleOn = async (server: GatehouseServer): Promise<{ page: Page; problems: string[] }> => {
    const opened = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } }));
    await signIn(opened.page, server.url, 'admin', ADMIN_PASSWORD);
    return opened;
  };
  /** Opens the device's browser terminal at `url` and runs `echo <word>-$((6*7))` in it. */
  const terminalAt = async (page: Page, url: string, word: string) => {
    await page.goto(`${url}/devices/${deviceId}/terminal`);
    await page.getByText('Connected · recorded').waitFor({ timeout: 30_000 });
    await typeInTerminal(page, word);
  };
  const typeInTerminal = async (page: Page, word: string) => {
    await page.getByTestId('terminal').click();
    await page.keyboard.type(`echo ${word}-$((6*7))\n`);
    await expect.poll(() => terminalScreen(page), { timeout: 15_000 }).toContain(`${word}-42`);
  };

  beforeAll(async () => {
    dir = tempDir('gatehouse-replicas-');
    credentials = path.join(dir, 'credentials.json');
    database = await e2eDatabase('postgres');
    ensureSystemUser(DEVICE_USER, { password: TEST_USER_PASSWORD });
    sshd = await TestSshd.start(path.join(dir, 'sshd'));
    held = await startHeldWorkbookUpload(dir);
    const env = {
      ...database.env,
      GATEHOUSE_MASTER_KEY: randomBytes(32).toString('hex'),
      GATEHOUSE_LEADER_LEASE_SECONDS: '3',
      GATEHOUSE_METRICS_TOKEN: METRICS_TOKEN,
    };
    for (const name of ['a', 'b']) {
      const gatewayPort = await freePort();
      // Behind a load balancer every replica presents the same certificate: A's, generated at its start.
      if (name === 'b') cpSync(path.join(dir, 'data-a', 'tls'), path.join(dir, 'data-b', 'tls'), { recursive: true });
      const server = await startServer({
        dataDir: path.join(dir, `data-${name}`),
        env: { ...env, GATEHOUSE_GATEWAY_PORT: String(gatewayPort) },
        // Two servers start on a shared, busy machine: more than the default 30 s is allowed.
        timeoutMs: 90_000,
      });
      replicas.push({ server, gatewayPort });
      // Set-up belongs to the first replica.
      if (name === 'a') await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    }
    token = savedToken(credentials);
    const a = replicas[0]?.server as GatehouseServer;
    const { id: projectId } = await a.api<{ id: string }>(token, 'POST', '/projects', { name: 'replicas' });
    ({ deviceId } = await seedDevice(a, token, {
      projectId,
      name: 'box',
      protocols: ['ssh', 'sftp'],
      urlPort: sshd.port,
      account: { username: DEVICE_USER, password: TEST_USER_PASSWORD },
    }));
    browser = await launchChromium(a.certFile);
  });
  afterAll(async () => {
    await browser?.close();
    killServers();
    await sshd?.stop();
    await held?.close();
    await database?.drop();
    removeTempDirs();
  });

  it('lists a session held by replica A from replica B, and B ends it: the user is told who ended it', async () => {
    const [a, b] = replicas;
    if (!a || !b) throw new Error('two replicas expected');
    const ssh = openSsh(a.gatewayPort, 'admin+box', 'read line; echo "got $line"', ADMIN_PASSWORD);
    // The live list comes from the shared database: B sees what A's gateway holds.
    const live = await waitFor('the session to be live, seen from B', async () => {
      const { items } = await b.server.api<{ items: Session[] }>(token, 'GET', '/sessions?result=active');
      return items[0];
    });
    expect(live.entryGateway).toBe('default');
    const ended = await b.server.api<{ ended: boolean }>(token, 'POST', `/sessions/${live.id}/end`, { reason: 'replica test' });
    expect(ended).toEqual({ ended: true });
    expect(await ssh.exited).toBe(255);
    expect(ssh.err()).toContain('admin ended this session: replica test');
    const row = await a.server.api<Session>(token, 'GET', `/sessions/${live.id}`);
    expect(row).toMatchObject({ result: 'failure' });
    expect(row.reason).toContain('replica test');
  });

  it('a console signed in on A opens the terminal and the file browser on B: session cookie and CSRF token hold on every replica', async () => {
    const [a, b] = replicas;
    if (!a || !b) throw new Error('two replicas expected');
    const { page, problems } = await consoleOn(a.server);
    // A cookie is the host's, whatever the port: the page on B sends A's session cookie, as
    // behind a load balancer, and its WebSocket's start message carries the CSRF token B answers for it.
    await terminalAt(page, b.server.url, 'terminal-on-b');
    const shell = await waitFor('the terminal to be live on B', () => liveShellOn(b.server));
    await page.keyboard.type('exit 0\n');
    await page.getByText('The session ended (exit status 0).').waitFor({ timeout: 15_000 });
    expect(await holderPid(shell.id)).toBe(b.server.pid);
    // The file browser's visit (a WebSocket) and its listing, both on B.
    const visit = new Promise<string>((resolve) =>
      page.on('websocket', (ws) =>
        ws.on('framereceived', ({ payload }) => {
          const id = /"visit":"([^"]+)"/.exec(String(payload))?.[1];
          if (id) resolve(id);
        }),
      ),
    );
    await page.goto(`${b.server.url}/devices/${deviceId}/files`);
    await expect.poll(() => page.locator('nav.path').textContent(), { timeout: 20_000 }).toContain(DEVICE_USER);
    expect(problems).toEqual([]);
    // A request of that visit that the load balancer sends to A is served there (by a session of
    // A's own: B's SFTP session is out of its reach); on B an id of B's that is not open serves nothing.
    const cookie = (await page.context().cookies()).find((c) => c.name === 'gh_session');
    const files = (server: GatehouseServer, id: string) =>
      server.request(`/api/v1/files?deviceId=${deviceId}&path=.&visit=${id}`, { headers: { cookie: `gh_session=${cookie?.value ?? ''}` } });
    const onA = await files(a.server, await visit);
    expect(onA.status, onA.body).toBe(200);
    expect((JSON.parse(onA.body) as { path: string }).path).toContain(DEVICE_USER);
    const stranger = await files(b.server, `${(await visit).split('.')[0]}.${randomUUID()}`);
    expect(stranger.status).toBe(409);
    expect(stranger.body).toContain('has ended');
    await page.context().close();
  });

  it('kill -9 of the leader mid-export: the other replica redoes it once and leads, its SSH session and browser terminal stay up, the leader’s is swept', async () => {
    const leader = await waitFor('a leader', leaderPid);
    const dying = replicas.find((r) => r.server.pid === leader);
    const other = replicas.find((r) => r.server.pid !== leader);
    if (!dying || !other) throw new Error(`the leader (pid ${leader}) is not one of the replicas`);
    expect(await leads(dying.server)).toBe(true);
    expect(await leads(other.server)).toBe(false);
    const csv = path.join(dir, 'inventory.csv');
    writeBulkInventory(csv, 50, 'bulk');
    const viaLeader = (args: string[]) =>
      cli([...args, '--url', dying.server.url, '--ca', dying.server.certFile], {
        env: { GATEHOUSE_CREDENTIALS: credentials, GATEHOUSE_TOKEN: token },
      });
    expect((await viaLeader(['import', csv])).code).toBe(0);
    const { recipient } = ageKeygen(dir);
    const settings = path.join(dir, 'breakglass.json');
    writeFileSync(settings, JSON.stringify(s3rverBreakGlassSettings({ endpoint: held.proxy.endpoint, recipient })), { mode: 0o600 });
    const configured = await viaLeader(['breakglass', 'configure', '--file', settings]);
    expect(configured.code, configured.stdout + configured.stderr).toBe(0);

    // An SSH session and a browser terminal through the replica that lives on.
    const ssh = openSsh(other.gatewayPort, 'admin+box', 'read line; echo "got $line"', ADMIN_PASSWORD);
    await waitFor('the surviving replica’s session to be live', async () => {
      const { items } = await other.server.api<{ items: Session[] }>(token, 'GET', '/sessions?result=active');
      return items[0];
    });
    // And one through the leader, which dies with it.
    const doomed = openSsh(dying.gatewayPort, 'admin+box', 'read line; echo "got $line"', ADMIN_PASSWORD);
    const lost = await waitFor('the leader’s session to be live', async () => {
      const { items } = await other.server.api<{ items: Session[] }>(token, 'GET', '/sessions?result=active');
      for (const item of items) if ((await holderPid(item.id)) === dying.server.pid) return item;
      return undefined;
    });
    const { page, problems } = await consoleOn(other.server);
    await terminalAt(page, other.server.url, 'before-the-kill');
    const terminal = await waitFor('the browser terminal to be live', () => liveShellOn(other.server));

    const started = await viaLeader(['breakglass', 'run', '--json']);
    expect(started.code, started.stderr).toBe(0);
    const run = JSON.parse(started.stdout) as RunView;
    await waitFor('the workbook upload to be held', () => (held.proxy.held() >= 1 ? true : undefined));
    dying.server.kill();
    await dying.server.exited;
    held.proxy.release();

    const runs = async () => (await other.server.api<{ items: RunView[] }>(token, 'GET', '/breakglass/runs')).items;
    const settled = await waitFor(
      'the cut-off run closed and its redo finished on the other replica',
      async () => {
        const items = await runs();
        const redo = items.find((r) => r.trigger === 'catch-up');
        return redo && redo.result !== 'running' ? items : undefined;
      },
      90_000,
      250,
    );
    expect(settled).toHaveLength(2);
    expect(settled.find((r) => r.id === run.id)).toMatchObject({ result: 'failure', errorStage: 'interrupted' });
    expect(settled.filter((r) => r.result === 'success')).toHaveLength(1);
    expect(await leaderPid()).toBe(other.server.pid);
    expect(await leads(other.server)).toBe(true);

    // The browser terminal through the surviving replica still runs commands, and its session is live.
    await typeInTerminal(page, 'after-the-kill');
    expect((await other.server.api<LiveSession>(token, 'GET', `/sessions/${terminal.id}`)).result).toBe('active');
    await page.keyboard.type('exit 0\n');
    await page.getByText('The session ended (exit status 0).').waitFor({ timeout: 15_000 });
    expect(problems).toEqual([]);

    // The killed leader's session is recorded as ended by the new leader's sweep (its lease lapsed), once.
    expect(await doomed.exited).toBe(255);
    const swept = await waitFor(
      'the killed leader’s session to be recorded as ended',
      async () => {
        const row = await other.server.api<Session>(token, 'GET', `/sessions/${lost.id}`);
        return row.result === 'active' ? undefined : row;
      },
      30_000,
    );
    expect(swept.result).toBe('failure');
    expect(swept.reason).toContain('stopped answering');
    const ends = await other.server.api<{ items: { details: { sessionId?: string } }[] }>(
      token,
      'GET',
      '/audit/events?action=session.end&limit=500',
    );
    expect(ends.items.filter((e) => e.details.sessionId === lost.id)).toHaveLength(1);

    // The session through the surviving replica was never cut.
    ssh.child.stdin.end('still here\n');
    expect(await ssh.exited).toBe(0);
    expect(ssh.out()).toContain('got still here');
  });
});
