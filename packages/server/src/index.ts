export { buildApp, API_PREFIX, VERSION, type RouteEntry, type GatehouseApp, type BuildAppOptions } from './app.js';
export { startServer, describeStartupError, type RunningServer } from './server.js';
export { STOP_DEADLINE_MS } from './shutdown.js';
export { loadTls, TLS_SERVER_OPTIONS, type TlsMaterial } from './tls.js';
export { loadServerConfig, serverConfigSchema, envKeys, type ServerConfig, type ConfigSources } from './config.js';
export { createLogger, formatLogLine, redactPaths, textLogDestination, type Logger } from './logger.js';
export {
  loadMasterKey,
  parseMasterKey,
  formatMasterKey,
  defaultMasterKeyFile,
  pendingMasterKeyFile,
  type MasterKeySource,
} from './master-key.js';
export { hashPassword, currentTotp, verifyTotp } from './passwords.js';
export { SESSION_COOKIE, CSRF_HEADER, csrfTokenOf } from './auth.js';
export { parseInventoryFile, inventoryColumns } from './api/inventory/inventory-file.js';
export { setupTokenFile } from './api/auth/routes.js';
export type { Services, AuthContext, Access } from './services.js';
export { accessPresets } from './access.js';
export { WebTerminal, type BuiltInGatewayTarget } from './terminal.js';
export { ServerAccessBroker } from './gateway/broker.js';
export { ServerDesktopBroker, chooseDesktopTarget } from './gateway/desktop-broker.js';
export { ServerRdpTunnelBroker } from './gateway/rdp-tickets.js';
export { RunbookGateway, RunbookConnectError, type RunbookConnection, type ExecResult } from './runbooks/gateway-client.js';
export { PolicyRotations, type AccountToRotate, type PolicyRotationOutcome, type RotationTrigger } from './runbooks/policy-rotation.js';
export { RotationSchedule, type RotationScheduleOptions, type RotationTick } from './runbooks/rotation-schedule.js';
export { AfterSessionRotation, type AfterSessionRotationOptions, type EndedSession } from './runbooks/after-session-rotation.js';
export { AgentLinks, agentHostKeyFingerprint } from './gateway/agent-links.js';
export { loadAuditCheckpointKey, defaultAuditCheckpointKeyFile, type AuditCheckpointKey } from './audit-checkpoint-key.js';
export { AuditCheckpoints } from './audit-checkpoints.js';
export { RecordingSignatures, signatureFileOf } from './gateway/recording-signatures.js';
export { MaintenanceLifecycle, type MaintenanceLifecycleOptions } from './maintenance/lifecycle.js';
export {
  AbandonedSessionSweep,
  endAbandonedSessions,
  LAPSED_REPLICA_REASON,
  STOPPED_SERVER_REASON,
  type AbandonedSessionSweepOptions,
} from './gateway/abandoned-sessions.js';
