import { createWriteStream } from 'node:fs';
import type { FileOperation, FileOperationList, GatewaySession, SessionListQuery, SessionPage } from '@gatehouse/api';
import { Option, type Command } from 'commander';
import { client, print, withClient, withConnection } from './api-command.js';
import type { ClientOptions } from './client.js';
import { NameResolver } from './names.js';
import { pageOptions } from './options.js';
import { cell, localTime, printList, type Column } from './output.js';
import { formatBytes } from './prompt.js';
import { formatDuration } from './runbook-report.js';
import { sessionVerifyCommands, writeSignatureBeside } from './session-verify.js';

const FILE_COLUMNS: Column<FileOperation>[] = [
  ['AT', (f) => localTime(f.at)],
  ['OPERATION', (f) => f.op],
  ['PATH', (f) => (f.target === null ? f.path : `${f.path} → ${f.target}`)],
  ['SIZE', (f) => formatBytes(f.bytes)],
  ['RESULT', (f) => (f.result === 'failure' ? `failure: ${cell(f.error)}` : f.result)],
];

/** `gatehouse sessions …`: sessions through gateways and their recordings. */
export function sessionsCommands(program: Command): void {
  const sessions = program.command('sessions').description('sessions through gateways: who, where, when, and what was recorded');
  withClient(sessions.command('list'))
    .description('sessions, newest first')
    .option('--device <device>', 'only sessions on this device (project/device, name or id)')
    .option('--user <user>', "only this user's sessions (user name or id)")
    .addOption(
      new Option('--result <result>', 'only live (active), successful or failed sessions').choices(['active', 'success', 'failure']),
    )
    .option('--limit <n>', 'page size', pageOptions(500).limit, 50)
    .option('--offset <n>', 'first row', pageOptions(500).offset, 0)
    .action(
      async (
        o: ClientOptions & { device?: string; user?: string; result?: 'active' | 'success' | 'failure'; limit: number; offset: number },
      ) => {
        const api = client(o);
        const names = new NameResolver(api);
        const query: SessionListQuery = { limit: o.limit, offset: o.offset };
        if (o.device !== undefined) query.deviceId = (await names.anyDevice('--device', o.device)).id;
        if (o.user !== undefined) query.userId = (await names.user('--user', o.user)).id;
        if (o.result !== undefined) query.result = o.result;
        const q = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]));
        printList(await api.call<SessionPage>('GET', `/sessions?${q.toString()}`), {
          columns: [
            ['STARTED', (s) => localTime(s.startedAt)],
            ['DURATION', (s) => (s.endedAt === null ? 'live' : formatDuration(Date.parse(s.endedAt) - Date.parse(s.startedAt)))],
            ['USER', (s) => s.username],
            ['DEVICE', (s) => `${s.projectName}/${s.deviceName}`],
            ['ACCOUNT', (s) => s.accountUsername || '-'],
            ['KIND', (s) => s.kind ?? '-'],
            [
              'RESULT',
              (s) =>
                s.result === 'failure' && s.reason ? `failure: ${s.reason.length > 40 ? `${s.reason.slice(0, 39)}…` : s.reason}` : s.result,
            ],
            // Where the recording (an SFTP session's operation log) lives: the server's disk, or the recordings' object store.
            ['RECORDING', (s) => (s.recordingStore ? 'store' : s.recorded ? 'local' : '-')],
            ['ID', (s) => s.id],
          ],
          noun: 'session',
          offset: o.offset,
        });
      },
    );
  withClient(sessions.command('show <id>'))
    .description('a session: who, where, when, bytes, result')
    .action(async (id: string, o: ClientOptions) =>
      print(await client(o).call<GatewaySession>('GET', `/sessions/${encodeURIComponent(id)}`)),
    );
  withClient(sessions.command('files <id>'))
    .description("the session's SFTP/SCP operations: path, size, direction, result")
    .action(async (id: string, o: ClientOptions) =>
      printList(await client(o).call<FileOperationList>('GET', `/sessions/${encodeURIComponent(id)}/file-operations`), {
        columns: FILE_COLUMNS,
        noun: 'file operation',
      }),
    );
  withConnection(sessions.command('recording <id>'))
    .description("write the recording (a terminal's: asciicast v2, asciinema play <file>) to standard output or --output")
    .option('--output <file>', "write it to this file (mode 0600) instead, and the server's signature beside it as <file>.sig")
    .action(async (id: string, o: ClientOptions & { output?: string }) => {
      const out = o.output ? createWriteStream(o.output, { mode: 0o600 }) : process.stdout;
      await client(o).download(`/sessions/${encodeURIComponent(id)}/recording`, out);
      if (o.output)
        await new Promise<void>((resolve, reject) =>
          (out as ReturnType<typeof createWriteStream>).end(() => resolve()).once('error', reject),
        );
      if (o.output && !(await writeSignatureBeside(o.output, id, o)))
        process.stderr.write(`The recording is not signed yet (no ${o.output}.sig): download it again once the session has ended.\n`);
    });
  sessionVerifyCommands(sessions);
}
