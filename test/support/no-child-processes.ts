import childProcess from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';

/**
 * Setup file of the `unit` project, which starts no process: a test that needs a real peer
 * (s3rver, Azurite, Ceph, sshd) or a command-line tool (age, xlsx2csv, ssh-keygen) belongs
 * to the `integration` project, so every way of starting one throws here.
 */
for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork'] as const) {
  Object.assign(childProcess, {
    [name]: () => {
      throw new Error(
        `A unit test starts no process (child_process.${name} was called): list this test file in integrationTests in vitest.config.ts.`,
      );
    },
  });
}
// The named exports (`import { spawn } from 'node:child_process'`) follow the default one.
syncBuiltinESMExports();
