import type { ApiTokenCreate, ApiTokenCreated, OkAnswer, SetupCreate, SetupDone, SignedInAnswer, SignInBody } from '@gatehouse/api';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { GatehouseError } from '@gatehouse/core/errors';
import type { Command } from 'commander';
import { client, password, withConnection } from './api-command.js';
import type { ApiClient, ClientOptions } from './client.js';
import { printList, withOutput } from './output.js';
import { ssoLogin } from './sso-login.js';
import { credentialsFile, profileChosen, profileName, readProfiles, removeProfile, sameServer, saveProfile } from './profiles.js';

/** `gatehouse setup`, `gatehouse login` and `gatehouse profiles`: sign in and keep an API token for later commands. */
export function signInCommands(program: Command): void {
  withConnection(program.command('setup'))
    .description('create the first administrator with the one-time token the server wrote to <data-dir>/setup-token, and sign in')
    .option('--username <name>', 'administrator user name', 'admin')
    .option('--password-stdin', 'read the new password from standard input')
    .action(async (o: ClientOptions & { username: string; passwordStdin?: boolean }) => {
      const dataDir = o.dataDir ?? process.env.GATEHOUSE_DATA_DIR ?? './data';
      const tokenFile = path.join(dataDir, 'setup-token');
      if (!existsSync(tokenFile))
        throw new GatehouseError('NOT_FOUND', `${tokenFile} does not exist: set-up is done already, or the server has not started yet.`);
      // A new server: nothing saved for another one (its URL, its CA) applies.
      const api = client({ ...o, dataDir, token: undefined, ignoreProfile: true });
      refuseOtherServer(api, o.profile);
      const setupToken = readFileSync(tokenFile, 'utf8').trim();
      const pw = await password(o, 'New administrator password (at least 12 characters): ');
      await api.call<SetupDone>('POST', '/setup', { setupToken, username: o.username, password: pw } satisfies SetupCreate);
      return signIn(api, o.username, pw, undefined, `Administrator ${o.username} created.`);
    });

  withConnection(program.command('login'))
    .description('sign in and keep an API token for later commands, in a profile (several servers: one profile each)')
    .option('--username <name>', 'user name (password sign-in)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--totp <code>', 'the current authenticator code, when TOTP is enabled')
    .option('--sso', "sign in with the server's identity provider (OIDC) in a browser")
    .option('--open', 'with --sso: also open the sign-in page in the default browser')
    .action(async (o: ClientOptions & { username?: string; passwordStdin?: boolean; totp?: string; sso?: boolean; open?: boolean }) => {
      const api = client({ ...o, token: undefined, newProfile: true });
      refuseOtherServer(api, o.profile);
      if (o.sso) {
        if (o.username !== undefined || o.passwordStdin || o.totp !== undefined)
          throw new GatehouseError(
            'BAD_REQUEST',
            '--sso signs in at the identity provider: leave out --username, --password-stdin and --totp.',
          );
        return ssoLogin(api, { profile: api.profile, url: api.url, caFile: api.caFile, open: o.open === true });
      }
      if (o.open) throw new GatehouseError('BAD_REQUEST', '--open goes with --sso (sign in by the identity provider).');
      if (o.username === undefined)
        throw new GatehouseError(
          'BAD_REQUEST',
          '--username is required: gatehouse login --username <name> (or --sso to sign in by the identity provider).',
        );
      const pw = await password(o);
      return signIn(api, o.username, pw, o.totp, `Signed in as ${o.username}.`);
    });

  const profiles = program.command('profiles').description('the saved sign-ins (profiles), one per server or user; --profile picks one');
  withOutput(profiles.command('list', { isDefault: true }))
    .description('list the profiles (the one in use is marked *)')
    .action(() => {
      const current = profileName();
      const items = Object.entries(readProfiles()).map(([name, p]) => ({ name, ...p, token: p.token ? '********' : undefined }));
      printList(
        { items },
        {
          columns: [
            ['', (p) => (p.name === current ? '*' : '')],
            ['NAME', (p) => p.name],
            ['URL', (p) => p.url ?? '-'],
            ['USER', (p) => p.username ?? '-'],
            ['CA', (p) => p.ca ?? '-'],
          ],
          noun: 'profile',
          empty: `No profiles in ${credentialsFile()}: ./gatehouse setup or ./gatehouse login saves one.`,
        },
      );
    });
  withOutput(profiles.command('remove <name>'))
    .description('forget a profile (its API token stays valid on the server until it expires or is revoked)')
    .action((name: string) => {
      if (!removeProfile(profileName(name)))
        throw new GatehouseError('NOT_FOUND', `<name> ${name}: no such profile (gatehouse profiles lists them).`);
      process.stdout.write(`Profile ${name} removed from ${credentialsFile()}.\n`);
    });

  /**
   * A profile is not silently repointed to another server (the first one's sign-in would be
   * lost): naming the profile (--profile or GATEHOUSE_PROFILE) says which to use or replace.
   */
  function refuseOtherServer(api: ApiClient, explicit: string | undefined): void {
    const saved = readProfiles()[api.profile];
    if (profileChosen(explicit) || saved?.url === undefined || sameServer(saved.url, api.url)) return;
    throw new GatehouseError(
      'CONFLICT',
      `Profile ${api.profile} holds the sign-in for ${saved.url}, not ${api.url}. Keep both: add --profile <name> (e.g. --profile second) ` +
        `and use it in later commands (or set GATEHOUSE_PROFILE); replace it: --profile ${api.profile}.`,
    );
  }

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
    const file = saveProfile(api.profile, { url: api.url, token: created.token, ca: api.caFile, username });
    process.stderr.write(`${done} API token saved in ${file} (profile ${api.profile}).\n`);
    return;
  }
}
