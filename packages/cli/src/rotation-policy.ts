import type { RotationPolicyAnswer, RotationPolicyPut } from '@gatehouse/api';
import { GatehouseError } from '@gatehouse/core/errors';
import { parsePasswordClasses } from '@gatehouse/core/runbooks';
import { Option, type Command } from 'commander';
import { client, print, withClient } from './api-command.js';
import { ApiError, type ClientOptions } from './client.js';
import { NameResolver } from './names.js';
import { wholeNumber } from './options.js';
import { jsonOutput } from './output.js';
import { formatTable } from './table.js';

interface ScopeOptions extends ClientOptions {
  project?: string;
  device?: string;
}

/** The policy's route and how to name it, from exactly one of --project and --device. */
async function scopeOf(o: ScopeOptions): Promise<{ route: string; label: string; scope: 'project' | 'device' }> {
  if ((o.project === undefined) === (o.device === undefined))
    throw new GatehouseError('BAD_REQUEST', 'Give --project <project> or --device <device>: the policy is set on one of them.');
  const names = new NameResolver(client(o));
  if (o.project !== undefined) {
    const project = await names.project('--project', o.project);
    return { route: `/projects/${encodeURIComponent(project.id)}/rotation-policy`, label: `project ${project.name}`, scope: 'project' };
  }
  const device = await names.anyDevice('--device', o.device ?? '');
  return { route: `/devices/${encodeURIComponent(device.id)}/rotation-policy`, label: `device ${device.name}`, scope: 'device' };
}

/** What `rotation show` and `set` print. */
export function formatRotationPolicy(label: string, asked: 'project' | 'device', p: RotationPolicyAnswer): string {
  const credential =
    p.credential === 'key'
      ? 'a new Ed25519 key'
      : `${p.credential === 'same' ? 'the kind the account has; passwords of ' : 'a password of '}${p.passwordLength} characters (${p.passwordClasses.join(', ')})`;
  const rows = [
    ['Every', p.everyDays === null ? 'not scheduled' : `${p.everyDays} days`],
    ['After each session', p.afterSession ? 'yes' : 'no'],
    ['New credential', credential],
    ['Privileged account', p.privilegedAccount],
    ['Set by', `${p.setBy.username}, ${p.updatedAt}`],
  ];
  const inherited = asked === 'device' && p.scope === 'project' ? ' (from its project)' : '';
  return [`Rotation policy of ${label}${inherited}:`, ...formatTable(rows).map((l) => `  ${l}`)].join('\n');
}

/** `--every 30` or `--every never` (no schedule). */
const everyOf = (value: string) => (value === 'never' ? null : wholeNumber('--every', value, 1));

/** `gatehouse rotation show|set|clear`: scheduled rotation of a project's or a device's accounts (ResetAccess). */
export function rotationCommands(program: Command): void {
  const rotation = program
    .command('rotation')
    .description("scheduled credential rotation (the ResetAccess runbook) of a project's or a device's accounts");
  const scoped = (cmd: Command) =>
    withClient(cmd)
      .option('--project <project>', 'a project (name or id)')
      .option('--device <device>', 'a device (project/device, its name, or its id)');

  scoped(rotation.command('show'))
    .description('the rotation policy of a project or a device')
    .action(async (o: ScopeOptions) => {
      const { route, label, scope } = await scopeOf(o);
      const policy = await client(o)
        .call<RotationPolicyAnswer | null>('GET', route)
        .catch((error: unknown) => {
          if (error instanceof ApiError && error.code === 'NOT_FOUND') return null;
          throw error;
        });
      if (jsonOutput()) return print(policy);
      print(
        policy
          ? formatRotationPolicy(label, scope, policy)
          : `No rotation policy on ${label}: its credentials change only by hand (./gatehouse accounts rotate) or after break glass.`,
      );
    });

  scoped(rotation.command('set'))
    .description('set (or change) the rotation policy; the options not given keep their values')
    .option('--every <days>', 'rotate a credential older than this many days; never: no schedule')
    .option('--after-session', 'rotate an account after every session that used it')
    .option('--no-after-session', 'not after sessions')
    .addOption(
      new Option('--credential <kind>', 'the new credential: password, key, or the kind the account has').choices([
        'password',
        'key',
        'same',
      ]),
    )
    .option('--length <n>', 'password length, 12 to 128')
    .option('--classes <list>', 'password character classes: lower,upper,digit,symbol')
    .option('--privileged-account <user>', 'the vaulted account the rotation runs as (root, or one allowed passwordless sudo)')
    .action(
      async (
        o: ScopeOptions & {
          every?: string;
          afterSession?: boolean;
          credential?: 'password' | 'key' | 'same';
          length?: string;
          classes?: string;
          privilegedAccount?: string;
        },
      ) => {
        const body: RotationPolicyPut = {
          ...(o.every === undefined ? {} : { everyDays: everyOf(o.every) }),
          ...(o.afterSession === undefined ? {} : { afterSession: o.afterSession }),
          ...(o.credential === undefined ? {} : { credential: o.credential }),
          ...(o.length === undefined ? {} : { passwordLength: wholeNumber('--length', o.length, 1) }),
          ...(o.classes === undefined ? {} : { passwordClasses: parsePasswordClasses(o.classes) }),
          ...(o.privilegedAccount === undefined ? {} : { privilegedAccount: o.privilegedAccount }),
        };
        if (Object.keys(body).length === 0)
          throw new GatehouseError('BAD_REQUEST', 'Say what to set: --every <days>, --after-session, --credential, --length, --classes.');
        const { route, label, scope } = await scopeOf(o);
        const policy = await client(o).call<RotationPolicyAnswer>('PUT', route, body);
        print(jsonOutput() ? policy : formatRotationPolicy(label, scope, policy));
      },
    );

  scoped(rotation.command('clear'))
    .description('remove the rotation policy (a device then follows its project again)')
    .action(async (o: ScopeOptions) => {
      const { route, label } = await scopeOf(o);
      await client(o).call('DELETE', route);
      print(`Rotation policy of ${label} removed.`);
    });
}
