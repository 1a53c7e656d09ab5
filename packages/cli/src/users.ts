import type {
  ApiTokenList,
  Grant,
  GrantCreate,
  Role,
  SshKey,
  SshKeyCreate,
  SshKeyList,
  User,
  UserCreate,
  UserList,
  UserUpdate,
  UserUpdated,
} from '@gatehouse/api';
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { client, password, print, withClient } from './api-command.js';
import type { ApiClient, ClientOptions } from './client.js';
import { findNamed, NameResolver } from './names.js';
import { localTime, printDeleted, printList } from './output.js';
import { readStdin } from './prompt.js';

const roles = ['admin', 'operator', 'auditor'];
const userRoute = (id: string) => `/users/${encodeURIComponent(id)}`;

/** `gatehouse users …`: users, roles and grants. */
export function usersCommands(program: Command): void {
  const users = program.command('users').description('users, roles and grants (a user is named by user name or id)');
  withClient(users.command('list'))
    .description('list the users (administrators)')
    .action(async (o: ClientOptions) =>
      printList(await client(o).call<UserList>('GET', '/users'), {
        columns: [
          ['USER', (u) => u.username],
          ['ROLE', (u) => u.role],
          [
            'STATE',
            (u) => (u.disabled ? 'disabled' : u.lockedUntil !== null && Date.parse(u.lockedUntil) > Date.now() ? 'locked' : 'active'),
          ],
          ['TOTP', (u) => (u.totpEnabled ? 'yes' : 'no')],
          ['LAST SIGN-IN', (u) => localTime(u.lastLoginAt)],
          ['ID', (u) => u.id],
        ],
        noun: 'user',
      }),
    );
  withClient(users.command('create <username>'))
    .description('create a user (the password is typed, or read with --password-stdin)')
    .addOption(new Option('--role <role>', 'admin, operator or auditor').choices(roles).makeOptionMandatory())
    .option('--password-stdin', 'read the password from standard input')
    .action(async (username: string, o: ClientOptions & { role: Role; passwordStdin?: boolean }) => {
      const body = { username, role: o.role, password: await password(o, `Password for ${username}: `) } satisfies UserCreate;
      print(await client(o).call<User>('POST', '/users', body));
      return;
    });
  withClient(users.command('update <user>'))
    .description("change a user's role, state, password or authenticator")
    .addOption(new Option('--role <role>', 'a new role: admin, operator or auditor').choices(roles))
    .option('--disable', 'disable the user and end their sessions')
    .option('--enable', 'enable the user again')
    .option('--password-stdin', "set the user's password from standard input (ends their sessions and revokes their API tokens)")
    .option('--reset-totp', "remove the user's authenticator enrolment")
    .action(
      async (
        value: string,
        o: ClientOptions & { role?: Role; disable?: boolean; enable?: boolean; passwordStdin?: boolean; resetTotp?: boolean },
      ) => {
        const api = client(o);
        const user = await new NameResolver(api).user('<user>', value);
        const body: UserUpdate = { role: o.role };
        if (o.disable) body.disabled = true;
        if (o.enable) body.disabled = false;
        if (o.passwordStdin) body.password = await readStdin();
        if (o.resetTotp) body.resetTotp = true;
        print(await api.call<UserUpdated>('PATCH', userRoute(user.id), body));
      },
    );
  withClient(users.command('unlock <user>'))
    .description('lift every sign-in throttle of a user (failed password attempts from any address)')
    .action(async (value: string, o: ClientOptions) => {
      const api = client(o);
      const user = await new NameResolver(api).user('<user>', value);
      print(await api.call<User>('POST', `${userRoute(user.id)}/unlock`, {}));
    });
  withClient(users.command('delete <user>'))
    .description('delete a user')
    .action(async (value: string, o: ClientOptions) => {
      const api = client(o);
      const user = await new NameResolver(api).user('<user>', value);
      await api.call('DELETE', userRoute(user.id));
      printDeleted('User', user.username, user.id);
    });
  withClient(users.command('grant <user> <project>'))
    .description('let a user use a project (name or id), or only one device or account of it')
    .option('--device <device>', 'only this device (project/device, name or id)')
    .option('--account <account>', 'only this account (device/user, e.g. Ops/web-1/root, or its id)')
    .action(async (userValue: string, projectValue: string, o: ClientOptions & { device?: string; account?: string }) => {
      const api = client(o);
      const names = new NameResolver(api);
      const user = await names.user('<user>', userValue);
      const project = await names.project('<project>', projectValue);
      const account = o.account === undefined ? undefined : await names.account('--account', o.account);
      const device = o.device === undefined ? undefined : await names.anyDevice('--device', o.device);
      const body = {
        userId: user.id,
        projectId: project.id,
        deviceId: device?.id ?? account?.deviceId,
        accountId: account?.id,
      } satisfies GrantCreate;
      print(await api.call<Grant>('POST', '/grants', body));
    });
}

/** The `userId` query of an administrator's `--user`, or none. */
async function userQuery(api: ApiClient, value: string | undefined): Promise<string> {
  if (value === undefined) return '';
  return `?userId=${encodeURIComponent((await new NameResolver(api).user('--user', value)).id)}`;
}

/** `gatehouse ssh-keys …`: the public keys a user signs in to the gateway with. */
export function sshKeysCommands(program: Command): void {
  const sshKeys = program.command('ssh-keys').description('SSH public keys for signing in to the gateway (ssh -p 7993 you+device@…)');
  withClient(sshKeys.command('list'))
    .description('your keys (an administrator: --user for another user)')
    .option('--user <user>', "an administrator: another user's keys (user name or id)")
    .action(async (o: ClientOptions & { user?: string }) => {
      const api = client(o);
      printList(await api.call<SshKeyList>('GET', `/ssh-keys${await userQuery(api, o.user)}`), {
        columns: [
          ['NAME', (k) => k.name],
          ['ALGORITHM', (k) => k.algorithm],
          ['FINGERPRINT', (k) => k.fingerprint],
          ['LAST USED', (k) => localTime(k.lastUsedAt)],
          ['ID', (k) => k.id],
        ],
        noun: 'SSH key',
        empty: 'No SSH keys: ./gatehouse ssh-keys add ~/.ssh/id_ed25519.pub adds one.',
      });
    });
  withClient(sshKeys.command('add <pubFile>'))
    .description('register the public key in <pubFile> (a .pub file, or - for standard input)')
    .option('--name <name>', 'a name for the key (default: its comment)')
    .option('--user <user>', 'an administrator: add it to another user (user name or id)')
    .action(async (file: string, o: ClientOptions & { name?: string; user?: string }) => {
      const api = client(o);
      const publicKey = file === '-' ? await readStdin() : readFileSync(file, 'utf8');
      const userId = o.user === undefined ? undefined : (await new NameResolver(api).user('--user', o.user)).id;
      print(await api.call<SshKey>('POST', '/ssh-keys', { publicKey, name: o.name, userId } satisfies SshKeyCreate));
    });
  withClient(sshKeys.command('delete <key>'))
    .description('remove a key (its name or id)')
    .option('--user <user>', "an administrator: another user's key (user name or id)")
    .action(async (value: string, o: ClientOptions & { user?: string }) => {
      const api = client(o);
      const { items } = await api.call<SshKeyList>('GET', `/ssh-keys${await userQuery(api, o.user)}`);
      const key = findNamed('<key>', value, items, 'SSH key', 'no SSH key has that name or id (./gatehouse ssh-keys list shows them).');
      await api.call('DELETE', `/ssh-keys/${encodeURIComponent(key.id)}`);
      printDeleted('SSH key', key.name, key.id);
    });
}

/** `gatehouse tokens …`: API tokens (yours; an administrator sees everyone's). */
export function tokensCommands(program: Command): void {
  const tokens = program.command('tokens').description('API tokens: ./gatehouse login makes one; list and revoke them here');
  withClient(tokens.command('list'))
    .description("your API tokens (an administrator: everyone's); the tokens themselves are never shown again")
    .action(async (o: ClientOptions) =>
      printList(await client(o).call<ApiTokenList>('GET', '/tokens'), {
        columns: [
          ['NAME', (t) => t.name],
          ['PREFIX', (t) => `${t.prefix}…`],
          ['SCOPE', (t) => t.scope],
          ['CREATED', (t) => localTime(t.createdAt)],
          ['EXPIRES', (t) => localTime(t.expiresAt)],
          ['LAST USED', (t) => localTime(t.lastUsedAt)],
          ['ID', (t) => t.id],
        ],
        noun: 'API token',
      }),
    );
  withClient(tokens.command('revoke <token>'))
    .description('revoke an API token (its name or id): it is refused from now on')
    .action(async (value: string, o: ClientOptions) => {
      const api = client(o);
      const { items } = await api.call<ApiTokenList>('GET', '/tokens');
      const token = findNamed('<token>', value, items, 'API token', 'no API token has that name or id (gatehouse tokens list shows them).');
      await api.call('DELETE', `/tokens/${encodeURIComponent(token.id)}`);
      printDeleted('API token', token.name, token.id);
    });
}
