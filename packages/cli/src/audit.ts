import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ValidationError } from '@gatehouse/core/errors';
import type { AuditEventList, AuditEventListed, AuditEventQuery } from '@gatehouse/api';
import { Option, type Command } from 'commander';
import { client, print, withClient } from './api-command.js';
import type { ClientOptions } from './client.js';
import { openOffline, withDatabase } from './offline.js';
import { pageOptions, wholeNumberOption } from './options.js';
import { jsonOutput, localTime, printList } from './output.js';

/** The checkpoint in `file`, refused unless it was signed with the checkpoint key. */
async function trustedCheckpoint(file: string, publicKeyFile: string | undefined, dataDir: string | undefined) {
  const { checkAuditCheckpoint, readAuditCheckpoint } = await import('@gatehouse/core');
  let publicKeyPem: string;
  if (publicKeyFile !== undefined) publicKeyPem = readFileSync(publicKeyFile, 'utf8');
  else {
    const { loadAuditCheckpointKey } = await import('@gatehouse/server');
    publicKeyPem = loadAuditCheckpointKey({
      keyFile: process.env.GATEHOUSE_AUDIT_CHECKPOINT_KEY_FILE,
      dataDir: path.resolve(dataDir ?? process.env.GATEHOUSE_DATA_DIR ?? './data'),
      create: false,
    }).publicKeyPem;
  }
  const found = readAuditCheckpoint(readFileSync(file, 'utf8'));
  const check = found.ok ? checkAuditCheckpoint(found.checkpoint, publicKeyPem) : found;
  if (!check.ok) {
    const message = `The checkpoint in ${file} cannot be trusted: ${check.reason}.`;
    throw new ValidationError(message, [{ path: '--checkpoint', message }]);
  }
  return check.checkpoint;
}

/** An event's target as a person reads it: `account Lab/web-1:root`; its id when it has no name (--json keeps both). */
export function auditTarget(e: AuditEventListed): string {
  if (!e.targetType) return '-';
  return `${e.targetType} ${e.targetName ?? e.targetId ?? ''}`.trimEnd();
}

/** `gatehouse audit list` through the API; `audit verify|export` offline, on the database itself. */
export function auditCommands(program: Command): void {
  const audit = program.command('audit').description('the audit log');
  withClient(audit.command('list'))
    .description('audit events, newest first, each target by its name (administrators and auditors)')
    .option('--action <text>', 'only actions holding this text, case-insensitive ("login" finds auth.login)')
    .option('--actor <name>', 'only events of this user name')
    .option('--target-id <id>', 'only events about this id')
    .addOption(new Option('--outcome <outcome>', 'only this outcome').choices(['success', 'failure', 'denied']))
    .option(
      '--before <seq>',
      'only events before this sequence number (the next page)',
      wholeNumberOption("an event's sequence number (the # column)", 1),
    )
    .option('--limit <n>', 'page size', pageOptions(1000).limit, 50)
    .action(
      async (
        o: ClientOptions & {
          action?: string;
          actor?: string;
          targetId?: string;
          outcome?: 'success' | 'failure' | 'denied';
          before?: number;
          limit: number;
        },
      ) => {
        const query: AuditEventQuery = { limit: o.limit };
        if (o.action !== undefined) query.actionContains = o.action;
        if (o.actor !== undefined) query.actor = o.actor;
        if (o.targetId !== undefined) query.targetId = o.targetId;
        if (o.outcome !== undefined) query.outcome = o.outcome;
        if (o.before !== undefined) query.beforeSeq = o.before;
        const q = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]));
        const answer = await client(o).call<AuditEventList>('GET', `/audit/events?${q.toString()}`);
        printList(answer, {
          columns: [
            ['#', (e) => String(e.seq)],
            ['TIME', (e) => localTime(e.at)],
            ['ACTOR', (e) => e.actorName],
            ['ACTION', (e) => e.action],
            ['TARGET', auditTarget],
            ['OUTCOME', (e) => e.outcome],
          ],
          noun: 'event',
          empty: 'No audit event matches.',
        });
        const last = answer.items.at(-1);
        if (last && answer.items.length === query.limit && !jsonOutput()) print(`Older: --before ${last.seq}`);
      },
    );
  withDatabase(audit.command('verify'))
    .description('check the hash chain of the whole audit log (reads the database directly)')
    .option(
      '--checkpoint <file>',
      'also check the chain still holds a signed checkpoint kept outside the database: a checkpoint, the checkpoint file (its last line) or a break-glass manifest',
    )
    .option(
      '--public-key <file>',
      "the checkpoint key's public half (PEM; GET /api/v1/audit/checkpoint shows it); default: the server's key (GATEHOUSE_AUDIT_CHECKPOINT_KEY_FILE or <data-dir>/audit-checkpoint.key)",
    )
    .action(async (o: { dataDir?: string; databaseUrl?: string; checkpoint?: string; publicKey?: string }) => {
      const { verifyAuditChain } = await import('@gatehouse/db');
      const checkpoint = o.checkpoint === undefined ? undefined : await trustedCheckpoint(o.checkpoint, o.publicKey, o.dataDir);
      const { db } = await openOffline(o);
      try {
        const result = await verifyAuditChain(db, {
          checkpoint,
          onProgress: (n) => process.stderr.isTTY && process.stderr.write(`\rchecked ${n} events`),
        });
        if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
        if (result.ok) {
          print(`Audit chain intact: ${result.events} events, head ${result.headHash}`);
          if (result.checkpoint) {
            print(`It holds the checkpoint of ${result.checkpoint.at} (event ${result.checkpoint.seq}, key ${result.checkpoint.keyId}).`);
          }
          return;
        }
        print(`Audit chain BROKEN at event ${result.seq}: ${result.problem}`);
        process.exitCode = 2;
      } finally {
        await db.close();
      }
    });
  withDatabase(audit.command('export'))
    .description('write every audit event as JSON lines, oldest first (reads the database directly)')
    .action(async (o: { dataDir?: string; databaseUrl?: string }) => {
      const { allAuditEvents } = await import('@gatehouse/db');
      const { db } = await openOffline(o);
      try {
        for await (const e of allAuditEvents(db)) {
          if (!process.stdout.write(`${JSON.stringify(e)}\n`)) await new Promise((resolve) => process.stdout.once('drain', resolve));
        }
        return;
      } finally {
        await db.close();
      }
    });
}
