import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Me, SshEntry } from '@gatehouse/api';
import type { Command } from 'commander';
import { client, withConnection } from './api-command.js';
import { credentialsFile, type ApiClient, type ClientOptions } from './client.js';
import { chooseSshAccount, chooseSshDevice, knownHostsLine, renderSshConfig, sshLogin, type GatewayAddress } from './ssh-config.js';

interface SshEntryOptions extends ClientOptions {
  gatewayHost?: string;
}

/** Where the CLI keeps the gateway's host key for ssh: next to its credentials. */
export const knownHostsFile = (): string => path.join(path.dirname(credentialsFile()), 'known_hosts');

/** The gateway's entry, the signed-in user, and a known_hosts file written with the gateway's host key. */
async function gatewayEntry(api: ApiClient, o: SshEntryOptions) {
  const [entry, me] = await Promise.all([api.call<SshEntry>('GET', '/ssh-entry'), api.call<Me>('GET', '/auth/me')]);
  // The built-in gateway listens on the server's host; the API's answer came over TLS the CA vouches for.
  const host = o.gatewayHost ?? new URL(api.url).hostname.replace(/^\[(.*)\]$/, '$1');
  const gateway: GatewayAddress = { host, port: entry.port };
  const file = knownHostsFile();
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, knownHostsLine(gateway, entry.hostKey), { mode: 0o600 });
  return { entry, user: me.user.username, gateway, file };
}

const withGatewayHost = (cmd: Command) =>
  withConnection(cmd).option('--gateway-host <host>', "the gateway's host name as you reach it (default: the server URL's host)");

/** `gatehouse ssh <device>` and `gatehouse config ssh`: OpenSSH through the built-in gateway, without typing its user names. */
export function sshCommands(program: Command): void {
  withGatewayHost(program.command('ssh <device> [command...]'))
    .description(
      'run ssh to a device through the gateway (its name, <project>/<device> when several projects have one); ' +
        'a command after -- runs instead of a shell',
    )
    .option('--account <name>', 'the account to connect as, when the device has several you may use')
    .option('-i, --identity <file>', 'the key you sign in to the gateway with (ssh -i), instead of your ssh agent and default keys')
    .action(async (deviceName: string, command: string[], o: SshEntryOptions & { account?: string; identity?: string }) => {
      const { entry, user, gateway, file } = await gatewayEntry(client(o), o);
      const device = chooseSshDevice(entry.devices, deviceName);
      const login = sshLogin(user, device, chooseSshAccount(device, o.account));
      const args = [
        ...['-p', String(gateway.port), '-o', `UserKnownHostsFile=${file}`, '-o', 'StrictHostKeyChecking=yes'],
        ...(o.identity === undefined ? [] : ['-i', o.identity, '-o', 'IdentitiesOnly=yes']),
        ...['-l', login ?? '', gateway.host],
        ...(command.length > 0 ? ['--', ...command] : []),
      ];
      const ssh = spawn('ssh', args, { stdio: 'inherit' });
      process.exitCode = await new Promise<number>((resolve, reject) => {
        ssh.once('error', (error: NodeJS.ErrnoException) =>
          reject(error.code === 'ENOENT' ? new Error('ssh is not installed (apt-get install openssh-client).') : error),
        );
        ssh.once('close', (code, signal) => resolve(code ?? (signal ? 255 : 0)));
      });
    });

  const config = program.command('config').description('configuration for other programs');
  withGatewayHost(config.command('ssh'))
    .description(
      'print an ssh_config block with one Host <device>.gatehouse per device you may use (./gatehouse config ssh >> ~/.ssh/config), ' +
        "and write the gateway's host key to a known_hosts file it names",
    )
    .action(async (o: SshEntryOptions) => {
      const { entry, user, gateway, file } = await gatewayEntry(client(o), o);
      process.stdout.write(renderSshConfig(entry, user, gateway, file));
    });
}
