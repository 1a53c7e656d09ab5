import type {
  Device,
  DeviceCreate,
  DeviceList,
  DevicePatch,
  Project,
  ProjectCreate,
  ProjectList,
  ProjectPatch,
  SshKey,
  SshKeyCreate,
} from '@gatehouse/api';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { breakGlassCommands } from './breakglass.js';
import { ApiClient, ApiError, saveCredentials, type ClientOptions } from './client.js';
import { gatewayCommand, gatewaysCommands } from './gateways.js';
import { progress, promptSecret, readStdin } from './prompt.js';

const print = (value: unknown): void => {
  process.stdout.write(`${typeof value === 'string' ? value : JSON.stringify(value, null, 2)}\n`);
};

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

/** Options every API command takes. */
function withClient(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'server URL (env GATEHOUSE_URL)')
    .option('--ca <file>', "CA file to verify the server's certificate (env GATEHOUSE_CA; default <data-dir>/tls/server.crt)")
    .option('--data-dir <dir>', 'data directory, to find the certificate (env GATEHOUSE_DATA_DIR)');
}

function client(opts: ClientOptions): ApiClient {
  return new ApiClient(opts);
}

async function password(opts: { passwordStdin?: boolean }, question = 'Password: '): Promise<string> {
  return opts.passwordStdin ? readStdin() : promptSecret(question);
}

/** Offline commands open the database directly: the same sources as the server. */
async function openOffline(opts: { dataDir?: string; databaseUrl?: string }) {
  const { openDatabase } = await import('@gatehouse/db');
  const dataDir = path.resolve(opts.dataDir ?? process.env.GATEHOUSE_DATA_DIR ?? './data');
  const databaseUrl = opts.databaseUrl ?? process.env.DATABASE_URL;
  if (!databaseUrl && !existsSync(path.join(dataDir, 'gatehouse.sqlite'))) {
    throw new Error(`No database in ${dataDir}. Pass --data-dir (or DATABASE_URL for PostgreSQL).`);
  }
  return { db: await openDatabase({ dataDir, databaseUrl }), dataDir };
}

/** The checkpoint in `file`, refused unless it was signed with the checkpoint key. */
async function trustedCheckpoint(file: string, publicKeyFile: string | undefined, dataDir: string | undefined) {
  const { checkAuditCheckpoint, readAuditCheckpoint } = await import('@gatehouse/core');
  let publicKeyPem: string;
  if (publicKeyFile !== undefined) publicKeyPem = readFileSync(publicKeyFile, 'utf8');
  else {
    const { loadAuditCheckpointKey } = await import('@gatehouse/server');
    publicKeyPem = loadAuditCheckpointKey({
      keyFile: process.env.GATEHOUSE_AUDIT_CHECKPOINT_KEY_FILE,
      dataDir: path.resolve(dataDir ?? process.env.GATEHOUSE_DATA_DIR ?? './data'),
      create: false,
    }).publicKeyPem;
  }
  const found = readAuditCheckpoint(readFileSync(file, 'utf8'));
  const check = found.ok ? checkAuditCheckpoint(found.checkpoint, publicKeyPem) : found;
  if (!check.ok) throw new Error(`The checkpoint in ${file} cannot be trusted: ${check.reason}.`);
  return check.checkpoint;
}

interface ServerFlags {
  host?: string;
  port?: string;
  dataDir?: string;
  config?: string;
  databaseUrl?: string;
  logLevel?: string;
  gatewayPort?: string;
}

export function buildProgram(): Command {
  const program = new Command('gatehouse')
    .description('Gatehouse privileged access platform')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('server')
    .description('run the server: HTTPS API and console, embedded database unless DATABASE_URL is set')
    .option('--host <host>', 'address to listen on (env GATEHOUSE_HOST; default 0.0.0.0)')
    .option('--port <port>', 'port (env GATEHOUSE_PORT; default 443 as root, 8443 otherwise)')
    .option('--data-dir <dir>', 'data directory (env GATEHOUSE_DATA_DIR; default ./data)')
    .option('--config <file>', 'JSON config file (env GATEHOUSE_CONFIG)')
    .option('--database-url <url>', 'PostgreSQL URL (env DATABASE_URL)')
    .option('--gateway-port <port>', 'port of the built-in SSH/SFTP gateway, 0 to turn it off (env GATEHOUSE_GATEWAY_PORT; default 7993)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action(async (o: ServerFlags) => {
      const { loadServerConfig, startServer, describeStartupError, createLogger } = await import('@gatehouse/server');
      let running: Awaited<ReturnType<typeof startServer>>;
      try {
        const config = loadServerConfig({
          configFile: o.config,
          flags: {
            host: o.host,
            port: o.port,
            dataDir: o.dataDir,
            databaseUrl: o.databaseUrl,
            logLevel: o.logLevel,
            gatewayPort: o.gatewayPort,
          },
        });
        running = await startServer(config, createLogger(config.logLevel));
      } catch (error) {
        process.stderr.write(`gatehouse server: ${describeStartupError(error)}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(
        `Gatehouse ${running.url}\nCertificate SHA-256 fingerprint: ${running.fingerprint}\nCertificate: ${running.certFile}\n`,
      );
      if (running.gateway) {
        process.stdout.write(`SSH gateway port ${running.gateway.port}, host key ${running.gateway.fingerprint}\n`);
      }
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          running.services.logger.info({ signal }, 'shutting down');
          running.close().then(resolve, resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      return;
    });

  withClient(program.command('setup'))
    .description('create the first administrator with the one-time token the server wrote to <data-dir>/setup-token, and sign in')
    .option('--username <name>', 'administrator user name', 'admin')
    .option('--password-stdin', 'read the new password from standard input')
    .action(async (o: ClientOptions & { username: string; passwordStdin?: boolean }) => {
      const dataDir = o.dataDir ?? process.env.GATEHOUSE_DATA_DIR ?? './data';
      const tokenFile = path.join(dataDir, 'setup-token');
      if (!existsSync(tokenFile))
        throw new Error(`${tokenFile} does not exist: set-up is done already, or the server has not started yet.`);
      const setupToken = readFileSync(tokenFile, 'utf8').trim();
      const pw = await password(o, 'New administrator password (at least 12 characters): ');
      const api = client({ ...o, token: undefined });
      await api.call('POST', '/setup', { setupToken, username: o.username, password: pw });
      return signIn(api, o.username, pw, undefined, `Administrator ${o.username} created.`);
    });

  withClient(program.command('login'))
    .description('sign in and keep an API token for later commands')
    .requiredOption('--username <name>', 'user name')
    .option('--password-stdin', 'read the password from standard input')
    .option('--totp <code>', 'the current authenticator code, when TOTP is enabled')
    .action(async (o: ClientOptions & { username: string; passwordStdin?: boolean; totp?: string }) => {
      const pw = await password(o);
      return signIn(client({ ...o, token: undefined }), o.username, pw, o.totp, `Signed in as ${o.username}.`);
    });

  async function signIn(api: ApiClient, username: string, pw: string, totp: string | undefined, done: string): Promise<void> {
    const login = await api.call<{ csrfToken: string }>('POST', '/auth/login', { username, password: pw, ...(totp ? { totp } : {}) });
    api.csrf = login.csrfToken;
    const created = await api.call<{ token: string }>('POST', '/tokens', {
      name: `cli ${new Date().toISOString()}`,
      scope: 'full',
      expiresInDays: 90,
    });
    await api.call('POST', '/auth/logout', {});
    const file = saveCredentials({ url: api.url, token: created.token, ca: api.caFile });
    process.stderr.write(`${done} API token saved in ${file}\n`);
    return;
  }

  const api = (
    method: string,
    route: (args: string[], o: Record<string, unknown>) => string,
    body?: (args: string[], o: Record<string, unknown>) => unknown,
    /** What to say when the API answers with no body (a delete). */
    done?: (args: string[]) => string,
  ) =>
    async function (this: Command, ...args: unknown[]) {
      const cmd = args[args.length - 1] as Command;
      const o = cmd.opts<Record<string, unknown>>();
      const positional = args.slice(0, -2).map(String);
      const answer = await client(o as ClientOptions).call(method, route(positional, o), body?.(positional, o));
      if (answer !== undefined) print(answer);
      else if (done) print(done(positional));
      return;
    };
  const deleted =
    (what: string) =>
    ([id]: string[]) =>
      `${what} ${id ?? ''} deleted.`;

  gatewayCommand(program);
  gatewaysCommands(program, withClient);

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
    .action(async (id: string, o: ClientOptions & { name?: string; description?: string }) =>
      print(
        await client(o).call<Project>('PATCH', `/projects/${encodeURIComponent(id)}`, {
          name: o.name,
          description: o.description,
        } satisfies ProjectPatch),
      ),
    );
  withClient(projects.command('delete <id>')).action(
    api('DELETE', ([id]) => `/projects/${encodeURIComponent(id ?? '')}`, undefined, deleted('Project')),
  );

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
    .action(async (id: string, o: ClientOptions & DeviceOptions & { name?: string; project?: string }) => {
      const body = { ...deviceFields(o), name: o.name, projectId: o.project } satisfies DevicePatch;
      print(await client(o).call<Device>('PATCH', `/devices/${encodeURIComponent(id)}`, body));
    });
  withClient(devices.command('delete <id>')).action(
    api('DELETE', ([id]) => `/devices/${encodeURIComponent(id ?? '')}`, undefined, deleted('Device')),
  );

  const accounts = program.command('accounts').description('accounts on devices');
  withClient(accounts.command('list <deviceId>')).action(api('GET', ([id]) => `/devices/${encodeURIComponent(id ?? '')}/accounts`));
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
        const body: Record<string, unknown> = { deviceId, username };
        if (o.passwordStdin) body.password = await readStdin();
        if (o.privateKeyFile) {
          body.privateKey = readFileSync(o.privateKeyFile, 'utf8');
          body.pemFileName = o.pemFileName ?? path.basename(o.privateKeyFile);
        }
        print(await client(o).call('POST', '/accounts', body));
        return;
      },
    );
  withClient(accounts.command('show <accountId>')).action(api('GET', ([id]) => `/accounts/${encodeURIComponent(id ?? '')}`));
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
        const body: Record<string, unknown> = { username: o.username, pemFileName: o.pemFileName };
        if (o.passwordStdin) body.password = await readStdin();
        if (o.clearPassword) body.password = null;
        if (o.privateKeyFile) {
          body.privateKey = readFileSync(o.privateKeyFile, 'utf8');
          body.pemFileName = o.pemFileName ?? path.basename(o.privateKeyFile);
        }
        print(await client(o).call('PATCH', `/accounts/${encodeURIComponent(accountId)}`, body));
      },
    );
  withClient(accounts.command('reveal <accountId>'))
    .requiredOption('--reason <text>', 'why you need the secret (audited)')
    .action(
      api(
        'POST',
        ([id]) => `/accounts/${encodeURIComponent(id ?? '')}/reveal`,
        (_a, o) => ({ reason: o.reason }),
      ),
    );
  withClient(accounts.command('delete <accountId>')).action(
    api('DELETE', ([id]) => `/accounts/${encodeURIComponent(id ?? '')}`, undefined, deleted('Account')),
  );

  const users = program.command('users').description('users and roles');
  withClient(users.command('list')).action(api('GET', () => '/users'));
  withClient(users.command('create <username>'))
    .addOption(new Option('--role <role>').choices(['admin', 'operator', 'auditor']).makeOptionMandatory())
    .option('--password-stdin', 'read the password from standard input')
    .action(async (username: string, o: ClientOptions & { role: string; passwordStdin?: boolean }) => {
      print(await client(o).call('POST', '/users', { username, role: o.role, password: await password(o, `Password for ${username}: `) }));
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
        o: ClientOptions & { role?: string; disable?: boolean; enable?: boolean; passwordStdin?: boolean; resetTotp?: boolean },
      ) => {
        const body: Record<string, unknown> = { role: o.role };
        if (o.disable) body.disabled = true;
        if (o.enable) body.disabled = false;
        if (o.passwordStdin) body.password = await readStdin();
        if (o.resetTotp) body.resetTotp = true;
        print(await client(o).call('PATCH', `/users/${encodeURIComponent(userId)}`, body));
      },
    );
  withClient(users.command('unlock <userId>'))
    .description('lift every sign-in throttle of a user (failed password attempts from any address)')
    .action(
      api(
        'POST',
        ([id]) => `/users/${encodeURIComponent(id ?? '')}/unlock`,
        () => ({}),
      ),
    );
  withClient(users.command('delete <userId>')).action(
    api('DELETE', ([id]) => `/users/${encodeURIComponent(id ?? '')}`, undefined, deleted('User')),
  );
  withClient(users.command('grant <userId> <projectId>'))
    .option('--device <id>')
    .option('--account <id>')
    .action(
      api(
        'POST',
        () => '/grants',
        ([userId, projectId], o) => ({ userId, projectId, deviceId: o.device, accountId: o.account }),
      ),
    );

  const sessions = program.command('sessions').description('sessions through gateways: who, where, when, and what was recorded');
  withClient(sessions.command('list'))
    .option('--device <id>')
    .option('--user <id>')
    .option('--limit <n>', 'page size', '50')
    .option('--offset <n>', 'first row', '0')
    .action(
      api('GET', (_a, o) => {
        const q = new URLSearchParams({ limit: String(o.limit), offset: String(o.offset) });
        if (typeof o.device === 'string') q.set('deviceId', o.device);
        if (typeof o.user === 'string') q.set('userId', o.user);
        return `/sessions?${q.toString()}`;
      }),
    );
  withClient(sessions.command('show <id>')).action(api('GET', ([id]) => `/sessions/${encodeURIComponent(id ?? '')}`));
  withClient(sessions.command('files <id>'))
    .description("the session's SFTP/SCP operations: path, size, direction, result")
    .action(api('GET', ([id]) => `/sessions/${encodeURIComponent(id ?? '')}/file-operations`));
  withClient(sessions.command('recording <id>'))
    .description('write the terminal recording (asciicast v2: asciinema play <file>) to standard output or --output')
    .option('--output <file>')
    .action(async (id: string, o: ClientOptions & { output?: string }) => {
      const out = o.output ? createWriteStream(o.output, { mode: 0o600 }) : process.stdout;
      await client(o).download(`/sessions/${encodeURIComponent(id)}/recording`, out);
      if (o.output)
        await new Promise<void>((resolve, reject) =>
          (out as ReturnType<typeof createWriteStream>).end(() => resolve()).once('error', reject),
        );
    });

  const sshKeys = program.command('ssh-keys').description('SSH public keys for signing in to the gateway (ssh -p 7993 you:device@…)');
  withClient(sshKeys.command('list'))
    .option('--user <userId>', "an administrator: another user's keys")
    .action(api('GET', (_a, o) => `/ssh-keys${typeof o.user === 'string' ? `?userId=${encodeURIComponent(o.user)}` : ''}`));
  withClient(sshKeys.command('add <pubFile>'))
    .description('register the public key in <pubFile> (a .pub file, or - for standard input)')
    .option('--name <name>', 'a name for the key (default: its comment)')
    .option('--user <userId>', 'an administrator: add it to another user')
    .action(async (file: string, o: ClientOptions & { name?: string; user?: string }) => {
      const publicKey = file === '-' ? await readStdin() : readFileSync(file, 'utf8');
      print(await client(o).call<SshKey>('POST', '/ssh-keys', { publicKey, name: o.name, userId: o.user } satisfies SshKeyCreate));
    });
  withClient(sshKeys.command('delete <keyId>')).action(
    api('DELETE', ([id]) => `/ssh-keys/${encodeURIComponent(id ?? '')}`, undefined, deleted('SSH key')),
  );

  withClient(program.command('import <file>'))
    .description('import projects, devices and accounts from CSV or JSON; all rows or none')
    .option('--dry-run', 'check every row and write nothing')
    .action(async (file: string, o: ClientOptions & { dryRun?: boolean }) => {
      const isCsv = file.toLowerCase().endsWith('.csv');
      const bar = progress(`Uploading ${path.basename(file)}`);
      try {
        const result = await client(o).call('POST', `/inventory/import?dryRun=${o.dryRun ? 'true' : 'false'}`, undefined, {
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

  withClient(program.command('export'))
    .description('export the inventory (secrets masked)')
    .addOption(new Option('--format <format>').choices(['csv', 'json']).default('csv'))
    .action(api('GET', (_a, o) => `/inventory/export?format=${String(o.format)}`));

  const audit = program.command('audit').description('the audit log');
  audit
    .command('verify')
    .description('check the hash chain of the whole audit log (reads the database directly)')
    .option('--data-dir <dir>')
    .option('--database-url <url>')
    .option(
      '--checkpoint <file>',
      'also check the chain still holds a signed checkpoint kept outside the database: a checkpoint, the checkpoint file (its last line) or a break-glass manifest',
    )
    .option(
      '--public-key <file>',
      "the checkpoint key's public half (PEM; GET /api/v1/audit/checkpoint shows it); default: the server's key (GATEHOUSE_AUDIT_CHECKPOINT_KEY_FILE or <data-dir>/audit-checkpoint.key)",
    )
    .action(async (o: { dataDir?: string; databaseUrl?: string; checkpoint?: string; publicKey?: string }) => {
      const { verifyAuditChain } = await import('@gatehouse/db');
      const checkpoint = o.checkpoint === undefined ? undefined : await trustedCheckpoint(o.checkpoint, o.publicKey, o.dataDir);
      const { db } = await openOffline(o);
      try {
        const result = await verifyAuditChain(db, {
          checkpoint,
          onProgress: (n) => process.stderr.isTTY && process.stderr.write(`\rchecked ${n} events`),
        });
        if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
        if (result.ok) {
          print(`Audit chain intact: ${result.events} events, head ${result.headHash}`);
          if (result.checkpoint) {
            print(`It holds the checkpoint of ${result.checkpoint.at} (event ${result.checkpoint.seq}, key ${result.checkpoint.keyId}).`);
          }
          return;
        }
        print(`Audit chain BROKEN at event ${result.seq}: ${result.problem}`);
        process.exitCode = 2;
      } finally {
        await db.close();
      }
    });
  audit
    .command('export')
    .description('write every audit event as JSON lines, oldest first (reads the database directly)')
    .option('--data-dir <dir>')
    .option('--database-url <url>')
    .action(async (o: { dataDir?: string; databaseUrl?: string }) => {
      const { allAuditEvents } = await import('@gatehouse/db');
      const { db } = await openOffline(o);
      try {
        for await (const e of allAuditEvents(db)) {
          if (!process.stdout.write(`${JSON.stringify(e)}\n`)) await new Promise((resolve) => process.stdout.once('drain', resolve));
        }
        return;
      } finally {
        await db.close();
      }
    });

  breakGlassCommands(program, withClient, client, print);

  const vault = program.command('vault').description('the vault that seals every secret');
  vault
    .command('rotate-master-key')
    .description('re-wrap every data key under a new master key; nothing is re-encrypted and nothing is lost')
    .option('--data-dir <dir>')
    .option('--database-url <url>')
    .option(
      '--new-key-file <file>',
      'the new key (64 hex characters); required when the current key comes from GATEHOUSE_MASTER_KEY or a mounted file',
    )
    .action(async (o: { dataDir?: string; databaseUrl?: string; newKeyFile?: string }) => {
      const { rotateMasterKey } = await import('./rotate.js');
      const { db, dataDir } = await openOffline(o);
      try {
        print(await rotateMasterKey(db, dataDir, o.newKeyFile));
        return;
      } finally {
        await db.close();
      }
    });

  return program;
}

/** Runs the CLI; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  process.exitCode = 0;
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    if (error instanceof ApiError) {
      process.stderr.write(`gatehouse: ${error.message}\n`);
      // Every problem, not the first few: an import is fixed in one pass only if all its bad rows are named.
      process.stderr.write(error.issues.map((issue) => `  - ${issue.path}: ${issue.message}\n`).join(''));
      return 1;
    }
    process.stderr.write(`gatehouse: ${(error as Error).message}\n`);
    return 1;
  }
  return Number(process.exitCode ?? 0);
}
