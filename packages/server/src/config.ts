import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { GatehouseError, formatPath, type FieldIssue } from '@gatehouse/core';
import { trustedProxiesSetting } from './trusted-proxies.js';

/** An absolute path to a program, or null (none configured). */
const hookPath = z
  .string()
  .min(1)
  .refine((p) => path.isAbsolute(p), 'must be an absolute path (the program the server runs)')
  .nullable()
  .default(null);

/**
 * The server's configuration: one schema, read once at start from (lowest to highest
 * priority) a JSON config file, the environment and command-line flags. Every problem is
 * reported at once with the key's name; secret values are never echoed.
 */
export const serverConfigSchema = z.strictObject({
  host: z.string().min(1).default('0.0.0.0'),
  port: z.coerce.number({ error: 'must be a port number from 0 to 65535' }).int().min(0).max(65535).optional(),
  dataDir: z.string().min(1).default('./data'),
  databaseUrl: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  masterKey: z.string().min(1).optional(),
  masterKeyFile: z.string().min(1).optional(),
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * `text`: one readable line per event, requests only at debug (`gatehouse server` on a
   * terminal); `json`: pino's JSON lines with every request (when stdout is not a terminal).
   * Unset, `gatehouse server` chooses by its stdout.
   */
  logFormat: z.enum(['text', 'json']).optional(),
  /** How long a console session lives without activity, and at most. */
  sessionIdleMinutes: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 60)
    .default(30),
  sessionMaxHours: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 30)
    .default(12),
  /**
   * Failed password attempts throttle rather than lock: after lockoutThreshold failures
   * of one user name from one address, attempts of that name from that address are
   * refused unchecked for a delay that starts at a minute and doubles with each further
   * failure, up to lockoutMinutes. The account as a whole (from addresses it has not
   * signed in from in 30 days) is throttled so after 4 × lockoutThreshold failures, and
   * one address (every user name together) after 6 × lockoutThreshold. A count is
   * forgotten after lockoutMinutes without failures; an administrator can lift every
   * throttle of a user (unlock). SSH keys are never throttled.
   */
  lockoutThreshold: z.coerce.number().int().min(1).max(100).default(5),
  lockoutMinutes: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 60)
    .default(15),
  /**
   * Refused requests (bad credentials, CSRF failures, operators' 404s, rate limits) audited
   * per source address and kind in each window; the rest are counted in one summary event.
   */
  refusalAuditLimit: z.coerce.number().int().min(1).max(10_000).default(20),
  refusalAuditWindowSeconds: z.coerce.number().int().min(1).max(3600).default(60),
  /**
   * Load balancers and ingress controllers (addresses, CIDR ranges) whose X-Forwarded-For is
   * believed: the client is then the right-most address in it that is not one of them (rate
   * limits, sign-in throttles, audit). Default none: the connection's address is the client's.
   */
  trustedProxies: trustedProxiesSetting,
  /** The longest an API token may live, in days (a token asks for its expiry; 90 days when it does not say). */
  apiTokenMaxDays: z.coerce.number().int().min(1).max(3650).default(365),
  /** Largest request body, in bytes (imports are the largest). */
  bodyLimit: z.coerce
    .number()
    .int()
    .min(1024)
    .max(1024 * 1024 * 1024)
    .default(64 * 1024 * 1024),
  /** The Ed25519 private key (PEM) that signs audit checkpoints: a mounted secret (default: generated in the data directory). */
  auditCheckpointKeyFile: z.string().min(1).optional(),
  /** A file the server appends a signed audit checkpoint to (one JSON line), kept where the database's administrators cannot rewrite it. */
  auditCheckpointFile: z.string().min(1).optional(),
  /** How often the audit checkpoint is signed and appended when the chain moved. */
  auditCheckpointMinutes: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 60)
    .default(5),
  /** Bearer token Prometheus sends to scrape GET /metrics (compared in constant time); unset: /metrics answers 404. */
  metricsToken: z.string().min(16, 'must be at least 16 characters').optional(),
  /** A JSON file (a mounted secret) naming the recordings' object store; unset: recordings stay on local disk. */
  recordingStoreConfig: z.string().min(1).optional(),
  /** Seconds between tries of a recording upload that failed; the last repeats until the store answers. */
  recordingStoreRetryDelays: z
    .string()
    .regex(/^\s*\d+(\s*,\s*\d+)*\s*$/, 'must be seconds separated by commas, e.g. 1,5,30')
    .default('1,2,4,8,16,30,60'),
  /** A mounted secret (directory of files, or a file of `key: value` lines) holding the break-glass settings. */
  breakglassConfig: z.string().min(1).optional(),
  /** Seconds to wait before each retry of a failed break-glass run (the number of retries is their count). */
  breakglassRetryDelays: z
    .string()
    .regex(/^\s*(\d+(\s*,\s*\d+)*)?\s*$/, 'must be seconds separated by commas, e.g. 60,300')
    .default('60,300'),
  /** Seconds before a request to the break-glass bucket or container is given up (each of its two tries). */
  breakglassTimeoutSeconds: z.coerce.number().int().min(1).max(3600).default(30),
  /**
   * Allow break-glass encryption "none" (a plain workbook of every credential). Only here,
   * never through the API: a stolen administrator session cannot turn encryption off.
   */
  breakglassAllowPlaintext: z
    .preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean({ error: 'must be true or false' }))
    .default(false),
  /** Allow break glass to connect to link-local and cloud-metadata addresses (169.254.0.0/16, fe80::/10, metadata.google.internal…). */
  breakglassAllowLinkLocal: z
    .preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean({ error: 'must be true or false' }))
    .default(false),
  /** Alert when the newest successful export is older than this. */
  breakglassStaleHours: z.coerce
    .number()
    .min(1)
    .max(24 * 30)
    .default(26),
  /** Port of the built-in SSH/SFTP gateway; 0 turns the built-in gateway off. */
  gatewayPort: z.coerce.number({ error: 'must be a port number from 0 to 65535' }).int().min(0).max(65535).default(7993),
  /**
   * The built-in gateway's SSH host key: a private key file only its owner may read (a mounted
   * Secret), the same for every replica behind one address. Unset: generated once in
   * `<dataDir>/gateway/`, which replicas on their own disks do not share.
   */
  gatewayHostKeyFile: z.string().min(1).optional(),
  /** Address the built-in gateway listens on (default: the same as host). */
  gatewayHost: z.string().min(1).optional(),
  /** The host name users give ssh for the built-in gateway, as the console shows it (default: the host the console was reached on, when gatewayHost is a wildcard). */
  gatewayPublicHost: z
    .string()
    .regex(/^(?:[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]+)$/, { error: 'must be a host name or IP address without a port, e.g. gw.example.com' })
    .optional(),
  /** Port native VNC viewers connect to with a one-time token (on gatewayHost's address); 0 turns it off. */
  vncPort: z.coerce.number({ error: 'must be a port number from 0 to 65535' }).int().min(0).max(65535).default(7995),
  /** Port of the `gatehouse rdp` tunnel for native RDP clients (on gatewayHost's address); 0 turns it off. */
  rdpPort: z.coerce.number({ error: 'must be a port number from 0 to 65535' }).int().min(0).max(65535).default(7994),
  /** Browser RDP sessions this server renders at once (each is an Xvfb, an xfreerdp and an x11vnc). */
  rdpMaxSessions: z.coerce.number({ error: 'must be a whole number from 0 to 1000' }).int().min(0).max(1000).default(10),
  /**
   * Browser RDP displays (Xvfb + x11vnc) kept started ahead of sessions, filled at the first
   * session; each serves one session and is then destroyed. 0: each session starts its own.
   */
  rdpDisplayPool: z.coerce.number({ error: 'must be a whole number from 0 to 100' }).int().min(0).max(100).default(1),
  /**
   * The FreeRDP client browser RDP runs: `auto` takes FreeRDP 3's `xfreerdp3` when installed
   * (faster to connect), else FreeRDP 2's `xfreerdp`; or a command name or absolute path.
   */
  rdpClient: z
    .string()
    .regex(/^(?:auto|[A-Za-z0-9._+-]+|\/[^\0\s]+)$/, { error: 'must be auto, a command name such as xfreerdp3, or an absolute path' })
    .default('auto'),
  /** Port host agents link to (on gatewayHost's address); 0 turns agent links off. */
  agentPort: z.coerce.number({ error: 'must be a port number from 0 to 65535' }).int().min(0).max(65535).default(7996),
  /** `host:port` agents are told to dial (when they reach the server through NAT or a load balancer); default: the host the agent enrolled through, with agentPort. */
  agentAddress: z
    .string()
    .regex(/^(?:\[[0-9A-Fa-f:.]+\]|[^:\s[\]]+):\d{1,5}$/, { error: 'must be host:port ([::1]:7996 for IPv6)' })
    .optional(),
  /** Record what users type in terminal sessions ("i" events), not only the output. */
  gatewayRecordInput: z
    .preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean({ error: 'must be true or false' }))
    .default(false),
  /**
   * Record the bytes of exec output without a terminal that is not text (rsync, git, scp
   * downloads). Off: such output is kept as its byte count and SHA-256, with a marker.
   */
  gatewayRecordBinaryExec: z
    .preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean({ error: 'must be true or false' }))
    .default(false),
  /** Seconds the gateway waits for a device to connect and accept the credential. */
  gatewayTargetTimeoutSeconds: z.coerce.number().int().min(1).max(300).default(15),
  /**
   * Programs run when a maintenance window opens and closes (the window as JSON on stdin).
   * Server configuration only, never an API setting: naming a program to run is running code.
   */
  maintenanceOpenHook: hookPath,
  maintenanceCloseHook: hookPath,
  /** Seconds a maintenance hook may run before it is killed with its child processes. */
  maintenanceHookTimeoutSeconds: z.coerce.number().int().min(1).max(3600).default(60),
  /** How often the maintenance lifecycle opens, warns and ends windows. */
  maintenanceTickMs: z.coerce.number().int().min(50).max(60_000).default(5000),
  /**
   * Seconds the leader lease lasts unrenewed (PostgreSQL replicas): each replica tries for it
   * every third of this, so a killed leader is replaced within it and a third.
   */
  leaderLeaseSeconds: z.coerce.number().int().min(1).max(300).default(9),
  /** How often scheduled rotation looks for credentials older than their rotation policy allows. */
  rotationScheduleMinutes: z.coerce.number().int().min(1).max(1440).default(10),
  /**
   * How long rotation after a session waits after a session on the account ended, so
   * sessions ending together make one rotation (each end waits again, up to 5 times as long).
   */
  rotationAfterSessionDelayMs: z.coerce.number().int().min(0).max(600_000).default(10_000),
  /** The first delay before retrying a failed closing hook (doubled per attempt, at most 15 minutes). */
  maintenanceCloseRetryBaseMs: z.coerce
    .number()
    .int()
    .min(1)
    .max(15 * 60_000)
    .default(5000),
});

export type ServerConfig = Readonly<z.infer<typeof serverConfigSchema>> & { readonly port: number };

/** Environment variable → config key. */
export const envKeys: Record<string, keyof z.infer<typeof serverConfigSchema>> = {
  GATEHOUSE_HOST: 'host',
  GATEHOUSE_PORT: 'port',
  GATEHOUSE_DATA_DIR: 'dataDir',
  DATABASE_URL: 'databaseUrl',
  GATEHOUSE_MASTER_KEY: 'masterKey',
  GATEHOUSE_MASTER_KEY_FILE: 'masterKeyFile',
  GATEHOUSE_TLS_CERT: 'tlsCert',
  GATEHOUSE_TLS_KEY: 'tlsKey',
  GATEHOUSE_LOG_LEVEL: 'logLevel',
  GATEHOUSE_LOG_FORMAT: 'logFormat',
  GATEHOUSE_SESSION_IDLE_MINUTES: 'sessionIdleMinutes',
  GATEHOUSE_SESSION_MAX_HOURS: 'sessionMaxHours',
  GATEHOUSE_LOCKOUT_THRESHOLD: 'lockoutThreshold',
  GATEHOUSE_LOCKOUT_MINUTES: 'lockoutMinutes',
  GATEHOUSE_REFUSAL_AUDIT_LIMIT: 'refusalAuditLimit',
  GATEHOUSE_REFUSAL_AUDIT_WINDOW_SECONDS: 'refusalAuditWindowSeconds',
  GATEHOUSE_TRUSTED_PROXIES: 'trustedProxies',
  GATEHOUSE_API_TOKEN_MAX_DAYS: 'apiTokenMaxDays',
  GATEHOUSE_BODY_LIMIT: 'bodyLimit',
  GATEHOUSE_AUDIT_CHECKPOINT_KEY_FILE: 'auditCheckpointKeyFile',
  GATEHOUSE_AUDIT_CHECKPOINT_FILE: 'auditCheckpointFile',
  GATEHOUSE_AUDIT_CHECKPOINT_MINUTES: 'auditCheckpointMinutes',
  GATEHOUSE_METRICS_TOKEN: 'metricsToken',
  GATEHOUSE_BREAKGLASS_CONFIG: 'breakglassConfig',
  GATEHOUSE_RECORDING_STORE_CONFIG: 'recordingStoreConfig',
  GATEHOUSE_RECORDING_STORE_RETRY_DELAYS: 'recordingStoreRetryDelays',
  GATEHOUSE_BREAKGLASS_RETRY_DELAYS: 'breakglassRetryDelays',
  GATEHOUSE_BREAKGLASS_STALE_HOURS: 'breakglassStaleHours',
  GATEHOUSE_BREAKGLASS_TIMEOUT_SECONDS: 'breakglassTimeoutSeconds',
  GATEHOUSE_BREAKGLASS_ALLOW_PLAINTEXT: 'breakglassAllowPlaintext',
  GATEHOUSE_BREAKGLASS_ALLOW_LINK_LOCAL: 'breakglassAllowLinkLocal',
  GATEHOUSE_GATEWAY_PORT: 'gatewayPort',
  GATEHOUSE_GATEWAY_HOST: 'gatewayHost',
  GATEHOUSE_GATEWAY_HOST_KEY_FILE: 'gatewayHostKeyFile',
  GATEHOUSE_GATEWAY_PUBLIC_HOST: 'gatewayPublicHost',
  GATEHOUSE_AGENT_PORT: 'agentPort',
  GATEHOUSE_VNC_PORT: 'vncPort',
  GATEHOUSE_RDP_PORT: 'rdpPort',
  GATEHOUSE_RDP_MAX_SESSIONS: 'rdpMaxSessions',
  GATEHOUSE_RDP_DISPLAY_POOL: 'rdpDisplayPool',
  GATEHOUSE_RDP_CLIENT: 'rdpClient',
  GATEHOUSE_AGENT_ADDRESS: 'agentAddress',
  GATEHOUSE_GATEWAY_RECORD_INPUT: 'gatewayRecordInput',
  GATEHOUSE_GATEWAY_RECORD_BINARY_EXEC: 'gatewayRecordBinaryExec',
  GATEHOUSE_GATEWAY_TARGET_TIMEOUT_SECONDS: 'gatewayTargetTimeoutSeconds',
  GATEHOUSE_MAINTENANCE_OPEN_HOOK: 'maintenanceOpenHook',
  GATEHOUSE_MAINTENANCE_CLOSE_HOOK: 'maintenanceCloseHook',
  GATEHOUSE_MAINTENANCE_HOOK_TIMEOUT_SECONDS: 'maintenanceHookTimeoutSeconds',
  GATEHOUSE_MAINTENANCE_TICK_MS: 'maintenanceTickMs',
  GATEHOUSE_MAINTENANCE_CLOSE_RETRY_BASE_MS: 'maintenanceCloseRetryBaseMs',
  GATEHOUSE_ROTATION_SCHEDULE_MINUTES: 'rotationScheduleMinutes',
  GATEHOUSE_LEADER_LEASE_SECONDS: 'leaderLeaseSeconds',
  GATEHOUSE_ROTATION_AFTER_SESSION_DELAY_MS: 'rotationAfterSessionDelayMs',
};

export interface ConfigSources {
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  configFile?: string | undefined;
}

export function loadServerConfig(sources: ConfigSources): ServerConfig {
  const env = sources.env ?? process.env;
  const fileName = sources.configFile ?? env.GATEHOUSE_CONFIG;
  const issues: FieldIssue[] = [];
  let fromFile: Record<string, unknown> = {};
  if (fileName) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(fileName, 'utf8'));
    } catch (error) {
      // JSON.parse's message quotes the text around the error, which may be a secret value.
      const at = error instanceof SyntaxError ? /at position \d+/.exec(error.message)?.[0] : undefined;
      const reason =
        error instanceof SyntaxError
          ? `it is not valid JSON${at ? ` (${at})` : ''}; check its quotes and commas`
          : (error as Error).message;
      throw new GatehouseError('CONFIG_INVALID', `Cannot read the config file ${fileName}: ${reason}.`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
      throw new GatehouseError('CONFIG_INVALID', `Cannot read the config file ${fileName}: the file must hold one JSON object.`);
    fromFile = parsed as Record<string, unknown>;
  }
  const fromEnv: Record<string, unknown> = {};
  for (const [name, key] of Object.entries(envKeys)) {
    const value = env[name];
    if (value !== undefined && value !== '') fromEnv[key] = value;
  }
  const fromFlags = Object.fromEntries(Object.entries(sources.flags ?? {}).filter(([, v]) => v !== undefined));
  const merged = { ...fromFile, ...fromEnv, ...fromFlags };
  const result = serverConfigSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) {
      // Never echo the value: zod's default messages for enums and types name only the
      // expectation, and unknown keys are named by their key.
      const keys = issue.code === 'unrecognized_keys' ? issue.keys : [formatPath(issue.path)];
      for (const key of keys) {
        issues.push({ path: key, message: issue.code === 'unrecognized_keys' ? 'is not a known setting' : issue.message });
      }
    }
  }
  if (merged.masterKey !== undefined && merged.masterKeyFile !== undefined) {
    issues.push({ path: 'masterKey', message: 'give either masterKey (GATEHOUSE_MASTER_KEY) or masterKeyFile, not both' });
  }
  if ((merged.tlsCert === undefined) !== (merged.tlsKey === undefined)) {
    issues.push({ path: merged.tlsCert === undefined ? 'tlsCert' : 'tlsKey', message: 'tlsCert and tlsKey go together' });
  }
  if (issues.length > 0 || !result.success) {
    // Name where each bad value came from, so the user knows what to edit.
    const origin = (key: string) => {
      if (key in fromFlags) return ' (command-line flag)';
      if (key in fromEnv) return ` (${Object.keys(envKeys).find((name) => envKeys[name] === key) ?? 'environment'})`;
      if (key in fromFile) return ` (in ${fileName ?? 'the config file'})`;
      return '';
    };
    throw new GatehouseError(
      'CONFIG_INVALID',
      `The configuration is invalid:\n${issues.map((i) => `  - ${i.path}${origin(i.path)}: ${i.message}`).join('\n')}`,
      issues,
    );
  }
  const data = result.data;
  const port = data.port ?? (process.getuid?.() === 0 ? 443 : 8443);
  return Object.freeze({ ...data, port, dataDir: path.resolve(data.dataDir) });
}
