import { hostKeyProtocols, type DeviceHostKey, type DeviceHostKeyAnswer, type HostKeyPin, type HostKeyPinAnswer } from '@gatehouse/api';
import { GatehouseError } from '@gatehouse/core/errors';
import { Option, type Command } from 'commander';
import { client, print, withClient } from './api-command.js';
import type { ApiClient, ClientOptions } from './client.js';
import { NameResolver } from './names.js';
import { jsonOutput } from './output.js';
import { formatTable } from './table.js';

type Protocol = DeviceHostKey['protocol'];

const protocolOption = (description: string) => new Option('--protocol <protocol>', description).choices(hostKeyProtocols);

/** `ssh-ed25519 SHA256:…`, or `SHA256:… (pinned, not presented yet)` for a pin without an algorithm. */
const keyText = (k: DeviceHostKey) => (k.algorithm ? `${k.algorithm} ${k.fingerprint}` : `${k.fingerprint} (pinned, not presented yet)`);

/** The device typed (id, `project/device` or a name only one device has), with the path messages name it by. */
async function deviceOf(api: ApiClient, value: string): Promise<{ id: string; path: string }> {
  const names = new NameResolver(api);
  const device = await names.anyDevice('<device>', value);
  return { id: device.id, path: `${(await names.project('<device>', device.projectId)).name}/${device.name}` };
}

const keysOf = (api: ApiClient, deviceId: string) =>
  api.call<DeviceHostKeyAnswer>('GET', `/devices/${encodeURIComponent(deviceId)}/host-key`).then((a) => a.hostKeys);

/** The keys as a table, one row per protocol. */
export function hostKeyTable(keys: readonly DeviceHostKey[]): string {
  const rows = keys.flatMap((k) => [
    [k.protocol, k.algorithm ?? '—', k.fingerprint, k.firstSeen, k.pinned ? 'pinned' : 'first use'],
    // The pinned next key, on a line of its own: accepted too until the device presents it.
    ...(k.next ? [[k.protocol, '—', k.next.fingerprint, k.next.pinnedAt, 'pinned as next']] : []),
  ]);
  return formatTable([['PROTOCOL', 'ALGORITHM', 'FINGERPRINT', 'SINCE', 'TRUSTED BY'], ...rows]).join('\n');
}

/** `gatehouse devices host-key show|forget|pin <device>`: the keys the gateways trust for a device, per protocol. */
export function hostKeyCommands(devices: Command): void {
  const hostKey = devices
    .command('host-key')
    .description('the keys the gateways trust for a device, one per protocol: the SSH host key, the RDP and VNC TLS certificates');

  withClient(hostKey.command('show <device>'))
    .description('list the trusted keys (device: id, project/device, or a name only one device has)')
    .action(async (value: string, o: ClientOptions) => {
      const api = client(o);
      const device = await deviceOf(api, value);
      const keys = await keysOf(api, device.id);
      if (jsonOutput()) return print(keys);
      if (keys.length === 0)
        return print(`${device.path} has no trusted key yet: the first connection over each protocol trusts the key the device presents.`);
      print(`Keys trusted for ${device.path}:\n${hostKeyTable(keys)}`);
    });

  withClient(hostKey.command('forget <device>'))
    .description('forget a changed key after checking the device: the next connection trusts the key it presents (administrators)')
    .addOption(protocolOption('only this protocol’s key (default: every protocol’s)'))
    .action(async (value: string, o: ClientOptions & { protocol?: Protocol }) => {
      const api = client(o);
      const device = await deviceOf(api, value);
      const keys = (await keysOf(api, device.id)).filter((k) => o.protocol === undefined || k.protocol === o.protocol);
      if (keys.length === 0) {
        const which = o.protocol ? `${o.protocol} key` : 'key';
        throw new GatehouseError(
          'NOT_FOUND',
          `${device.path} has no trusted ${which}: nothing to forget (./gatehouse devices host-key show lists them).`,
        );
      }
      const q = o.protocol ? `?protocol=${o.protocol}` : '';
      await api.call('DELETE', `/devices/${encodeURIComponent(device.id)}/host-key${q}`);
      const lines = keys.map((k) => `Forgot the ${k.protocol} key of ${device.path}: ${keyText(k)}.`);
      print(
        [...lines, `The next connection over ${keys.map((k) => k.protocol).join(', ')} trusts the key the device presents.`].join('\n'),
      );
    });

  withClient(hostKey.command('pin <device>'))
    .description(
      'the key the device will present, ahead of a planned key change (both keys are accepted until it does, then the old one is dropped), or instead of trusting the first one seen (administrators)',
    )
    .addOption(protocolOption('the protocol the key is for').makeOptionMandatory())
    .requiredOption(
      '--fingerprint <fingerprint>',
      'SHA256:<base64> as ssh-keygen -lf prints it, or a certificate’s SHA-256 in hex (openssl x509 -fingerprint -sha256)',
    )
    .action(async (value: string, o: ClientOptions & { protocol: Protocol; fingerprint: string }) => {
      const api = client(o);
      const device = await deviceOf(api, value);
      const body: HostKeyPin = { protocol: o.protocol, fingerprint: o.fingerprint };
      const answer = await api.call<HostKeyPinAnswer>('PUT', `/devices/${encodeURIComponent(device.id)}/host-key`, body);
      const { hostKey: key } = answer;
      if (key.next) {
        print(
          `Pinned ${key.next.fingerprint} as the next ${o.protocol} key of ${device.path}: connections over ${o.protocol} accept it and ${keyText(key)} ` +
            `until the device presents it; then only it.`,
        );
        return;
      }
      const replaced = answer.replaced ? ` It replaces ${keyText(answer.replaced)}.` : '';
      print(
        `Pinned ${key.fingerprint} as the ${o.protocol} key of ${device.path}: connections over ${o.protocol} accept only that key now.${replaced}`,
      );
    });
}
