import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runClient } from '../support/ssh-client.js';
import { ensureSystemUser, freePort, TEST_USER_PASSWORD, TestSshd } from '../support/sshd.js';
import { cli, killServers, removeTempDirs, savedToken, setupAdmin, startServer, tempDir, type GatehouseServer } from '../support/server.js';

// mlkem768x25519-sha256 on both legs of the built-in gateway, with OpenSSH 10.2p1 (built once by
// scripts/openssh10.sh into .tmp/openssh-10.2p1 from the openssh-10.2p1.tar.gz release tarball, see
// docs/ARCHITECTURE.md) as the user's client and as the device.
const openssh = fileURLToPath(new URL('../../.tmp/openssh-10.2p1/', import.meta.url));
const built = existsSync(path.join(openssh, '.gatehouse-built'));
const skipped = built
  ? ''
  : ' (skipped: OpenSSH 10.2p1 is not built in .tmp/openssh-10.2p1; `GATEHOUSE_OPENSSH_TARBALL=<path of openssh-10.2p1.tar.gz> bash scripts/openssh10.sh` builds it)';
const PQ = 'mlkem768x25519-sha256';
const WARNING = /post-quantum/;
const PW_USER = 'gh-test-pw';
const ADMIN_PASSWORD = 'pq admin password';

describe.skipIf(!built)(`post-quantum key exchange through the gateway (OpenSSH 10.2p1 on both sides)${skipped}`, () => {
  let dir: string;
  let server: GatehouseServer;
  let sshd: TestSshd;
  let gatewayPort: number;
  let token: string;

  const client = (program: 'ssh' | 'sftp' | 'scp', args: string[], opts: { stdin?: string; debian?: boolean } = {}) =>
    runClient(program, [...(program === 'ssh' ? ['-p'] : ['-P']), String(gatewayPort), ...transport(program, opts.debian), ...args], {
      password: ADMIN_PASSWORD,
      stdin: opts.stdin,
      program: opts.debian ? undefined : path.join(openssh, program),
      timeoutMs: 60_000,
    });
  /** sftp and scp run the ssh of the same OpenSSH (otherwise the one their build was configured to install). */
  const transport = (program: 'ssh' | 'sftp' | 'scp', debian = false) =>
    program === 'ssh' || debian ? [] : ['-S', path.join(openssh, 'ssh')];
  const api = async <T>(method: string, route: string, body?: unknown): Promise<T> => {
    const res = await server.request(`/api/v1${route}`, { method, body, headers: { authorization: `Bearer ${token}` } });
    if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${res.body}`);
    return JSON.parse(res.body) as T;
  };
  /** The session that ran `command`, and its session.start audit event's details. */
  const recorded = (command: string) =>
    vi.waitFor(
      async () => {
        const session = (await api<{ items: { id: string; command: string | null }[] }>('GET', '/sessions?limit=100')).items.find(
          (s) => s.command === command,
        );
        if (!session) throw new Error(`no session of ${command} yet`);
        const events = await api<{ items: { action: string; details: Record<string, unknown> }[] }>('GET', '/audit/events?limit=200');
        const start = events.items.find((e) => e.action === 'session.start' && e.details.sessionId === session.id);
        if (!start) throw new Error(`no session.start event of ${command} yet`);
        return { session, audit: start.details };
      },
      { timeout: 30_000, interval: 100 },
    );
  /** The key exchanges the device's sshd negotiated so far (its debug log, one line per connection). */
  const deviceKex = () => [...sshd.log.matchAll(/kex: algorithm: (\S+)/g)].map((m) => m[1]);

  beforeAll(async () => {
    dir = tempDir('gatehouse-ssh-pq-');
    ensureSystemUser(PW_USER, { password: TEST_USER_PASSWORD });
    sshd = await TestSshd.start(path.join(dir, 'sshd'), { sshd: path.join(openssh, 'sshd'), logLevel: 'DEBUG1' });
    gatewayPort = await freePort();
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(gatewayPort) } });
    const credentials = path.join(dir, 'credentials.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    token = savedToken(credentials);
    const project = await api<{ id: string }>('POST', '/projects', { name: 'PQ' });
    const device = await api<{ id: string }>('POST', '/devices', {
      projectId: project.id,
      name: 'pq-box',
      provider: 'on-prem',
      protocols: ['ssh', 'sftp'],
      privateIp: '127.0.0.1',
      urlPort: String(sshd.port),
    });
    await api('POST', '/accounts', { deviceId: device.id, username: PW_USER, password: TEST_USER_PASSWORD });
  });

  afterAll(async () => {
    killServers();
    await sshd?.stop();
    removeTempDirs();
  });

  it('ssh 10.2 negotiates ML-KEM with the gateway (no warning), and the gateway negotiates it with a 10.2 sshd', async () => {
    const run = await client('ssh', ['-v', 'admin:pq-box@127.0.0.1', 'echo pq-$((6*7))']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.toString()).toBe('pq-42\n');
    expect(run.stderr).toContain(`kex: algorithm: ${PQ}`);
    expect(run.stderr).not.toMatch(WARNING);
    // The device leg: the 10.2 sshd's own log of the gateway's connection.
    await vi.waitFor(() => expect(deviceKex()).toContain(PQ), { timeout: 10_000 });
    expect(deviceKex().every((k) => k === PQ)).toBe(true);
    // Recorded on the session and in its audit event, for both legs.
    const { session, audit } = await recorded('echo pq-$((6*7))');
    expect(session).toMatchObject({ userKex: PQ, deviceKex: PQ });
    expect(audit).toMatchObject({ userKex: PQ, deviceKex: PQ });
  });

  it('sftp and scp 10.2 upload and download through the gateway without the warning', async () => {
    const content = randomBytes(256 * 1024);
    const local = path.join(dir, 'upload.bin');
    writeFileSync(local, content);
    const sha = createHash('sha256').update(content).digest('hex');

    const sftp = await client('sftp', ['-o', 'User=admin:pq-box', '-b', '-', '127.0.0.1'], {
      stdin: `put ${local} /tmp/gh-pq-sftp.bin\nget /tmp/gh-pq-sftp.bin ${local}.sftp\nrm /tmp/gh-pq-sftp.bin\n`,
    });
    expect(sftp.code, sftp.stderr).toBe(0);
    expect(sftp.stderr).not.toMatch(WARNING);
    expect(
      createHash('sha256')
        .update(readFileSync(`${local}.sftp`))
        .digest('hex'),
    ).toBe(sha);

    const up = await client('scp', ['-o', 'User=admin:pq-box', local, '127.0.0.1:/tmp/gh-pq-scp.bin']);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).not.toMatch(WARNING);
    const down = await client('scp', ['-o', 'User=admin:pq-box', '127.0.0.1:/tmp/gh-pq-scp.bin', `${local}.scp`]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stderr).not.toMatch(WARNING);
    expect(
      createHash('sha256')
        .update(readFileSync(`${local}.scp`))
        .digest('hex'),
    ).toBe(sha);
    expect(deviceKex().every((k) => k === PQ)).toBe(true);
  });

  it("Debian's ssh 9.2 (no ML-KEM) still connects, with curve25519", async () => {
    const run = await client('ssh', ['-v', 'admin:pq-box@127.0.0.1', 'echo old-client'], { debian: true });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.toString()).toBe('old-client\n');
    expect(run.stderr).toMatch(/OpenSSH_9\.2/);
    expect(run.stderr).toContain('kex: algorithm: curve25519-sha256');
    const { session, audit } = await recorded('echo old-client');
    expect(session).toMatchObject({ userKex: 'curve25519-sha256', deviceKex: PQ });
    expect(audit).toMatchObject({ userKex: 'curve25519-sha256', deviceKex: PQ });
  });

  it('with a post-quantum key exchange required, refuses clients without ML-KEM with what to upgrade to, audited; 10.2 goes on', async () => {
    const set = await cli(['gateways', 'require-post-quantum', 'on', '--url', server.url, '--ca', server.certFile], {
      env: { GATEHOUSE_TOKEN: token },
    });
    expect(set.code, set.stderr).toBe(0);
    try {
      expect(await api('GET', '/gateway-settings')).toMatchObject({ requirePostQuantumKex: true });
      const upgrade =
        /Received disconnect from 127\.0\.0\.1 port \d+:11: This gateway requires a post-quantum key exchange, and your SSH client negotiated curve25519-sha256\. Upgrade to OpenSSH 9\.9 or later, or use an SSH client that offers mlkem768x25519-sha256\./;
      const limited = await client('ssh', ['-o', 'KexAlgorithms=curve25519-sha256', 'admin:pq-box@127.0.0.1', 'echo limited']);
      expect(limited.code, limited.stderr).toBe(255);
      expect(limited.stdout.toString()).toBe('');
      expect(limited.stderr).toMatch(upgrade);
      // Debian's 9.2 offers sntrup761x25519, which the gateway lacks: it is refused the same way.
      const debian = await client('ssh', ['admin:pq-box@127.0.0.1', 'echo debian'], { debian: true });
      expect(debian.code, debian.stderr).toBe(255);
      expect(debian.stderr).toMatch(upgrade);

      const current = await client('ssh', ['admin:pq-box@127.0.0.1', 'echo still-in']);
      expect(current.code, current.stderr).toBe(0);
      expect(current.stdout.toString()).toBe('still-in\n');
      expect(current.stderr).not.toMatch(WARNING);

      const refused = (
        await api<{ items: { actorName: string; details: Record<string, unknown> }[] }>(
          'GET',
          '/audit/events?action=gateway.auth&outcome=denied',
        )
      ).items;
      expect(refused.map((e) => e.details)).toEqual([
        expect.objectContaining({
          gateway: 'default',
          reason: 'key exchange not post-quantum',
          kex: 'curve25519-sha256',
          username: 'admin:pq-box',
        }),
        expect.objectContaining({
          gateway: 'default',
          reason: 'key exchange not post-quantum',
          kex: 'curve25519-sha256',
          username: 'admin:pq-box',
        }),
      ]);
    } finally {
      await api('PUT', '/gateway-settings', { requirePostQuantumKex: false });
    }
  });
});
