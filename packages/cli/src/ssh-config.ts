import type { SshEntry, SshEntryDevice } from '@gatehouse/api';
import { GatehouseError } from '@gatehouse/core/errors';

/** Where the built-in gateway answers SSH, as a client dials it. */
export interface GatewayAddress {
  host: string;
  port: number;
}

/**
 * The SSH user name that asks the gateway for `device` (and `account`): `+` between the
 * parts, which no client reads (rsync, scp, git, URLs, Ansible's `~user`); `:` instead
 * when a name holds a `+`. A device whose name other projects use too is named with its
 * project, `<project>.<device>`. Undefined when no separator can write it.
 */
export function sshLogin(user: string, device: SshEntryDevice, account?: string): string | undefined {
  const devicePart = device.nameShared ? `${device.project}.${device.name}` : device.name;
  const parts = [user, devicePart, ...(account === undefined ? [] : [account])];
  const separator = ['+', ':'].find((s) => !parts.slice(1).some((p) => p.includes(s)));
  return separator === undefined ? undefined : parts.join(separator);
}

/** A host name made of what rsync, scp, git and ssh_config patterns take: letters, digits, `.`, `_` and `-`. */
const hostLabel = (name: string) =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '') || 'device';

/** `<device>.gatehouse`, `<device>.<project>.gatehouse` for a shared name, `<account>.` first for one of several accounts. */
export function hostAlias(device: SshEntryDevice, account?: string): string {
  const labels = [account, device.name, device.nameShared ? device.project : undefined].filter((l) => l !== undefined);
  return `${labels.map(hostLabel).join('.')}.gatehouse`;
}

/** The known_hosts line for the gateway's host key (`[host]:port` unless the port is 22). */
export function knownHostsLine(gateway: GatewayAddress, hostKey: string): string {
  const name = gateway.port === 22 ? gateway.host : `[${gateway.host}]:${gateway.port}`;
  const [type, blob] = hostKey.split(' ');
  return `${name} ${type ?? ''} ${blob ?? ''}\n`;
}

/** An ssh_config argument: double-quoted when it holds a space. */
const configValue = (value: string) => (/\s/.test(value) ? `"${value}"` : value);

/** What ssh_config cannot hold in a User line: a double quote, or a `%` (a token in newer OpenSSH). */
const UNWRITABLE = /["%\\]/;

/**
 * An ssh_config block with one `Host` per device (per account when there are several)
 * the user may use, then the gateway's address and host key for all of them, as `tsh
 * config` prints one: `ssh db-1.gatehouse`, `sftp`, `scp` and `rsync` then work as with any host.
 */
export function renderSshConfig(entry: SshEntry, user: string, gateway: GatewayAddress, knownHostsFile: string): string {
  const lines = [
    `# Gatehouse: the devices ${user} may use through the gateway at ${gateway.host}:${gateway.port}.`,
    '# Add them with: ./gatehouse config ssh >> ~/.ssh/config (again when devices change).',
    `# The gateway's host key (${entry.fingerprint}) is in ${knownHostsFile}.`,
    "# A command word ~<login> (this User value) runs as ~, the account's home on the device. Ansible",
    '# need not depend on it: give it an absolute remote_tmp (ansible_remote_tmp=/home/deploy/.ansible/tmp).',
  ];
  const seen = new Set<string>();
  for (const device of entry.devices) {
    const accounts = device.accounts.length > 1 ? device.accounts : [undefined];
    for (const account of accounts) {
      const login = sshLogin(user, device, account);
      const alias = hostAlias(device, account);
      const what = `${device.project}/${device.name}${account === undefined ? '' : ` as ${account}`}`;
      if (login === undefined || UNWRITABLE.test(login)) {
        lines.push(`# ${what}: its name cannot be written in ssh_config; use ./gatehouse ssh.`);
      } else if (seen.has(alias)) {
        lines.push(`# ${what}: ${alias} is taken by another device; use ./gatehouse ssh.`);
      } else {
        seen.add(alias);
        lines.push(`Host ${alias}`, `  User ${configValue(login)}`);
      }
    }
  }
  if (seen.size === 0) lines.push('# No device you may use has SSH or SFTP.');
  lines.push(
    'Host *.gatehouse',
    `  HostName ${gateway.host}`,
    `  Port ${gateway.port}`,
    `  UserKnownHostsFile ${configValue(knownHostsFile)}`,
    '  StrictHostKeyChecking yes',
    '',
  );
  return lines.join('\n');
}

/**
 * The device a user names for `gatehouse ssh`: its name, `<project>/<device>` or
 * `<project>.<device>`, among the devices they may use; a refusal lists the choices.
 */
export function chooseSshDevice(devices: readonly SshEntryDevice[], value: string): SshEntryDevice {
  const path = (d: SshEntryDevice) => `${d.project}/${d.name}`;
  const named = devices.filter((d) => d.name === value || d.id === value);
  const found = named.length > 0 ? named : devices.filter((d) => path(d) === value || `${d.project}.${d.name}` === value);
  const [only, ...more] = found;
  if (!only) {
    throw new GatehouseError(
      'NOT_FOUND',
      `<device> ${value}: names no device you may use over SSH (./gatehouse config ssh lists them as <device>.gatehouse).`,
    );
  }
  if (more.length > 0) {
    throw new GatehouseError(
      'BAD_REQUEST',
      `<device> ${value}: ${found.length} devices have that name: say which, as ${found.map(path).join(' or ')}.`,
    );
  }
  return only;
}

/** The account to ask for: `--account` if given (one the user may use), none when the device has one. */
export function chooseSshAccount(device: SshEntryDevice, account: string | undefined): string | undefined {
  if (account !== undefined) {
    if (!device.accounts.includes(account)) {
      throw new GatehouseError(
        'NOT_FOUND',
        `--account ${account}: ${device.name} has no such account you may use. Yours: ${device.accounts.join(', ')}.`,
      );
    }
    return account;
  }
  if (device.accounts.length > 1) {
    throw new GatehouseError(
      'BAD_REQUEST',
      `${device.name} has several accounts you may use: choose one with --account (${device.accounts.join(', ')}).`,
    );
  }
  return undefined;
}
