import type { Grant, GrantCreate, Role, SshKey, SshKeyCreate, User, UserCreate, UserList, UserUpdate, UserUpdated } from '@gatehouse/api';
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { callApi, client, deleted, password, print, withClient } from './api-command.js';
import type { ClientOptions } from './client.js';
import { readStdin } from './prompt.js';

/** `gatehouse users …`: users, roles and grants. */
export function usersCommands(program: Command): void {
  const users = program.command('users').description('users and roles');
  withClient(users.command('list')).action(async (o: ClientOptions) => print(await client(o).call<UserList>('GET', '/users')));
  withClient(users.command('create <username>'))
    .addOption(new Option('--role <role>').choices(['admin', 'operator', 'auditor']).makeOptionMandatory())
    .option('--password-stdin', 'read the password from standard input')
    .action(async (username: string, o: ClientOptions & { role: Role; passwordStdin?: boolean }) => {
      const body = { username, role: o.role, password: await password(o, `Password for ${username}: `) } satisfies UserCreate;
      print(await client(o).call<User>('POST', '/users', body));
      return;
    });
  withClient(users.command('update <userId>'))
    .addOption(new Option('--role <role>').choices(['admin', 'operator', 'auditor']))
    .option('--disable', 'disable the user and end their sessions')
    .option('--enable', 'enable the user again')
    .option('--password-stdin', "set the user's password from standard input (ends their sessions and revokes their API tokens)")
    .option('--reset-totp', "remove the user's authenticator enrolment")
    .action(
      async (
        userId: string,
        o: ClientOptions & { role?: Role; disable?: boolean; enable?: boolean; passwordStdin?: boolean; resetTotp?: boolean },
      ) => {
        const body: UserUpdate = { role: o.role };
        if (o.disable) body.disabled = true;
        if (o.enable) body.disabled = false;
        if (o.passwordStdin) body.password = await readStdin();
        if (o.resetTotp) body.resetTotp = true;
        print(await client(o).call<UserUpdated>('PATCH', `/users/${encodeURIComponent(userId)}`, body));
      },
    );
  withClient(users.command('unlock <userId>'))
    .description('lift every sign-in throttle of a user (failed password attempts from any address)')
    .action(async (userId: string, o: ClientOptions) =>
      print(await client(o).call<User>('POST', `/users/${encodeURIComponent(userId)}/unlock`, {})),
    );
  withClient(users.command('delete <userId>')).action(
    callApi('DELETE', ([id]) => `/users/${encodeURIComponent(id ?? '')}`, undefined, deleted('User')),
  );
  withClient(users.command('grant <userId> <projectId>'))
    .option('--device <id>')
    .option('--account <id>')
    .action(async (userId: string, projectId: string, o: ClientOptions & { device?: string; account?: string }) => {
      const body = { userId, projectId, deviceId: o.device, accountId: o.account } satisfies GrantCreate;
      print(await client(o).call<Grant>('POST', '/grants', body));
    });
}

/** `gatehouse ssh-keys …`: the public keys a user signs in to the gateway with. */
export function sshKeysCommands(program: Command): void {
  const sshKeys = program.command('ssh-keys').description('SSH public keys for signing in to the gateway (ssh -p 7993 you+device@…)');
  withClient(sshKeys.command('list'))
    .option('--user <userId>', "an administrator: another user's keys")
    .action(callApi('GET', (_a, o) => `/ssh-keys${typeof o.user === 'string' ? `?userId=${encodeURIComponent(o.user)}` : ''}`));
  withClient(sshKeys.command('add <pubFile>'))
    .description('register the public key in <pubFile> (a .pub file, or - for standard input)')
    .option('--name <name>', 'a name for the key (default: its comment)')
    .option('--user <userId>', 'an administrator: add it to another user')
    .action(async (file: string, o: ClientOptions & { name?: string; user?: string }) => {
      const publicKey = file === '-' ? await readStdin() : readFileSync(file, 'utf8');
      print(await client(o).call<SshKey>('POST', '/ssh-keys', { publicKey, name: o.name, userId: o.user } satisfies SshKeyCreate));
    });
  withClient(sshKeys.command('delete <keyId>')).action(
    callApi('DELETE', ([id]) => `/ssh-keys/${encodeURIComponent(id ?? '')}`, undefined, deleted('SSH key')),
  );
}
