import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { directDialer, type AuthorizedTarget, type HostKeyCheck, type HostKeyInfo, type TargetDialer } from '@gatehouse/gateway';
import { RfbTestClient } from '../../../../test/support/rfb-client.js';
import { VNC_TARGET_COLOUR } from '../../../../test/support/vnc.js';
import { ensureSystemUser } from '../../../../bench/host.js';
import { startXrdp, type XrdpTarget } from '../../../../bench/xrdp.js';
import { RdpRenderer, stopGroup, type RdpOpenResult, type RdpRendererOptions, type RdpRendering } from './rdp-renderer.js';

const logger = {
  info() {},
  warn() {},
  error() {},
  debug: (o: object, m: string) => process.env.RDP_DEBUG && console.log(new Date().toISOString(), m, JSON.stringify(o)),
};

/** Trust on first use in memory, as the server's broker does it in the database. */
class MemoryHostKeys {
  readonly keys = new Map<string, HostKeyInfo>();
  async checkHostKey(target: AuthorizedTarget, key: HostKeyInfo): Promise<HostKeyCheck> {
    const stored = this.keys.get(target.deviceId);
    if (!stored) {
      this.keys.set(target.deviceId, key);
      return { ok: true, firstUse: true };
    }
    return stored.algorithm === key.algorithm && stored.fingerprint === key.fingerprint
      ? { ok: true, firstUse: false }
      : { ok: false, stored };
  }
  async trustedHostKey(target: AuthorizedTarget): Promise<HostKeyInfo | null> {
    return this.keys.get(target.deviceId) ?? null;
  }
}

/** The processes whose command line names the directory (Xvfb -auth, xfreerdp /v:, x11vnc -auth). */
function processesUnder(directory: string): string[] {
  try {
    return execFileSync('pgrep', ['-a', '-f', directory], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * Answers the X.224 request as an RDP server that selected TLS, then does TLS with a fresh
 * self-signed certificate: what a machine in the middle would present.
 */
async function rdpImpostor(directory: string): Promise<{ server: net.Server; port: number; handshakes: () => number }> {
  const key = path.join(directory, 'impostor.key');
  const cert = path.join(directory, 'impostor.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=impostor', '-keyout', key, '-out', cert],
    {
      stdio: 'ignore',
    },
  );
  const context = tls.createSecureContext({ key: readFileSync(key), cert: readFileSync(cert) });
  rmSync(key);
  rmSync(cert);
  let handshakes = 0;
  const server = net.createServer((socket) => {
    socket.once('data', () => {
      // X.224 Connection Confirm with RDP_NEG_RSP: PROTOCOL_SSL.
      socket.write(Buffer.from([3, 0, 0, 19, 14, 0xd0, 0, 0, 0, 0, 0, 2, 0, 8, 0, 1, 0, 0, 0]));
      const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: context });
      secure.once('secure', () => handshakes++);
      secure.on('error', () => socket.destroy());
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port, handshakes: () => handshakes };
}

/** The refusal's message (an opened session fails the test). */
function messageOf(result: RdpOpenResult): string {
  if (result.ok) throw new Error('the session opened');
  return result.message;
}

function rssKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0);
}

describe('RdpRenderer against xrdp', () => {
  const password = 'Rdp-render-pw-1';
  let xrdp: XrdpTarget;
  let runDirectory: string;
  const target = (port: number, deviceId = 'dev-rdp'): AuthorizedTarget => ({
    projectId: 'p1',
    projectName: 'lab',
    deviceId,
    deviceName: 'win-1',
    accountId: 'a1',
    accountUsername: xrdp.user,
    host: '127.0.0.1',
    port,
    segment: null,
    accessType: 'direct',
  });
  const renderers: RdpRenderer[] = [];
  const renderer = (options: Partial<RdpRendererOptions> = {}) => {
    const r = new RdpRenderer({ maxSessions: 2, logger, runDirectory, logonTimeoutMs: 10_000, width: 1024, height: 768, ...options });
    renderers.push(r);
    return r;
  };
  const user = { id: 'u1', username: 'alice' };
  const open = (r: RdpRenderer, password: string, hostKeys = new MemoryHostKeys(), dial: TargetDialer = directDialer('built-in', 5000)) =>
    r.open({
      target: target(xrdp.port),
      credential: { username: xrdp.user, password },
      user,
      remoteAddress: '127.0.0.1',
      dial,
      broker: hostKeys,
    });

  beforeAll(async () => {
    xrdp = await startXrdp({ user: 'gh-rdp-render', password });
    runDirectory = mkdtempSync(path.join(os.tmpdir(), 'gh-rdp-run-'));
  });
  // A failed test leaves no session behind for the next one.
  afterEach(() => Promise.all(renderers.splice(0).map((r) => r.stop())));
  afterAll(async () => {
    await xrdp?.stop();
    if (runDirectory) rmSync(runDirectory, { recursive: true, force: true });
  });

  // FreeRDP 3 is what `auto` takes when installed (the test script installs both); FreeRDP 2 stays supported.
  it.each([
    ['xfreerdp3', 3],
    ['xfreerdp', 2],
  ])(
    'renders the desktop for x11vnc with the vaulted password (%s), and leaves nothing behind when the viewer leaves',
    async (client, major) => {
      const r = renderer({ client });
      expect((await r.freerdp()).major).toBe(major);
      const started = performance.now();
      const result = await open(r, password);
      if (!result.ok) throw new Error(result.message);
      const session: RdpRendering = result.session;
      expect(session.pids).toHaveLength(3);
      expect(processesUnder(runDirectory)).toHaveLength(3);
      // The xrdp session's desktop is xsetroot's solid colour, the same as the VNC targets'.
      const viewer = await RfbTestClient.connect(session.vncPort, { password: session.vncPassword });
      viewer.setEncodings([0]);
      // Not the centre: the pointer starts there, and x11vnc draws it into the framebuffer.
      await viewer.waitForColour(100, 100, VNC_TARGET_COLOUR, 8, 15_000);
      const firstFrameMs = Math.round(performance.now() - started);
      const rss = session.pids.map((pid) => `${readFileSync(`/proc/${pid}/comm`, 'utf8').trim()} ${rssKiB(pid)} KiB`);
      const total = session.pids.reduce((sum, pid) => sum + rssKiB(pid), 0);
      console.log(
        `browser RDP with ${client}: opened in ${session.openedInMs} ms (${JSON.stringify(session.timings)}), desktop colour seen ${firstFrameMs} ms ` +
          `after open(); RSS ${rss.join(', ')}, total ${Math.round(total / 1024)} MiB`,
      );
      expect(r.activeSessions).toBe(1);
      viewer.close();
      await expect(session.exited).resolves.toEqual({ reason: 'The viewer disconnected.' });
      expect(processesUnder(runDirectory)).toEqual([]);
      expect(readdirSync(runDirectory)).toEqual([]);
      expect(r.activeSessions).toBe(0);
    },
  );

  it('gives each session of a display pool a display started ahead that no other session gets; ended ones are destroyed', async () => {
    // xrdp gives a user one session: the second session at once signs in as another user.
    ensureSystemUser('gh-rdp-render2', { password });
    const r = renderer({ displayPool: 1 });
    const openAs = (username: string) =>
      r.open({ target: target(xrdp.port), credential: { username, password }, user, remoteAddress: '127.0.0.1', dial, broker });
    const dial = directDialer('built-in', 5000);
    const broker = new MemoryHostKeys();
    const first = await openAs(xrdp.user);
    if (!first.ok) throw new Error(first.message);
    // The pool fills at the first session, which started its own display.
    expect(first.session.pooledDisplay).toBe(false);
    await expect.poll(() => r.pooledDisplays, { timeout: 30_000 }).toBe(1);
    const spare = processesUnder(runDirectory).filter((p) => !first.session.pids.includes(Number(p.split(' ')[0])));
    expect(spare.map((p) => p.split(' ')[1])).toEqual(['Xvfb', 'x11vnc']);
    await first.session.close();

    const [a, b] = await Promise.all([openAs(xrdp.user), openAs('gh-rdp-render2')]);
    if (!a.ok || !b.ok) throw new Error(`${messageOf(a.ok ? b : a)}`);
    const pooled = [a.session, b.session].filter((s) => s.pooledDisplay);
    expect(pooled).toHaveLength(1);
    expect(pooled[0]!.pids).toEqual(expect.arrayContaining(spare.map((p) => Number(p.split(' ')[0]))));
    expect(a.session.pids.filter((pid) => b.session.pids.includes(pid))).toEqual([]);
    // The pooled display shows the target's desktop like a new one.
    const viewer = await RfbTestClient.connect(pooled[0]!.vncPort, { password: pooled[0]!.vncPassword });
    viewer.setEncodings([0]);
    await viewer.waitForColour(100, 100, VNC_TARGET_COLOUR, 8, 15_000);
    viewer.close();
    await expect(pooled[0]!.exited).resolves.toEqual({ reason: 'The viewer disconnected.' });
    await a.session.close();
    await b.session.close();

    // Nothing of theirs is left: only a fresh display waits, in its own directory.
    await expect.poll(() => r.pooledDisplays, { timeout: 30_000 }).toBe(1);
    const used = [...first.session.pids, ...a.session.pids, ...b.session.pids];
    const left = processesUnder(runDirectory).map((p) => Number(p.split(' ')[0]));
    expect(left).toHaveLength(2);
    expect(left.filter((pid) => used.includes(pid))).toEqual([]);
    expect(readdirSync(runDirectory)).toHaveLength(1);
    await r.stop();
    expect(processesUnder(runDirectory)).toEqual([]);
    expect(readdirSync(runDirectory)).toEqual([]);
  });

  it('starts xfreerdp at once when the certificate is trusted already: it checks it itself, no connection of ours reads it first', async () => {
    const hostKeys = new MemoryHostKeys();
    let dials = 0;
    const direct = directDialer('built-in', 5000);
    const dial: TargetDialer = (t, context) => (dials++, direct(t, context));
    const first = await open(renderer(), password, hostKeys, dial);
    if (!first.ok) throw new Error(first.message);
    expect(first.session.trustedCertificate).toBe(false);
    expect(dials).toBe(2);
    await first.session.close();

    dials = 0;
    const again = await open(renderer(), password, hostKeys, dial);
    if (!again.ok) throw new Error(again.message);
    expect(again.session.trustedCertificate).toBe(true);
    expect(dials).toBe(1);
    const { timings } = again.session;
    // xfreerdp started without waiting for its connection to be dialed (or for a certificate read).
    expect(timings.xfreerdp).toBeLessThan(timings.connected);
    console.log(`browser RDP with a trusted certificate: ${JSON.stringify(timings)} (first use: ${JSON.stringify(first.session.timings)})`);
    await again.session.close();
    expect(processesUnder(runDirectory)).toEqual([]);
  });

  it('kill() kills the sessions and the pooled display and removes their files before it returns (the server exiting)', async () => {
    const r = renderer({ displayPool: 1 });
    const opened = await open(r, password);
    if (!opened.ok) throw new Error(opened.message);
    await expect.poll(() => r.pooledDisplays, { timeout: 30_000 }).toBe(1);
    expect(processesUnder(runDirectory)).toHaveLength(5);
    expect(readdirSync(runDirectory)).toHaveLength(2);
    // Nothing awaited between the kill and the checks: as in the server's exit handler.
    r.kill();
    expect(readdirSync(runDirectory)).toEqual([]);
    // SIGKILL is delivered at once; the processes are gone as soon as the kernel reaps them.
    await expect.poll(() => processesUnder(runDirectory), { timeout: 2000 }).toEqual([]);
  });

  it('reports a refused password as a failed connection, not a login screen', async () => {
    const r = renderer({ logonTimeoutMs: 6000 });
    const message = messageOf(await open(r, 'not-the-password'));
    expect(message).toMatch(/started no desktop session for gh-rdp-render .*the vaulted password was most likely refused/);
    expect(message).not.toContain('not-the-password');
    expect(processesUnder(runDirectory)).toEqual([]);
    expect(r.activeSessions).toBe(0);
  });

  it('refuses sessions past rdpMaxSessions with a clear message; close() and stop() leave no process', async () => {
    const r = renderer({ maxSessions: 1 });
    const [a, b] = await Promise.all([open(r, password), open(r, password)]);
    const refused = [a, b].filter((x) => !x.ok);
    const opened = [a, b].filter((x) => x.ok);
    expect(opened).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect(messageOf(refused[0]!)).toBe(
      "The gateway's maximum of 1 browser RDP sessions is reached. Try again when one ends, or ask an administrator to raise rdpMaxSessions (GATEHOUSE_RDP_MAX_SESSIONS).",
    );
    const session = opened[0]!.ok ? opened[0]!.session : undefined;
    await session!.close();
    await session!.close();
    await expect(session!.exited).resolves.toEqual({ reason: 'The session was closed.' });
    expect(processesUnder(runDirectory)).toEqual([]);

    const again = await open(r, password);
    expect(again.ok).toBe(true);
    await r.stop();
    if (again.ok) await expect(again.session.exited).resolves.toEqual({ reason: 'The server stopped.' });
    expect(processesUnder(runDirectory)).toEqual([]);
    expect(messageOf(await open(r, password))).toMatch(/stopping/);
  });

  it('ends the session and its processes when the RDP connection ends (the target went away)', async () => {
    const other = await startXrdp({ user: 'gh-rdp-render', password });
    try {
      const result = await renderer().open({
        target: target(other.port, 'dev-rdp-2'),
        credential: { username: other.user, password },
        user,
        remoteAddress: '127.0.0.1',
        dial: directDialer('built-in', 5000),
        broker: new MemoryHostKeys(),
      });
      if (!result.ok) throw new Error(result.message);
      await other.stop();
      expect((await result.session.exited).reason).toMatch(/^The RDP connection to win-1 \(127\.0\.0\.1:\d+\) ended/);
      expect(processesUnder(runDirectory)).toEqual([]);
    } finally {
      await other.stop();
    }
  });

  it('refuses a target whose certificate differs from the one trusted on first use', async () => {
    const hostKeys = new MemoryHostKeys();
    hostKeys.keys.set('dev-rdp', { algorithm: 'rdp-x509', fingerprint: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
    const result = await open(renderer(), password, hostKeys);
    expect(messageOf(result)).toMatch(/The RDP certificate of win-1 has changed: .* the device presented rdp-x509 SHA256:/);
    expect(messageOf(result)).toContain('./gatehouse devices host-key forget');
    expect(messageOf(result)).toContain('--protocol rdp');
    expect(processesUnder(runDirectory)).toEqual([]);
  });

  it('lets xfreerdp accept only the certificate that was checked', async () => {
    // The check sees xrdp; xfreerdp's connection (dialed first, beside the check) reaches an
    // impostor with another certificate.
    const impostor = await rdpImpostor(runDirectory);
    try {
      let dials = 0;
      const direct = directDialer('built-in', 5000);
      const dial: TargetDialer = (t, context) => direct(dials++ === 0 ? { ...t, port: impostor.port } : t, context);
      expect(messageOf(await open(renderer(), password, new MemoryHostKeys(), dial))).toMatch(/presented a different TLS certificate/);
      expect(impostor.handshakes()).toBe(1);
      expect(processesUnder(runDirectory)).toEqual([]);
    } finally {
      impostor.server.close();
    }
  });
});

/**
 * A renderer process that ignores SIGTERM (and a child it left in its group) does not hold
 * the server's stop: SIGKILL to the whole group after the grace (issue 21).
 */
describe('stopGroup', () => {
  it('SIGKILLs a process group that ignores SIGTERM after the grace, the leader’s children with it', async () => {
    const marker = `gatehouse-stop-group-${process.pid}-${Date.now()}`;
    // The leader ignores SIGTERM, as does the child it starts; both name the marker.
    const leader = spawn('sh', ['-c', `trap '' TERM; sh -c "trap '' TERM; sleep 600; : ${marker}" & sleep 600; : ${marker}`], {
      detached: true,
      stdio: 'ignore',
    });
    await expect.poll(() => processesUnder(marker).length).toBe(2);
    const exited = new Promise<NodeJS.Signals | null>((resolve) => leader.once('exit', (_code, signal) => resolve(signal)));
    await stopGroup(leader, logger, 200);
    expect(await exited).toBe('SIGKILL');
    await expect.poll(() => processesUnder(marker)).toEqual([]);
  });

  it('resolves at once for a process that already exited', async () => {
    const leader = spawn('true', [], { detached: true, stdio: 'ignore' });
    await new Promise((resolve) => leader.once('exit', resolve));
    await stopGroup(leader, logger, 60_000);
  });
});
