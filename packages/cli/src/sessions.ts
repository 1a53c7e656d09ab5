import { createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { callApi, client, withClient } from './api-command.js';
import type { ClientOptions } from './client.js';

/** `gatehouse sessions …`: sessions through gateways and their recordings. */
export function sessionsCommands(program: Command): void {
  const sessions = program.command('sessions').description('sessions through gateways: who, where, when, and what was recorded');
  withClient(sessions.command('list'))
    .option('--device <id>')
    .option('--user <id>')
    .option('--limit <n>', 'page size', '50')
    .option('--offset <n>', 'first row', '0')
    .action(
      callApi('GET', (_a, o) => {
        const q = new URLSearchParams({ limit: String(o.limit), offset: String(o.offset) });
        if (typeof o.device === 'string') q.set('deviceId', o.device);
        if (typeof o.user === 'string') q.set('userId', o.user);
        return `/sessions?${q.toString()}`;
      }),
    );
  withClient(sessions.command('show <id>')).action(callApi('GET', ([id]) => `/sessions/${encodeURIComponent(id ?? '')}`));
  withClient(sessions.command('files <id>'))
    .description("the session's SFTP/SCP operations: path, size, direction, result")
    .action(callApi('GET', ([id]) => `/sessions/${encodeURIComponent(id ?? '')}/file-operations`));
  withClient(sessions.command('recording <id>'))
    .description('write the terminal recording (asciicast v2: asciinema play <file>) to standard output or --output')
    .option('--output <file>')
    .action(async (id: string, o: ClientOptions & { output?: string }) => {
      const out = o.output ? createWriteStream(o.output, { mode: 0o600 }) : process.stdout;
      await client(o).download(`/sessions/${encodeURIComponent(id)}/recording`, out);
      if (o.output)
        await new Promise<void>((resolve, reject) =>
          (out as ReturnType<typeof createWriteStream>).end(() => resolve()).once('error', reject),
        );
    });
}
