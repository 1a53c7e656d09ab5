import ssh2, { type ClientChannel, type SFTPWrapper } from 'ssh2';
import { fingerprintOf, generateEd25519KeyPair } from './host-key.js';
import { GatehouseError } from '@gatehouse/core';

/**
 * The key the server's browser terminal signs in to its own built-in gateway with: made at
 * start, held only in memory, so nothing else can use it. The gateway accepts it only for a
 * user the server has just let in (see the server's WebTerminal).
 */
export interface WebTerminalKey {
  privateKey: string;
  fingerprint: string;
}

export function generateWebTerminalKey(): WebTerminalKey {
  const pair = generateEd25519KeyPair('gatehouse-web-terminal');
  // The public blob from the private key, as the host key is read (loadOrCreateHostKey).
  const parsed = ssh2.utils.parseKey(pair.private);
  if (parsed instanceof Error) throw parsed;
  return { privateKey: pair.private, fingerprint: fingerprintOf(parsed.getPublicSSH()) };
}

/** The built-in gateway could not be reached or refused the sign-in or channel (`BAD_GATEWAY`, 502): the message is for the user. */
export class GatewayConnectError extends GatehouseError {
  constructor(message: string) {
    super('BAD_GATEWAY', message);
    this.name = 'GatewayConnectError';
  }
}

export interface GatewayShellOptions {
  host: string;
  port: number;
  /** The gateway's host key fingerprint (`SHA256:…`): any other key is refused. */
  hostKeyFingerprint: string;
  /** `<user>:<device>[:<account>]`, as a user types it for ssh. */
  username: string;
  key: WebTerminalKey;
  cols: number;
  rows: number;
  term?: string;
  readyTimeoutMs?: number;
}

export interface GatewayShell {
  channel: ClientChannel;
  resize(cols: number, rows: number): void;
  close(): void;
}

/**
 * Opens an interactive shell through the gateway exactly as `ssh -t` would: the gateway
 * signs the user in, checks the policy, picks the gateway for the device's segment, injects
 * the credential and records the session. A refusal the gateway tells on the channel (no
 * online gateway in a segment, no permission) arrives as the channel's output.
 */
export function openGatewayShell(o: GatewayShellOptions): Promise<GatewayShell> {
  return signedIn(o, (client, resolve, fail) => {
    client.shell({ term: o.term ?? 'xterm-256color', cols: o.cols, rows: o.rows }, (error, channel) => {
      if (error) return fail(`The gateway refused the terminal: ${error.message}`);
      channel.once('close', () => client.end());
      resolve({
        channel,
        resize: (cols, rows) => channel.setWindow(rows, cols, 0, 0),
        close: () => {
          channel.end();
          client.end();
        },
      });
    });
  });
}

export interface GatewaySftp {
  sftp: SFTPWrapper;
  close(): void;
}

/**
 * Opens an SFTP session through the gateway, as `sftp` would: each operation is checked,
 * logged (path, size, direction, result) and audited there. When the gateway refuses, the
 * reason is in the session it recorded (the caller looks it up).
 */
export function openGatewaySftp(o: Omit<GatewayShellOptions, 'cols' | 'rows' | 'term'>): Promise<GatewaySftp> {
  return signedIn(o, (client, resolve, fail) => {
    client.sftp((error, sftp) => {
      if (error) return fail(`The gateway did not open SFTP: ${error.message}`);
      sftp.once('close', () => client.end());
      resolve({ sftp, close: () => client.end() });
    });
  });
}

export interface GatewayExecResult {
  /** null when the command did not exit by itself (a signal, a timeout, the connection lost). */
  exitCode: number | null;
  signal: string | null;
  /** Each stream's first 64 KiB (GATEWAY_EXEC_OUTPUT_LIMIT), decoded as UTF-8. */
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface GatewayExecOptions {
  /** Written to the command's standard input, which is then closed (without it, closed at once). */
  stdin?: string;
  /** The channel is closed when the command has not ended by then (default 60 s). */
  timeoutMs?: number;
}

/** One signed-in connection to the gateway that runs commands, each on its own exec channel (one gateway session each). */
export interface GatewayExecClient {
  exec(command: string, options?: GatewayExecOptions): Promise<GatewayExecResult>;
  /** Whether the connection is still up. */
  readonly open: boolean;
  close(): void;
}

export const GATEWAY_EXEC_OUTPUT_LIMIT = 64 * 1024;

/**
 * Signs in to the gateway and answers a client that runs commands through it, as `ssh
 * host cmd` would, one exec channel per command. A refusal the gateway tells on a channel
 * (no permission, a maintenance window needed, the device unreachable) is that command's
 * stderr with exit status 255, as OpenSSH shows it.
 */
export function openGatewayExec(o: Omit<GatewayShellOptions, 'cols' | 'rows' | 'term'>): Promise<GatewayExecClient> {
  return signedIn(o, (client, resolve) => {
    let open = true;
    client.once('close', () => (open = false));
    resolve({
      exec: (command, options = {}) => execOn(client, command, options),
      get open() {
        return open;
      },
      close: () => client.end(),
    });
  });
}

function execOn(client: ssh2.Client, command: string, options: GatewayExecOptions): Promise<GatewayExecResult> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error, channel) => {
      if (error) return reject(new GatewayConnectError(`The gateway did not run the command: ${error.message}`));
      const out = new CappedText();
      const err = new CappedText();
      let exitCode: number | null = null;
      let signal: string | null = null;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        channel.close();
      }, options.timeoutMs ?? 60_000);
      channel.on('data', (d: Buffer) => out.add(d));
      channel.stderr.on('data', (d: Buffer) => err.add(d));
      channel.on('exit', (code: number | null, name?: string) => {
        exitCode = code;
        signal = code === null ? (name ?? null) : null;
      });
      channel.once('close', () => {
        clearTimeout(timer);
        resolve({ exitCode, signal, stdout: out.text(), stderr: err.text(), timedOut });
      });
      channel.end(options.stdin);
    });
  });
}

/** A stream's first GATEWAY_EXEC_OUTPUT_LIMIT bytes. */
class CappedText {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  add(d: Buffer): void {
    if (this.size >= GATEWAY_EXEC_OUTPUT_LIMIT) return;
    const part = d.subarray(0, GATEWAY_EXEC_OUTPUT_LIMIT - this.size);
    this.chunks.push(part);
    this.size += part.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** Connects and signs in to the gateway with the web terminal key, then lets `open` ask for a channel. */
function signedIn<T>(
  o: Omit<GatewayShellOptions, 'cols' | 'rows' | 'term'>,
  open: (client: ssh2.Client, resolve: (value: T) => void, fail: (message: string) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let settled = false;
    const fail = (message: string) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(new GatewayConnectError(message));
    };
    client.on('error', (error: Error & { level?: string }) =>
      fail(
        error.level === 'client-authentication'
          ? 'The gateway did not accept the browser terminal sign-in.'
          : `The built-in gateway did not answer (${error.message}).`,
      ),
    );
    client.on('close', () => fail('The gateway closed the connection.'));
    client.on('ready', () =>
      open(
        client,
        (value) => {
          settled = true;
          resolve(value);
        },
        fail,
      ),
    );
    client.connect({
      host: o.host,
      port: o.port,
      username: o.username,
      privateKey: o.key.privateKey,
      readyTimeout: o.readyTimeoutMs ?? 20_000,
      hostVerifier: (key: Buffer) => fingerprintOf(key) === o.hostKeyFingerprint,
      keepaliveInterval: 15_000,
    });
  });
}
