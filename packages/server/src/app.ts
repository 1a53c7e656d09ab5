import type { ServerOptions as HttpsServerOptions } from 'node:https';
import path from 'node:path';
import cookie from '@fastify/cookie';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { certificateSpkiFingerprint, GatehouseError, InternalError } from '@gatehouse/core';
import {
  AccountCredentials,
  Agents,
  BreakGlassRuns,
  DesktopTokens,
  Gateways,
  GatewaySessions,
  Inventory,
  Leases,
  MaintenanceWindows,
  RateLimits,
  RotationPolicies,
  RunbookRuns,
  Runbooks,
  Settings,
  Users,
  type Db,
  type Vault,
} from '@gatehouse/db';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { health, openApiDocument, readiness, responses } from '@gatehouse/api';
import { loadAuditCheckpointKey } from './audit-checkpoint-key.js';
import { AuditCheckpoints } from './audit-checkpoints.js';
import { Leadership } from './leadership.js';
import { DatabaseHealth } from './database-health.js';
import { databaseRateLimitStore } from './rate-limit-store.js';
import { accessHook } from './auth.js';
import type { ServerConfig } from './config.js';
import { CONTENT_SECURITY_POLICY, DOCS_CONTENT_SECURITY_POLICY, registerConsole } from './console.js';
import { handleError, sendError } from './errors.js';
import { fileRoutes } from './api/files/routes.js';
import { openApiTransform } from './openapi.js';
import { jsonNestsDeeperThan, MAX_JSON_DEPTH, nulCharacterError, nulCharacterPaths, tooDeepError } from './json-body.js';
import { terminalRoutes } from './api/terminal/routes.js';
import { desktopSocketRoutes } from './api/desktop/routes.js';
import { WebTerminal } from './terminal.js';
import { RunbookGateway } from './runbooks/gateway-client.js';
import { RunbookService } from './runbooks/service.js';
import { AfterSessionRotation } from './runbooks/after-session-rotation.js';
import { PolicyRotations } from './runbooks/policy-rotation.js';
import { TLS_SERVER_OPTIONS } from './tls.js';
import websocket from '@fastify/websocket';
import { gatewayRoutes } from './api/gateways/routes.js';
import { hostKeyRoutes } from './api/host-keys/routes.js';
import { sessionRoutes } from './api/sessions/routes.js';
import { recordingsDirOf } from './gateway/recordings.js';
import { RecordingSignatures } from './gateway/recording-signatures.js';
import { loadRecordingStoreSettings, startRecordingUploads } from './gateway/recording-store.js';
import { GatewayService } from './gateway/service.js';
import type { Logger } from './logger.js';
import { auditRoutes } from './api/audit/routes.js';
import { breakGlassRoutes } from './api/breakglass/routes.js';
import { BreakGlassService } from './breakglass/service.js';
import { authRoutes } from './api/auth/routes.js';
import { ssoRoutes } from './api/sso/routes.js';
import { accountRoutes } from './api/accounts/routes.js';
import { deviceRoutes } from './api/devices/routes.js';
import { inventoryFileRoutes } from './api/inventory/routes.js';
import { agentRoutes } from './api/agents/routes.js';
import { desktopRoutes } from './api/desktops/routes.js';
import { rdpTunnelRoutes } from './api/desktops/rdp-tunnel.js';
import { rotationPolicyRoutes } from './api/rotation-policies/routes.js';
import { runbookRoutes } from './api/runbooks/routes.js';
import { maintenanceRoutes } from './api/maintenance/routes.js';
import { projectRoutes } from './api/projects/routes.js';
import { sshEntryRoutes } from './api/ssh-entry/routes.js';
import { sshKeyRoutes } from './api/ssh-keys/routes.js';
import { userRoutes } from './api/users/routes.js';
import { grantRoutes } from './api/grants/routes.js';
import { tokenRoutes } from './api/tokens/routes.js';
import { RefusalAudit, refusalAuditHook } from './refusal-audit.js';
import { createAudit, createWithAudit, type Access, type Services } from './services.js';
import { everyone } from './access.js';
import { Metrics, metricsRoute } from './metrics.js';

export const API_PREFIX = '/api/v1';
/**
 * When the server stops: how long browsers get to answer the close of their WebSockets and
 * requests in flight get to finish, before their connections are cut.
 */
export const CLOSE_GRACE_MS = 2000;
export const VERSION = '0.1.0';

/** One registered route and who may call it: the table the role × route test walks. */
export interface RouteEntry {
  method: string;
  url: string;
  access: Access;
  /** The status codes the route declares a response schema for (none: a WebSocket, or not yet declared). */
  responses: string[];
  websocket: boolean;
}

export interface BuildAppOptions {
  config: ServerConfig;
  db: Db;
  vault: Vault;
  logger: Logger;
  https?: { cert: string; key: string } | null;
  /** The built web console (default: @gatehouse/web's dist/). */
  webRoot?: string;
}

export interface GatehouseApp {
  app: FastifyInstance;
  services: Services;
  routes: RouteEntry[];
  breakglass: BreakGlassService;
  /** Signed checkpoints of the audit chain, kept outside the database. */
  auditCheckpoints: AuditCheckpoints;
  /** Signs each finished recording with the same key (`services.recordingSignatures`). */
  recordingSignatures: RecordingSignatures;
  /** Sessions through gateways and trusted host keys (the built-in gateway's broker uses them too). */
  gatewaySessions: GatewaySessions;
  /** Registered gateways, their status sync, tunnel mode and the built-in gateway's dialer. */
  gateways: GatewayService;
  /** The browser terminal (its gateway is set once the built-in gateway listens). */
  terminal: WebTerminal;
  /** The runbook engine's way into the built-in gateway (its gateway is set once that listens). */
  runbookGateway: RunbookGateway;
  /** Starts the rotations policies ask for (scheduled, and after sessions). */
  policyRotations: PolicyRotations;
  /** Rotation after sessions (the brokers tell it of session ends through `services.afterSessionRotation`). */
  afterSessionRotation: AfterSessionRotation;
  /** Whether this replica runs the scheduled jobs; `start()` once the server listens. */
  leadership: Leadership;
}

/**
 * Text logs (a terminal): one short debug line per request instead of Fastify's
 * "incoming request" and "request completed" pair at info; a request that failed is
 * still logged at error.
 */
class TerminalRequestLogs extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) {
      super.requestCompleted(error, request, reply);
      return;
    }
    // The route, never the query string (it may hold a token).
    request.log.debug(`${request.method} ${request.url.split('?')[0]} ${reply.statusCode} ${Math.round(reply.elapsedTime)} ms`);
  }
}

/** Builds the HTTP API: every route under /api/v1 declares its access, or start-up fails. */
export async function buildApp(opts: BuildAppOptions): Promise<GatehouseApp> {
  const { config, db, vault, logger } = opts;
  const fastifyOptions: FastifyServerOptions & { https?: HttpsServerOptions | null } = {
    loggerInstance: logger,
    bodyLimit: config.bodyLimit,
    requestIdHeader: false,
    // Only the configured proxies' X-Forwarded-For is believed (req.ip is then the right-most
    // address that is not one of them); none: req.ip is the connection's address.
    trustProxy: config.trustedProxies.length > 0 ? [...config.trustedProxies] : false,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ...(config.logFormat === 'text' ? { logController: new TerminalRequestLogs() } : {}),
  };
  if (opts.https) fastifyOptions.https = { ...opts.https, ...TLS_SERVER_OPTIONS };
  const app = Fastify(fastifyOptions) as unknown as FastifyInstance;
  // The API takes JSON (and CSV for imports, see api/inventory/routes.ts): a text/plain body is a
  // wrong Content-Type (415), not a JSON value to validate.
  app.removeContentTypeParser('text/plain');
  // A body nested thousands deep is refused before it is parsed or walked: one request must
  // not hold the event loop that relays every SSH session.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = String(body);
    // An empty body is no body (curl -X POST -H 'Content-Type: application/json'): a route
    // whose body is optional takes it; any other still answers "The request body is empty".
    const schema = req.routeOptions.schema?.body as { safeParse?: (v: unknown) => { success: boolean } } | undefined;
    if (text.trim() === '' && schema?.safeParse?.(null).success) return done(null, null);
    if (jsonNestsDeeperThan(text, MAX_JSON_DEPTH)) return done(tooDeepError(), undefined);
    return parseJson(req, text, done);
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(handleError);

  // One replica (the leader) runs the scheduled jobs; on SQLite this process always does.
  const leadership = new Leadership({
    leases: db.dialect === 'postgres' ? new Leases(db) : undefined,
    logger: logger.child({ component: 'leadership' }),
    leaseMs: config.leaderLeaseSeconds * 1000,
  });
  // Each server instance has its own registry: tests start several servers in one process.
  const metrics = new Metrics({
    db,
    gateways: new Gateways(db),
    breakglassRuns: new BreakGlassRuns(db),
    isLeader: () => leadership.isLeader,
  });
  const audit = createAudit(db, logger, metrics);
  const core: Omit<Services, 'runbooks'> = {
    config,
    db,
    database: new DatabaseHealth(db),
    replica: leadership.holder,
    vault,
    logger,
    inventory: new Inventory(db, vault),
    users: new Users(db),
    settings: new Settings(db),
    maintenance: new MaintenanceWindows(db),
    agents: new Agents(db),
    storedRunbooks: new Runbooks(db.kysely),
    runbookRuns: new RunbookRuns(db.kysely),
    accountCredentials: new AccountCredentials(vault, db.kysely),
    rotationPolicies: new RotationPolicies(db.kysely),
    desktopTokens: new DesktopTokens(vault, db.kysely),
    serverSpkiFingerprint: opts.https ? certificateSpkiFingerprint(opts.https.cert) : null,
    audit,
    withAudit: createWithAudit(db, vault, logger, metrics),
    metrics,
    refusals: new RefusalAudit(audit, { limit: config.refusalAuditLimit, windowMs: config.refusalAuditWindowSeconds * 1000 }),
  };
  // A rotation's pending and previous credentials, for the logins that verify them.
  const runbookGateway = new RunbookGateway((id) =>
    core.accountCredentials.reveal(id).catch((error: unknown) => {
      if (error instanceof GatehouseError && error.code === 'NOT_FOUND') return undefined;
      throw error;
    }),
  );
  const services: Services = Object.assign(core, { runbooks: new RunbookService(core, runbookGateway, logger) });

  const isLeader = () => leadership.isLeader;
  // The server's signing key: audit checkpoints and recordings.
  const signingKey = loadAuditCheckpointKey({ keyFile: config.auditCheckpointKeyFile, dataDir: config.dataDir, create: true });
  const auditCheckpoints = new AuditCheckpoints({
    db,
    key: signingKey,
    logger,
    audit: (req, event) => services.audit(req, event),
    file: config.auditCheckpointFile,
    intervalMs: config.auditCheckpointMinutes * 60_000,
    isLeader,
  });

  const breakglass = new BreakGlassService({
    db,
    inventory: services.inventory,
    settings: services.settings,
    vault,
    logger,
    audit: (req, event) => services.audit(req, event),
    withAudit: (req, write) => services.withAudit(req, write),
    mountedConfig: config.breakglassConfig,
    retryDelaysMs: config.breakglassRetryDelays
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x !== '')
      .map((x) => Number(x) * 1000),
    staleHours: config.breakglassStaleHours,
    timeoutSeconds: config.breakglassTimeoutSeconds,
    stagingDir: path.join(config.dataDir, 'tmp'),
    restrictions: { allowPlaintext: config.breakglassAllowPlaintext, allowLinkLocal: config.breakglassAllowLinkLocal },
    auditCheckpoint: () => auditCheckpoints.sign(),
    isLeader,
  });
  leadership.onChange((leader) => {
    if (leader) breakglass.lead();
  });

  const gatewaySessions = new GatewaySessions(db);
  const recordingSignatures = new RecordingSignatures({
    sessions: gatewaySessions,
    recordingsDir: recordingsDirOf(config.dataDir),
    key: signingKey,
    logger: logger.child({ component: 'recordings' }),
  });
  services.recordingSignatures = recordingSignatures;
  const recordingUploads = config.recordingStoreConfig
    ? await startRecordingUploads({
        settings: loadRecordingStoreSettings(config.recordingStoreConfig),
        retryDelaysMs: config.recordingStoreRetryDelays.split(',').map((x) => Number(x.trim()) * 1000),
        recordingsDir: recordingsDirOf(config.dataDir),
        sessions: gatewaySessions,
        signatures: recordingSignatures,
        key: signingKey,
        metrics,
        logger: logger.child({ component: 'recording-uploads' }),
      })
    : undefined;
  services.sftpLogs = recordingUploads?.sftpLogs;
  services.recordingUploads = recordingUploads?.uploads;
  const policyRotations = new PolicyRotations(services, logger.child({ component: 'rotation' }));
  const afterSessionRotation = new AfterSessionRotation({
    services,
    sessions: gatewaySessions,
    rotations: policyRotations,
    logger: logger.child({ component: 'rotation' }),
    delayMs: config.rotationAfterSessionDelayMs,
  });
  services.afterSessionRotation = afterSessionRotation;
  const gateways = new GatewayService({
    services,
    recordingsDir: recordingsDirOf(config.dataDir),
    db,
    settings: services.settings,
    vault,
    sessions: gatewaySessions,
    audit: (req, event) => services.audit(req, event),
    logger,
    targetTimeoutMs: config.gatewayTargetTimeoutSeconds * 1000,
    version: VERSION,
  });

  // onClose hooks run last-registered first: the final checkpoint is signed after the
  // events written on the way down (a break-glass run finishing, refusal counts), before
  // the database closes.
  app.addHook('onClose', () => auditCheckpoints.stop());
  app.addHook('onClose', () => breakglass.stop());
  app.addHook('onClose', () => services.runbooks.stop());
  app.addHook('onClose', () => afterSessionRotation.stop());
  app.addHook('onClose', () => recordingSignatures.stop());
  app.addHook('onClose', async () => recordingUploads?.uploads.stop());
  app.addHook('onClose', async () => recordingUploads?.sftpLogs.stop());
  app.addHook('onClose', () => gateways.health.stop());
  app.addHook('onClose', () => services.refusals.flush());
  // Runs first: another replica takes the scheduled jobs over while this one winds down.
  app.addHook('onClose', () => leadership.stop());

  const terminal = new WebTerminal();
  const routes: RouteEntry[] = [];
  app.addHook('onRoute', (route) => {
    const isDocs = route.url.startsWith(`${API_PREFIX}/docs`);
    if (isDocs && route.config?.access === undefined) route.config = { ...route.config, access: 'public' };
    const access = route.config?.access;
    if (access === undefined) throw new InternalError(`Route ${String(route.method)} ${route.url} declares no access rule.`);
    for (const method of [route.method].flat()) {
      if (method !== 'HEAD' && !isDocs)
        routes.push({
          method,
          url: route.url,
          access,
          responses: Object.keys((route.schema?.response as object | undefined) ?? {}),
          websocket: route.websocket === true,
        });
    }
  });

  await app.register(cookie);
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 }, preClose: closeConnectionsWithin(CLOSE_GRACE_MS) });
  // Counted in the database, so replicas on one PostgreSQL share each route's limit.
  await app.register(rateLimit, {
    global: false,
    store: databaseRateLimitStore(new RateLimits(db), logger.child({ component: 'rate-limit' })),
  });
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Gatehouse API',
        version: VERSION,
        description:
          'Privileged access platform. Errors are { error: { code, message, issues? } }. ' +
          'The browser terminal is a WebSocket at GET /api/v1/terminal (admin, operator; web session): the first message is ' +
          '{"type":"start","csrfToken","deviceId","accountId?","cols","rows"}, then binary frames are terminal bytes both ways and ' +
          '{"type":"resize","cols","rows"} resizes; the server sends {"type":"ready"|"error"|"exit",…}. ' +
          'The browser desktop is a WebSocket at GET /api/v1/desktop (admin, operator; web session): the first message is ' +
          '{"type":"start","csrfToken","deviceId","accountId?","protocol"}, the server answers {"type":"started"|"error",…} ' +
          '(for RDP, rendered on the gateway, {"type":"progress","message"} first), ' +
          'then binary frames are the RFB stream both ways (security type None). ' +
          'The file browser visit is a WebSocket at GET /api/v1/files/visit (admin, operator; web session): the first message is ' +
          '{"type":"start","csrfToken","deviceId","accountId?"}, the server answers {"type":"ready","visit"}|{"type":"error",…} ' +
          'and later {"type":"ended",…}; /files requests that carry ?visit= share its one SFTP session until the socket closes.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'An API token (POST /api/v1/tokens)' },
          session: {
            type: 'apiKey',
            in: 'cookie',
            name: 'gh_session',
            description: 'Web session; writes also need the x-csrf-token header',
          },
        },
      },
      security: [{ bearer: [] }, { session: [] }],
    },
    transform: openApiTransform,
  });
  await app.register(swaggerUi, { routePrefix: `${API_PREFIX}/docs` });

  app.decorateRequest('auth', null);
  app.addHook('onRequest', accessHook(services));
  app.addHook('onError', refusalAuditHook(services.refusals));
  // PostgreSQL cannot store a NUL character in text (the query fails), and no field needs
  // one: refuse it up front, the same on both databases.
  app.addHook('preValidation', async (req) => {
    const problem = nulCharacterError([
      ...nulCharacterPaths(req.params).map((p) => `params.${p}`),
      ...nulCharacterPaths(req.query).map((p) => `querystring.${p}`),
      ...nulCharacterPaths(req.body).map((p) => (p === '(body)' ? 'body' : p)),
    ]);
    if (problem) throw problem;
  });
  app.addHook('onSend', async (req, reply, payload) => {
    void reply.header('x-content-type-options', 'nosniff');
    void reply.header('strict-transport-security', 'max-age=31536000');
    void reply.header('referrer-policy', 'no-referrer');
    const isDocs = req.url.startsWith(`${API_PREFIX}/docs`);
    void reply.header('content-security-policy', isDocs ? DOCS_CONTENT_SECURITY_POLICY : CONTENT_SECURITY_POLICY);
    void reply.header('x-frame-options', 'DENY');
    void reply.header('cross-origin-opener-policy', 'same-origin');
    void reply.header('cross-origin-resource-policy', 'same-origin');
    if (req.url.startsWith(API_PREFIX) && !isDocs) void reply.header('cache-control', 'no-store');
    return payload;
  });

  const probes = app.withTypeProvider<ZodTypeProvider>();
  probes.get('/healthz', { config: everyone, schema: { hide: true, response: responses({ 200: health }) } }, () => ({
    status: 'ok' as const,
    version: VERSION,
  }));
  probes.get(
    '/readyz',
    { config: everyone, schema: { hide: true, response: responses({ 200: readiness, 503: readiness }) } },
    async (_req, reply) => {
      const reason = await services.database.notReady();
      if (reason === undefined) return { status: 'ready' as const, database: db.dialect };
      return reply.status(503).send({ status: 'not ready', database: db.dialect, reason });
    },
  );

  metricsRoute(app, metrics, config.metricsToken);

  await app.register(
    (api, _opts, done) => {
      api
        .withTypeProvider<ZodTypeProvider>()
        .get('/openapi.json', { config: everyone, schema: { hide: true, response: responses({ 200: openApiDocument }) } }, () =>
          openApiDocument.parse(app.swagger()),
        );
      authRoutes(api, services);
      ssoRoutes(api, services);
      userRoutes(api, services);
      grantRoutes(api, services);
      tokenRoutes(api, services);
      sshKeyRoutes(api, services);
      projectRoutes(api, services);
      deviceRoutes(api, services);
      accountRoutes(api, services);
      inventoryFileRoutes(api, services);
      auditRoutes(api, services, auditCheckpoints);
      breakGlassRoutes(api, services, breakglass);
      sessionRoutes(api, services, gatewaySessions, gateways, recordingSignatures, recordingUploads?.target);
      hostKeyRoutes(api, services, gatewaySessions);
      maintenanceRoutes(api, services);
      agentRoutes(api, services, gateways);
      desktopRoutes(api, services, gateways);
      rdpTunnelRoutes(api, services, gateways);
      rotationPolicyRoutes(api, services);
      runbookRoutes(api, services);
      gatewayRoutes(api, services, gateways);
      sshEntryRoutes(api, services, gateways);
      terminalRoutes(api, services, terminal);
      desktopSocketRoutes(api, services, gateways);
      fileRoutes(api, services, terminal, gatewaySessions);
      done();
    },
    { prefix: API_PREFIX },
  );

  const consolePage = await registerConsole(app, opts.webRoot);
  app.setNotFoundHandler((req, reply) => {
    if (consolePage(req, reply)) return reply;
    return sendError(reply, 'NOT_FOUND', `No route ${req.method} ${req.url.split('?')[0]}. See ${API_PREFIX}/docs for the API.`);
  });

  await app.ready();
  return {
    app,
    services,
    routes,
    breakglass,
    auditCheckpoints,
    recordingSignatures,
    gatewaySessions,
    gateways,
    terminal,
    runbookGateway,
    policyRotations,
    afterSessionRotation,
    leadership,
  };
}

/**
 * The `preClose` of the WebSocket plugin: closes every browser's WebSocket (1001, going away)
 * and stops taking new ones; after `graceMs` cuts the WebSockets whose browser did not answer
 * the close and the HTTP connections still busy. Without it the server's stop waits for ws's
 * close timeout (30 s) and for the keep-alive timeout (72 s) of a connection whose request
 * was in flight when it began (issue 21).
 */
function closeConnectionsWithin(graceMs: number) {
  return function (this: FastifyInstance, done: () => void) {
    const clients = this.websocketServer.clients;
    for (const client of clients) client.close(1001, 'The gateway is stopping.');
    this.websocketServer.close();
    const cut = setTimeout(() => {
      for (const client of clients) client.terminate();
      this.server.closeAllConnections();
    }, graceMs);
    // Not what keeps the process up: once everything closed, it exits.
    cut.unref();
    this.server.once('close', () => clearTimeout(cut));
    done();
  };
}
