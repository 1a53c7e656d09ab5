import { createWriteStream } from 'node:fs';
import type { FileOperationList, GatewaySession, SessionListQuery, SessionPage } from '@gatehouse/api';
import type { Command } from 'commander';
import { client, print, withClient } from './api-command.js';
import type { ClientOptions } from './client.js';

/** `gatehouse sessions …`: sessions through gateways and their recordings. */
export function sessionsCommands(program: Command): void {
  const sessions = program.command('sessions').description('sessions through gateways: who, where, when, and what was recorded');
  withClient(sessions.command('list'))
    .option('--device <id>')
    .option('--user <id>')
    .option('--limit <n>', 'page size', '50')
    .option('--offset <n>', 'first row', '0')
    .action(async (o: ClientOptions & { device?: string; user?: string; limit: string; offset: string }) => {
      const query: SessionListQuery = { limit: o.limit, offset: o.offset };
      if (o.device !== undefined) query.deviceId = o.device;
      if (o.user !== undefined) query.userId = o.user;
      const q = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]));
      print(await client(o).call<SessionPage>('GET', `/sessions?${q.toString()}`));
    });
  withClient(sessions.command('show <id>')).action(async (id: string, o: ClientOptions) =>
    print(await client(o).call<GatewaySession>('GET', `/sessions/${encodeURIComponent(id)}`)),
  );
  withClient(sessions.command('files <id>'))
    .description("the session's SFTP/SCP operations: path, size, direction, result")
    .action(async (id: string, o: ClientOptions) =>
      print(await client(o).call<FileOperationList>('GET', `/sessions/${encodeURIComponent(id)}/file-operations`)),
    );
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
