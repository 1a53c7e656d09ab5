import path from 'node:path';
import { Readable } from 'node:stream';
import { main } from '@gatehouse/cli';
import { vi } from 'vitest';
import type { TestApp } from './app.js';

/** What `gatehouse …` run in process answered: its exit code and what it wrote. */
export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/**
 * Runs `gatehouse <args>` in this process (the CLI's `main`), capturing standard output and
 * error; `stdin`, when given, is what the command reads from standard input.
 */
export async function runCliInProcess(args: string[], opts: { stdin?: string } = {}): Promise<CliRun> {
  const out: string[] = [];
  const errors: string[] = [];
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => out.push(String(chunk)) > 0);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => errors.push(String(chunk)) > 0);
  const stdin =
    opts.stdin === undefined
      ? undefined
      : vi.spyOn(process, 'stdin', 'get').mockReturnValue(Readable.from([Buffer.from(opts.stdin)]) as typeof process.stdin);
  try {
    const code = await main(['node', 'gatehouse', ...args]);
    return { code, out: out.join(''), err: errors.join('') };
  } finally {
    write.mockRestore();
    err.mockRestore();
    stdin?.mockRestore();
  }
}

/**
 * `gatehouse …` in process against `t`'s API: the app (built with `tls`) listens on
 * 127.0.0.1, port 0, and the CLI trusts its certificate and uses `token`, from no
 * credentials file. Undo the environment with `vi.unstubAllEnvs()`.
 */
export async function cliAgainst(t: TestApp, token: string): Promise<(...args: string[]) => Promise<CliRun>> {
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  const server = `https://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
  const ca = path.join(t.database.dataDir, 'tls', 'server.crt');
  vi.stubEnv('GATEHOUSE_CREDENTIALS', path.join(t.database.dataDir, 'none.json'));
  vi.stubEnv('GATEHOUSE_TOKEN', token);
  return (...args) => runCliInProcess([...args, '--url', server, '--ca', ca]);
}
