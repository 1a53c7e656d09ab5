import { readdir } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { z } from 'zod';
import { parseLinkPublicKey, loadOrCreateGatewayIdentity, type LinkIdentity } from './identity.js';
import { repairRecording } from './asciicast.js';
import { repairRfbRecording } from './rfb/recording.js';
import { directDialer, type TargetDialer } from './dial.js';
import { SshGateway } from './gateway.js';
import { loadOrCreateHostKey, readHostKeyFile, type GatewayHostKey } from './host-key.js';
import { AgentLinkServer } from './agent-links.js';
import { callLinkProcedure, type LinkInput, type LinkProcedure } from './link-procedures.js';
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
  /** The SSH entry's host key (a mounted Secret, an ssh-keygen key); unset: generated once in dataDir. */
  hostKeyFile: z.string().min(1).optional(),
  serverKey: z.string({ error: 'is required: the key "./gatehouse gateways server-key" prints on the server' }).superRefine((text, ctx) => {
    const parsed = parseLinkPublicKey(text);
    if (!parsed.ok)
      ctx.addIssue({
        code: 'custom',
        message: parsed.message.replace('the gateway printed at its first start', 'that "./gatehouse gateways server-key" prints'),
      });
  }),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** This gateway's own SSH/SFTP entry for users (0: off). */
  sshPort: z.coerce.number({ error: 'must be a port number from 0 to 65535' }).int().min(0).max(65535).default(7993),
  targetTimeoutSeconds: z.coerce.number().int().min(1).max(600).default(15),
  /** The listener host agents of this gateway's segment link to (0: off). */
  agentPort: z.coerce.number({ error: 'must be a port number from 0 to 65535' }).int().min(0).max(65535).default(7996),
  /** `host:port` agents are told to dial, when it is not this gateway's host and agent port (NAT, a load balancer, 443). */
  agentAddress: z
    .string()
    .regex(/^(\[[0-9A-Fa-f:.]+\]|[^:\s[\]]+):\d{1,5}$/, { error: 'must be host:port ([v6]:port for IPv6)' })
    .optional(),
});
export type RemoteGatewayConfig = z.infer<typeof remoteGatewayConfigSchema> & { managementPort: number };

/** Where each key comes from, for messages: `--server-key (GATEHOUSE_SERVER_KEY)`. */
const sources: Record<keyof z.infer<typeof remoteGatewayConfigSchema>, string> = {
  host: '--host (GATEHOUSE_MANAGEMENT_HOST)',
  managementPort: '--management-port (GATEHOUSE_MANAGEMENT_PORT)',
  dataDir: '--data-dir (GATEHOUSE_GATEWAY_DATA_DIR)',
  hostKeyFile: '--host-key-file (GATEHOUSE_GATEWAY_HOST_KEY_FILE)',
  serverKey: '--server-key (GATEHOUSE_SERVER_KEY)',
  logLevel: '--log-level (GATEHOUSE_LOG_LEVEL)',
  sshPort: '--ssh-port (GATEHOUSE_GATEWAY_SSH_PORT)',
  targetTimeoutSeconds: 'GATEHOUSE_GATEWAY_TARGET_TIMEOUT_SECONDS',
  agentPort: '--agent-port (GATEHOUSE_GATEWAY_AGENT_PORT)',
  agentAddress: '--agent-address (GATEHOUSE_GATEWAY_AGENT_ADDRESS)',
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
      hostKeyFile: pick(flags.hostKeyFile, 'GATEHOUSE_GATEWAY_HOST_KEY_FILE'),
      serverKey: pick(flags.serverKey, 'GATEHOUSE_SERVER_KEY'),
      logLevel: pick(flags.logLevel, 'GATEHOUSE_LOG_LEVEL'),
      sshPort: pick(flags.sshPort, 'GATEHOUSE_GATEWAY_SSH_PORT'),
      targetTimeoutSeconds: pick(flags.targetTimeoutSeconds, 'GATEHOUSE_GATEWAY_TARGET_TIMEOUT_SECONDS'),
      agentPort: pick(flags.agentPort, 'GATEHOUSE_GATEWAY_AGENT_PORT'),
      agentAddress: pick(flags.agentAddress, 'GATEHOUSE_GATEWAY_AGENT_ADDRESS'),
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
    ...(parsed.data.hostKeyFile !== undefined ? { hostKeyFile: path.resolve(parsed.data.hostKeyFile) } : {}),
    managementPort: parsed.data.managementPort ?? (isRoot() ? 443 : 9443),
  };
}

export interface RunningRemoteGateway {
  identity: LinkIdentity & { generated: boolean };
  managementPort: number;
  /** The SSH entry's port and host key; null when off. */
  ssh: { port: number; fingerprint: string } | null;
  /** The agent listener's port; null when off. */
  agentPort: number | null;
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
  // Before any listener: a host key file refused stops the start with nothing to close.
  const hostKey = config.sshPort === 0 ? undefined : loadSshEntryHostKey(config);
  const recordingsDir = path.join(config.dataDir, 'recordings');
  // Recordings a killed run left behind are made whole before the server fetches them.
  for (const file of await readdir(recordingsDir, { recursive: true }).catch(() => [] as string[])) {
    // Asciicast to its last whole line, a desktop recording to its last whole frame.
    const repair = file.endsWith('.cast') ? repairRecording : file.endsWith('.rfb') ? repairRfbRecording : undefined;
    await repair?.(path.join(recordingsDir, file)).catch(() => 0);
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
  if (hostKey) {
    const name = () => management.registration?.name ?? 'remote';
    const timeoutMs = config.targetTimeoutSeconds * 1000;
    const direct: TargetDialer = async (target, context) => {
      // A device with a host agent: over the agent's link to this gateway, if it is here.
      if (target.agentId) return dialAgentHere(management.agentLinks, target, name(), timeoutMs);
      return directDialer(name(), timeoutMs)(target, context);
    };
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
    logger.info(
      { sshPort: ssh.port, hostKeyFingerprint: hostKey.fingerprint, hostKeyFile: hostKey.file },
      `SSH entry listening on ${config.host}:${ssh.port} (host key ${hostKey.fingerprint})`,
    );
  }
  const agents = config.agentPort === 0 ? null : await startAgentListener(config, management, identity, logger);
  const running = ssh;
  return {
    identity,
    managementPort: management.port,
    ssh: running && hostKey ? { port: running.port, fingerprint: hostKey.fingerprint } : null,
    agentPort: agents?.port ?? null,
    async close() {
      // Sessions end first, so their ends and recordings still reach the server.
      await running?.stop();
      await agents?.close();
      await management.stop();
    },
  };
}

/** The SSH entry's host key: the operator's file (the same for every replica and restart), or generated once in the data directory. */
function loadSshEntryHostKey(config: RemoteGatewayConfig): GatewayHostKey {
  return config.hostKeyFile === undefined ? loadOrCreateHostKey(config.dataDir) : readHostKeyFile(config.hostKeyFile, sources.hostKeyFile);
}

/**
 * The listener host agents of this gateway's segment link to. Whether an agent may link,
 * and its link's state, are the server's to decide and record: asked over this gateway's
 * link (any server replica), under this gateway's registered name.
 */
async function startAgentListener(
  config: RemoteGatewayConfig,
  management: ManagementServer,
  identity: LinkIdentity,
  logger: pino.Logger,
): Promise<AgentLinkServer> {
  const call = <P extends LinkProcedure>(procedure: P, input: LinkInput<P>) =>
    callLinkProcedure((p, i) => management.callServer(p, i), procedure, input);
  const log = logger.child({ component: 'agent-links' });
  const report = (what: string) => (error: unknown) => log.error({ err: error }, `could not report ${what} to the server`);
  const agents = await AgentLinkServer.start({
    identity,
    host: config.host,
    port: config.agentPort,
    name: () => management.registration?.name ?? 'remote',
    logger: log,
    authenticate: async (hello) => {
      try {
        return await call('agentHello', hello);
      } catch (error) {
        // No server link: the agent retries (bye with retry), as it would with the gateway down.
        throw new GatehouseError('UNREACHABLE', (error as Error).message);
      }
    },
    linkChanged: (agentId, state, version) =>
      call('agentLinkChanged', { agentId, state, ...(version !== undefined ? { version } : {}) }).then(
        () => undefined,
        report('an agent link change'),
      ),
    contact: (agentId) => call('agentContact', { agentId }).then(() => undefined, report('agent contact')),
  }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE' || error.code === 'EACCES') {
      throw new GatehouseError(
        'CONFIG_INVALID',
        `The gateway cannot listen for host agents on ${config.host}:${config.agentPort}. Choose another port with --agent-port, or 0 to turn it off.`,
      );
    }
    throw error;
  });
  management.agentLinks = agents;
  const wildcard = config.host === '0.0.0.0' || config.host === '::';
  // `*:port`: the server tells agents this gateway's host as it knows it (the registered management address).
  management.agentAddress =
    config.agentAddress ?? `${wildcard ? '*' : config.host.includes(':') ? `[${config.host}]` : config.host}:${agents.port}`;
  log.info({ agentPort: agents.port, agentAddress: management.agentAddress }, `agent listener on ${config.host}:${agents.port}`);
  return agents;
}

/** A session connection to an agent's device over its link to this gateway, or why not (for the user). */
async function dialAgentHere(
  links: AgentLinkServer | undefined,
  target: Parameters<TargetDialer>[0],
  gateway: string,
  timeoutMs: number,
): ReturnType<TargetDialer> {
  const via = { gateway, segment: target.segment };
  if (!links?.isLinked(target.agentId as string)) {
    return {
      ok: false,
      reason: `The host agent of ${target.deviceName} is not linked to this gateway (${gateway}). Connect through the default gateway, which finds the agent's gateway.`,
      ...via,
    };
  }
  try {
    return { ok: true, socket: await links.open(target.agentId as string, timeoutMs), ...via };
  } catch (error) {
    return { ok: false, reason: `The agent of ${target.deviceName} did not take the connection: ${(error as Error).message}`, ...via };
  }
}
