import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSystemUser, freePort, generateKeyPair, TestSshd } from '../support/sshd.js';
import { cli, killServers, removeTempDirs, setupAdmin, startServer, tempDir, type GatehouseServer, savedToken } from '../support/server.js';

const API = '/api/v1';
/** The device's account: a machine user of this file's own, so its home holds only what these tests leave. */
const DEVICE_USER = 'gh-test-clients';
const ADMIN_PASSWORD = 'ssh clients admin password';

interface SshEntry {
  port: number;
  hostKey: string;
  fingerprint: string;
  devices: { id: string; project: string; name: string; nameShared: boolean; accounts: string[] }[];
}

/** What a finished program printed, and how it exited. */
interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion (no shell), with `env` added to this process's environment. */
function run(command: string, args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<Ran> {
  const child = spawn(command, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `what` and its output, for an assertion's message. */
const shown = (what: string, r: Ran) => `${what} exited ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

/**
 * The clients ops teams run through the gateway, each as a user runs it, with the user
 * name `admin+<device>`: rsync, git over ssh:// and scp-like URLs, sftp and lftp URLs,
 * Ansible; and the ssh_config block `gatehouse config ssh` prints, with ssh, scp and
 * `gatehouse ssh`. One server and one sshd (the device) for the file.
 */
describe('native clients through the gateway with the "+" separator', () => {
  let dir: string;
  let server: GatehouseServer;
  let sshd: TestSshd;
  let token: string;
  let credentials: string;
  let entry: SshEntry;
  /** The user's ssh_config: their gateway key, the gateway's port and host key (what `ssh -F` reads). */
  let sshConfig: string;
  let loginKey: string;
  const home = `/home/${DEVICE_USER}`;
  const G = () => String(entry.port);

  const api = async <T>(method: string, route: string, body?: unknown): Promise<T> => {
    const res = await server.request(`${API}${route}`, { method, body, headers: { authorization: `Bearer ${token}` } });
    if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${res.body}`);
    return (res.body === '' ? undefined : JSON.parse(res.body)) as T;
  };
  /** Runs a command on the device as its account, directly (not through the gateway). */
  const onDevice = (script: string) =>
    execFileSync('setpriv', ['--reuid', DEVICE_USER, '--regid', DEVICE_USER, '--init-groups', 'sh', '-c', script], {
      cwd: home,
      encoding: 'utf8',
    });
  /** What the account's home holds whose name starts with `~` (what a literal `~user` path leaves). */
  const tildeEntries = () => readdirSync(home).filter((n) => n.startsWith('~'));

  beforeAll(async () => {
    dir = tempDir('gatehouse-ssh-clients-');
    chmodSync(dir, 0o755);
    ensureSystemUser(DEVICE_USER);
    // What earlier runs left in the account's home goes: each test counts what it leaves.
    for (const name of readdirSync(home))
      if (!name.startsWith('.profile') && !name.startsWith('.bash')) rmSync(path.join(home, name), { recursive: true, force: true });
    sshd = await TestSshd.start(path.join(dir, 'sshd'));
    const deviceKey = generateKeyPair(dir, 'device_key');
    sshd.authorize(DEVICE_USER, deviceKey.publicKey);

    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(await freePort()) } });
    credentials = path.join(dir, 'cli', 'credentials.json');
    await setupAdmin(server, ADMIN_PASSWORD, { env: { GATEHOUSE_CREDENTIALS: credentials } });
    token = savedToken(credentials);

    const lab = await api<{ id: string }>('POST', '/projects', { name: 'Lab' });
    const other = await api<{ id: string }>('POST', '/projects', { name: 'Other' });
    const device = async (projectId: string, name: string) => {
      const d = await api<{ id: string }>('POST', '/devices', {
        projectId,
        name,
        provider: 'on-prem',
        protocols: ['ssh', 'sftp'],
        privateIp: '127.0.0.1',
        urlPort: String(sshd.port),
      });
      await api('POST', '/accounts', { deviceId: d.id, username: DEVICE_USER, privateKey: deviceKey.privateKey });
    };
    await device(lab.id, 'dev1');
    await device(lab.id, 'twin');
    await device(other.id, 'twin');

    const login = generateKeyPair(dir, 'login_key');
    loginKey = login.file;
    await api('POST', '/ssh-keys', { publicKey: login.publicKey });
    entry = await api<SshEntry>('GET', '/ssh-entry');
    const knownHosts = path.join(dir, 'known_hosts');
    writeFileSync(knownHosts, `[127.0.0.1]:${entry.port} ${entry.hostKey}\n`);
    sshConfig = path.join(dir, 'ssh_config');
    writeFileSync(
      sshConfig,
      [
        'Host 127.0.0.1',
        `  Port ${entry.port}`,
        `  IdentityFile ${loginKey}`,
        '  IdentitiesOnly yes',
        '  BatchMode yes',
        `  UserKnownHostsFile ${knownHosts}`,
        '  StrictHostKeyChecking yes',
        '',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    killServers();
    await sshd?.stop();
    removeTempDirs();
  });

  it('tells an API client the SSH entry: port, host key and the devices with their accounts', () => {
    expect(entry.hostKey).toMatch(/^ssh-ed25519 AAAA/);
    expect(entry.devices.map(({ id: _id, ...d }) => d)).toEqual([
      { project: 'Lab', name: 'dev1', nameShared: false, accounts: [DEVICE_USER] },
      { project: 'Lab', name: 'twin', nameShared: true, accounts: [DEVICE_USER] },
      { project: 'Other', name: 'twin', nameShared: true, accounts: [DEVICE_USER] },
    ]);
  });

  it('takes user+device[+account] and <project>.<device> from OpenSSH, and still user:device', async () => {
    const ssh = (user: string) => run('ssh', ['-F', sshConfig, '-l', user, '127.0.0.1', 'whoami']);
    for (const user of ['admin+dev1', `admin+dev1+${DEVICE_USER}`, 'admin+Lab.twin', 'admin+Other/twin', 'admin:dev1', 'admin:Lab.twin']) {
      const r = await ssh(user);
      expect(r.stdout, shown(`ssh -l ${user}`, r)).toBe(`${DEVICE_USER}\n`);
    }
    const twin = await ssh('admin+twin');
    expect(twin.code).toBe(255);
    expect(twin.stderr).toContain('Name the project too: <user>+<project>.<device>');
  });

  it('copies a directory with rsync to user+device@host:path and back', async () => {
    const src = path.join(dir, 'rsync-src');
    mkdirSync(path.join(src, 'sub'), { recursive: true });
    writeFileSync(path.join(src, 'a.txt'), 'alpha\n');
    writeFileSync(path.join(src, 'sub', 'b.txt'), 'beta\n');
    const rsh = `ssh -F ${sshConfig} -p ${G()}`;
    const up = await run('rsync', ['-a', '-e', rsh, `${src}/`, 'admin+dev1@127.0.0.1:rsync-dest/']);
    expect(up.code, shown('rsync up', up)).toBe(0);
    expect(readFileSync(path.join(home, 'rsync-dest', 'sub', 'b.txt'), 'utf8')).toBe('beta\n');
    // The project form in a host spec: no "/" before the ":", or rsync takes it for a local path.
    const back = path.join(dir, 'rsync-back');
    const down = await run('rsync', ['-a', '-e', rsh, 'admin+Lab.twin@127.0.0.1:rsync-dest/', `${back}/`]);
    expect(down.code, shown('rsync down', down)).toBe(0);
    expect(readFileSync(path.join(back, 'a.txt'), 'utf8')).toBe('alpha\n');
  });

  it('clones and pushes with git over ssh:// and scp-like URLs to a bare repository on the device', async () => {
    onDevice('git init -q --bare repo.git');
    const env = {
      GIT_SSH_COMMAND: `ssh -F ${sshConfig}`,
      GIT_AUTHOR_NAME: 't',
      GIT_AUTHOR_EMAIL: 't@example.com',
      GIT_COMMITTER_NAME: 't',
      GIT_COMMITTER_EMAIL: 't@example.com',
    };
    const git = (cwd: string, ...args: string[]) => run('git', args, { cwd, env });
    const viaUrl = path.join(dir, 'clone-url');
    const cloned = await git(dir, 'clone', '-q', `ssh://admin+dev1@127.0.0.1:${G()}${home}/repo.git`, viaUrl);
    expect(cloned.code, shown('git clone ssh://', cloned)).toBe(0);
    writeFileSync(path.join(viaUrl, 'README'), 'pushed over ssh://\n');
    expect((await git(viaUrl, 'add', 'README')).code).toBe(0);
    expect((await git(viaUrl, 'commit', '-q', '-m', 'first')).code).toBe(0);
    const pushed = await git(viaUrl, 'push', '-q', 'origin', 'HEAD:main');
    expect(pushed.code, shown('git push ssh://', pushed)).toBe(0);

    // scp-like: user+device+account@host:path (the port comes from ssh_config).
    const viaScp = path.join(dir, 'clone-scp');
    const scpLike = await git(dir, 'clone', '-q', '-b', 'main', `admin+dev1+${DEVICE_USER}@127.0.0.1:repo.git`, viaScp);
    expect(scpLike.code, shown('git clone scp-like', scpLike)).toBe(0);
    expect(readFileSync(path.join(viaScp, 'README'), 'utf8')).toBe('pushed over ssh://\n');
    writeFileSync(path.join(viaScp, 'SECOND'), 'pushed scp-like\n');
    await git(viaScp, 'add', 'SECOND');
    await git(viaScp, 'commit', '-q', '-m', 'second');
    const pushedScp = await git(viaScp, 'push', '-q', 'origin', 'main');
    expect(pushedScp.code, shown('git push scp-like', pushedScp)).toBe(0);
    expect(onDevice('git --git-dir=repo.git log --format=%s main')).toBe('second\nfirst\n');
  });

  it('uploads and downloads with sftp:// URLs, from OpenSSH sftp and lftp', async () => {
    onDevice('mkdir -p sftp-in && echo from-device > sftp-in/down.txt');
    const local = path.join(dir, 'sftp-local');
    mkdirSync(local);
    writeFileSync(path.join(local, 'up.txt'), 'from-client\n');
    // A URL with a file: sftp fetches it.
    const fetched = await run('sftp', ['-F', sshConfig, `sftp://admin+dev1@127.0.0.1:${G()}/${home}/sftp-in/down.txt`], { cwd: local });
    expect(fetched.code, shown('sftp fetch', fetched)).toBe(0);
    expect(readFileSync(path.join(local, 'down.txt'), 'utf8')).toBe('from-device\n');
    // A URL with a directory: a batch runs there.
    writeFileSync(path.join(local, 'batch'), 'put up.txt\n');
    const put = await run('sftp', ['-F', sshConfig, '-b', 'batch', `sftp://admin+Lab.twin@127.0.0.1:${G()}/${home}/sftp-in`], {
      cwd: local,
    });
    expect(put.code, shown('sftp put', put)).toBe(0);
    expect(readFileSync(path.join(home, 'sftp-in', 'up.txt'), 'utf8')).toBe('from-client\n');

    // lftp reads the user from the URL (an empty password: the key signs in).
    const lftp = await run(
      'lftp',
      [
        '-c',
        `set sftp:connect-program "ssh -a -x -F ${sshConfig}"; open sftp://admin+dev1:@127.0.0.1:${G()}; ` +
          `cd sftp-in; put -O . ${path.join(local, 'up.txt')} -o lftp.txt; get down.txt -o ${path.join(local, 'lftp-down.txt')}`,
      ],
      { timeoutMs: 60_000 },
    );
    expect(lftp.code, shown('lftp', lftp)).toBe(0);
    expect(readFileSync(path.join(home, 'sftp-in', 'lftp.txt'), 'utf8')).toBe('from-client\n');
    expect(readFileSync(path.join(local, 'lftp-down.txt'), 'utf8')).toBe('from-device\n');
  });

  it('runs Ansible ad-hoc copy and command with ansible_user=admin+dev1, leaving no literal ~admin… directory', async () => {
    const work = path.join(dir, 'ansible');
    mkdirSync(work);
    writeFileSync(path.join(work, 'payload.txt'), 'copied by ansible\n');
    writeFileSync(
      path.join(work, 'inv'),
      `dev1 ansible_host=127.0.0.1 ansible_port=${G()} ansible_user=admin+dev1 ansible_python_interpreter=/usr/bin/python3\n`,
    );
    const ansible = (args: string[], extra: Record<string, string> = {}) =>
      run('ansible', ['all', '-i', 'inv', ...args], {
        cwd: work,
        timeoutMs: 120_000,
        env: {
          // The user's ssh_config; no ControlPersist master left behind after the test.
          ANSIBLE_SSH_ARGS: `-F ${sshConfig} -o ControlMaster=no`,
          ANSIBLE_LOCAL_TEMP: path.join(work, 'local-tmp'),
          ANSIBLE_HOME: path.join(work, 'home'),
          ANSIBLE_NOCOLOR: '1',
          ...extra,
        },
      });
    const copied = await ansible(['-m', 'copy', '-a', `src=${path.join(work, 'payload.txt')} dest=ansible-copy.txt`]);
    expect(copied.code, shown('ansible -m copy', copied)).toBe(0);
    expect(readFileSync(path.join(home, 'ansible-copy.txt'), 'utf8')).toBe('copied by ansible\n');
    // scp as the transfer (what failed with ":" in the name).
    const scpCopy = await ansible(['-m', 'copy', '-a', `src=${path.join(work, 'payload.txt')} dest=ansible-scp.txt`], {
      ANSIBLE_SSH_TRANSFER_METHOD: 'scp',
    });
    expect(scpCopy.code, shown('ansible -m copy (scp)', scpCopy)).toBe(0);
    expect(existsSync(path.join(home, 'ansible-scp.txt'))).toBe(true);
    const command = await ansible(['-m', 'command', '-a', 'id -un']);
    expect(command.code, shown('ansible -m command', command)).toBe(0);
    expect(command.stdout).toContain(DEVICE_USER);
    // Its temporary files went to the account's real home, and nothing named ~admin… was made.
    expect(existsSync(path.join(home, '.ansible', 'tmp'))).toBe(true);
    expect(tildeEntries()).toEqual([]);
  });

  it('prints an ssh_config block from gatehouse config ssh that ssh, scp, rsync and Ansible use as written', async () => {
    const env = { GATEHOUSE_CREDENTIALS: credentials };
    const printed = await cli(['config', 'ssh', '--url', server.url, '--ca', server.certFile, '--gateway-host', '127.0.0.1'], { env });
    expect(printed.code, printed.stderr).toBe(0);
    const knownHosts = path.join(path.dirname(credentials), 'known_hosts');
    expect(printed.stdout).toContain(`Host dev1.gatehouse\n  User admin+dev1\n`);
    expect(printed.stdout).toContain(`Host twin.lab.gatehouse\n  User admin+Lab.twin\n`);
    expect(printed.stdout).toContain(`Host twin.other.gatehouse\n  User admin+Other.twin\n`);
    expect(printed.stdout).toContain(`Host *.gatehouse\n  HostName 127.0.0.1\n  Port ${G()}\n  UserKnownHostsFile ${knownHosts}\n`);
    expect(readFileSync(knownHosts, 'utf8')).toBe(`[127.0.0.1]:${G()} ${entry.hostKey.split(' ').slice(0, 2).join(' ')}\n`);

    // The user's ~/.ssh/config: the printed block, then their own key (the first value ssh reads wins).
    const config = path.join(dir, 'user_ssh_config');
    writeFileSync(config, `${printed.stdout}Host *.gatehouse\n  IdentityFile ${loginKey}\n  IdentitiesOnly yes\n  BatchMode yes\n`);
    const who = await run('ssh', ['-F', config, 'dev1.gatehouse', 'whoami']);
    expect(who.stdout, shown('ssh dev1.gatehouse', who)).toBe(`${DEVICE_USER}\n`);
    const other = await run('ssh', ['-F', config, 'twin.other.gatehouse', 'echo', 'other']);
    expect(other.stdout, shown('ssh twin.other.gatehouse', other)).toBe('other\n');
    const file = path.join(dir, 'scp-me.txt');
    writeFileSync(file, 'by scp\n');
    const scp = await run('scp', ['-F', config, file, 'dev1.gatehouse:scp-copy.txt']);
    expect(scp.code, shown('scp', scp)).toBe(0);
    expect(readFileSync(path.join(home, 'scp-copy.txt'), 'utf8')).toBe('by scp\n');
    const rsync = await run('rsync', ['-e', `ssh -F ${config}`, file, 'twin.lab.gatehouse:rsync-alias.txt']);
    expect(rsync.code, shown('rsync', rsync)).toBe(0);
    expect(readFileSync(path.join(home, 'rsync-alias.txt'), 'utf8')).toBe('by scp\n');

    // Ansible with the user from ssh_config only: no ansible_user, and still no ~admin… directory.
    const work = path.join(dir, 'ansible-alias');
    mkdirSync(work);
    writeFileSync(path.join(work, 'inv'), 'dev1.gatehouse ansible_python_interpreter=/usr/bin/python3\n');
    const ansible = await run('ansible', ['all', '-i', 'inv', '-m', 'command', '-a', 'id -un'], {
      cwd: work,
      timeoutMs: 120_000,
      env: {
        ANSIBLE_SSH_ARGS: `-F ${config} -o ControlMaster=no`,
        ANSIBLE_LOCAL_TEMP: path.join(work, 'tmp'),
        ANSIBLE_HOME: work,
        ANSIBLE_NOCOLOR: '1',
      },
    });
    expect(ansible.code, shown('ansible dev1.gatehouse', ansible)).toBe(0);
    expect(tildeEntries()).toEqual([]);
  });

  it('runs ssh for gatehouse ssh <device>: a command, the project path, and a refusal that lists the choices', async () => {
    const base = ['--url', server.url, '--ca', server.certFile, '--gateway-host', '127.0.0.1', '-i', loginKey];
    const env = { GATEHOUSE_CREDENTIALS: credentials };
    const ran = await cli(['ssh', 'dev1', ...base, '--', 'echo', 'via-gatehouse-ssh;', 'exit', '7'], { env });
    expect(ran.stdout, ran.stderr).toBe('via-gatehouse-ssh\n');
    expect(ran.code).toBe(7);
    const twin = await cli(['ssh', 'Other/twin', ...base, '--', 'whoami'], { env });
    expect(twin.stdout, twin.stderr).toBe(`${DEVICE_USER}\n`);
    const ambiguous = await cli(['ssh', 'twin', ...base, '--', 'true'], { env });
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toContain('2 devices have that name: say which, as Lab/twin or Other/twin.');
  });
});
