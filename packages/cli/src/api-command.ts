import type { Command } from 'commander';
import { ApiClient, type ClientOptions } from './client.js';
import { withOutput } from './output.js';
import { promptSecret, readStdin } from './prompt.js';

export { print } from './output.js';

/** Where the server is and which saved sign-in to use: every API command takes these. */
export function withConnection(cmd: Command): Command {
  return cmd
    .option('--profile <name>', 'the saved sign-in to use (env GATEHOUSE_PROFILE; default "default"; gatehouse profiles lists them)')
    .option('--url <url>', "server URL (env GATEHOUSE_URL; default: the profile's)")
    .option(
      '--ca <file>',
      "CA file to verify the server's certificate (env GATEHOUSE_CA; default: <data-dir>/tls/server.crt when --data-dir is given, else the profile's)",
    )
    .option('--data-dir <dir>', "the server's data directory, to find its certificate (env GATEHOUSE_DATA_DIR)");
}

/** Options every API command takes: the connection, and `--json` / `-o json`. */
export function withClient(cmd: Command): Command {
  return withOutput(withConnection(cmd));
}

export function client(opts: ClientOptions): ApiClient {
  return new ApiClient(opts);
}

/** The password from standard input with --password-stdin, else typed at a prompt. */
export async function password(opts: { passwordStdin?: boolean }, question = 'Password: '): Promise<string> {
  return opts.passwordStdin ? readStdin() : promptSecret(question);
}
