import type {
  Device,
  MaintenanceDecisionBody,
  MaintenanceDenyBody,
  MaintenanceRequestCreate,
  MaintenanceSettings,
  MaintenanceSettingsPut,
  MaintenanceWindow,
  MaintenanceWindowList,
} from '@gatehouse/api';
import { windowPhases } from '@gatehouse/core/maintenance';
import { GatehouseError } from '@gatehouse/core/errors';
import { Option, type Command } from 'commander';
import { client, print, withClient } from './api-command.js';
import { ApiError, type ClientOptions } from './client.js';
import { NameResolver } from './names.js';
import { pageOptions, wholeNumber } from './options.js';
import { count, jsonOutput, localTime, pageFooter } from './output.js';
import { formatTable } from './table.js';

/** Commander's collector for an option given more than once. */
export const repeatable = (value: string, previous: string[]): string[] => [...previous, value];

interface CreateOptions extends ClientOptions {
  project?: string;
  device: string[];
  account: string[];
  user: string[];
  start?: string;
  duration: string;
  reason: string;
  ticket?: string;
}

/**
 * `--start`: now (left out), an ISO date and time with its zone, or one without a zone,
 * read in this machine's zone.
 */
function startOf(value: string | undefined): string | undefined {
  if (value === undefined || value === 'now') return undefined;
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value)) {
    const local = new Date(value);
    if (!Number.isNaN(local.getTime())) return local.toISOString();
  }
  return value;
}

/** The request body from the options, and for each body field the option (with its value) it came from. */
async function requestFromOptions(o: CreateOptions, names: NameResolver) {
  if (o.project === undefined && o.device.length === 0)
    throw new GatehouseError('BAD_REQUEST', '--project or --device is required: say what the window is for.');
  const durationMinutes = wholeNumber('--duration', o.duration);
  const devices: Device[] = [];
  for (const value of o.device) devices.push(await names.device('--device', value));
  const project = o.project === undefined ? undefined : await names.project('--project', o.project);
  const projectId = project?.id ?? devices[0]?.projectId ?? '';
  const foreign = devices.findIndex((d) => d.projectId !== projectId);
  if (foreign >= 0)
    throw new GatehouseError(
      'BAD_REQUEST',
      `--device ${o.device[foreign] ?? ''}: a window is for one project; this device is not in ${project?.name ?? o.device[0] ?? ''}.`,
    );

  const accountIds: string[] = [];
  const accountLabels: string[] = [];
  const scope = devices.length > 0 ? devices : await names.devicesOf(projectId);
  for (const value of o.account) {
    for (const a of await names.accounts('--account', value, scope)) {
      accountIds.push(a.id);
      accountLabels.push(`--account ${value}`);
    }
  }
  const userIds: string[] = [];
  for (const value of o.user) userIds.push((await names.user('--user', value)).id);

  const body = {
    projectId,
    ...(devices.length > 0 ? { deviceIds: devices.map((d) => d.id) } : {}),
    ...(accountIds.length > 0 ? { accountIds } : {}),
    ...(userIds.length > 0 ? { userIds } : {}),
    startsAt: startOf(o.start),
    durationMinutes,
    reason: o.reason,
    ticket: o.ticket,
  } satisfies MaintenanceRequestCreate;
  const options: Record<string, string[]> = {
    projectId: [o.project === undefined ? `--device ${o.device[0] ?? ''}` : `--project ${o.project}`],
    deviceIds: o.device.map((v) => `--device ${v}`),
    accountIds: accountLabels,
    userIds: o.user.map((v) => `--user ${v}`),
    startsAt: ['--start'],
    durationMinutes: ['--duration'],
    reason: ['--reason'],
    ticket: ['--ticket'],
  };
  return { body, options };
}

/** The API's field issues (`deviceIds[1]`) renamed after the options they came from (`--device Ops/web-2`). */
function renameIssues(error: unknown, options: Record<string, string[]>): unknown {
  if (!(error instanceof ApiError) || error.issues.length === 0) return error;
  const issues = error.issues.map((issue) => {
    const m = /^(\w+)(?:\[(\d+)\])?/.exec(issue.path);
    const labels = m?.[1] === undefined ? undefined : options[m[1]];
    const label = labels?.[Number(m?.[2] ?? 0)] ?? labels?.[0];
    return label ? { ...issue, path: label } : issue;
  });
  return new ApiError(error.status, error.code, error.message, issues);
}

/** This machine's zone, as `Europe/Berlin (UTC+01:00)`. */
function localZone(): string {
  const offset = -new Date().getTimezoneOffset();
  const p = (n: number) => String(Math.floor(Math.abs(n))).padStart(2, '0');
  const utc = `UTC${offset < 0 ? '-' : '+'}${p(offset / 60)}:${p(offset % 60)}`;
  return `${Intl.DateTimeFormat().resolvedOptions().timeZone} (${utc})`;
}

function formatWindowTable(items: readonly MaintenanceWindow[], total: number, offset: number): string {
  if (items.length === 0) return total > 0 ? `No requests on this page (${total} in all).` : 'No requests.';
  const rows = [
    ['ID', 'PHASE', 'STATE', 'PROJECT', 'DEVICES', 'USERS', 'REQUESTED BY', 'STARTS', 'ENDS', 'APPROVALS', 'REASON'],
    ...items.map((w) => [
      w.id,
      w.phase,
      w.state,
      w.projectName,
      w.devices === null ? '(whole project)' : w.devices.map((d) => d.name).join(','),
      w.users.map((u) => u.username).join(','),
      w.requestedBy.username,
      localTime(w.startsAt),
      localTime(w.endsAt),
      `${w.decisions.filter((d) => d.decision === 'approve').length}/${w.requiredApprovals}`,
      w.reason.length > 40 ? `${w.reason.slice(0, 39)}…` : w.reason,
    ]),
  ];
  const footer = pageFooter(items.length, total, offset, 'request');
  return [...formatTable(rows), '', `${footer}. Times in ${localZone()}; --json gives them in UTC.`].join('\n');
}

/** What the caller may do to the window, as the server says (`viewer`), with the commands that do it. */
export function viewerActions(w: MaintenanceWindow): string {
  const may = [
    ...(w.viewer.mayApprove ? [`approve (./gatehouse requests approve ${w.id})`] : []),
    ...(w.viewer.mayDeny ? [`deny (./gatehouse requests deny ${w.id} --comment …)`] : []),
    ...(w.viewer.mayRevoke ? [`revoke (./gatehouse requests revoke ${w.id})`] : []),
    ...(w.viewer.mayWithdraw && !w.viewer.mayRevoke ? [`withdraw (./gatehouse requests revoke ${w.id})`] : []),
  ];
  return may.length === 0 ? `You may not act on request ${w.id} now.` : `You may ${may.join('; ')}.`;
}

const windowRoute = (id: string, verb = '') => `/requests/${encodeURIComponent(id)}${verb}`;

/** `gatehouse requests …`: maintenance windows, asked for, decided and revoked. */
export function requestsCommands(program: Command): void {
  const requests = program
    .command('requests')
    .description('maintenance windows: request one for devices that require it, approve or deny, revoke');
  withClient(requests.command('create'))
    .description('request a maintenance window for a project or some of its devices')
    .option('--project <project>', 'the whole project (name or id)')
    .option('--device <project/device>', 'a device (repeatable); all in one project', repeatable, [])
    .option(
      '--account <name>',
      'an account user name on those devices (repeatable; default: every account the users may use)',
      repeatable,
      [],
    )
    .option('--user <name>', 'who may connect (repeatable; default: you; an operator names others by id)', repeatable, [])
    .option('--start <time>', "now, or an ISO date and time (without a zone: this machine's)", 'now')
    .requiredOption('--duration <minutes>', 'how long the window lasts')
    .requiredOption('--reason <text>', 'what the maintenance is for')
    .option('--ticket <ref>', 'a ticket reference')
    .action(async (o: CreateOptions) => {
      const api = client(o);
      const { body, options } = await requestFromOptions(o, new NameResolver(api));
      const created = await api.call<MaintenanceWindow>('POST', '/requests', body).catch((error: unknown) => {
        throw renameIssues(error, options);
      });
      print(created);
      process.stderr.write(`Request ${created.id} is ${created.state}: it needs ${count(created.requiredApprovals, 'approval')}.\n`);
    });
  withClient(requests.command('list'))
    .description('maintenance windows you may see, newest first')
    .addOption(new Option('--phase <phase>', 'only windows in this phase').choices(windowPhases))
    .option('--limit <n>', 'page size', pageOptions(500).limit, 50)
    .option('--offset <n>', 'first row', pageOptions(500).offset, 0)
    .action(async (o: ClientOptions & { phase?: string; limit: number; offset: number }) => {
      const q = new URLSearchParams({ limit: String(o.limit), offset: String(o.offset) });
      if (o.phase !== undefined) q.set('phase', o.phase);
      const page = await client(o).call<MaintenanceWindowList>('GET', `/requests?${q.toString()}`);
      print(jsonOutput() ? page : formatWindowTable(page.items, page.total, o.offset));
    });
  withClient(requests.command('show <id>'))
    .description('show a window (JSON), and on standard error what you may do to it')
    .action(async (id: string, o: ClientOptions) => {
      const w = await client(o).call<MaintenanceWindow>('GET', windowRoute(id));
      print(w);
      process.stderr.write(`${viewerActions(w)}\n`);
    });
  withClient(requests.command('approve <id>'))
    .description('approve a window someone else requested')
    .option('--comment <text>', 'a comment kept with your approval')
    .action(async (id: string, o: ClientOptions & { comment?: string }) =>
      print(
        await client(o).call<MaintenanceWindow>('POST', windowRoute(id, '/approve'), {
          comment: o.comment,
        } satisfies MaintenanceDecisionBody),
      ),
    );
  withClient(requests.command('deny <id>'))
    .description('deny a pending window')
    .requiredOption('--comment <text>', 'why it is denied')
    .action(async (id: string, o: ClientOptions & { comment: string }) =>
      print(
        await client(o).call<MaintenanceWindow>('POST', windowRoute(id, '/deny'), { comment: o.comment } satisfies MaintenanceDenyBody),
      ),
    );
  withClient(requests.command('revoke <id>'))
    .description('an administrator: end a window (its sessions end at once); a requester: withdraw their pending request')
    .option('--comment <text>', 'why it is revoked')
    .action(async (id: string, o: ClientOptions & { comment?: string }) =>
      print(
        await client(o).call<MaintenanceWindow>('POST', windowRoute(id, '/revoke'), {
          comment: o.comment,
        } satisfies MaintenanceDecisionBody),
      ),
    );
}

/** `gatehouse maintenance settings`: shows the settings, and changes the ones given. */
export function maintenanceCommands(program: Command): void {
  const maintenance = program.command('maintenance').description('maintenance window settings');
  withClient(maintenance.command('settings'))
    .description('show the settings; change the ones given ("" removes a webhook)')
    .option('--max-duration <minutes>', 'the longest window a request may ask for')
    .option('--approvals <n>', 'approvals a window needs (from different approvers)')
    .option('--warn-minutes <n>', 'minutes before a window ends that its sessions are warned')
    .option('--notify-webhook <url>', 'told of requests, decisions, openings and expiries')
    .option('--hook-webhook <url>', "told when a window opens and closes, with the window's details")
    .action(
      async (
        o: ClientOptions & { maxDuration?: string; approvals?: string; warnMinutes?: string; notifyWebhook?: string; hookWebhook?: string },
      ) => {
        const number = (option: string, v: string | undefined) => (v === undefined ? undefined : wholeNumber(option, v));
        const url = (v: string | undefined) => (v === undefined ? undefined : v === '' ? null : v);
        const body = {
          maxDurationMinutes: number('--max-duration', o.maxDuration),
          requiredApprovals: number('--approvals', o.approvals),
          warnMinutes: number('--warn-minutes', o.warnMinutes),
          notifyWebhookUrl: url(o.notifyWebhook),
          hookWebhookUrl: url(o.hookWebhook),
        } satisfies MaintenanceSettingsPut;
        const api = client(o);
        const changed = Object.values(body).some((v) => v !== undefined);
        const options: Record<string, string[]> = {
          maxDurationMinutes: ['--max-duration'],
          requiredApprovals: ['--approvals'],
          warnMinutes: ['--warn-minutes'],
          notifyWebhookUrl: ['--notify-webhook'],
          hookWebhookUrl: ['--hook-webhook'],
        };
        const settings = changed
          ? api.call<MaintenanceSettings>('PUT', '/maintenance/settings', body)
          : api.call<MaintenanceSettings>('GET', '/maintenance/settings');
        print(
          await settings.catch((error: unknown) => {
            throw renameIssues(error, options);
          }),
        );
      },
    );
}
