import type { Command } from 'commander';
import { print } from './api-command.js';
import { openOffline, withDatabase } from './offline.js';

/** `gatehouse vault rotate-master-key`: offline, on the database itself. */
export function vaultCommands(program: Command): void {
  const vault = program.command('vault').description('the vault that seals every secret');
  withDatabase(vault.command('rotate-master-key'))
    .description('re-wrap every data key under a new master key; nothing is re-encrypted and nothing is lost')
    .option(
      '--new-key-file <file>',
      'the new key (64 hex characters); required when the current key comes from GATEHOUSE_MASTER_KEY or a mounted file',
    )
    .action(async (o: { dataDir?: string; databaseUrl?: string; newKeyFile?: string }) => {
      const { rotateMasterKey } = await import('./rotate.js');
      const { db, dataDir } = await openOffline(o);
      try {
        print(await rotateMasterKey(db, dataDir, o.newKeyFile));
        return;
      } finally {
        await db.close();
      }
    });
}
