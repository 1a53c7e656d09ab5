export {
  openDatabase,
  migrateToLatest,
  migrationProgress,
  inTransaction,
  type Db,
  type Tx,
  type DialectName,
  type OpenDatabaseOptions,
  type WalCheckpointerEvent,
} from './connect.js';
export type { Database } from './schema.js';
export { openVault, rewrapDataKeys, masterKeyIdOf, assertMasterKey, type Vault, type FieldScope } from './vault.js';
export {
  appendAuditEvent,
  allAuditEvents,
  auditTargetNames,
  targetName,
  targetNames,
  type AuditTarget,
  listAuditEvents,
  verifyAuditChain,
  readAuditHead,
  type AuditEvent,
  type AuditEventInput,
  type AuditOutcome,
  type AuditQuery,
  type AuditVerification,
  type VerifyAuditOptions,
} from './audit.js';
export { AUDIT_GENESIS_HASH, hashAuditEvent } from './audit-hash.js';
export { Inventory } from './inventory.js';
export { Projects, type Project, type ProjectPatch } from './projects.js';
export { Devices, type Device, type DeviceQuery, type DeviceSort } from './devices.js';
export { Accounts, type Account, type AccountSecrets } from './accounts.js';
export { AccountCredentials, type AccountCredential, type CredentialSecrets, type CredentialState } from './account-credentials.js';
export { Runbooks, type StoredRunbook } from './runbooks.js';
export {
  RunbookRuns,
  INTERRUPTED_ERROR,
  type RunbookRun,
  type RunbookRunItem,
  type RunCreate,
  type RunCounts,
  type RunKind,
  type ItemState,
  type ItemUpdate,
  type RunQuery,
  type RotatedAccount,
} from './runbook-runs.js';
export {
  RotationPolicies,
  ROTATION_POLICY_DEFAULTS,
  type RotationPolicy,
  type RotationPolicyPatch,
  type PolicyScope,
  type DueAccount,
} from './rotation-policies.js';
export { InventoryReaders } from './inventory-readers.js';
export type { ImportItem, ImportCounts } from './inventory-import.js';
export {
  Users,
  Settings,
  hashToken,
  userFromRow,
  tokenScopes,
  type User,
  type ApiToken,
  type TokenScope,
  type Grant,
  type SshKey,
} from './users.js';
export { SsoLogins, type PendingSsoLogin, type CliLoginClaim } from './sso-logins.js';
export { RateLimits, type RateLimitHit } from './rate-limits.js';
export { SignInThrottle, type ThrottleRule, type ThrottleClaim, type ThrottleKey } from './sign-in-throttle.js';
export { isUniqueViolation } from './errors.js';
export { Leases } from './leases.js';
export { timeSlicer } from './time-slicer.js';
export { BreakGlassRuns, INTERRUPTED_STAGE, type BreakGlassRun, type BreakGlassTestRecord } from './breakglass-runs.js';
export {
  GatewaySessions,
  recordingFormatOf,
  type RecordingFormat,
  type GatewaySession,
  type SessionQuery,
  type GatewaySessionInput,
  type HostKey,
  type HostKeyProtocol,
  type FileOperation as SessionFileOperation,
} from './gateway-sessions.js';
export { Gateways, type Gateway, type GatewayDrain, type GatewayInput, type GatewayStatus, type GatewaySync } from './gateways.js';
export {
  MaintenanceWindows,
  HOOK_OUTPUT_MAX,
  type MaintenanceWindow,
  type WindowDecision,
  type HookRun,
  type HookRunInput,
  type WindowCreate,
  type WindowVisibility,
  type WindowQuery,
  type DecideResult,
  type WindowRelated,
} from './maintenance-windows.js';
export { Agents, type Agent, type AgentInput, type AgentJoinToken, type AgentLinkState } from './agents.js';
export {
  DesktopTokens,
  newDesktopToken,
  DESKTOP_TOKEN_ALPHABET,
  DESKTOP_TOKEN_LENGTH,
  type DesktopToken,
  type DesktopTokenProtocol,
  type RevealedDesktopToken,
} from './desktop-tokens.js';
