import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GatehouseError } from '@gatehouse/core';

/**
 * The FreeRDP client that renders browser RDP sessions. FreeRDP 3 (`xfreerdp3`, Debian 12's
 * bookworm-backports `freerdp3-x11`) is preferred: FreeRDP 2.11 waits 100 ms in its read loop
 * at each request/response step of the connection when the answer is not there yet (about ten
 * steps after TLS, ~1 s per connection), FreeRDP 3 reads as the data arrives.
 */
export interface FreeRdpClient {
  /** The command run (a name found on PATH, or the path given). */
  command: string;
  major: 2 | 3;
  /** As the client prints it (`3.10.3`). */
  version: string;
  /**
   * FreeRDP 3 only: the library that sets its primitives before its first connection
   * (`native/freerdp-primitives-hint.c`, built by `npm run build` where a C compiler is),
   * preloaded into it; undefined when it was not built.
   */
  preload?: string;
}

/** Where `npm run build` puts the hint library (the same from src/ under tests and from dist/). */
const PRIMITIVES_HINT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'native', 'freerdp-primitives-hint.so');

/** Settings value `auto`: `xfreerdp3` when installed, else `xfreerdp`. */
export const AUTO_CLIENT = 'auto';

const INSTALL_ADVICE =
  'Install FreeRDP 3 (Debian 12: apt-get install -t bookworm-backports freerdp3-x11) or FreeRDP 2 (apt-get install freerdp2-x11)';

/**
 * Finds the client `choice` names (`auto`, a command on PATH or a path) and asks its version;
 * throws, saying what to install or set, when there is none or it is not FreeRDP 2 or 3.
 */
export async function findFreeRdp(choice: string): Promise<FreeRdpClient> {
  const candidates = choice === AUTO_CLIENT ? ['xfreerdp3', 'xfreerdp'] : [choice];
  const problems: string[] = [];
  for (const command of candidates) {
    const printed = await versionOutput(command);
    if (printed === null) {
      problems.push(`${command} is not installed`);
      continue;
    }
    const match = /This is FreeRDP version ((\d+)\.\d+\.\d+)/.exec(printed);
    const major = Number(match?.[2]);
    if (match && major === 3)
      return { command, major, version: match[1]!, ...(existsSync(PRIMITIVES_HINT) && { preload: PRIMITIVES_HINT }) };
    if (match && major === 2) return { command, major, version: match[1]! };
    // FreeRDP 2's xfreerdp opens its X display before it prints its version, and there is
    // none here: it says so in its log format, which only FreeRDP writes.
    if (!match && /\[com\.freerdp\.client\.x11\] - failed to open display/.test(printed)) return { command, major: 2, version: '2' };
    problems.push(`${command} did not say it is FreeRDP 2 or 3 (${lastLine(printed)})`);
  }
  const setting = choice === AUTO_CLIENT ? '' : ' or set rdpClient (GATEHOUSE_RDP_CLIENT) to auto';
  throw new GatehouseError('NOT_READY', `Browser RDP needs FreeRDP: ${problems.join('; ')}. ${INSTALL_ADVICE}${setting}.`);
}

/** What `command /version` printed (without an X display), or null when it cannot be run. */
function versionOutput(command: string): Promise<string | null> {
  return new Promise((resolve) => {
    const env = { PATH: process.env.PATH, HOME: os.tmpdir() };
    execFile(command, ['/version'], { timeout: 10_000, env }, (error, stdout, stderr) => {
      const code = (error as NodeJS.ErrnoException | null)?.code;
      resolve(code === 'ENOENT' || code === 'EACCES' ? null : `${stdout}${stderr}`);
    });
  });
}

function lastLine(printed: string): string {
  return printed.trim().split('\n').pop()?.slice(0, 160) || 'it printed nothing';
}

export interface FreeRdpConnection {
  /** A Unix socket path (FreeRDP connects to a path starting with '/' as one). */
  socketPath: string;
  username: string;
  /** The only certificate accepted, as colon-separated SHA-256 hex pairs. */
  sha256Hex: string;
  width: number;
  height: number;
}

/**
 * The command line for one browser RDP session: the password comes on stdin, only the
 * certificate checked is accepted (anything else aborts without a prompt), TLS or NLA only
 * (standard RDP security has no certificate to pin), full screen on the session's display,
 * the clipboard shared, and the log lines the renderer reads: the connection's states and
 * the target's clipboard channel (up once the account's desktop session runs).
 */
export function freerdpArgs(client: FreeRdpClient, c: FreeRdpConnection): string[] {
  const v3 = client.major === 3;
  return [
    `/v:${c.socketPath}`,
    `/u:${c.username}`,
    '/from-stdin:force',
    `/cert:deny,fingerprint:sha256:${c.sha256Hex}`,
    v3 ? '/sec:rdp:off' : '-sec-rdp',
    `/size:${c.width}x${c.height}`,
    '/f',
    '-decorations',
    '+clipboard',
    '-grab-keyboard',
    '/log-level:WARN',
    // FreeRDP 3 logs the state changes on the rdp logger, FreeRDP 2 on the connection one.
    `/log-filters:${v3 ? 'com.freerdp.core.rdp:DEBUG,' : ''}com.freerdp.core.connection:DEBUG,com.freerdp.channels.cliprdr.client:DEBUG`,
  ];
}

/** A log line of either version saying the target's clipboard channel is ready (the account's desktop session runs). */
export const CLIPBOARD_READY = /cliprdr\.client\] - (?:MonitorReady|\[cliprdr_order_recv\]: msgType: CB_MONITOR_READY)/;

/**
 * OpenSSL's configuration for FreeRDP 3: Debian's OpenSSL 3 leaves MD4 and RC4 to the
 * legacy provider, which is not loaded by default, and FreeRDP 3 has no NTLM without MD4,
 * so a Windows target's NLA logon would fail. The default provider stays first; TLS keeps
 * Debian's security level 2.
 */
const OPENSSL_CONFIG = [
  'openssl_conf = gatehouse_freerdp',
  '[gatehouse_freerdp]',
  'providers = providers',
  'ssl_conf = ssl',
  '[providers]',
  'default = default',
  'legacy = legacy',
  '[default]',
  'activate = 1',
  '[legacy]',
  'activate = 1',
  '[ssl]',
  'system_default = tls',
  '[tls]',
  'CipherString = DEFAULT:@SECLEVEL=2',
  '',
].join('\n');

/**
 * The environment additions for `client` in the session's private `directory` (FreeRDP 3:
 * OPENSSL_CONF, written there, and the primitives hint preloaded when it was built).
 */
export async function freerdpEnvironment(client: FreeRdpClient, directory: string): Promise<NodeJS.ProcessEnv> {
  if (client.major !== 3) return {};
  const file = path.join(directory, 'openssl.cnf');
  await writeFile(file, OPENSSL_CONFIG, { mode: 0o600 });
  return { OPENSSL_CONF: file, ...(client.preload && { LD_PRELOAD: client.preload }) };
}
