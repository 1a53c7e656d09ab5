import type { ApiTokenCreate, ApiTokenCreated, OkAnswer, SetupCreate, SetupDone, SignedInAnswer, SignInBody } from '@gatehouse/api';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { GatehouseError } from '@gatehouse/core/errors';
import type { Command } from 'commander';
import { client, password, withClient } from './api-command.js';
import { saveCredentials, type ApiClient, type ClientOptions } from './client.js';

/** `gatehouse setup` and `gatehouse login`: sign in and keep an API token for later commands. */
export function signInCommands(program: Command): void {
  withClient(program.command('setup'))
    .description('create the first administrator with the one-time token the server wrote to <data-dir>/setup-token, and sign in')
    .option('--username <name>', 'administrator user name', 'admin')
    .option('--password-stdin', 'read the new password from standard input')
    .action(async (o: ClientOptions & { username: string; passwordStdin?: boolean }) => {
      const dataDir = o.dataDir ?? process.env.GATEHOUSE_DATA_DIR ?? './data';
      const tokenFile = path.join(dataDir, 'setup-token');
      if (!existsSync(tokenFile))
        throw new GatehouseError('NOT_FOUND', `${tokenFile} does not exist: set-up is done already, or the server has not started yet.`);
      const setupToken = readFileSync(tokenFile, 'utf8').trim();
      const pw = await password(o, 'New administrator password (at least 12 characters): ');
      const api = client({ ...o, token: undefined });
      await api.call<SetupDone>('POST', '/setup', { setupToken, username: o.username, password: pw } satisfies SetupCreate);
      return signIn(api, o.username, pw, undefined, `Administrator ${o.username} created.`);
    });

  withClient(program.command('login'))
    .description('sign in and keep an API token for later commands')
    .requiredOption('--username <name>', 'user name')
    .option('--password-stdin', 'read the password from standard input')
    .option('--totp <code>', 'the current authenticator code, when TOTP is enabled')
    .action(async (o: ClientOptions & { username: string; passwordStdin?: boolean; totp?: string }) => {
      const pw = await password(o);
      return signIn(client({ ...o, token: undefined }), o.username, pw, o.totp, `Signed in as ${o.username}.`);
    });

  async function signIn(api: ApiClient, username: string, pw: string, totp: string | undefined, done: string): Promise<void> {
    const login = await api.call<SignedInAnswer>('POST', '/auth/login', {
      username,
      password: pw,
      ...(totp ? { totp } : {}),
    } satisfies SignInBody);
    api.csrf = login.csrfToken;
    const created = await api.call<ApiTokenCreated>('POST', '/tokens', {
      name: `cli ${new Date().toISOString()}`,
      scope: 'full',
      expiresInDays: 90,
    } satisfies ApiTokenCreate);
    await api.call<OkAnswer>('POST', '/auth/logout', {});
    const file = saveCredentials({ url: api.url, token: created.token, ca: api.caFile });
    process.stderr.write(`${done} API token saved in ${file}\n`);
    return;
  }
}
