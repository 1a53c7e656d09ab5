import { createHash } from 'node:crypto';
import type { BreakGlassRuns, Db, Gateways } from '@gatehouse/db';
import { fileAnswer, responses } from '@gatehouse/api';
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { everyone } from './access.js';
import { sameToken } from './auth.js';
import { sendError } from './errors.js';

/** What the scrape reads from the database (shared by every replica, so the same on each). */
export interface MetricsSources {
  db: Db;
  gateways: Gateways;
  breakglassRuns: BreakGlassRuns;
  /** Whether this replica runs the scheduled jobs now (`Leadership.isLeader`). */
  isLeader: () => boolean;
}

const GATEWAY_STATUSES = ['online', 'offline', 'unknown'] as const;

type Registers = Registry[];

/** Sessions through a gateway: started and failed, counted by this replica. */
function sessionCounters(registers: Registers) {
  return {
    sessionsStarted: new Counter({
      name: 'gatehouse_sessions_started_total',
      help: 'Sessions through a gateway that reached the device, by protocol (shell, exec, sftp, forward, connection) and gateway.',
      labelNames: ['protocol', 'gateway'] as const,
      registers,
    }),
    sessionsFailed: new Counter({
      name: 'gatehouse_sessions_failed_total',
      help: 'Connections through a gateway that failed before reaching the device, by gateway.',
      labelNames: ['gateway'] as const,
      registers,
    }),
  };
}

/** Password sign-ins: failures and the delays they start. */
function signInCounters(registers: Registers) {
  return {
    signInFailures: new Counter({
      name: 'gatehouse_sign_in_failures_total',
      help: 'Failed password sign-ins (web, API and gateway), by reason: wrong password, unknown user, throttled, address throttled.',
      labelNames: ['reason'] as const,
      registers,
    }),
    signInThrottles: new Counter({
      name: 'gatehouse_sign_in_throttles_total',
      help: 'Sign-in delays started by failures, by scope (address, user from address, user).',
      labelNames: ['scope'] as const,
      registers,
    }),
  };
}

function auditAppendHistogram(registers: Registers): Histogram {
  return new Histogram({
    name: 'gatehouse_audit_append_seconds',
    help: 'Time to append one audit event to the chain.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
}

/** Live sessions of every replica, read from the database at each scrape. */
function registerLiveSessions(registers: Registers, db: Db): void {
  new Gauge({
    name: 'gatehouse_sessions_live',
    help: 'Sessions live now (all replicas: read from the database), by protocol and gateway.',
    labelNames: ['protocol', 'gateway'],
    registers,
    async collect() {
      this.reset();
      const rows = await db.kysely
        .selectFrom('gateway_sessions')
        .select(['gateway', 'kind', (eb) => eb.fn.countAll<string | number>().as('n')])
        .where('result', '=', 'active')
        .groupBy(['gateway', 'kind'])
        .execute();
      for (const r of rows) this.set({ protocol: r.kind ?? 'connection', gateway: r.gateway }, Number(r.n));
    },
  });
}

/** Each registered gateway's status and sync latency, read at each scrape. */
function registerGateways(registers: Registers, gateways: Gateways): void {
  const latency = new Gauge({
    name: 'gatehouse_gateway_sync_latency_seconds',
    help: 'Round trip of the last successful status sync, by gateway.',
    labelNames: ['gateway'],
    registers,
  });
  new Gauge({
    name: 'gatehouse_gateway_status',
    help: '1 for the status each registered gateway is in (online, offline, unknown), 0 for the others.',
    labelNames: ['gateway', 'status'],
    registers,
    async collect() {
      this.reset();
      latency.reset();
      for (const g of await gateways.list()) {
        for (const s of GATEWAY_STATUSES) this.set({ gateway: g.name, status: s }, g.status === s ? 1 : 0);
        if (g.latencyMs !== null) latency.set({ gateway: g.name }, g.latencyMs / 1000);
      }
    },
  });
}

/** The newest successful break-glass export: when it finished and how long it took. */
function registerBreakGlass(registers: Registers, runs: BreakGlassRuns): void {
  const duration = new Gauge({
    name: 'gatehouse_breakglass_last_success_duration_seconds',
    help: 'How long the newest successful break-glass export took.',
    registers,
  });
  new Gauge({
    name: 'gatehouse_breakglass_last_success_timestamp_seconds',
    help: 'When the newest successful break-glass export finished (Unix time); absent before the first one.',
    registers,
    async collect() {
      this.reset();
      duration.reset();
      const last = await runs.lastSuccess();
      if (!last?.finishedAt) return;
      const finished = Date.parse(last.finishedAt);
      this.set(finished / 1000);
      duration.set((finished - Date.parse(last.startedAt)) / 1000);
    },
  });
}

function registerLeader(registers: Registers, isLeader: () => boolean): void {
  new Gauge({
    name: 'gatehouse_leader',
    help: '1 while this replica runs the scheduled jobs (the leader lease; always on the embedded database), else 0.',
    registers,
    collect() {
      this.set(isLeader() ? 1 : 0);
    },
  });
}

function recordingUploadGauge(registers: Registers): Gauge {
  const backlog = new Gauge({
    name: 'gatehouse_recording_upload_backlog',
    help: 'Recordings waiting for an upload to object storage (0 while recordings stay on local disk).',
    registers,
  });
  backlog.set(0);
  return backlog;
}

/**
 * Prometheus metrics of one server instance, in a registry of its own (tests run several
 * servers in one process). Labels are low-cardinality only: protocol, gateway name, outcome,
 * status — never a user name, address or secret.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly sessionsStarted: Counter<'protocol' | 'gateway'>;
  private readonly sessionsFailed: Counter<'gateway'>;
  private readonly signInFailures: Counter<'reason'>;
  private readonly signInThrottles: Counter<'scope'>;
  private readonly auditAppend: Histogram;
  private readonly recordingUploadBacklog: Gauge;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    // Registered in this order, as the scrape lists them.
    collectDefaultMetrics({ register: this.registry, prefix: 'gatehouse_' });
    ({ sessionsStarted: this.sessionsStarted, sessionsFailed: this.sessionsFailed } = sessionCounters(registers));
    ({ signInFailures: this.signInFailures, signInThrottles: this.signInThrottles } = signInCounters(registers));
    this.auditAppend = auditAppendHistogram(registers);
    registerLiveSessions(registers, sources.db);
    registerGateways(registers, sources.gateways);
    registerBreakGlass(registers, sources.breakglassRuns);
    registerLeader(registers, sources.isLeader);
    this.recordingUploadBacklog = recordingUploadGauge(registers);
  }

  /** Recordings waiting for (or in) their upload to the recordings' object store. */
  recordingUploads(backlog: number): void {
    this.recordingUploadBacklog.set(backlog);
  }

  sessionStarted(protocol: string | null, gateway: string): void {
    this.sessionsStarted.inc({ protocol: protocol ?? 'connection', gateway });
  }

  sessionFailed(gateway: string): void {
    this.sessionsFailed.inc({ gateway });
  }

  signInFailed(reason: string): void {
    this.signInFailures.inc({ reason });
  }

  signInThrottled(scope: string): void {
    this.signInThrottles.inc({ scope });
  }

  /** Times one audit append. */
  async timeAudit<T>(append: () => Promise<T>): Promise<T> {
    const end = this.auditAppend.startTimer();
    try {
      return await append();
    } finally {
      end();
    }
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * `GET /metrics`: the Prometheus text format, for a bearer token equal to
 * GATEHOUSE_METRICS_TOKEN (compared in constant time). Without that setting the route
 * answers 404: metrics are off.
 */
export function metricsRoute(app: FastifyInstance, metrics: Metrics, token: string | undefined): void {
  const schema = { hide: true, response: responses({ 200: fileAnswer('text/plain', 'Prometheus text format 0.0.4') }) };
  app.get('/metrics', { config: everyone, schema }, async (req, reply) => {
    if (!token) return sendError(reply, 'NOT_FOUND', 'Metrics are off: set GATEHOUSE_METRICS_TOKEN to a scrape token to turn them on.');
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
    if (!sameToken(digest(given), digest(token)))
      return sendError(reply, 'UNAUTHENTICATED', 'Send the metrics scrape token as "Authorization: Bearer <GATEHOUSE_METRICS_TOKEN>".');
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });
}
