import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from './index.js';

/** Every command below `cmd`, with its path (`devices create`). */
function commandsOf(cmd: Command, prefix = ''): { path: string; cmd: Command }[] {
  return cmd.commands.flatMap((c) => {
    const path = `${prefix}${c.name()}`;
    return [{ path, cmd: c }, ...commandsOf(c, `${path} `)];
  });
}

describe('gatehouse --help', () => {
  const commands = commandsOf(buildProgram());

  it('describes every command and every option of every command', () => {
    const missing = commands.flatMap(({ path, cmd }) => [
      ...(cmd.description() === '' ? [`${path}: the command`] : []),
      ...cmd.options.filter((o) => o.description === '').map((o) => `${path}: ${o.flags}`),
    ]);
    expect(missing).toEqual([]);
  });

  it('every command that prints an API answer takes --json and -o json', () => {
    const withoutJson = commands
      .filter(({ cmd }) => cmd.commands.length === 0 && cmd.options.some((o) => o.long === '--url'))
      .filter(({ cmd }) => !cmd.options.some((o) => o.long === '--json'))
      .map(({ path }) => path);
    // These write a file, a stream, a verdict on a file or a program's output, not an answer to print.
    expect(withoutJson.sort()).toEqual([
      'config ssh',
      'export',
      'login',
      'rdp',
      'sessions recording',
      'sessions signing-key',
      'sessions verify',
      'setup',
      'ssh',
    ]);
  });

  it('takes a secret only from standard input or a file, never as an argument (shell history, ps)', () => {
    const asArgument = commands.flatMap(({ path, cmd }) =>
      cmd.options
        .filter((o) => /secret|password|token|passphrase|private-key/.test(o.long ?? '') && (o.required || o.optional))
        .filter((o) => !o.long?.endsWith('-file'))
        .map((o) => `${path}: ${o.flags}`),
    );
    expect(asArgument).toEqual([]);
    const sso = commands.find((c) => c.path === 'sso set')?.cmd.options.map((o) => o.long);
    expect(sso).toEqual(expect.arrayContaining(['--client-secret-stdin', '--client-secret-file', '--group-role', '--enable', '--disable']));
  });
});
