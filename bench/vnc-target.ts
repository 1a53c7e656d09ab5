import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, track } from './ssh-support.js';

/** The device's background (xsetroot), which a browser's first frame must show. */
export const VNC_BACKGROUND = { hex: '#3366cc', r: 0x33, g: 0x66, b: 0xcc } as const;

export interface VncTarget {
  port: number;
  display: string;
}

/**
 * Xtigervnc on 127.0.0.1 with VncAuth (`password`), a VNC_BACKGROUND desktop and, when given,
 * `content` started on it (a shell command line in an xterm at the top left). Its processes
 * end with the bench (`track`).
 */
export async function startVncTarget(dir: string, password: string, width: number, height: number, content?: string): Promise<VncTarget> {
  const passwordFile = path.join(dir, 'vncpasswd');
  writeFileSync(passwordFile, execFileSync('vncpasswd', ['-f'], { input: `${password}\n` }), { mode: 0o600 });
  const port = await freePort();
  const server = track(
    spawn(
      'Xtigervnc',
      [
        ...['-displayfd', '3', '-rfbport', String(port), '-localhost', '-nolisten', 'tcp'],
        ...['-geometry', `${width}x${height}`, '-depth', '24', '-SecurityTypes', 'VncAuth', '-PasswordFile', passwordFile],
        ...['-AlwaysShared', '-BlacklistThreshold', '100000'],
      ],
      { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] },
    ),
  );
  const display = await displayOf(server);
  const env = { ...process.env, DISPLAY: display };
  execFileSync('xsetroot', ['-solid', VNC_BACKGROUND.hex], { env });
  if (content) track(spawn('xterm', ['-geometry', '120x40+0+0', '-e', 'sh', '-c', content], { env, stdio: 'ignore' }));
  return { port, display };
}

/** The X server picks a free display and writes it to fd 3 once it accepts clients (-displayfd). */
function displayOf(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
      out += d.toString();
      const match = /^(\d+)\n/.exec(out);
      if (match) resolve(`:${match[1]}`);
    });
    child.once('exit', (code) => reject(new Error(`Xtigervnc exited (${code}) before it was ready: ${stderr}`)));
  });
}
