import type { ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GatehouseError } from '@gatehouse/core';

/**
 * One browser RDP session's display: a private directory, an Xvfb only holders of its random
 * MIT-MAGIC-COOKIE may open, and a local-only, one-viewer x11vnc of it with a random
 * password. Started for a session, or ahead of one by the display pool; either way one
 * session uses it and it is destroyed with that session.
 */
export interface RdpDisplay {
  directory: string;
  /** DISPLAY, XAUTHORITY, HOME (the directory) and PATH, for the processes on the display. */
  env: NodeJS.ProcessEnv;
  /** x11vnc's port on 127.0.0.1, once `vncReady` resolved. */
  vncPort: number;
  vncPassword: string;
  /** Resolves once x11vnc listens (it starts beside whatever comes next on the display). */
  vncReady: Promise<void>;
  /** Xvfb and x11vnc. */
  processes: ChildProcess[];
  /** Whether a viewer has connected to x11vnc yet. */
  viewerSeen(): boolean;
  /**
   * Called once when Xvfb or x11vnc exits, with what it means for a session on the display;
   * whoever holds the display (the pool, then a session) sets it.
   */
  onExit: (reason: string) => void;
}

/** What starting a display needs from its owner: where its files go, and how its processes start (each in its own process group). */
export interface RdpDisplayOwner {
  runDirectory: string;
  width: number;
  height: number;
  timeoutMs: number;
  /** The directory exists (the owner removes it when it is done). */
  directoryMade(directory: string): void;
  spawn(command: string, args: string[], env: NodeJS.ProcessEnv | undefined): ChildProcess;
}

/** Starts Xvfb, then x11vnc on it; resolves once Xvfb accepts clients (`vncReady` once x11vnc listens). */
export async function startRdpDisplay(owner: RdpDisplayOwner): Promise<RdpDisplay> {
  const directory = await mkdtemp(path.join(owner.runDirectory, 'gatehouse-rdp-'));
  owner.directoryMade(directory);
  const xauthority = path.join(directory, 'Xauthority');
  await writeFile(xauthority, xauthorityEntry(randomBytes(16)), { mode: 0o600 });
  let exited = false;
  let viewer = false;
  const display: RdpDisplay = {
    directory,
    env: {},
    vncPort: 0,
    vncPassword: randomPassword(),
    vncReady: Promise.resolve(),
    processes: [],
    viewerSeen: () => viewer,
    onExit: () => undefined,
  };
  const exit = (reason: string) => {
    if (exited) return;
    exited = true;
    display.onExit(reason);
  };

  // Xvfb picks a free display itself (-displayfd) and says which once it accepts clients.
  // Without GLX: nothing on the display uses OpenGL, and Mesa's libraries were ~50 of its ~70 MiB.
  const xvfb = owner.spawn(
    'Xvfb',
    [
      ...['-displayfd', '1', '-screen', '0', `${owner.width}x${owner.height}x24`, '-nolisten', 'tcp', '-noreset', '-auth', xauthority],
      ...['-extension', 'GLX'],
    ],
    undefined,
  );
  display.processes.push(xvfb);
  const number = (await firstLine(xvfb, /^(\d+)$/, owner.timeoutMs, 'Xvfb'))[1];
  xvfb.once('exit', () => exit('The session display stopped.'));
  display.env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: directory, DISPLAY: `:${number}`, XAUTHORITY: xauthority };

  // x11vnc reads the password file and removes it. It has no -timeout: a display can wait in
  // the pool; the session closes when no viewer came (viewerSeen) within its own time.
  const passwordFile = path.join(directory, 'vncpasswd');
  await writeFile(passwordFile, `${display.vncPassword}\n`, { mode: 0o600 });
  const x11vnc = owner.spawn(
    'x11vnc',
    [
      ...['-display', display.env.DISPLAY!, '-auth', xauthority],
      // Not -localhost: it looks up "localhost", which can wait seconds for DNS.
      ...['-listen', '127.0.0.1', '-allow', '127.0.0.1', '-noipv6'],
      ...['-passwdfile', `rm:${passwordFile}`],
      // Without it `(` and `)` typed in the viewer are lost (x11vnc's keycode 187/188 mapping on Xvfb).
      ...['-skip_keycodes', '187,188'],
      ...['-norc', '-nocmds', '-noremote', '-nopw', '-noxrecord'],
    ],
    display.env,
  );
  display.processes.push(x11vnc);
  // Not -quiet: its "Got connection from client" line is how a viewer is seen.
  onLines(x11vnc, (line) => {
    if (line.includes('Got connection from client')) viewer = true;
  });
  display.vncReady = firstLine(x11vnc, /^PORT=(\d+)/, owner.timeoutMs, 'x11vnc').then((match) => {
    display.vncPort = Number(match[1]);
    x11vnc.once('exit', () => exit('The viewer disconnected.'));
  });
  return display;
}

export function onLines(child: ChildProcess, handle: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) handle(line);
    });
  }
}

export function firstLine(child: ChildProcess, pattern: RegExp, timeoutMs: number, name: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(
      () => settle(() => reject(new GatehouseError('INTERNAL', `${name} did not start within ${timeoutMs} ms`))),
      timeoutMs,
    );
    onLines(child, (line) => {
      const match = pattern.exec(line.trim());
      if (match) settle(() => resolve(match));
    });
    child.once('exit', (code) => settle(() => reject(new GatehouseError('INTERNAL', `${name} exited with code ${code} while starting`))));
    child.once('error', (error) => settle(() => reject(error)));
  });
}

/** An Xauthority file with one MIT-MAGIC-COOKIE-1 for any display (FamilyWild, no address, no number). */
export function xauthorityEntry(cookie: Buffer): Buffer {
  const field = (value: Buffer) => Buffer.concat([u16(value.length), value]);
  return Buffer.concat([
    u16(0xffff),
    field(Buffer.alloc(0)),
    field(Buffer.alloc(0)),
    field(Buffer.from('MIT-MAGIC-COOKIE-1')),
    field(cookie),
  ]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/** 8 characters (VncAuth uses at most 8) from letters and digits. */
function randomPassword(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789';
  return Array.from({ length: 8 }, () => alphabet[randomInt(alphabet.length)]).join('');
}
