import path from 'node:path';
import pino from 'pino';
import { z } from 'zod';
import { parseLinkPublicKey, loadOrCreateGatewayIdentity, type LinkIdentity } from './identity.js';
import { ManagementServer } from './management.js';

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
      targetTimeoutSeconds: pick(flags.targetTimeoutSeconds, 'GATEHOUSE_GATEWAY_TARGET_TIMEOUT_SECONDS'),
    }).filter(([, v]) => v !== undefined && v !== ''),
  );
  const parsed = remoteGatewayConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const key = String(i.path[0] ?? '') as keyof typeof sources;
      return `  ${key} ${sources[key] ?? ''}: ${i.message}`;
    });
    throw new Error(`The gateway's configuration is invalid:\n${lines.join('\n')}`);
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
  const management = await ManagementServer.start({
    identity,
    serverKey: config.serverKey,
    host: config.host,
    port: config.managementPort,
    version: GATEWAY_VERSION,
    logger,
    targetTimeoutMs: config.targetTimeoutSeconds * 1000,
  }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE' || error.code === 'EACCES') {
      throw new Error(
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
  return {
    identity,
    managementPort: management.port,
    close: () => management.stop(),
  };
}
