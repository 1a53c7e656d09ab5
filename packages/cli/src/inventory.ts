import type {
  Account,
  AccountCreate,
  AccountList,
  AccountPatch,
  AccountRevealBody,
  RevealedAccount,
  Device,
  DeviceCreate,
  ImportResult,
  InventoryExport,
  DeviceList,
  DevicePatch,
  Project,
  ProjectCreate,
  ProjectList,
  ProjectApprovers,
  ProjectApproversPut,
  ProjectPatch,
} from '@gatehouse/api';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { callApi, client, deleted, print, withClient } from './api-command.js';
import type { ClientOptions } from './client.js';
import { NameResolver } from './names.js';
import { progress, readStdin } from './prompt.js';

/** `--maintenance-required true|false`: reached only inside an approved maintenance window. */
const maintenanceRequiredOption = () =>
  new Option('--maintenance-required <bool>', 'reachable only inside an approved maintenance window').choices(['true', 'false']);

const booleanOf = (v: string | undefined) => (v === undefined ? undefined : v === 'true');

/** The device options of `devices create` and `devices update`, as commander gives them. */
interface DeviceOptions {
  provider?: string;
  protocol?: string[];
  publicIp?: string;
  privateIp?: string;
  urlPort?: string;
  accessType?: string;
  tag?: string[];
}

/**
 * The fields both device commands send. The choices go as typed on the command line: the
 * server checks them and names a wrong one.
 */
const deviceFields = (o: DeviceOptions) => ({
  provider: o.provider as DeviceCreate['provider'],
  protocols: o.protocol as DeviceCreate['protocols'],
  publicIp: o.publicIp,
  privateIp: o.privateIp,
  urlPort: o.urlPort,
  accessType: o.accessType as DeviceCreate['accessType'],
  tags: o.tag,
});

/** `gatehouse projects …` */
export function projectsCommands(program: Command): void {
  const projects = program.command('projects').description('projects');
  withClient(projects.command('list')).action(async (o: ClientOptions) => print(await client(o).call<ProjectList>('GET', '/projects')));
  withClient(projects.command('create <name>'))
    .option('--description <text>')
    .action(async (name: string, o: ClientOptions & { description?: string }) =>
      print(await client(o).call<Project>('POST', '/projects', { name, description: o.description } satisfies ProjectCreate)),
    );
  withClient(projects.command('show <id>')).action(async (id: string, o: ClientOptions) =>
    print(await client(o).call<Project>('GET', `/projects/${encodeURIComponent(id)}`)),
  );
  withClient(projects.command('update <id>'))
    .description('change the fields given')
    .option('--name <name>')
    .option('--description <text>')
    .addOption(maintenanceRequiredOption())
    .action(async (id: string, o: ClientOptions & { name?: string; description?: string; maintenanceRequired?: string }) =>
      print(
        await client(o).call<Project>('PATCH', `/projects/${encodeURIComponent(id)}`, {
          name: o.name,
          description: o.description,
          maintenanceRequired: booleanOf(o.maintenanceRequired),
        } satisfies ProjectPatch),
      ),
    );
  withClient(projects.command('approvers <project>'))
    .description('who may approve maintenance windows for a project (name or id); --set replaces them')
    .option('--set <users>', 'user names or ids, comma separated ("" for none)')
    .action(async (value: string, o: ClientOptions & { set?: string }) => {
      const api = client(o);
      const names = new NameResolver(api);
      const route = `/projects/${encodeURIComponent((await names.project('<project>', value)).id)}/approvers`;
      if (o.set === undefined) return print(await api.call<ProjectApprovers>('GET', route));
      const userIds: string[] = [];
      for (const name of o.set
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''))
        userIds.push((await names.user('--set', name)).id);
      return print(await api.call<ProjectApprovers>('PUT', route, { userIds } satisfies ProjectApproversPut));
    });
  withClient(projects.command('delete <id>')).action(
    callApi('DELETE', ([id]) => `/projects/${encodeURIComponent(id ?? '')}`, undefined, deleted('Project')),
  );
}

/** `gatehouse devices …`. Returns the group. */
export function devicesCommands(program: Command): Command {
  const devices = program.command('devices').description('devices');
  withClient(devices.command('list'))
    .option('--project <id>')
    .option('--search <text>')
    .option('--limit <n>', 'page size', '50')
    .option('--offset <n>', 'first row', '0')
    .action(async (o: ClientOptions & { project?: string; search?: string; limit: string; offset: string }) => {
      const q = new URLSearchParams({ limit: o.limit, offset: o.offset });
      if (o.project !== undefined) q.set('projectId', o.project);
      if (o.search !== undefined) q.set('search', o.search);
      print(await client(o).call<DeviceList>('GET', `/devices?${q.toString()}`));
    });
  withClient(devices.command('create <name>'))
    .requiredOption('--project <id>')
    .requiredOption('--provider <provider>', 'aws, azure, gcp, on-prem or other')
    .option('--protocol <p...>', 'ssh, sftp, rdp, vnc, …')
    .option('--public-ip <ip>')
    .option('--private-ip <ip>')
    .option('--url-port <url>')
    .option('--access-type <type>')
    .option('--tag <tag...>')
    .action(async (name: string, o: ClientOptions & DeviceOptions & { project: string; provider: string }) => {
      const f = deviceFields(o);
      const body = { ...f, projectId: o.project, name, protocols: f.protocols ?? [], tags: f.tags ?? [] } satisfies DeviceCreate;
      print(await client(o).call<Device>('POST', '/devices', body));
    });
  withClient(devices.command('show <id>')).action(async (id: string, o: ClientOptions) => {
    print(await client(o).call<Device>('GET', `/devices/${encodeURIComponent(id)}`));
  });
  withClient(devices.command('update <id>'))
    .description('change the fields given; --protocol and --tag replace the lists')
    .option('--name <name>')
    .option('--project <id>', 'move to another project')
    .option('--provider <provider>')
    .option('--protocol <p...>')
    .option('--public-ip <ip>')
    .option('--private-ip <ip>')
    .option('--url-port <url>')
    .option('--access-type <type>')
    .option('--tag <tag...>')
    .addOption(maintenanceRequiredOption())
    .action(async (id: string, o: ClientOptions & DeviceOptions & { name?: string; project?: string; maintenanceRequired?: string }) => {
      const body = {
        ...deviceFields(o),
        name: o.name,
        projectId: o.project,
        maintenanceRequired: booleanOf(o.maintenanceRequired),
      } satisfies DevicePatch;
      print(await client(o).call<Device>('PATCH', `/devices/${encodeURIComponent(id)}`, body));
    });
  withClient(devices.command('delete <id>')).action(
    callApi('DELETE', ([id]) => `/devices/${encodeURIComponent(id ?? '')}`, undefined, deleted('Device')),
  );
  return devices;
}

/** `gatehouse accounts …`: secrets are read from standard input or files, never from the command line. Returns the group. */
export function accountsCommands(program: Command): Command {
  const accounts = program.command('accounts').description('accounts on devices');
  withClient(accounts.command('list <deviceId>')).action(async (deviceId: string, o: ClientOptions) => {
    print(await client(o).call<AccountList>('GET', `/devices/${encodeURIComponent(deviceId)}/accounts`));
  });
  withClient(accounts.command('create <deviceId> <username>'))
    .option('--password-stdin', 'read the password from standard input')
    .option('--private-key-file <file>', 'PEM private key file')
    .option('--pem-file-name <name>', 'the PEM file name to show in break glass (default: the key file name)')
    .action(
      async (
        deviceId: string,
        username: string,
        o: ClientOptions & { passwordStdin?: boolean; privateKeyFile?: string; pemFileName?: string },
      ) => {
        const body: AccountCreate = { deviceId, username };
        if (o.passwordStdin) body.password = await readStdin();
        if (o.privateKeyFile) {
          body.privateKey = readFileSync(o.privateKeyFile, 'utf8');
          body.pemFileName = o.pemFileName ?? path.basename(o.privateKeyFile);
        }
        print(await client(o).call<Account>('POST', '/accounts', body));
      },
    );
  withClient(accounts.command('show <accountId>')).action(async (accountId: string, o: ClientOptions) => {
    print(await client(o).call<Account>('GET', `/accounts/${encodeURIComponent(accountId)}`));
  });
  withClient(accounts.command('update <accountId>'))
    .description('change the fields given; secrets are read from stdin or files, never from the command line')
    .option('--username <name>')
    .option('--password-stdin', 'read the new password from standard input')
    .option('--clear-password', 'remove the stored password')
    .option('--private-key-file <file>', 'a new PEM private key')
    .option('--pem-file-name <name>')
    .action(
      async (
        accountId: string,
        o: ClientOptions & {
          username?: string;
          passwordStdin?: boolean;
          clearPassword?: boolean;
          privateKeyFile?: string;
          pemFileName?: string;
        },
      ) => {
        const body: AccountPatch = { username: o.username, pemFileName: o.pemFileName };
        if (o.passwordStdin) body.password = await readStdin();
        if (o.clearPassword) body.password = null;
        if (o.privateKeyFile) {
          body.privateKey = readFileSync(o.privateKeyFile, 'utf8');
          body.pemFileName = o.pemFileName ?? path.basename(o.privateKeyFile);
        }
        print(await client(o).call<Account>('PATCH', `/accounts/${encodeURIComponent(accountId)}`, body));
      },
    );
  withClient(accounts.command('reveal <accountId>'))
    .requiredOption('--reason <text>', 'why you need the secret (audited)')
    .action(async (accountId: string, o: ClientOptions & { reason: string }) => {
      const body: AccountRevealBody = { reason: o.reason };
      print(await client(o).call<RevealedAccount>('POST', `/accounts/${encodeURIComponent(accountId)}/reveal`, body));
    });
  withClient(accounts.command('delete <accountId>')).action(
    callApi('DELETE', ([id]) => `/accounts/${encodeURIComponent(id ?? '')}`, undefined, deleted('Account')),
  );
  return accounts;
}

/** `gatehouse import <file>`: all rows or none. */
export function importCommand(program: Command): void {
  withClient(program.command('import <file>'))
    .description('import projects, devices and accounts from CSV or JSON; all rows or none')
    .option('--dry-run', 'check every row and write nothing')
    .action(async (file: string, o: ClientOptions & { dryRun?: boolean }) => {
      const isCsv = file.toLowerCase().endsWith('.csv');
      const bar = progress(`Uploading ${path.basename(file)}`);
      try {
        const result = await client(o).call<ImportResult>('POST', `/inventory/import?dryRun=${o.dryRun ? 'true' : 'false'}`, undefined, {
          file,
          contentType: isCsv ? 'text/csv' : 'application/json',
          onProgress: (sent, total) => bar.update(sent, total),
        });
        bar.end('Imported.');
        print(result);
        return;
      } catch (error) {
        bar.end('Import refused; nothing was written.');
        throw error;
      }
    });
}

/** `gatehouse export`: the inventory, secrets masked. */
export function exportCommand(program: Command): void {
  withClient(program.command('export'))
    .description('export the inventory (secrets masked)')
    .addOption(new Option('--format <format>').choices(['csv', 'json']).default('csv'))
    .action(async (o: ClientOptions & { format: 'csv' | 'json' }) => {
      print(await client(o).call<InventoryExport>('GET', `/inventory/export?format=${o.format}`));
    });
}
