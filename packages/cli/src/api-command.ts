import type { Command } from 'commander';
import { ApiClient, type ClientOptions } from './client.js';
import { promptSecret, readStdin } from './prompt.js';

/** Writes a string as it is, anything else as indented JSON, to standard output. */
export const print = (value: unknown): void => {
  process.stdout.write(`${typeof value === 'string' ? value : JSON.stringify(value, null, 2)}\n`);
};

/** Options every API command takes. */
export function withClient(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'server URL (env GATEHOUSE_URL)')
    .option('--ca <file>', "CA file to verify the server's certificate (env GATEHOUSE_CA; default <data-dir>/tls/server.crt)")
    .option('--data-dir <dir>', 'data directory, to find the certificate (env GATEHOUSE_DATA_DIR)');
}

export function client(opts: ClientOptions): ApiClient {
  return new ApiClient(opts);
}

/** The password from standard input with --password-stdin, else typed at a prompt. */
export async function password(opts: { passwordStdin?: boolean }, question = 'Password: '): Promise<string> {
  return opts.passwordStdin ? readStdin() : promptSecret(question);
}

/**
 * An action that calls the API with the command's positional arguments and options, and
 * prints the answer.
 */
export const callApi = (
  method: string,
  route: (args: string[], o: Record<string, unknown>) => string,
  body?: (args: string[], o: Record<string, unknown>) => unknown,
  /** What to say when the API answers with no body (a delete). */
  done?: (args: string[]) => string,
) =>
  async function (this: Command, ...args: unknown[]) {
    const cmd = args[args.length - 1] as Command;
    const o = cmd.opts<Record<string, unknown>>();
    const positional = args.slice(0, -2).map(String);
    const answer = await client(o as ClientOptions).call(method, route(positional, o), body?.(positional, o));
    if (answer !== undefined) print(answer);
    else if (done) print(done(positional));
    return;
  };

/** What a delete prints: "<what> <id> deleted.". */
export const deleted =
  (what: string) =>
  ([id]: string[]) =>
    `${what} ${id ?? ''} deleted.`;
