import { main } from '@gatehouse/cli';
import { vi } from 'vitest';

/** What `gatehouse …` run in process answered: its exit code and what it wrote. */
export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/** Runs `gatehouse <args>` in this process (the CLI's `main`), capturing standard output and error. */
export async function runCliInProcess(args: string[]): Promise<CliRun> {
  const out: string[] = [];
  const errors: string[] = [];
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => out.push(String(chunk)) > 0);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => errors.push(String(chunk)) > 0);
  try {
    const code = await main(['node', 'gatehouse', ...args]);
    return { code, out: out.join(''), err: errors.join('') };
  } finally {
    write.mockRestore();
    err.mockRestore();
  }
}
