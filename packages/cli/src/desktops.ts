import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { VncToken, VncTokenRequest } from '@gatehouse/api';
import { GatehouseError } from '@gatehouse/core/errors';
import type { Command } from 'commander';
import { client, print, withClient } from './api-command.js';
import type { ClientOptions } from './client.js';
import { NameResolver } from './names.js';
import { wholeNumberOption } from './options.js';
import { jsonOutput } from './output.js';

/** Viewers `--viewer` starts, in order: TigerVNC's, under either name Debian gives it. */
const VIEWERS = ['xtigervncviewer', 'vncviewer'];

interface VncOptions extends ClientOptions {
  account?: string;
  minutes?: number;
  viewer?: boolean;
}

/** The first of `names` that is an executable file on PATH. */
function onPath(names: readonly string[]): string | undefined {
  const dirs = (process.env['PATH'] ?? '').split(path.delimiter).filter((d) => d !== '');
  for (const name of names) {
    for (const dir of dirs) {
      const file = path.join(dir, name);
      try {
        accessSync(file, constants.X_OK);
        return file;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

/**
 * Starts the viewer on the gateway's VNC listener with the token in a password file
 * (`vncpasswd -f`'s obfuscated form, mode 0600 in a private directory), so it is never on
 * a command line; the file is removed when the viewer exits. Resolves to its exit code, or
 * 0 when the CLI was stopped (Ctrl-C) and stopped it.
 */
async function runViewer(viewer: string, token: VncToken): Promise<number> {
  const { vncPasswordFile } = await import('@gatehouse/gateway');
  const colon = token.address.lastIndexOf(':');
  const host = token.address.slice(0, colon);
  const port = token.address.slice(colon + 1);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-vnc-'));
  const file = path.join(dir, 'passwd');
  const cleanUp = () => rmSync(dir, { recursive: true, force: true });
  try {
    writeFileSync(file, vncPasswordFile(token.token), { mode: 0o600 });
    // host::port is TigerVNC's "this is a port, not a display number".
    const child = spawn(viewer, ['-PasswordFile', file, `${host}::${port}`], { stdio: 'inherit' });
    let stopped = false;
    const stop = () => {
      stopped = true;
      child.kill('SIGTERM');
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    return await new Promise<number>((resolve, reject) => {
      child.once('error', (error) => reject(new GatehouseError('BAD_REQUEST', `${viewer} could not be started: ${error.message}`)));
      child.once('exit', (code, signal) => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        // Stopped by the user through the CLI: a success, though TigerVNC's viewer exits 1 on SIGTERM.
        resolve(stopped ? 0 : (code ?? (signal === 'SIGTERM' || signal === 'SIGINT' ? 0 : 1)));
      });
    });
  } finally {
    cleanUp();
  }
}

/** `gatehouse vnc <device>`: a one-time VNC password, printed or handed to a local viewer. */
export function desktopCommands(program: Command): void {
  withClient(program.command('vnc <device>'))
    .description(
      "a one-time VNC password for a device (project/device, or a name only one device has): a VNC viewer connects to the gateway's VNC listener with it, once, within minutes",
    )
    .option('--account <name>', 'the account (user name or id) when the device has several you may use')
    .option('--minutes <n>', 'how long the password stays good, 1 to 10 (default 5)', wholeNumberOption('the minutes', 1, 10))
    .option('--viewer', 'start a local VNC viewer (xtigervncviewer or vncviewer) with the password instead of printing it')
    .action(async (value: string, o: VncOptions) => {
      const viewer = o.viewer ? onPath(VIEWERS) : undefined;
      const api = client(o);
      const names = new NameResolver(api);
      const device = await names.anyDevice('<device>', value);
      const account = o.account === undefined ? undefined : (await names.accounts('--account', o.account, [device]))[0];
      const body: VncTokenRequest = {
        ...(account ? { accountId: account.id } : {}),
        ...(o.minutes !== undefined ? { minutes: o.minutes } : {}),
      };
      const token = await api.call<VncToken>('POST', `/devices/${encodeURIComponent(device.id)}/vnc-token`, body);
      const until = `${token.expiresAt.slice(11, 16)} UTC`;
      const connect = `Connect a VNC viewer to ${token.address} and type the one-time password ${token.token} (good once, until ${until}).`;
      if (!o.viewer) return print(jsonOutput() ? token : connect);
      if (!viewer) {
        process.stderr.write(
          `No VNC viewer found on PATH (${VIEWERS.join(', ')}). Install one (Debian/Ubuntu: apt install tigervnc-viewer), or use any viewer:\n`,
        );
        return print(connect);
      }
      process.stderr.write(
        `Starting ${path.basename(viewer)} for ${token.deviceName} (${token.accountUsername}) through ${token.address}.\n`,
      );
      process.exitCode = await runViewer(viewer, token);
    });
}
