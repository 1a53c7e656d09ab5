import type {
  Gateway,
  GatewayCreate,
  GatewayList,
  GatewayServerKey,
  GatewaySettings,
  GatewaySettingsUpdate,
  GatewayUpdate,
} from '@gatehouse/api';
import type { Command } from 'commander';
import { GatehouseError } from '@gatehouse/core/errors';
import { Option } from 'commander';
import { client, print, withClient } from './api-command.js';
import type { ClientOptions } from './client.js';
import { NameResolver } from './names.js';
import { jsonOutput, printDeleted } from './output.js';
import { formatTable } from './table.js';

interface GatewayFlags {
  sshPort?: string;
  agentPort?: string;
  agentAddress?: string;
  host?: string;
  managementPort?: string;
  dataDir?: string;
  hostKeyFile?: string;
  serverKey?: string;
  logLevel?: string;
}

/** `gatehouse gateway`: runs a remote gateway (no database, no server code loaded). */
export function gatewayCommand(program: Command): void {
  program
    .command('gateway')
    .description("run a remote gateway: the server syncs its status and reaches its segment's devices through it")
    .option('--host <host>', 'address of the management endpoint (env GATEHOUSE_MANAGEMENT_HOST; default 0.0.0.0)')
    .option(
      '--management-port <port>',
      'TLS management port the server connects to (env GATEHOUSE_MANAGEMENT_PORT; default 443 as root, 9443 otherwise)',
    )
    .option('--data-dir <dir>', "where the gateway's key pair lives (env GATEHOUSE_GATEWAY_DATA_DIR; default ./gateway-data)")
    .option(
      '--host-key-file <file>',
      "the SSH entry's host key, a private key only its owner may read (env GATEHOUSE_GATEWAY_HOST_KEY_FILE; default: generated once in the data directory)",
    )
    .option(
      '--ssh-port <port>',
      "this gateway's own SSH/SFTP entry for users, 0 to turn it off (env GATEHOUSE_GATEWAY_SSH_PORT; default 7993)",
    )
    .option('--agent-port <port>', 'where host agents of its segment link to (env GATEHOUSE_GATEWAY_AGENT_PORT; default 7996, 0: off)')
    .option(
      '--agent-address <host:port>',
      'the address agents are told to dial, behind NAT or a load balancer (env GATEHOUSE_GATEWAY_AGENT_ADDRESS)',
    )
    .option('--server-key <key>', 'the server\'s public key, as "./gatehouse gateways server-key" prints it (env GATEHOUSE_SERVER_KEY)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action(async (o: GatewayFlags) => {
      const { loadRemoteGatewayConfig, startRemoteGateway, GATEWAY_VERSION } = await import('@gatehouse/gateway');
      let running: Awaited<ReturnType<typeof startRemoteGateway>>;
      try {
        running = await startRemoteGateway(loadRemoteGatewayConfig(o));
      } catch (error) {
        process.stderr.write(`gatehouse gateway: ${(error as Error).message}\n`);
        process.exitCode = 1;
        return;
      }
      const { identity, managementPort } = running;
      process.stdout.write(
        [
          `Gatehouse gateway ${GATEWAY_VERSION}${identity.generated ? ' (new key pair generated)' : ''}`,
          `Public key:  ${identity.publicKey}`,
          `Fingerprint: ${identity.fingerprint}`,
          `Management:  TLS on port ${managementPort}; only the server holding the key given with --server-key is answered.`,
          running.ssh
            ? `SSH entry:   port ${running.ssh.port}, host key ${running.ssh.fingerprint} (ssh -p ${running.ssh.port} <user>+<device>@<this host>)`
            : 'SSH entry:   off',
          running.agentPort !== null ? `Host agents: TLS on port ${running.agentPort}` : 'Host agents: off',
          'Register it on the server (once):',
          `  ./gatehouse gateways register <name> --segment gateway-<segment> --address <this host>:${managementPort} --public-key ${identity.publicKey}`,
          '',
        ].join('\n'),
      );
      await new Promise<void>((resolve) => {
        const stop = () => void running.close().then(resolve, resolve);
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });
}

/** `gatehouse gateways …`: the registry on the server, over the API. */
export function gatewaysCommands(program: Command): void {
  const gateways = program.command('gateways').description('gateways: registration, status, tunnel mode');
  const byId = (id: string) => `/gateways/${encodeURIComponent(id)}`;
  const settings = (o: ClientOptions, change: GatewaySettingsUpdate) =>
    client(o).call<GatewaySettings>('PUT', '/gateway-settings', change satisfies GatewaySettingsUpdate);

  withClient(gateways.command('list'))
    .description('the gateways: status, last contact, live sessions; and whether tunnel mode is on')
    .action(async (o: ClientOptions) => {
      const answer = await client(o).call<GatewayList>('GET', '/gateways');
      print(jsonOutput() ? answer : formatGatewayTable(answer.items, answer.tunnelMode));
    });
  withClient(gateways.command('show <gateway>'))
    .description('a gateway (name or id)')
    .action(async (value: string, o: ClientOptions) => print(await new NameResolver(client(o)).gateway('<gateway>', value)));
  withClient(gateways.command('register <name>'))
    .description('register a remote gateway (started with ./gatehouse gateway, which prints this command)')
    .requiredOption('--address <host:port>', "the gateway's management address")
    .requiredOption('--public-key <key>', 'the public key the gateway printed at its first start')
    .option('--segment <segment>', 'the segment it serves, a device tag such as gateway-office1 (none: it serves untagged devices)')
    .action(async (name: string, o: ClientOptions & { address: string; publicKey: string; segment?: string }) => {
      const body = { name, address: o.address, publicKey: o.publicKey, segment: o.segment ?? null } satisfies GatewayCreate;
      print(await client(o).call<Gateway>('POST', '/gateways', body));
    });
  withClient(gateways.command('update <gateway>'))
    .description('change the fields given of a gateway (name or id)')
    .option('--name <name>', 'a new name')
    .option('--address <host:port>', 'a new management address')
    .option('--public-key <key>', 'a new key, after the gateway was re-installed')
    .option('--segment <segment>', 'the segment it serves (a device tag such as gateway-office1)')
    .option('--no-segment', 'serve untagged devices only')
    .action(async (value: string, o: ClientOptions & { name?: string; address?: string; publicKey?: string; segment?: string | false }) => {
      const api = client(o);
      const gateway = await new NameResolver(api).gateway('<gateway>', value);
      const body: GatewayUpdate = {};
      if (o.name !== undefined) body.name = o.name;
      if (o.address !== undefined) body.address = o.address;
      if (o.publicKey !== undefined) body.publicKey = o.publicKey;
      if (o.segment === false) body.segment = null;
      else if (typeof o.segment === 'string') body.segment = o.segment;
      print(await api.call<Gateway>('PATCH', byId(gateway.id), body));
    });
  withClient(gateways.command('delete <gateway>'))
    .description('remove a registered gateway (name or id)')
    .action(async (value: string, o: ClientOptions) => {
      const api = client(o);
      const gateway = await new NameResolver(api).gateway('<gateway>', value);
      await api.call<undefined>('DELETE', byId(gateway.id));
      printDeleted('Gateway', gateway.name, gateway.id);
    });
  withClient(gateways.command('sync <gateway>'))
    .description("sync a gateway's status now (name or id)")
    .action(async (value: string, o: ClientOptions) => {
      const api = client(o);
      const gateway = await new NameResolver(api).gateway('<gateway>', value);
      print(await api.call<Gateway>('POST', `${byId(gateway.id)}/sync`));
    });
  withClient(gateways.command('drain <gateway>'))
    .description('drain a gateway (name or id; default: the built-in one): it carries no new session, live ones go on, until resumed')
    .action(async (value: string, o: ClientOptions) => {
      const api = client(o);
      const gateway = await new NameResolver(api).gateway('<gateway>', value);
      const g = await api.call<Gateway>('POST', `${byId(gateway.id)}/drain`);
      const live = `${g.liveSessions} live ${g.liveSessions === 1 ? 'session goes' : 'sessions go'} on`;
      print(
        jsonOutput()
          ? g
          : `Gateway ${g.name} is draining: no new session goes through it; ${live}. Resume it with: ./gatehouse gateways resume ${g.name}`,
      );
    });
  withClient(gateways.command('resume <gateway>'))
    .alias('undrain')
    .description('resume a drained gateway (name or id): it carries new sessions again')
    .action(async (value: string, o: ClientOptions) => {
      const api = client(o);
      const gateway = await new NameResolver(api).gateway('<gateway>', value);
      const g = await api.call<Gateway>('POST', `${byId(gateway.id)}/resume`);
      print(jsonOutput() ? g : `Gateway ${g.name} takes new sessions again (${g.status}).`);
    });
  withClient(gateways.command('server-key'))
    .description("print the server's key, to start every gateway with (--server-key)")
    .action(async (o: ClientOptions) => {
      const key = await client(o).call<GatewayServerKey>('GET', '/gateways/server-key');
      print(jsonOutput() ? key : `${key.publicKey}\n(${key.fingerprint})`);
    });
  withClient(gateways.command('tunnel <on|off>'))
    .description('tunnel mode: when on, every connection goes through the default gateway and no other gateway reaches a device')
    .action(async (state: string, o: ClientOptions) => {
      if (state !== 'on' && state !== 'off') throw new GatehouseError('BAD_REQUEST', 'tunnel takes "on" or "off".');
      print(await settings(o, { tunnelMode: state === 'on' }));
    });
  withClient(gateways.command('forwarding <on|off>'))
    .description('port forwarding policy: when on, users may forward TCP connections through the devices they use (ssh -L); off by default')
    .action(async (state: string, o: ClientOptions) => {
      if (state !== 'on' && state !== 'off') throw new GatehouseError('BAD_REQUEST', 'forwarding takes "on" or "off".');
      print(await settings(o, { portForwarding: state === 'on' }));
    });
  withClient(gateways.command('require-post-quantum <on|off>'))
    .description(
      "post-quantum key exchange: when on, users' SSH clients must negotiate mlkem768x25519-sha256 with the gateways " +
        '(OpenSSH 9.9 or later); older clients are refused with what to upgrade to. Off by default',
    )
    .action(async (state: string, o: ClientOptions) => {
      if (state !== 'on' && state !== 'off') throw new GatehouseError('BAD_REQUEST', 'require-post-quantum takes "on" or "off".');
      print(await settings(o, { requirePostQuantumKex: state === 'on' }));
    });
}

function formatGatewayTable(items: Gateway[], tunnelMode: boolean): string {
  const rows = [
    ['NAME', 'SEGMENT', 'STATUS', 'LAST CONTACT', 'LATENCY', 'VERSION', 'LIVE', 'ADDRESS', 'ID'],
    ...items.map((g) => [
      g.name,
      g.segment ?? '-',
      g.draining ? `${g.status}, draining` : g.status,
      g.lastContactAt ?? 'never',
      g.latencyMs === null ? '-' : `${g.latencyMs} ms`,
      g.version ?? '-',
      String(g.liveSessions),
      g.address ?? '-',
      g.id,
    ]),
  ];
  const lines = formatTable(rows);
  const problems = [
    ...items.filter((g) => g.status !== 'online' && g.statusReason).map((g) => `${g.name}: ${g.statusReason}`),
    ...items
      .filter((g) => g.draining)
      .map((g) => `${g.name}: draining since ${g.drainingSince ?? '?'}: no new sessions (./gatehouse gateways resume ${g.name})`),
  ];
  return [...lines, '', `Tunnel mode: ${tunnelMode ? 'on (every connection goes through the default gateway)' : 'off'}`, ...problems].join(
    '\n',
  );
}
