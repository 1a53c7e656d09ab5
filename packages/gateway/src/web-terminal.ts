import ssh2, { type ClientChannel } from 'ssh2';
import { fingerprintOf } from './host-key.js';

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
  const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'gatehouse-web-terminal' });
  const parsed = ssh2.utils.parseKey(pair.public);
  if (parsed instanceof Error) throw parsed;
  return { privateKey: pair.private, fingerprint: fingerprintOf(parsed.getPublicSSH()) };
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
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let settled = false;
    const fail = (message: string) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(new Error(message));
    };
    client.on('error', (error: Error & { level?: string }) =>
      fail(
        error.level === 'client-authentication'
          ? 'The gateway did not accept the browser terminal sign-in.'
          : `The built-in gateway did not answer (${error.message}).`,
      ),
    );
    client.on('ready', () => {
      client.shell({ term: o.term ?? 'xterm-256color', cols: o.cols, rows: o.rows }, (error, channel) => {
        if (error) return fail(`The gateway refused the terminal: ${error.message}`);
        settled = true;
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
