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
import { client, print, withClient, withConnection } from './api-command.js';
import type { ClientOptions } from './client.js';
import { NameResolver } from './names.js';
import { pageOptions } from './options.js';
import { cell, count, jsonOutput, printDeleted, printList, type Column } from './output.js';
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
  protocols: o.protocol,
  publicIp: o.publicIp,
  privateIp: o.privateIp,
  urlPort: o.urlPort,
  accessType: o.accessType as DeviceCreate['accessType'],
  tags: o.tag,
});

/** The table of `projects list`. */
const projectColumns: Column<Project>[] = [
  ['NAME', (p) => p.name],
  ['DESCRIPTION', (p) => cell(p.description)],
  ['MAINTENANCE', (p) => (p.maintenanceRequired ? 'required' : '-')],
  ['ID', (p) => p.id],
];

/** `gatehouse projects …` */
export function projectsCommands(program: Command): void {
  const projects = program.command('projects').description('projects: the folders devices are kept in');
  withClient(projects.command('list'))
    .description('list the projects you can see')
    .action(async (o: ClientOptions) =>
      printList(await client(o).call<ProjectList>('GET', '/projects'), {
        columns: projectColumns,
        noun: 'project',
        empty: 'No projects yet: ./gatehouse projects create <name> makes one.',
      }),
    );
  withClient(projects.command('create <name>'))
    .description('create a project')
    .option('--description <text>', 'what the project holds')
    .action(async (name: string, o: ClientOptions & { description?: string }) =>
      print(await client(o).call<Project>('POST', '/projects', { name, description: o.description } satisfies ProjectCreate)),
    );
  withClient(projects.command('show <project>'))
    .description('a project (name or id)')
    .action(async (value: string, o: ClientOptions) => print(await new NameResolver(client(o)).project('<project>', value)));
  withClient(projects.command('update <project>'))
    .description('change the fields given of a project (name or id)')
    .option('--name <name>', 'a new name')
    .option('--description <text>', 'a new description')
    .addOption(maintenanceRequiredOption())
    .action(async (value: string, o: ClientOptions & { name?: string; description?: string; maintenanceRequired?: string }) => {
      const api = client(o);
      const project = await new NameResolver(api).project('<project>', value);
      print(
        await api.call<Project>('PATCH', `/projects/${encodeURIComponent(project.id)}`, {
          name: o.name,
          description: o.description,
          maintenanceRequired: booleanOf(o.maintenanceRequired),
        } satisfies ProjectPatch),
      );
    });
  withClient(projects.command('approvers <project>'))
    .description('who may approve maintenance windows for a project (name or id); --set replaces them')
    .option('--set <users>', 'user names or ids, comma separated ("" for none)')
    .action(async (value: string, o: ClientOptions & { set?: string }) => {
      const api = client(o);
      const names = new NameResolver(api);
      const route = `/projects/${encodeURIComponent((await names.project('<project>', value)).id)}/approvers`;
      const approvers = async () => {
        if (o.set === undefined) return api.call<ProjectApprovers>('GET', route);
        const userIds: string[] = [];
        for (const name of o.set
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== ''))
          userIds.push((await names.user('--set', name)).id);
        return api.call<ProjectApprovers>('PUT', route, { userIds } satisfies ProjectApproversPut);
      };
      const answer = await approvers();
      if (jsonOutput()) return print(answer);
      printList(
        { items: answer.users },
        {
          columns: [
            ['USER', (u) => u.username],
            ['ID', (u) => u.id],
          ],
          noun: 'approver',
          empty: 'No approvers: only administrators approve.',
        },
      );
    });
  withClient(projects.command('delete <project>'))
    .description('delete an empty project (name or id)')
    .action(async (value: string, o: ClientOptions) => {
      const api = client(o);
      const project = await new NameResolver(api).project('<project>', value);
      await api.call('DELETE', `/projects/${encodeURIComponent(project.id)}`);
      printDeleted('Project', project.name, project.id);
    });
}

/** The options `devices create` and `devices update` share, with their help. */
function deviceOptions(cmd: Command, change = ''): Command {
  return cmd
    .option('--protocol <p...>', `protocols it is reached with: ssh, sftp, rdp, vnc, … (several: --protocol ssh sftp)${change}`)
    .option('--public-ip <ip>', 'its public IP address')
    .option('--private-ip <ip>', 'its private IP address (the one gateways dial when it has one)')
    .option('--url-port <url>', 'a URL or port to show with it, e.g. https://web-1.example.net:8443')
    .option('--access-type <type>', 'how Gatehouse reaches it: gateway (the default), direct, tunnel or agent')
    .option('--tag <tag...>', `tags; gateway-<segment> puts it in a gateway's segment${change}`);
}

/** `gatehouse devices …`. Returns the group. */
export function devicesCommands(program: Command): Command {
  const devices = program.command('devices').description('devices: the machines users connect to');
  withClient(devices.command('list'))
    .description('list the devices you can see, by name')
    .option('--project <project>', 'only this project (name or id)')
    .option('--search <text>', 'only devices whose name or IP address contains this')
    .option('--limit <n>', 'page size', pageOptions(500).limit, 50)
    .option('--offset <n>', 'first row', pageOptions(500).offset, 0)
    .action(async (o: ClientOptions & { project?: string; search?: string; limit: number; offset: number }) => {
      const api = client(o);
      const names = new NameResolver(api);
      const q = new URLSearchParams({ limit: String(o.limit), offset: String(o.offset) });
      if (o.project !== undefined) q.set('projectId', (await names.project('--project', o.project)).id);
      if (o.search !== undefined) q.set('search', o.search);
      const page = await api.call<DeviceList>('GET', `/devices?${q.toString()}`);
      const projectNames = new Map<string, string>();
      for (const d of page.items) projectNames.set(d.projectId, (await names.project('--project', d.projectId)).name);
      printList(page, {
        columns: [
          ['PROJECT', (d) => projectNames.get(d.projectId) ?? d.projectId],
          ['NAME', (d) => d.name],
          ['PROVIDER', (d) => d.provider],
          ['PROTOCOLS', (d) => cell(d.protocols)],
          ['ADDRESS', (d) => d.privateIp ?? d.publicIp ?? d.urlPort ?? '-'],
          ['TAGS', (d) => cell(d.tags)],
          ['ID', (d) => d.id],
        ],
        noun: 'device',
        offset: o.offset,
        empty:
          o.project === undefined && o.search === undefined
            ? 'No devices yet: ./gatehouse devices create or ./gatehouse import adds them.'
            : undefined,
      });
    });
  deviceOptions(
    withClient(devices.command('create <name>'))
      .description('add a device to a project')
      .requiredOption('--project <project>', 'the project it belongs to (name or id)')
      .requiredOption('--provider <provider>', 'where it runs: aws, azure, gcp, on-prem or other'),
  ).action(async (name: string, o: ClientOptions & DeviceOptions & { project: string; provider: string }) => {
    const api = client(o);
    const project = await new NameResolver(api).project('--project', o.project);
    const f = deviceFields(o);
    const body = { ...f, projectId: project.id, name, protocols: f.protocols ?? [], tags: f.tags ?? [] } satisfies DeviceCreate;
    print(await api.call<Device>('POST', '/devices', body));
  });
  withClient(devices.command('show <device>'))
    .description('a device: project/device, its name when only one device has it, or its id')
    .action(async (value: string, o: ClientOptions) => print(await new NameResolver(client(o)).anyDevice('<device>', value)));
  deviceOptions(
    withClient(devices.command('update <device>'))
      .description('change the fields given of a device (project/device, name or id); --protocol and --tag replace the lists')
      .option('--name <name>', 'a new name')
      .option('--project <project>', 'move it to another project (name or id)')
      .option('--provider <provider>', 'aws, azure, gcp, on-prem or other'),
    ' (replaces the list)',
  )
    .addOption(maintenanceRequiredOption())
    .action(async (value: string, o: ClientOptions & DeviceOptions & { name?: string; project?: string; maintenanceRequired?: string }) => {
      const api = client(o);
      const names = new NameResolver(api);
      const device = await names.anyDevice('<device>', value);
      const body = {
        ...deviceFields(o),
        name: o.name,
        projectId: o.project === undefined ? undefined : (await names.project('--project', o.project)).id,
        maintenanceRequired: booleanOf(o.maintenanceRequired),
      } satisfies DevicePatch;
      print(await api.call<Device>('PATCH', `/devices/${encodeURIComponent(device.id)}`, body));
    });
  withClient(devices.command('delete <device>'))
    .description('delete a device and its accounts (project/device, name or id)')
    .action(async (value: string, o: ClientOptions) => {
      const api = client(o);
      const names = new NameResolver(api);
      const device = await names.anyDevice('<device>', value);
      const label = await names.pathOf(device);
      await api.call('DELETE', `/devices/${encodeURIComponent(device.id)}`);
      printDeleted('Device', label, device.id);
    });
  return devices;
}

/** What `accounts list` shows of a secret: whether one is stored, never the secret. */
const stored = (secret: string | null) => (secret === null ? '-' : 'stored');

/** `gatehouse accounts …`: secrets are read from standard input or files, never from the command line. Returns the group. */
export function accountsCommands(program: Command): Command {
  const accounts = program
    .command('accounts')
    .description('accounts on devices (an account is <device>/<user name>, e.g. Ops/web-1/root, or its id)');
  withClient(accounts.command('list <device>'))
    .description("a device's accounts (project/device, name or id)")
    .action(async (value: string, o: ClientOptions) => {
      const api = client(o);
      const device = await new NameResolver(api).anyDevice('<device>', value);
      printList(await api.call<AccountList>('GET', `/devices/${encodeURIComponent(device.id)}/accounts`), {
        columns: [
          ['USER', (a) => a.username],
          ['PASSWORD', (a) => stored(a.password)],
          ['KEY', (a) => (a.privateKey === null ? '-' : (a.pemFileName ?? 'stored'))],
          ['ID', (a) => a.id],
        ],
        noun: 'account',
        empty: `No accounts on ${value}: ./gatehouse accounts create ${value} <user name> adds one.`,
      });
    });
  withClient(accounts.command('create <device> <username>'))
    .description('add an account to a device (project/device, name or id)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--private-key-file <file>', 'PEM private key file')
    .option('--pem-file-name <name>', 'the PEM file name to show in break glass (default: the key file name)')
    .action(
      async (
        value: string,
        username: string,
        o: ClientOptions & { passwordStdin?: boolean; privateKeyFile?: string; pemFileName?: string },
      ) => {
        const api = client(o);
        const device = await new NameResolver(api).anyDevice('<device>', value);
        const body: AccountCreate = { deviceId: device.id, username };
        if (o.passwordStdin) body.password = await readStdin();
        if (o.privateKeyFile) {
          body.privateKey = readFileSync(o.privateKeyFile, 'utf8');
          body.pemFileName = o.pemFileName ?? path.basename(o.privateKeyFile);
        }
        print(await api.call<Account>('POST', '/accounts', body));
      },
    );
  withClient(accounts.command('show <account>'))
    .description('an account (device/user, e.g. Ops/web-1/root, or its id); secrets masked')
    .action(async (value: string, o: ClientOptions) => {
      const api = client(o);
      const { id } = await new NameResolver(api).account('<account>', value);
      print(await api.call<Account>('GET', `/accounts/${encodeURIComponent(id)}`));
    });
  withClient(accounts.command('update <account>'))
    .description('change the fields given (device/user or id); secrets are read from stdin or files, never from the command line')
    .option('--username <name>', 'a new user name')
    .option('--password-stdin', 'read the new password from standard input')
    .option('--clear-password', 'remove the stored password')
    .option('--private-key-file <file>', 'a new PEM private key')
    .option('--pem-file-name <name>', 'the PEM file name to show in break glass')
    .action(
      async (
        value: string,
        o: ClientOptions & {
          username?: string;
          passwordStdin?: boolean;
          clearPassword?: boolean;
          privateKeyFile?: string;
          pemFileName?: string;
        },
      ) => {
        const api = client(o);
        const account = await new NameResolver(api).account('<account>', value);
        const body: AccountPatch = { username: o.username, pemFileName: o.pemFileName };
        if (o.passwordStdin) body.password = await readStdin();
        if (o.clearPassword) body.password = null;
        if (o.privateKeyFile) {
          body.privateKey = readFileSync(o.privateKeyFile, 'utf8');
          body.pemFileName = o.pemFileName ?? path.basename(o.privateKeyFile);
        }
        print(await api.call<Account>('PATCH', `/accounts/${encodeURIComponent(account.id)}`, body));
      },
    );
  withClient(accounts.command('reveal <account>'))
    .description("print an account's secrets (device/user or id); audited with the reason")
    .requiredOption('--reason <text>', 'why you need the secret (audited)')
    .action(async (value: string, o: ClientOptions & { reason: string }) => {
      const api = client(o);
      const account = await new NameResolver(api).account('<account>', value);
      const body: AccountRevealBody = { reason: o.reason };
      print(await api.call<RevealedAccount>('POST', `/accounts/${encodeURIComponent(account.id)}/reveal`, body));
    });
  withClient(accounts.command('delete <account>'))
    .description('delete an account (device/user, e.g. Ops/web-1/root, or its id)')
    .action(async (value: string, o: ClientOptions) => {
      const api = client(o);
      const account = await new NameResolver(api).account('<account>', value);
      await api.call('DELETE', `/accounts/${encodeURIComponent(account.id)}`);
      printDeleted('Account', account.path, account.id);
    });
  return accounts;
}

/** `12 rows: 2 projects, 4 devices and 3 accounts created; 1 device updated`. */
export function describeImport(r: ImportResult): string {
  const created = [count(r.projectsCreated, 'project'), count(r.devicesCreated, 'device'), count(r.accountsCreated, 'account')];
  const updated = [count(r.devicesUpdated, 'device'), count(r.accountsUpdated, 'account')];
  const verb = (v: string) => (r.dryRun ? `would be ${v}` : v);
  return `${count(r.rows, 'row')}: ${created.join(', ')} ${verb('created')}; ${updated.join(', ')} ${verb('updated')}.`;
}

/** `gatehouse import <file>`: all rows or none. */
export function importCommand(program: Command): void {
  withClient(program.command('import <file>'))
    .description('import projects, devices and accounts from CSV or JSON; all rows or none')
    .option('--dry-run', 'check every row, say what would be imported, and write nothing')
    .action(async (file: string, o: ClientOptions & { dryRun?: boolean }) => {
      const isCsv = file.toLowerCase().endsWith('.csv');
      const bar = progress(`Uploading ${path.basename(file)}`);
      let result: ImportResult;
      try {
        result = await client(o).call<ImportResult>('POST', `/inventory/import?dryRun=${o.dryRun ? 'true' : 'false'}`, undefined, {
          file,
          contentType: isCsv ? 'text/csv' : 'application/json',
          onProgress: (sent, total) => bar.update(sent, total),
        });
      } catch (error) {
        bar.end(o.dryRun ? 'Checked: the file would be refused; nothing was written.' : 'Import refused; nothing was written.');
        throw error;
      }
      bar.end(result.dryRun ? 'Checked (dry run): nothing was written.' : 'Imported.');
      if (jsonOutput()) return print(result);
      print(
        result.dryRun
          ? `Dry run: ${describeImport(result)} Run it again without --dry-run to import.`
          : `Imported ${describeImport(result)}`,
      );
    });
}

/** `gatehouse export`: the inventory, secrets masked. */
export function exportCommand(program: Command): void {
  withConnection(program.command('export'))
    .description('export the inventory (secrets masked) to standard output')
    .addOption(new Option('--format <format>', 'csv, or json (the rows as the API gives them)').choices(['csv', 'json']).default('csv'))
    .action(async (o: ClientOptions & { format: 'csv' | 'json' }) => {
      const answer = await client(o).call<InventoryExport>('GET', `/inventory/export?format=${o.format}`);
      process.stdout.write(`${typeof answer === 'string' ? answer : JSON.stringify(answer, null, 2)}\n`);
    });
}
