import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freeLowPort } from './agent.js';
import { waitForPort } from './sshd.js';

/** The solid background every test VNC target shows (xsetroot -solid), as RGB. */
export const VNC_TARGET_COLOUR = { r: 0x33, g: 0x66, b: 0xcc } as const;
export const VNC_TARGET_COLOUR_HEX = '#3366cc';
export const VNC_TARGET_SIZE = { width: 800, height: 600 } as const;

export interface VncTargetOptions {
  /** Xtigervnc (its own X server), or Xvfb with x11vnc on it. */
  kind: 'tigervnc' | 'x11vnc';
  /** VncAuth password; undefined: security type None. */
  password: string | undefined;
  /** Xtigervnc's -SecurityTypes (default `VncAuth`, or `None` without a password); `TLSVnc,VncAuth` is TigerVNC's own default. */
  securityTypes?: string;
  /** A self-signed certificate for TigerVNC's X509 security types (`X509Vnc`, `X509None`). */
  x509?: boolean;
  /** A program to start on the desktop once it is up (e.g. `['xterm', '-e', 'sh', '-c', 'cat > /tmp/x']`). */
  content?: string[];
}

export interface RunningVncTarget {
  port: number;
  /** The X display, `:123`. */
  display: string;
  /** Environment for X clients of this display (xdotool, xsetroot). */
  env: NodeJS.ProcessEnv;
  /** With `x509`: the certificate's `SHA256:<base64>` fingerprint (of its DER form). */
  certificateFingerprint: string | undefined;
  stop(): Promise<void>;
}

const running = new Set<RunningVncTarget>();

/**
 * Starts a VNC server on 127.0.0.1 and a free port under 32768, with a free X display
 * (picked by the X server itself: -displayfd), a password file written by the real
 * `vncpasswd -f`, and a solid VNC_TARGET_COLOUR background. Processes run in their own
 * process group; stop() (and stopVncTargets(), and the end of the test process) kills them.
 */
export async function startVncTarget(options: VncTargetOptions): Promise<RunningVncTarget> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-vnc-'));
  const passwordFile = path.join(dir, 'passwd');
  if (options.password !== undefined)
    writeFileSync(passwordFile, execFileSync('vncpasswd', ['-f'], { input: `${options.password}\n` }), { mode: 0o600 });
  const children: ChildProcess[] = [];
  const x509 = options.x509 ? path.join(dir, 'cert') : undefined;
  if (x509)
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=vnc-test'].concat(
        ['-keyout', `${x509}.key`, '-out', `${x509}.pem`],
      ),
      { stdio: 'ignore' },
    );
  const target: RunningVncTarget = {
    port: 0,
    display: '',
    env: {},
    certificateFingerprint: undefined,
    stop: async () => {
      running.delete(target);
      await Promise.all(children.map(stopProcess));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  running.add(target);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        target.port = await freeLowPort();
        target.display = await startServers(options, target.port, passwordFile, x509, children);
        target.env = { ...process.env, DISPLAY: target.display };
        await waitForPort(target.port, 10_000);
        break;
      } catch (error) {
        // Most likely the port was taken between the check and the listen: another one.
        await Promise.all(children.splice(0).map(stopProcess));
        if (attempt >= 3) throw error;
      }
    }
    if (x509)
      target.certificateFingerprint = `SHA256:${createHash('sha256')
        .update(new X509Certificate(readFileSync(`${x509}.pem`)).raw)
        .digest('base64')
        .replace(/=+$/, '')}`;
    execFileSync('xsetroot', ['-solid', VNC_TARGET_COLOUR_HEX], { env: target.env });
    if (options.content) {
      const [command = 'true', ...args] = options.content;
      children.push(spawn(command, args, { env: target.env, detached: true, stdio: 'ignore' }));
    }
    return target;
  } catch (error) {
    await target.stop();
    throw error;
  }
}

/** Starts the X server and VNC server; answers the display. */
async function startServers(
  options: VncTargetOptions,
  port: number,
  passwordFile: string,
  x509: string | undefined,
  children: ChildProcess[],
): Promise<string> {
  const { width, height } = VNC_TARGET_SIZE;
  const geometry = `${width}x${height}`;
  if (options.kind === 'tigervnc') {
    const security = options.securityTypes ?? (options.password === undefined ? 'None' : 'VncAuth');
    const server = await startXServer(
      'Xtigervnc',
      [
        ...['-rfbport', String(port), '-localhost', '-nolisten', 'tcp', '-geometry', geometry, '-depth', '24'],
        ...['-SecurityTypes', security, '-BlacklistThreshold', '100000', '-AlwaysShared'],
        ...(options.password === undefined ? [] : ['-PasswordFile', passwordFile]),
        ...(x509 ? ['-X509Cert', `${x509}.pem`, '-X509Key', `${x509}.key`] : []),
      ],
      children,
    );
    return server;
  }
  const display = await startXServer('Xvfb', ['-nolisten', 'tcp', '-screen', '0', `${geometry}x24`], children);
  const auth = options.password === undefined ? ['-nopw'] : ['-rfbauth', passwordFile];
  children.push(
    spawn('x11vnc', ['-display', display, '-rfbport', String(port), '-localhost', '-forever', '-shared', '-quiet', '-noxdamage', ...auth], {
      detached: true,
      stdio: 'ignore',
    }),
  );
  return display;
}

/** Stops every VNC target still running (afterAll, or a failed test's cleanup). */
export async function stopVncTargets(): Promise<void> {
  await Promise.all([...running].map((t) => t.stop()));
}

process.once('exit', () => {
  for (const target of running) void target.stop();
});

/** Starts an X server that picks a free display itself and says which once it accepts clients (-displayfd). */
function startXServer(program: string, args: string[], children: ChildProcess[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['-displayfd', '3', ...args], { detached: true, stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stderr = '';
    let out = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const fd = child.stdio[3] as NodeJS.ReadableStream;
    fd.on('data', (d: Buffer) => {
      out += d.toString();
      const match = /^(\d+)\n/.exec(out);
      if (match) resolve(`:${match[1]}`);
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${program} exited (${code}) before it was ready: ${stderr}`)));
  });
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      resolve();
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone already
      }
    }, 3000);
    timer.unref();
  });
}
