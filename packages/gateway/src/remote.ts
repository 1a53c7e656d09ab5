import { readdir } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { z } from 'zod';
import { parseLinkPublicKey, loadOrCreateGatewayIdentity, type LinkIdentity } from './identity.js';
import { repairRecording } from './asciicast.js';
import { directDialer, type TargetDialer } from './dial.js';
import { SshGateway } from './gateway.js';
import { loadOrCreateHostKey } from './host-key.js';
import { ManagementServer } from './management.js';
import { RemoteAccessBroker } from './remote-broker.js';
import { GatehouseError } from '@gatehouse/core';

export const GATEWAY_VERSION = '0.1.0';

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/** The configuration of `gatehouse gateway`, from flags over the environment. */
export const remoteGatewayConfigSchema = z.strictObject({
  host: z.string().min(1).default('0.0.0.0'),
  managementPort: z.coerce.number({ error: 'must be a port number from 0 to 65535' }).int().min(0).max(65535).optional(),
  dataDir: z.string().min(1).default('./gateway-data'),
  serverKey: z.string({ error: 'is required: the key "gatehouse gateways server-key" prints on the server' }).superRefine((text, ctx) => {
    const parsed = parseLinkPublicKey(text);
    if (!parsed.ok)
      ctx.addIssue({
        code: 'custom',
        message: parsed.message.replace('the gateway printed at its first start', 'that "gatehouse gateways server-key" prints'),
      });
  }),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** This gateway's own SSH/SFTP entry for users (0: off). */
  sshPort: z.coerce.number({ error: 'must be a port number from 0 to 65535' }).int().min(0).max(65535).default(7993),
  targetTimeoutSeconds: z.coerce.number().int().min(1).max(600).default(15),
});
export type RemoteGatewayConfig = z.infer<typeof remoteGatewayConfigSchema> & { managementPort: number };

/** Where each key comes from, for messages: `--server-key (GATEHOUSE_SERVER_KEY)`. */
const sources: Record<keyof z.infer<typeof remoteGatewayConfigSchema>, string> = {
  host: '--host (GATEHOUSE_MANAGEMENT_HOST)',
  managementPort: '--management-port (GATEHOUSE_MANAGEMENT_PORT)',
  dataDir: '--data-dir (GATEHOUSE_GATEWAY_DATA_DIR)',
  serverKey: '--server-key (GATEHOUSE_SERVER_KEY)',
  logLevel: '--log-level (GATEHOUSE_LOG_LEVEL)',
  sshPort: '--ssh-port (GATEHOUSE_GATEWAY_SSH_PORT)',
  targetTimeoutSeconds: 'GATEHOUSE_GATEWAY_TARGET_TIMEOUT_SECONDS',
};

/**
 * Reads the configuration; every problem is reported at once by name, and no value is
 * echoed. Throws an Error whose message lists them.
 */
export function loadRemoteGatewayConfig(
  flags: Partial<Record<keyof typeof sources, string | undefined>>,
  env: NodeJS.ProcessEnv = process.env,
): RemoteGatewayConfig {
  const pick = (flag: string | undefined, name: string) => flag ?? env[name];
  const raw = Object.fromEntries(
    Object.entries({
      host: pick(flags.host, 'GATEHOUSE_MANAGEMENT_HOST'),
      managementPort: pick(flags.managementPort, 'GATEHOUSE_MANAGEMENT_PORT'),
      dataDir: pick(flags.dataDir, 'GATEHOUSE_GATEWAY_DATA_DIR'),
      serverKey: pick(flags.serverKey, 'GATEHOUSE_SERVER_KEY'),
      logLevel: pick(flags.logLevel, 'GATEHOUSE_LOG_LEVEL'),
      sshPort: pick(flags.sshPort, 'GATEHOUSE_GATEWAY_SSH_PORT'),
      targetTimeoutSeconds: pick(flags.targetTimeoutSeconds, 'GATEHOUSE_GATEWAY_TARGET_TIMEOUT_SECONDS'),
    }).filter(([, v]) => v !== undefined && v !== ''),
  );
  const parsed = remoteGatewayConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const key = String(i.path[0] ?? '') as keyof typeof sources;
      return `  ${key} ${sources[key] ?? ''}: ${i.message}`;
    });
    throw new GatehouseError('CONFIG_INVALID', `The gateway's configuration is invalid:\n${lines.join('\n')}`);
  }
  const serverKey = parseLinkPublicKey(parsed.data.serverKey);
  return {
    ...parsed.data,
    serverKey: serverKey.ok ? serverKey.publicKey : parsed.data.serverKey,
    dataDir: path.resolve(parsed.data.dataDir),
    managementPort: parsed.data.managementPort ?? (isRoot() ? 443 : 9443),
  };
}

export interface RunningRemoteGateway {
  identity: LinkIdentity & { generated: boolean };
  managementPort: number;
  /** The SSH entry's port and host key; null when off. */
  ssh: { port: number; fingerprint: string } | null;
  close(): Promise<void>;
}

/**
 * Starts `gatehouse gateway`: the key pair (generated into the data directory on first
 * start), and the management endpoint the server syncs and relays through.
 */
export async function startRemoteGateway(
  config: RemoteGatewayConfig,
  logger = pino({ level: config.logLevel, base: { service: 'gatehouse-gateway' } }),
): Promise<RunningRemoteGateway> {
  const identity = loadOrCreateGatewayIdentity(config.dataDir);
  const recordingsDir = path.join(config.dataDir, 'recordings');
  // Recordings a killed run left behind are made whole before the server fetches them.
  for (const file of await readdir(recordingsDir, { recursive: true }).catch(() => [] as string[])) {
    if (file.endsWith('.cast')) await repairRecording(path.join(recordingsDir, file)).catch(() => 0);
  }
  const management = await ManagementServer.start({
    recordingsDir,
    identity,
    serverKey: config.serverKey,
    host: config.host,
    port: config.managementPort,
    version: GATEWAY_VERSION,
    logger,
    targetTimeoutMs: config.targetTimeoutSeconds * 1000,
  }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE' || error.code === 'EACCES') {
      throw new GatehouseError(
        'CONFIG_INVALID',
        `The gateway cannot listen on ${config.host}:${config.managementPort} (${error.code === 'EADDRINUSE' ? 'in use by another program' : 'not allowed'}). ` +
          'Choose another port with --management-port (GATEHOUSE_MANAGEMENT_PORT).',
      );
    }
    throw error;
  });
  logger.info(
    { managementPort: management.port, publicKey: identity.publicKey, fingerprint: identity.fingerprint, generated: identity.generated },
    `gateway management listening on ${config.host}:${management.port}`,
  );
  let ssh: SshGateway | null = null;
  let hostKey: ReturnType<typeof loadOrCreateHostKey> | undefined;
  if (config.sshPort !== 0) {
    hostKey = loadOrCreateHostKey(config.dataDir);
    const name = () => management.registration?.name ?? 'remote';
    const timeoutMs = config.targetTimeoutSeconds * 1000;
    const direct = (target: Parameters<TargetDialer>[0], context: Parameters<TargetDialer>[1]) =>
      directDialer(name(), timeoutMs)(target, context);
    ssh = await SshGateway.start({
      broker: new RemoteAccessBroker(management),
      hostKey: hostKey.privateKey,
      host: config.host,
      port: config.sshPort,
      recordingsDir,
      name: 'remote',
      // The server's setting, as its link says.
      recordInput: () => management.registration?.recordInput ?? false,
      recordBinaryExec: () => management.registration?.recordBinaryExec ?? false,
      logger: logger.child({ component: 'ssh' }),
      targetTimeoutMs: timeoutMs,
      dial: direct,
    }).catch(async (error: NodeJS.ErrnoException) => {
      await management.stop();
      if (error.code === 'EADDRINUSE' || error.code === 'EACCES') {
        throw new GatehouseError(
          'CONFIG_INVALID',
          `The gateway cannot listen for SSH on ${config.host}:${config.sshPort}. Choose another port with --ssh-port, or 0 to turn the entry off.`,
        );
      }
      throw error;
    });
    management.liveSessions = ssh;
    logger.info({ sshPort: ssh.port, hostKeyFingerprint: hostKey.fingerprint }, `SSH entry listening on ${config.host}:${ssh.port}`);
  }
  const running = ssh;
  return {
    identity,
    managementPort: management.port,
    ssh: running && hostKey ? { port: running.port, fingerprint: hostKey.fingerprint } : null,
    async close() {
      // Sessions end first, so their ends and recordings still reach the server.
      await running?.stop();
      await management.stop();
    },
  };
}
