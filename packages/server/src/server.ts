import { existsSync, renameSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GatehouseError, SETUP_TOKEN_PREFIX } from '@gatehouse/core';
import { hashToken, Leases, openDatabase, openVault, Settings, Users, type Db } from '@gatehouse/db';
import {
  combineLiveSessions,
  DesktopSessions,
  loadOrCreateHostKey,
  readHostKeyFile,
  RdpTunnel,
  SshGateway,
  VncGateway,
} from '@gatehouse/gateway';
import { buildApp, type GatehouseApp } from './app.js';
import { RdpRenderer } from './desktop/rdp-renderer.js';
import type { ServerConfig } from './config.js';
import { AbandonedSessionSweep, endAbandonedSessions, STOPPED_SERVER_REASON } from './gateway/abandoned-sessions.js';
import { BUILT_IN_GATEWAY } from './gateway/broker.js';
import { ServerDesktopBroker } from './gateway/desktop-broker.js';
import { recordingsDirOf } from './gateway/recordings.js';
import { createLogger, type Logger } from './logger.js';
import { SESSIONS_STOP_DEADLINE_MS, ShutdownSteps } from './shutdown.js';
import { MaintenanceLifecycle } from './maintenance/lifecycle.js';
import { loadMasterKey, pendingMasterKeyFile, type MasterKeySource } from './master-key.js';
import { newToken } from './passwords.js';
import { RotationSchedule } from './runbooks/rotation-schedule.js';
import { SETUP_TOKEN_SETTING, setupTokenFile } from './api/auth/routes.js';
import { ServerRdpTunnelBroker } from './gateway/rdp-tickets.js';
import { loadTls, TLS_SERVER_OPTIONS, type TlsMaterial } from './tls.js';

export interface RunningServer extends GatehouseApp {
  url: string;
  fingerprint: string;
  certFile: string;
  db: Db;
  /** The built-in SSH gateway; null when turned off (gatewayPort 0). */
  gateway: { port: number; fingerprint: string; publicKey: string } | null;
  /** The port host agents link to; null when agent links are off (agentPort 0, or the built-in gateway off). */
  agentPort: number | null;
  /** The port native VNC viewers connect to; null when off (vncPort 0, or the built-in gateway off). */
  vncPort: number | null;
  /** The `gatehouse rdp` tunnel's port; null when off (rdpPort 0, or the built-in gateway off). */
  rdpPort: number | null;
  /** The one-time set-up token's file when the database has no user yet, else null. */
  setupTokenFile: string | null;
  close(): Promise<void>;
}

/**
 * Starts `gatehouse server`: master key, database (created and migrated on first
 * start), vault, TLS, and the HTTPS API. On a database with no users it writes a
 * one-time set-up token to `<data-dir>/setup-token` for creating the first administrator.
 */
export async function startServer(config: ServerConfig, logger: Logger = createLogger(config.logLevel)): Promise<RunningServer> {
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    // A new master key only for a database with nothing sealed yet: beside an existing
    // vault it would open nothing, and would sit in the data directory looking like the key.
    const sealed = (await db.kysely.selectFrom('vault_keys').select('id').limit(1).executeTakeFirst()) !== undefined;
    const master = loadMasterKey({
      masterKey: config.masterKey,
      masterKeyFile: config.masterKeyFile,
      dataDir: config.dataDir,
      create: !sealed,
    });
    const vault = await openVaultSettlingRotation(db, master);
    const tls = await loadTls(config);
    const built = await buildApp({ config, db, vault, logger, https: { cert: tls.cert, key: tls.key } });
    const setupToken = await prepareFirstRun(db, config, logger);
    // Items a stopped server left queued or running: ended, their devices unlocked.
    const interrupted = await built.services.runbooks.interruptActive();
    if (interrupted > 0) logger.warn({ items: interrupted }, 'ended runbook items a stopped server left unfinished');
    const address = await built.app.listen({ host: config.host, port: config.port });
    await built.breakglass.startBackground();
    await built.auditCheckpoints.start();
    built.gateways.health.start();
    // After the jobs are set up: becoming the leader starts the break-glass recovery and catch-up.
    await built.leadership.start();
    const gateway = await startBuiltInGateway(built, config, logger).catch(async (error: unknown) => {
      await built.app.close();
      throw error;
    });
    // Recordings a stop left unsigned, once the gateway has cut back those of abandoned sessions.
    void built.recordingSignatures
      .signPending()
      .catch((error: unknown) => logger.error({ err: error }, 'could not sign the recordings left unsigned; retried at the next start'));
    const rdpTunnel = await startRdpTunnel(built, config, tls, gateway !== null, logger).catch(async (error: unknown) => {
      await gateway?.server.stop();
      await built.gateways.agentLinks.close();
      await built.app.close();
      throw error;
    });
    // After the gateway: closing a window left open by a stopped server ends its sessions there.
    const maintenance = new MaintenanceLifecycle({
      services: built.services,
      sessions: built.gatewaySessions,
      leases: new Leases(db),
      gateways: built.gateways,
      logger: logger.child({ component: 'maintenance' }),
    });
    built.services.maintenanceLifecycle = maintenance;
    maintenance.start();
    const rotationSchedule = new RotationSchedule({
      services: built.services,
      rotations: built.policyRotations,
      leases: new Leases(db),
      logger: logger.child({ component: 'rotation' }),
      everyMinutes: config.rotationScheduleMinutes,
      afterSessionDelayMs: config.rotationAfterSessionDelayMs,
    });
    rotationSchedule.start();
    // Ends and warnings of this replica's sessions asked for on another replica (PostgreSQL).
    const stopSessionRequests = built.gateways.watchSessionRequests();
    // The leader ends the sessions of replicas whose lease lapsed (PostgreSQL; on SQLite the one process is all there is).
    const sweep =
      db.dialect === 'postgres'
        ? new AbandonedSessionSweep({
            services: built.services,
            sessions: built.gatewaySessions,
            recordingsDir: recordingsDirOf(config.dataDir),
            logger: logger.child({ component: 'gateway' }),
            isLeader: () => built.leadership.isLeader,
            everyMs: Math.max(Math.floor((config.leaderLeaseSeconds * 1000) / 3), 1_000),
          })
        : undefined;
    sweep?.start();
    const port = (built.app.server.address() as { port: number } | null)?.port ?? config.port;
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
    logger.info(
      {
        address,
        url,
        database: db.location,
        dataDir: config.dataDir,
        masterKey: undefined,
        masterKeyOrigin: master.origin,
        tlsFingerprint: tls.fingerprint,
        tlsGenerated: tls.generated,
      },
      `Gatehouse is listening on ${url} (certificate SHA-256 ${tls.fingerprint})`,
    );
    return {
      ...built,
      url,
      fingerprint: tls.fingerprint,
      certFile: tls.certFile,
      db,
      gateway: gateway && { port: gateway.server.port, fingerprint: gateway.fingerprint, publicKey: gateway.publicKey },
      agentPort: built.gateways.agentLinks.server?.port ?? null,
      vncPort: gateway?.vnc?.port ?? null,
      rdpPort: rdpTunnel?.port ?? null,
      setupTokenFile: setupToken,
      async close() {
        const stopping = new ShutdownSteps(logger);
        await stopping.run('maintenance windows', () => maintenance.stop());
        await stopping.run('rotation schedule', () => rotationSchedule.stop());
        stopSessionRequests();
        await stopping.run('abandoned-session sweep', async () => sweep?.stop());
        // Sessions end first: their recordings close and their ends reach the audit log.
        // Within a deadline: what is still running then is killed, and the next start ends
        // those sessions as abandoned and repairs their recordings.
        const ended = await stopping.within(SESSIONS_STOP_DEADLINE_MS, [
          ['SSH gateway', () => gateway?.server.stop()],
          ['VNC gateway', () => gateway?.vnc?.stop()],
          // Browser RDP sessions end as desktops first (their rows say why), then any still starting.
          ['browser desktops', () => gateway?.desktops.endAll('The gateway is stopping.').then(() => gateway.rdp.stop())],
          ['RDP tunnel', () => rdpTunnel?.stop()],
        ]);
        if (!ended) gateway?.rdp.kill();
        await stopping.run('agent links', () => built.gateways.agentLinks.close());
        await stopping.run('HTTPS', () => built.app.close());
        await stopping.run('database', () => db.close());
        stopping.done();
      },
    };
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error;
  }
}

/**
 * Starts the built-in SSH/SFTP gateway on `gatewayPort` (0: off) with the host key of
 * `gatewayHostKeyFile` or the one in `<data-dir>/gateway/` (generated once), and recordings
 * under `<data-dir>/recordings/`.
 */
async function startBuiltInGateway(built: GatehouseApp, config: ServerConfig, logger: Logger) {
  if (config.gatewayPort === 0) {
    logger.info('The built-in SSH gateway is off (gatewayPort 0).');
    return null;
  }
  const hostKey =
    config.gatewayHostKeyFile === undefined
      ? loadOrCreateHostKey(path.join(config.dataDir, 'gateway'))
      : readHostKeyFile(config.gatewayHostKeyFile, 'gatewayHostKeyFile (GATEHOUSE_GATEWAY_HOST_KEY_FILE)');
  // Sessions a previous run of this server left open (it was killed, or the machine went down).
  const abandoned = await endAbandonedSessions(
    { services: built.services, sessions: built.gatewaySessions, recordingsDir: recordingsDirOf(config.dataDir), logger },
    STOPPED_SERVER_REASON,
    (await built.gatewaySessions.liveReplicas(BUILT_IN_GATEWAY)).filter(goneFromThisMachine),
  );
  const host = config.gatewayHost ?? config.host;
  const broker = new ServerDesktopBroker(
    built.services,
    built.gatewaySessions,
    () => built.gateways.settings(),
    BUILT_IN_GATEWAY,
    built.terminal,
    built.gateways.agentLinks,
    built.runbookGateway,
  );
  const server = await SshGateway.start({
    broker,
    hostKey: hostKey.privateKey,
    host,
    port: config.gatewayPort,
    recordingsDir: recordingsDirOf(config.dataDir),
    name: BUILT_IN_GATEWAY,
    logger: logger.child({ component: 'gateway' }),
    recordInput: config.gatewayRecordInput,
    recordBinaryExec: config.gatewayRecordBinaryExec,
    targetTimeoutMs: config.gatewayTargetTimeoutSeconds * 1000,
    dial: built.gateways.dialer(),
  }).catch(
    listenProblem(
      `The SSH gateway cannot listen on ${host}:${config.gatewayPort}`,
      'Choose another port with --gateway-port (GATEHOUSE_GATEWAY_PORT), or turn the built-in gateway off with --gateway-port 0.',
    ),
  );
  built.gateways.builtIn = { address: `${host}:${server.port}`, hostKeyFingerprint: hostKey.fingerprint, hostKey: hostKey.publicKey };
  built.terminal.gateway = { host, port: server.port, hostKeyFingerprint: hostKey.fingerprint };
  built.runbookGateway.gateway = built.terminal.gateway;
  const desktops = new DesktopSessions();
  const desktopLogger = logger.child({ component: 'desktop' });
  // One renderer per server: rdpMaxSessions counts every browser RDP session of this gateway.
  const rdp = new RdpRenderer({
    maxSessions: config.rdpMaxSessions,
    displayPool: config.rdpDisplayPool,
    client: config.rdpClient,
    logger: desktopLogger,
  });
  built.gateways.builtInSessions = combineLiveSessions(server, desktops);
  built.gateways.desktop = {
    broker,
    dial: built.gateways.dialer(),
    recordingsDir: recordingsDirOf(config.dataDir),
    name: BUILT_IN_GATEWAY,
    timeoutMs: config.gatewayTargetTimeoutSeconds * 1000,
    sessions: desktops,
    logger: desktopLogger,
    rdp,
  };
  const linkKey = await built.gateways.identity();
  logger.info(
    { serverKey: linkKey.publicKey, serverKeyFingerprint: linkKey.fingerprint },
    `Remote gateways must be started with this server's key: --server-key ${linkKey.publicKey} (${linkKey.fingerprint})`,
  );
  logger.info(
    {
      gatewayPort: server.port,
      hostKeyFingerprint: hostKey.fingerprint,
      hostKeyGenerated: hostKey.generated,
      hostKeyFile: hostKey.file,
      abandonedSessions: abandoned.length,
    },
    `SSH gateway listening on ${host}:${server.port} (host key ${hostKey.fingerprint})`,
  );
  const vnc = await startAgentLinks(built, config, host, logger)
    .then(() => startVncGateway(built, config, host, logger))
    .catch(async (error: unknown) => {
      await server.stop();
      await built.gateways.agentLinks.close();
      throw error;
    });
  return { server, vnc, desktops, rdp, fingerprint: hostKey.fingerprint, publicKey: hostKey.publicKey };
}

/** The built-in gateway's listener for native VNC viewers on `vncPort` (0: off), on the gateway's address. */
async function startVncGateway(built: GatehouseApp, config: ServerConfig, host: string, logger: Logger): Promise<VncGateway | null> {
  const desktop = built.gateways.desktop;
  if (config.vncPort === 0 || !desktop) {
    logger.info('The VNC listener for native viewers is off (vncPort 0).');
    return null;
  }
  const vnc = await VncGateway.start({
    broker: desktop.broker,
    host,
    port: config.vncPort,
    recordingsDir: desktop.recordingsDir,
    name: desktop.name,
    logger: desktop.logger,
    dial: desktop.dial,
    targetTimeoutMs: desktop.timeoutMs,
    sessions: desktop.sessions,
  }).catch(
    listenProblem(
      `The VNC gateway cannot listen on ${host}:${config.vncPort}`,
      'Choose another port with --vnc-port (GATEHOUSE_VNC_PORT), or turn the VNC listener off with --vnc-port 0.',
    ),
  );
  built.gateways.vncAddress = `${host}:${vnc.port}`;
  logger.info({ vncPort: vnc.port }, `VNC gateway listening on ${host}:${vnc.port}`);
  return vnc;
}

/** The built-in gateway's listener for host agents on `agentPort` (0: off), on the gateway's address. */
async function startAgentLinks(built: GatehouseApp, config: ServerConfig, host: string, logger: Logger): Promise<void> {
  if (config.agentPort === 0) {
    logger.info('Host agent links are off (agentPort 0).');
    return;
  }
  const links = await built.gateways.agentLinks
    .start(host, config.agentPort)
    .catch(
      listenProblem(
        `The host agent listener cannot listen on ${host}:${config.agentPort}`,
        'Choose another port with GATEHOUSE_AGENT_PORT, or turn agent links off with GATEHOUSE_AGENT_PORT=0.',
      ),
    );
  logger.info(
    { agentPort: links.port, agentAddress: config.agentAddress ?? null },
    `Host agents link to ${host}:${links.port}${config.agentAddress ? ` (they are told ${config.agentAddress})` : ''}`,
  );
}

/**
 * The built-in gateway's listener for `gatehouse rdp` tunnels on `rdpPort` (0: off), on the
 * gateway's address, with the server's own TLS certificate. Its sessions end like the SSH
 * gateway's (an administrator, a maintenance window closing).
 */
async function startRdpTunnel(built: GatehouseApp, config: ServerConfig, tls: TlsMaterial, gatewayOn: boolean, logger: Logger) {
  if (config.rdpPort === 0 || !gatewayOn) {
    logger.info(`The RDP tunnel for ./gatehouse rdp is off (${gatewayOn ? 'rdpPort' : 'gatewayPort'} 0).`);
    return null;
  }
  const host = config.gatewayHost ?? config.host;
  const tunnel = await RdpTunnel.start({
    broker: new ServerRdpTunnelBroker(built.services, built.gatewaySessions, () => built.gateways.settings(), BUILT_IN_GATEWAY),
    tls: { cert: tls.cert, key: tls.key, ...TLS_SERVER_OPTIONS },
    host,
    port: config.rdpPort,
    name: BUILT_IN_GATEWAY,
    logger: logger.child({ component: 'rdp-tunnel' }),
    dial: built.gateways.dialer(),
    targetTimeoutMs: config.gatewayTargetTimeoutSeconds * 1000,
  }).catch(
    listenProblem(
      `The RDP tunnel cannot listen on ${host}:${config.rdpPort}`,
      'Choose another port with --rdp-port (GATEHOUSE_RDP_PORT), or turn the tunnel off with --rdp-port 0.',
    ),
  );
  built.gateways.rdpAddress = `${host}:${tunnel.port}`;
  const sessions = built.gateways.builtInSessions;
  built.gateways.builtInSessions = sessions ? combineLiveSessions(sessions, tunnel) : tunnel;
  logger.info({ rdpPort: tunnel.port }, `RDP tunnel for ./gatehouse rdp listening on ${host}:${tunnel.port}`);
  return tunnel;
}

/** A port in use or not allowed, as a configuration problem that says what to do; other errors as they are. */
function listenProblem(what: string, advice: string) {
  return (error: NodeJS.ErrnoException): never => {
    if (error.code === 'EADDRINUSE' || error.code === 'EACCES') {
      throw new GatehouseError(
        'CONFIG_INVALID',
        `${what} (${error.code === 'EADDRINUSE' ? 'in use by another program' : 'not allowed'}). ${advice}`,
      );
    }
    throw error;
  };
}

/**
 * Opens the vault. A rotation of the data-directory key that was interrupted after its
 * database commit leaves the new key in `master.key.next`: it is used and moved into
 * place. One interrupted before the commit leaves a `.next` that opens nothing: removed.
 */
async function openVaultSettlingRotation(db: Db, master: MasterKeySource) {
  const next = master.origin === 'data-dir' && master.file ? pendingMasterKeyFile(master.file) : undefined;
  try {
    const vault = await openVault(db, master.key);
    if (next && existsSync(next)) rmSync(next);
    return vault;
  } catch (error) {
    if (!next || !master.file || !existsSync(next)) throw error;
    const vault = await openVault(db, loadMasterKey({ masterKeyFile: next, dataDir: '', create: false }).key);
    renameSync(next, master.file);
    return vault;
  }
}

/** On a database without users: writes a new set-up token and returns its file (else null). */
async function prepareFirstRun(db: Db, config: ServerConfig, logger: Logger): Promise<string | null> {
  if ((await new Users(db).count()) > 0) return null;
  const settings = new Settings(db);
  const token = newToken(SETUP_TOKEN_PREFIX);
  await settings.set(SETUP_TOKEN_SETTING, hashToken(token));
  const file = setupTokenFile(config.dataDir);
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  logger.warn(
    { setupTokenFile: file },
    `No administrator yet. Create one with: ./gatehouse setup --data-dir ${config.dataDir} (or POST /api/v1/setup with the token in ${file}).`,
  );
  return file;
}

export function describeStartupError(error: unknown): string {
  if (error instanceof GatehouseError) return error.message;
  const e = error as NodeJS.ErrnoException;
  if (e.code === 'EADDRINUSE') return `The port is in use by another program. Stop it or start with --port <other>.`;
  if (e.code === 'EACCES') return `Not allowed to listen on that port. Use a port above 1023 (e.g. --port 8443) or run as root.`;
  return `Gatehouse could not start: ${e.message}`;
}

/**
 * A replica (`<hostname>:<pid>:<uuid>`, `Leadership.holder`) that ran on this machine as a
 * process that is gone: a server killed and started again here need not wait for its old
 * lease to lapse before its sessions are ended as abandoned.
 */
function goneFromThisMachine(replica: string): boolean {
  const parts = replica.split(':');
  const pid = Number(parts.at(-2));
  if (parts.slice(0, -2).join(':') !== os.hostname() || !Number.isInteger(pid) || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
