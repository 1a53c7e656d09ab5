import { readFileSync } from 'node:fs';
import type {
  BreakglassRotationCreate,
  Device,
  RunbookCreate,
  RunbookDetail,
  RunbookRunCreate,
  RunbookRunView,
  RunbookSummary,
} from '@gatehouse/api';
import { GatehouseError } from '@gatehouse/core/errors';
import { parsePasswordClasses } from '@gatehouse/core/runbooks';
import type { Command } from 'commander';
import { client, print, withClient } from './api-command.js';
import { ApiError, type ApiClient, type ClientOptions } from './client.js';
import { NameResolver } from './names.js';
import { readStdin } from './prompt.js';
import { wholeNumber } from './options.js';
import { repeatable } from './requests.js';
import { followRun } from './runbook-follow.js';
import { exitCodeOf, runDetail, runListTable } from './runbook-report.js';
import { count, jsonOutput } from './output.js';
import { formatTable } from './table.js';

const refuse = (message: string) => new GatehouseError('BAD_REQUEST', message);
const runbookRoute = (name: string) => `/runbooks/${encodeURIComponent(name)}`;

/** The options of every command that starts a run. */
interface RunOptions extends ClientOptions {
  apply?: boolean;
  privilegedAccount?: string;
  concurrency?: string;
}

/**
 * Starts a run, follows it to its end, prints it, and sets the exit code from its verdicts.
 * The server's refusals name the API field; here it is the option.
 */
async function runToEnd(api: ApiClient, route: string, body: RunbookRunCreate | BreakglassRotationCreate): Promise<void> {
  const started = await api.call<RunbookRunView>('POST', route, body).catch((error: unknown) => {
    if (!(error instanceof ApiError)) throw error;
    throw new ApiError(error.status, error.code, error.message.replaceAll('privilegedAccount', '--privileged-account'), error.issues);
  });
  const run = await followRun(api, started, { json: jsonOutput() });
  if (jsonOutput()) print(run);
  process.exitCode = exitCodeOf(run);
}

const runOptionsOf = (o: RunOptions) => ({
  ...(o.apply ? { apply: true } : {}),
  ...(o.privilegedAccount === undefined ? {} : { privilegedAccount: o.privilegedAccount }),
  ...(o.concurrency === undefined ? {} : { concurrency: wholeNumber('--concurrency', o.concurrency, 1) }),
});

/** `--input k=v` (repeatable) as the run's inputs; each name once. */
export function inputsOf(values: readonly string[]): Record<string, string> {
  const inputs: Record<string, string> = {};
  for (const value of values) {
    const eq = value.indexOf('=');
    if (eq <= 0) throw refuse(`--input ${value}: must be name=value, e.g. --input port=2222.`);
    const name = value.slice(0, eq);
    if (Object.hasOwn(inputs, name)) throw refuse(`--input ${name}: given twice.`);
    inputs[name] = value.slice(eq + 1);
  }
  return inputs;
}

function formatRunbook(r: RunbookSummary): string {
  const inputs =
    r.inputs.length === 0
      ? ['  (none)']
      : formatTable([
          ['NAME', 'TYPE', 'REQUIRED', 'DEFAULT', 'DESCRIPTION'],
          ...r.inputs.map((i) => [
            i.name,
            i.type === 'enum' ? `enum (${(i.values ?? []).join('|')})` : i.type,
            i.required ? 'yes' : 'no',
            i.default === null ? '—' : String(i.default),
            i.description ?? '',
          ]),
        ]).map((l) => `  ${l}`);
  const steps = formatTable([['ID', 'TYPE', 'TITLE'], ...r.steps.map((s) => [s.id, s.type, s.title])]).map((l) => `  ${l}`);
  return [
    `${r.name} v${r.version}${r.builtIn ? ' (built-in)' : ''}`,
    ...(r.description ? [r.description] : []),
    `sha256 ${r.sha256}${r.createdBy ? ` · added by ${r.createdBy} ${r.createdAt ?? ''}` : ''}`,
    '',
    'Inputs:',
    ...inputs,
    '',
    'Steps:',
    ...steps,
  ].join('\n');
}

/** `gatehouse runbooks …`: the documents. */
function runbooksCommands(program: Command): void {
  const runbooks = program.command('runbooks').description('runbooks: the built-in ones and those administrators add as YAML');
  withClient(runbooks.command('list'))
    .description('the runbooks: built-in and added')
    .action(async (o: ClientOptions) => {
      const { items } = await client(o).call<{ items: RunbookSummary[] }>('GET', '/runbooks');
      if (jsonOutput()) return print({ items });
      print(
        formatTable([
          ['NAME', 'VERSION', 'BUILT-IN', 'STEPS', 'DESCRIPTION'],
          ...items.map((r) => [r.name, String(r.version), r.builtIn ? 'yes' : 'no', String(r.steps.length), r.description ?? '']),
        ]).join('\n'),
      );
    });
  withClient(runbooks.command('show <name>'))
    .description('a runbook: inputs and steps, or its document (--yaml)')
    .option('--runbook-version <n>', 'this version (default: the newest)')
    .option('--yaml', 'print the document as written')
    .action(async (name: string, o: ClientOptions & { runbookVersion?: string; yaml?: boolean }) => {
      const q = o.runbookVersion === undefined ? '' : `?version=${wholeNumber('--runbook-version', o.runbookVersion, 1)}`;
      const r = await client(o).call<RunbookDetail>('GET', `${runbookRoute(name)}${q}`);
      print(o.yaml ? r.yaml.replace(/\n$/, '') : jsonOutput() ? r : formatRunbook(r));
    });
  withClient(runbooks.command('add <file>'))
    .description('add a runbook from a YAML file (- for standard input); every schema problem is named, step and field')
    .action(async (file: string, o: ClientOptions) => {
      const yaml = file === '-' ? await readStdin() : readFileSync(file, 'utf8');
      try {
        const r = await client(o).call<RunbookSummary>('POST', '/runbooks', { yaml } satisfies RunbookCreate);
        print(`Added runbook ${r.name} v${r.version} (sha256 ${r.sha256.slice(0, 12)}…, ${count(r.steps.length, 'step')}).`);
      } catch (error) {
        if (!(error instanceof ApiError && error.code === 'VALIDATION_FAILED' && error.issues.length > 0)) throw error;
        process.stderr.write(`gatehouse: ${file === '-' ? 'the document' : file} is not a valid runbook; nothing was added:\n`);
        process.stderr.write(error.issues.map((i) => `  ${i.path ? `${i.path}: ` : ''}${i.message}\n`).join(''));
        process.exitCode = 1;
      }
    });
  withClient(runbooks.command('remove <name>'))
    .description('remove a runbook an administrator added (every version); runs keep their record')
    .action(async (name: string, o: ClientOptions) => {
      await client(o).call('DELETE', runbookRoute(name));
      print(`Runbook ${name} removed.`);
    });
}

/** The devices a run names, from --device (id, project/device or a name) and --project. */
async function targetsOf(names: NameResolver, o: { device: string[]; project?: string }) {
  if (o.device.length === 0 && o.project === undefined) throw refuse('--device or --project is required: say where the runbook runs.');
  const devices: Device[] = [];
  for (const value of o.device) devices.push(await names.anyDevice('--device', value));
  const project = o.project === undefined ? undefined : await names.project('--project', o.project);
  return {
    ...(devices.length > 0 ? { deviceIds: [...new Set(devices.map((d) => d.id))] } : {}),
    ...(project ? { projectId: project.id } : {}),
  };
}

/** Options every run command has. */
const withRunOptions = (cmd: Command, what: string): Command =>
  withClient(cmd)
    .option('--apply', `${what} (default: a dry run that changes nothing and says what it would change)`)
    .option('--privileged-account <user>', 'the vaulted account the commands run as: root (default), or one allowed passwordless sudo');

/** `gatehouse runbook …`: runs. */
function runbookCommands(program: Command): void {
  const runbook = program.command('runbook').description('run a runbook on devices, and look at runs');
  withRunOptions(runbook.command('run <name>'), 'make the changes')
    .description(
      'run a runbook: each step as it finishes, then the verdict with its evidence. ' +
        'Exit 0: every device SUCCESS; 1: any FAILED; 3: any CHANGED-BUT-UNVERIFIED (none FAILED)',
    )
    .option('--device <device>', 'a device: project/device, its name, or its id (repeatable)', repeatable, [])
    .option('--project <project>', 'every device of this project (name or id)')
    .option('--input <name=value>', 'an input of the runbook (repeatable)', repeatable, [])
    .option('--runbook-version <n>', 'this version of the runbook (default: the newest)')
    .option('--concurrency <n>', 'devices at once (default 4, at most 32)')
    .action(async (name: string, o: RunOptions & { device: string[]; project?: string; input: string[]; runbookVersion?: string }) => {
      const api = client(o);
      const inputs = inputsOf(o.input);
      const body: RunbookRunCreate = {
        runbook: name,
        ...(o.runbookVersion === undefined ? {} : { version: wholeNumber('--runbook-version', o.runbookVersion, 1) }),
        ...(await targetsOf(new NameResolver(api), o)),
        ...(Object.keys(inputs).length > 0 ? { inputs } : {}),
        ...runOptionsOf(o),
      };
      await runToEnd(api, '/runbook-runs', body);
    });
  withClient(runbook.command('runs'))
    .description('runs, newest first')
    .option('--device <device>', 'only runs on this device (project/device, name or id)')
    .option('--limit <n>', 'how many', '50')
    .action(async (o: ClientOptions & { device?: string; limit: string }) => {
      const api = client(o);
      const q = new URLSearchParams({ limit: String(wholeNumber('--limit', o.limit, 1)) });
      if (o.device !== undefined) q.set('deviceId', (await new NameResolver(api).anyDevice('--device', o.device)).id);
      const page = await api.call<{ items: RunbookRunView[] }>('GET', `/runbook-runs?${q.toString()}`);
      print(jsonOutput() ? page : runListTable(page.items).join('\n'));
    });
  withClient(runbook.command('show-run <id>'))
    .description("a run: every device's steps with their evidence, verdicts, and (rotation) the accounts")
    .action(async (id: string, o: ClientOptions) => {
      const run = await client(o).call<RunbookRunView>('GET', `/runbook-runs/${encodeURIComponent(id)}`);
      print(jsonOutput() ? run : runDetail(run).join('\n'));
    });
}

/** `gatehouse accounts rotate`: the ResetAccess runbook on one device for one account. */
export function accountRotateCommand(accounts: Command): void {
  withRunOptions(accounts.command('rotate <device> <account>'), 'set the new credential')
    .description(
      "rotate an account's credential (the ResetAccess runbook): a new random password or SSH key, kept as the current one " +
        'only once a new login with it works; the new secret is never printed',
    )
    .option('--key', 'a new Ed25519 key pair (default: a key if the account has a key and no password, else a password)')
    .option('--length <n>', 'password length, 12 to 128 (default 24)')
    .option('--classes <list>', 'password character classes, any of lower,upper,digit,symbol (default: all four)')
    .action(async (deviceValue: string, accountValue: string, o: RunOptions & { key?: boolean; length?: string; classes?: string }) => {
      if (o.key && (o.length !== undefined || o.classes !== undefined))
        throw refuse('--length and --classes shape a password; --key makes an Ed25519 key. Give one or the other.');
      const api = client(o);
      const names = new NameResolver(api);
      const device = await names.anyDevice('<device>', deviceValue);
      const [account] = await names.accounts('<account>', accountValue, [device]);
      const username = (await api.call<{ username: string }>('GET', `/accounts/${encodeURIComponent(account?.id ?? '')}`)).username;
      const inputs = {
        account: username,
        ...(o.key ? { credential: 'key' } : {}),
        ...(o.length === undefined ? {} : { length: wholeNumber('--length', o.length, 1) }),
        ...(o.classes === undefined ? {} : { classes: parsePasswordClasses(o.classes).join(',') }),
      };
      const body: RunbookRunCreate = { runbook: 'ResetAccess', deviceIds: [device.id], inputs, ...runOptionsOf(o) };
      await runToEnd(api, '/runbook-runs', body);
      if (o.apply && !jsonOutput() && process.exitCode === 0)
        process.stderr.write(`The new credential is in the vault only: ./gatehouse accounts reveal ${account?.id ?? ''} --reason …\n`);
    });
}

/** `gatehouse breakglass rotate`: every credential of a break-glass export, rotated. */
export function breakGlassRotateCommand(bg: Command): void {
  withRunOptions(bg.command('rotate'), 'rotate')
    .description(
      'rotate every credential in a break-glass export (default: the latest successful one): progress, then each account ' +
        'rotated / failed / skipped and whether its credential from the file still works',
    )
    .option('--export <id|manifest|sha256>', 'the export: its run id, its manifest object name, or a sha256 prefix (8+ hex)')
    .option('--concurrency <n>', 'devices at once (default 4, at most 32)')
    .action(async (o: RunOptions & { export?: string }) => {
      const api = client(o);
      const body: BreakglassRotationCreate = { ...(o.export === undefined ? {} : { export: o.export }), ...runOptionsOf(o) };
      await runToEnd(api, '/breakglass/rotations', body);
    });
}

/** `gatehouse runbooks …` and `gatehouse runbook …`. */
export function runbookCommandGroups(program: Command): void {
  runbooksCommands(program);
  runbookCommands(program);
}
