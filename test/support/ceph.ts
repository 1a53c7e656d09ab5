import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, selfSignedCert } from './storage.js';

const run = promisify(execFile);

/** What a throwaway cluster needs (Debian: `apt-get install --no-install-recommends radosgw ceph-mon ceph-osd`). */
const CEPH_BINARIES = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph', 'ceph-authtool', 'monmaptool'];
const SEARCH_PATH = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/bin', '/usr/sbin'];

/** The Ceph binaries not installed here; empty when a cluster can be started. */
export function missingCephBinaries(): string[] {
  return CEPH_BINARIES.filter((name) => !SEARCH_PATH.some((dir) => dir && existsSync(path.join(dir, name))));
}

/** Where the RADOS object classes live (`osd_class_dir`); Debian's multiarch path first. */
function radosClassDir(): string {
  const candidates = [
    `/usr/lib/${os.arch() === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/rados-classes`,
    '/usr/lib64/rados-classes',
    '/usr/lib/rados-classes',
  ];
  return candidates.find((dir) => existsSync(dir)) ?? candidates[0]!;
}

export interface RgwUser {
  uid: string;
  accessKey: string;
  secretKey: string;
}

export interface CephRgw {
  /** `127.0.0.1:port` of the S3 endpoint (HTTPS only when started with `tls`). */
  endpoint: string;
  protocol: 'http' | 'https';
  /** The self-signed certificate of the HTTPS endpoint. */
  certPem?: string;
  dir: string;
  /** Milliseconds from the first command until S3 answered. */
  startMs: number;
  /** The radosgw process, for SIGSTOP/SIGCONT (a store that accepts connections and answers nothing). */
  rgwPid: number;
  /** An S3 user with generated keys (`radosgw-admin user create`). */
  createUser(uid: string): Promise<RgwUser>;
  /** `radosgw-admin -c <conf> …`, its stdout. */
  radosgwAdmin(args: string[]): Promise<string>;
  /** `ceph -c <conf> …`, its stdout. */
  ceph(args: string[]): Promise<string>;
  /** Kills every daemon and removes the cluster's directory. */
  stop(): Promise<void>;
}

/** Daemons still running in this process, killed if the process exits without stop(). */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess) {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  // A throwaway cluster: nothing to flush, and memstore would write its contents out on a clean stop.
  child.kill('SIGKILL');
  await exited;
}

/** Answers true once anything speaks HTTP(S) at the endpoint (RGW answers `GET /` anonymously). */
function answers(protocol: 'http' | 'https', port: number, ca: string | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const req = (protocol === 'https' ? httpsRequest : httpRequest)(
      { host: '127.0.0.1', port, path: '/', method: 'GET', ca, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(true);
      },
    );
    req.once('error', () => resolve(false));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

/**
 * A throwaway single-node Ceph cluster with the RADOS Gateway's S3 API on 127.0.0.1: one
 * monitor, one OSD on memstore, radosgw with the beast frontend, cephx on, no manager.
 * Everything (config, keyrings, data, logs, sockets) lives in one temporary directory.
 */
export async function startCephRgw(opts: { tls?: boolean } = {}): Promise<CephRgw> {
  const started = Date.now();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-ceph-'));
  const conf = path.join(dir, 'ceph.conf');
  const daemons: { name: string; child: ChildProcess; stderr: string }[] = [];

  const stop = async () => {
    await Promise.all(daemons.map((d) => kill(d.child)));
    rmSync(dir, { recursive: true, force: true });
  };

  const exec = async (file: string, args: string[]): Promise<string> => {
    try {
      const { stdout } = await run(file, args, { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 });
      return stdout;
    } catch (error) {
      const e = error as { stderr?: string; code?: unknown; signal?: unknown };
      // The command line may carry a generated S3 secret: never into a message.
      const shown = args.map((a, i) => (args[i - 1] === '--secret-key' ? '********' : a)).join(' ');
      throw new Error(`${file} ${shown} failed: ${e.stderr?.trim() || `exit ${String(e.code ?? e.signal)}`}`);
    }
  };
  const ceph = (args: string[]) => exec('ceph', ['-c', conf, '--connect-timeout', '20', ...args]);
  const radosgwAdmin = (args: string[]) => exec('radosgw-admin', ['-c', conf, ...args]);

  /** What went wrong with a daemon: its stderr and the end of its log file. */
  const diagnose = (name: string) => {
    const logFile = path.join(dir, 'log', `${name}.log`);
    const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n') : '';
    return `${daemons.find((d) => d.name === name)?.stderr ?? ''}\n${tail}`.trim();
  };
  const daemon = (file: string, args: string[], name: string) => {
    // -f: stay in the foreground (a child we can kill), logging to the file set in ceph.conf.
    const child = spawn(file, ['-c', conf, '-f', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    track(child);
    const entry = { name, child, stderr: '' };
    daemons.push(entry);
    child.stderr?.on('data', (d: Buffer) => (entry.stderr = `${entry.stderr}${d.toString()}`.slice(-8000)));
  };

  /** Polls until `ready`, failing as soon as a daemon exits, with what it logged. */
  const until = async (what: string, ready: () => Promise<boolean>) => {
    const deadline = Date.now() + 45_000;
    while (!(await ready())) {
      for (const { name, child } of daemons) {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}:\n${diagnose(name)}`);
        }
      }
      if (Date.now() > deadline)
        throw new Error(`Timed out waiting for ${what}:\n${daemons.map((d) => `${d.name}: ${diagnose(d.name)}`).join('\n')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  try {
    const [monPort, rgwPort] = [await freePort(), await freePort()];
    let certPem: string | undefined;
    let frontend = `beast endpoint=127.0.0.1:${rgwPort}`;
    if (opts.tls) {
      const tls = selfSignedCert(dir);
      certPem = tls.certPem;
      frontend = `beast ssl_endpoint=127.0.0.1:${rgwPort} ssl_certificate=${tls.cert} ssl_private_key=${tls.key}`;
    }
    for (const sub of ['run', 'log', 'mon/ceph-a', 'osd/ceph-0', 'rgw']) mkdirSync(path.join(dir, sub), { recursive: true });
    const fsid = randomUUID();
    writeFileSync(
      conf,
      [
        '[global]',
        `fsid = ${fsid}`,
        `mon_host = v1:127.0.0.1:${monPort}`,
        'mon_initial_members = a',
        'public_network = 127.0.0.0/8',
        'auth_cluster_required = cephx',
        'auth_service_required = cephx',
        'auth_client_required = cephx',
        `keyring = ${dir}/$name.keyring`,
        `run_dir = ${dir}/run`,
        `admin_socket = ${dir}/run/$name.asok`,
        `pid_file = ${dir}/run/$name.pid`,
        `log_file = ${dir}/log/$name.log`,
        `mon_cluster_log_file = ${dir}/log/cluster.log`,
        // Keep the daemons' own crash reports and core dumps out of /var.
        `crash_dir = ${dir}/crash`,
        'ms_bind_msgr2 = false',
        'osd_pool_default_size = 1',
        'osd_pool_default_min_size = 1',
        'osd_pool_default_pg_num = 8',
        'osd_pool_default_pgp_num = 8',
        'osd_pool_default_pg_autoscale_mode = off',
        'osd_crush_chooseleaf_type = 0',
        'mon_allow_pool_size_one = true',
        'mon_max_pg_per_osd = 1000',
        'mon_data_avail_warn = 1',
        'mon_data_avail_crit = 0',
        // Pool creation by radosgw: 2 s → 0.1 s.
        'paxos_propose_interval = 0.05',
        'paxos_min_wait = 0.01',
        '[mon]',
        `mon_data = ${dir}/mon/$cluster-$id`,
        'keyring = $mon_data/keyring',
        '[osd]',
        `osd_data = ${dir}/osd/$cluster-$id`,
        'osd_objectstore = memstore',
        `osd_class_dir = ${radosClassDir()}`,
        '[client.rgw.gatehouse]',
        `rgw_frontends = ${frontend}`,
        `rgw_data = ${dir}/rgw`,
        '',
      ].join('\n'),
    );

    // Keys: the mon's seed keyring carries every key the cluster starts with, so the OSD
    // and radosgw need no `ceph auth` round trip.
    const keyring = (name: string) => path.join(dir, `${name}.keyring`);
    const seed = path.join(dir, 'seed.keyring');
    await exec('ceph-authtool', ['--create-keyring', seed, '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
    const keys: [string, string[]][] = [
      ['client.admin', ['--cap', 'mon', 'allow *', '--cap', 'osd', 'allow *', '--cap', 'mgr', 'allow *']],
      ['client.rgw.gatehouse', ['--cap', 'mon', 'allow rw', '--cap', 'osd', 'allow rwx']],
    ];
    for (const [name, caps] of keys) {
      await exec('ceph-authtool', ['--create-keyring', keyring(name), '--gen-key', '-n', name, ...caps]);
      await exec('ceph-authtool', [seed, '--import-keyring', keyring(name)]);
    }
    await exec('monmaptool', ['--create', '--addv', 'a', `[v1:127.0.0.1:${monPort}]`, '--fsid', fsid, path.join(dir, 'monmap')]);
    await exec('ceph-mon', ['-c', conf, '--mkfs', '-i', 'a', '--monmap', path.join(dir, 'monmap'), '--keyring', seed]);
    daemon('ceph-mon', ['-i', 'a'], 'mon.a');

    // The OSD: `osd new` with its own secret registers it and its key in one command.
    const osdUuid = randomUUID();
    const osdSecret = (await exec('ceph-authtool', ['--gen-print-key'])).trim();
    const secretFile = path.join(dir, 'osd-secret.json');
    writeFileSync(secretFile, JSON.stringify({ cephx_secret: osdSecret }));
    const osdId = (await ceph(['osd', 'new', osdUuid, '-i', secretFile])).trim();
    if (osdId !== '0') throw new Error(`ceph osd new gave id ${osdId}, expected 0`);
    await exec('ceph-authtool', ['--create-keyring', keyring('osd.0'), '--name', 'osd.0', '--add-key', osdSecret]);
    await exec('ceph-osd', ['-c', conf, '-i', '0', '--mkfs', '--osd-uuid', osdUuid, '--no-mon-config']);
    daemon('ceph-osd', ['-i', '0'], 'osd.0');
    // radosgw creates its pools as it starts; an I/O it sends before the OSD is up waits
    // for the client's next map check (~5 s), so start it once the OSD is active.
    const osdLog = path.join(dir, 'log', 'osd.0.log');
    await until('osd.0 to become active', async () => existsSync(osdLog) && readFileSync(osdLog, 'utf8').includes('booting -> active'));
    daemon('radosgw', ['-n', 'client.rgw.gatehouse'], 'client.rgw.gatehouse');
    const protocol = opts.tls ? 'https' : 'http';
    await until(`radosgw to answer on 127.0.0.1:${rgwPort}`, () => answers(protocol, rgwPort, certPem));

    return {
      endpoint: `127.0.0.1:${rgwPort}`,
      protocol,
      certPem,
      dir,
      startMs: Date.now() - started,
      rgwPid: daemons.find((d) => d.name === 'client.rgw.gatehouse')?.child.pid ?? 0,
      async createUser(uid) {
        // RGW access keys are 20 upper-case letters and digits; secrets 40 characters.
        const accessKey = randomBytes(15)
          .toString('base64url')
          .toUpperCase()
          .replace(/[^A-Z0-9]/g, 'X')
          .slice(0, 20);
        const secretKey = randomBytes(30).toString('base64url').slice(0, 40);
        await radosgwAdmin(['user', 'create', '--uid', uid, '--display-name', uid, '--access-key', accessKey, '--secret-key', secretKey]);
        return { uid, accessKey, secretKey };
      },
      radosgwAdmin,
      ceph,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
