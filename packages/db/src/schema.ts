import type { Generated } from 'kysely';

/**
 * The tables, typed for Kysely. One schema serves both databases, so it uses only what
 * SQLite and PostgreSQL share: text ids (UUIDs), ISO-8601 UTC timestamps as text (they
 * sort as time does), integers for booleans and JSON kept as text.
 */
export interface ProjectTable {
  id: string;
  name: string;
  description: string | null;
  /** 1: its devices are reachable only inside an open maintenance window. */
  maintenance_required: number;
  created_at: string;
  updated_at: string;
}

export interface DeviceTable {
  id: string;
  project_id: string;
  name: string;
  provider: string;
  /** The provider as the inventory wrote it (`AWS`); null: as `provider`. */
  provider_as_written: string | null;
  protocols: string;
  /** JSON: the protocols as written, in the order of `protocols`; null: as `protocols`. */
  protocols_as_written: string | null;
  public_ip: string | null;
  private_ip: string | null;
  url_port: string | null;
  access_type: string;
  tags: string;
  /** 1: reachable only inside an open maintenance window (so is every device of a project with it set). */
  maintenance_required: number;
  created_at: string;
  updated_at: string;
}

export interface AccountTable {
  id: string;
  device_id: string;
  username: string;
  password_enc: string | null;
  private_key_enc: string | null;
  pem_file_name: string | null;
  passphrase_enc: string | null;
  extra_credential_enc: string | null;
  created_at: string;
  updated_at: string;
  /** When a secret field last changed (backfilled from updated_at by 0014; written by every secret change). */
  secret_changed_at: string;
}

export interface UserTable {
  id: string;
  username: string;
  role: string;
  password_hash: string;
  totp_secret_enc: string | null;
  totp_enabled: number;
  totp_last_step: number | null;
  /** Failed password attempts on this account from addresses it has not signed in from lately (the account-wide throttle). */
  failed_logins: number;
  /** The account-wide throttle's end: until then those addresses' attempts are refused unchecked. */
  locked_until: string | null;
  last_failed_login_at: string | null;
  disabled: number;
  created_at: string;
  updated_at: string;
  last_login_at: string | null;
  /** `<issuer> <subject>` of a user made by OIDC sign-in (no local password); null for a local user. */
  sso_subject: string | null;
  /** 1 when an OIDC sign-in disabled the user (no mapped group): the next one that maps a role enables it again. */
  sso_disabled: number;
}

/** An OIDC sign-in between /auth/oidc/start and its callback: used once (deleted by the callback), short-lived. */
export interface SsoLoginTable {
  /** SHA-256 of the state sent to the identity provider. */
  id: string;
  /** SHA-256 of the browser-binding cookie set by /start: the callback must come from that browser. */
  binding_hash: string;
  nonce: string;
  /** The PKCE code verifier, sealed by the vault. */
  code_verifier_enc: string;
  /** The CLI login this sign-in approves, if the CLI started it. */
  cli_login_id: string | null;
  created_at: string;
  expires_at: string;
}

/** A `gatehouse login --sso` request: approved by a browser's OIDC sign-in, claimed once by the CLI that holds its secret. */
export interface SsoCliLoginTable {
  id: string;
  /** SHA-256 of the secret only the CLI that asked knows. */
  secret_hash: string;
  /** Who signed in for it; null until then. */
  user_id: string | null;
  claimed_at: string | null;
  created_at: string;
  expires_at: string;
}

export interface WebSessionTable {
  id: string;
  user_id: string;
  mfa_passed: number;
  created_at: string;
  expires_at: string;
  last_seen_at: string;
}

export interface ApiTokenTable {
  id: string;
  user_id: string;
  name: string;
  token_hash: string;
  prefix: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  /** 'read' (GET and HEAD only) or 'full'. */
  scope: string;
}

export interface UserSshKeyTable {
  id: string;
  user_id: string;
  name: string;
  /** The key type, e.g. ssh-ed25519. */
  algorithm: string;
  /** base64 of the SSH public key blob. */
  public_key: string;
  /** SHA256:… of the blob, as OpenSSH prints it. */
  fingerprint: string;
  created_at: string;
  last_used_at: string | null;
}

export interface GrantTable {
  id: string;
  user_id: string;
  project_id: string;
  device_id: string | null;
  account_id: string | null;
  created_at: string;
}

export interface AuditEventTable {
  seq: number;
  id: string;
  at: string;
  actor_id: string | null;
  actor_name: string;
  action: string;
  target_type: string | null;
  target_id: string | null;
  outcome: string;
  details: string;
  ip: string | null;
  prev_hash: string;
  hash: string;
}

export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}

export interface VaultKeyTable {
  id: string;
  wrapped_key: string;
  master_key_id: string;
  active: number;
  created_at: string;
}

export interface SettingTable {
  key: string;
  value: string;
  updated_at: string;
}

export interface BreakGlassRunTable {
  id: string;
  trigger: string;
  started_at: string;
  finished_at: string | null;
  /** running, success or failure */
  result: string;
  attempts: number;
  target: string | null;
  /** JSON: { data, manifest } object names */
  objects: string;
  /** JSON: { projects, devices, accounts, privateKeys } */
  counts: string;
  bytes: number | string | null;
  sha256: string | null;
  error: string | null;
  error_stage: string | null;
}

/** The last break-glass Test (one row, id 1). `report`: JSON { stages, privilegeWarnings, warnings }. */
export interface BreakGlassLastTestTable {
  id: number;
  tested_at: string;
  tested_by: string | null;
  target: string;
  ok: number;
  report: string;
}

export interface LeaseTable {
  name: string;
  holder: string;
  expires_at: string;
}

/** One trusted key per device and protocol (`ssh`, `rdp`, `vnc`). */
export interface DeviceHostKeyTable {
  device_id: string;
  protocol: string;
  /** null for a key an administrator pinned that the device has not presented yet. */
  algorithm: string | null;
  fingerprint: string;
  /** When the key was first seen, or pinned. */
  first_seen: string;
  /** 1: set by an administrator (`PUT /devices/:id/host-key`), not trusted on first use. */
  pinned: number;
  /**
   * A key an administrator pinned ahead of a planned change while this one is trusted: both
   * are accepted until the device presents it, which then takes this row's place.
   */
  next_fingerprint: string | null;
  /** When `next_fingerprint` was pinned. */
  next_pinned_at: string | null;
}

export interface GatewaySessionTable {
  id: string;
  user_id: string | null;
  username: string;
  project_id: string | null;
  project_name: string;
  device_id: string | null;
  device_name: string;
  account_id: string | null;
  account_username: string;
  gateway: string;
  /** shell, exec, sftp, forward or connection (one without a channel); null for a connection that failed before a channel. */
  kind: string | null;
  command: string | null;
  remote_address: string | null;
  started_at: string;
  ended_at: string | null;
  bytes_in: number | string;
  bytes_out: number | string;
  /** active, success or failure */
  result: string;
  exit_status: number | null;
  reason: string | null;
  /** Path relative to the recordings directory. */
  recording: string | null;
  segment: string | null;
  /** The gateway the user connected to; `gateway` is the one that reached the device. */
  entry_gateway: string | null;
  /** The maintenance window the session entered under. */
  window_id: string | null;
  /** The runbook run whose command the session ran. */
  runbook_run_id: string | null;
  /** The SSH key exchange of the user's connection to the gateway; null when not SSH (or older rows). */
  user_kex: string | null;
  /** The SSH key exchange of the gateway's connection to the device; null when not SSH (or older rows). */
  device_kex: string | null;
  /** The finished recording's SHA-256 (hex); null until it is signed. */
  recording_sha256: string | null;
  /** The recording's signature document (`RecordingSignature` as JSON); null until it is signed. */
  recording_signature: string | null;
  /** The server process (replica) whose built-in gateway holds the session; null for other gateways and older rows. */
  replica: string | null;
  /** Why an end was asked for on a replica that does not hold the session (its holder ends it). */
  end_requested: string | null;
  /** The recording's object name in the recordings' object store; null while it is only on local disk. */
  recording_store: string | null;
  /** A warning asked for on a replica that does not hold the session, until its holder shows it to the user. */
  warn_requested: string | null;
  /** When that warning was asked for (its holder claims it by this time, so a newer one is not lost). */
  warn_requested_at: string | null;
}

export interface SessionFileOperationTable {
  id: string;
  session_id: string;
  /** Order within the session. */
  seq: number;
  at: string;
  /** upload, download, remove, rename, mkdir, rmdir or list */
  op: string;
  path: string;
  /** The new name of a rename. */
  target: string | null;
  bytes: number | string;
  /** success or failure */
  result: string;
  error: string | null;
}

export interface GatewayTable {
  id: string;
  name: string;
  segment: string | null;
  /** host:port of the management endpoint. */
  address: string;
  /** base64 SPKI DER of the gateway's Ed25519 key. */
  public_key: string;
  fingerprint: string;
  /** unknown (never synced), online or offline */
  status: string;
  status_reason: string | null;
  /** Status syncs failed in a row. */
  failures: number;
  last_contact_at: string | null;
  last_sync_at: string | null;
  latency_ms: number | null;
  version: string | null;
  open_relays: number | null;
  /** host:port (or `*:port`: the management address's host) where the gateway takes host agents' links, as its last sync said. */
  agent_address: string | null;
  created_at: string;
  updated_at: string;
}

/** A gateway an administrator drained (no row: it takes new sessions). */
export interface GatewayDrainTable {
  /** The gateway's id, or 'default' for the built-in gateway. */
  gateway_id: string;
  drained_at: string;
  /** The user name of the administrator who drained it. */
  drained_by: string | null;
}

/** Requests counted against one route's limit from one caller, in the window that ends at `window_ends_at`. See RateLimits. */
export interface RateLimitTable {
  /** The route: method and URL pattern (`POST /api/v1/auth/login`). */
  route: string;
  /** Who is counted: an address, or a user id for per-user limits. */
  source: string;
  hits: number;
  window_ends_at: string;
}

/**
 * Failed password attempts counted per address: of one user name from one address, and
 * (user name '') of every name from one address. See SignInThrottle.
 */
export interface SignInThrottleTable {
  username: string;
  source: string;
  failures: number;
  throttled_until: string | null;
  last_failure_at: string | null;
  /** The last sign-in of this name from this address: it makes the address familiar. */
  last_success_at: string | null;
}

export interface ProjectApproverTable {
  project_id: string;
  user_id: string;
  granted_by: string | null;
  granted_at: string;
}

/** A maintenance window request, the same row from request to close. */
export interface MaintenanceWindowTable {
  id: string;
  project_id: string;
  /** JSON array of device ids; null = the whole project. */
  device_ids: string | null;
  /** JSON array of account ids; null = every account the named users may use. */
  account_ids: string | null;
  /** JSON array of the user ids who may connect. */
  user_ids: string;
  requested_by: string;
  reason: string;
  ticket: string | null;
  starts_at: string;
  ends_at: string;
  required_approvals: number;
  /** pending, approved, open, denied, revoked, expired or failed */
  state: string;
  opened_at: string | null;
  /** When it stopped giving access. */
  ended_at: string | null;
  ended_by: string | null;
  end_comment: string | null;
  /** null, pending, done or failed */
  close_state: string | null;
  close_attempts: number;
  next_close_at: string | null;
  warned_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface MaintenanceWindowDecisionTable {
  window_id: string;
  user_id: string;
  username: string;
  /** approve or deny */
  decision: string;
  comment: string | null;
  at: string;
}

export interface MaintenanceHookRunTable {
  id: string;
  window_id: string;
  /** open or close */
  phase: string;
  attempt: number;
  started_at: string;
  finished_at: string;
  ok: number;
  exit_code: number | null;
  /** stdout and stderr, at most 64 KiB. */
  output: string;
  error: string | null;
}

export interface Database {
  projects: ProjectTable;
  devices: DeviceTable;
  accounts: AccountTable;
  users: UserTable;
  sso_logins: SsoLoginTable;
  sso_cli_logins: SsoCliLoginTable;
  web_sessions: WebSessionTable;
  api_tokens: ApiTokenTable;
  user_ssh_keys: UserSshKeyTable;
  grants: GrantTable;
  audit_events: AuditEventTable;
  audit_head: AuditHeadTable;
  vault_keys: VaultKeyTable;
  settings: SettingTable;
  breakglass_runs: BreakGlassRunTable;
  leases: LeaseTable;
  device_host_keys: DeviceHostKeyTable;
  gateway_sessions: GatewaySessionTable;
  gateways: GatewayTable;
  gateway_drains: GatewayDrainTable;
  session_file_operations: SessionFileOperationTable;
  sign_in_throttle: SignInThrottleTable;
  rate_limits: RateLimitTable;
  project_approvers: ProjectApproverTable;
  maintenance_windows: MaintenanceWindowTable;
  maintenance_window_decisions: MaintenanceWindowDecisionTable;
  maintenance_hook_runs: MaintenanceHookRunTable;
  agent_join_tokens: AgentJoinTokenTable;
  agents: AgentTable;
  runbooks: RunbookTable;
  runbook_runs: RunbookRunTable;
  breakglass_last_test: BreakGlassLastTestTable;
  runbook_run_devices: RunbookRunDeviceTable;
  account_credentials: AccountCredentialTable;
  rotation_policies: RotationPolicyTable;
  desktop_tokens: DesktopTokenTable;
}

/** A one-time password for a native desktop client (VNC), sealed by the vault; used once, until it expires. */
export interface DesktopTokenTable {
  id: string;
  user_id: string;
  device_id: string;
  account_id: string;
  /** 'vnc' (the RDP tunnel's 'rdp' later) */
  protocol: string;
  /** The token, sealed (associated data desktop_tokens.token:<id>). */
  token_sealed: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  /** The address the token was redeemed from. */
  used_from: string | null;
}

/** A single-use, expiring token an agent enrolls a device with; only its SHA-256 is kept. */
export interface AgentJoinTokenTable {
  id: string;
  device_id: string;
  /** Hex SHA-256 of the token (`ghj_…`), which is shown once. */
  token_hash: string;
  created_by: string | null;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  used_by_agent: string | null;
}

/** A host agent enrolled for a device, with the public key the server pins. */
export interface AgentTable {
  id: string;
  device_id: string;
  /** The agent's Ed25519 public key, SPKI PEM. */
  public_key: string;
  /** `SHA256:<base64>` of the SPKI DER. */
  fingerprint: string;
  version: string;
  hostname: string;
  enrolled_at: string;
  last_contact_at: string | null;
  /** 'never' | 'up' | 'down' */
  link_state: string;
  /** The gateway the link is (or was last) up to. */
  link_gateway: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
}

/** A runbook document an administrator added (built-ins are not stored). */
export interface RunbookTable {
  name: string;
  version: number;
  /** The YAML as written. */
  source: string;
  /** Hex SHA-256 of source. */
  sha256: string;
  builtin: number;
  created_by: string | null;
  created_at: string;
}

export interface RunbookRunTable {
  id: string;
  /** runbook or breakglass-rotation */
  kind: string;
  runbook_name: string;
  runbook_version: number;
  runbook_sha256: string;
  apply: number;
  /** JSON: the resolved inputs (never secrets). */
  inputs: string;
  privileged_account: string;
  concurrency: number;
  user_id: string;
  username: string;
  breakglass_run_id: string | null;
  /** running or finished */
  state: string;
  started_at: string;
  finished_at: string | null;
  /** JSON: { total, done, success, failed, unverified, skipped } */
  counts: string;
}

/** One device of a run. */
export interface RunbookRunDeviceTable {
  run_id: string;
  device_id: string;
  device_name: string;
  project_name: string;
  /** Order within the run. */
  seq: number;
  /** queued, running or done */
  state: string;
  /** null, SUCCESS, FAILED, CHANGED-BUT-UNVERIFIED or SKIPPED */
  verdict: string | null;
  error: string | null;
  /** JSON: StepResult[] */
  steps: string;
  /** JSON: the accounts of a rotation, [] otherwise. */
  accounts: string;
  started_at: string | null;
  finished_at: string | null;
  /** device_id while queued or running, null after: unique, so it is the device's lock. */
  lock_device_id: string | null;
}

/** An account's credential beside its current one, sealed by the vault (table account_credentials). */
export interface AccountCredentialTable {
  id: string;
  account_id: string;
  /** pending, previous or unverified */
  state: string;
  password_enc: string | null;
  private_key_enc: string | null;
  passphrase_enc: string | null;
  /** The OpenSSH public key line of a generated key (not secret). */
  public_key: string | null;
  run_id: string | null;
  created_at: string;
}

/** Scheduled rotation of a project's or a device's accounts (exactly one of project_id and device_id). */
export interface RotationPolicyTable {
  id: string;
  project_id: string | null;
  device_id: string | null;
  every_days: number | null;
  after_session: number;
  /** password, key or same */
  credential: string;
  password_length: number;
  /** Comma-separated: lower,upper,digit,symbol */
  password_classes: string;
  privileged_account: string;
  /** Who set it; rotations run through the gateway as this user. */
  user_id: string;
  created_at: string;
  updated_at: string;
}

/** Marks the generated columns for inserts where the database assigns them. */
export type WithGenerated<T, K extends keyof T> = Omit<T, K> & { [P in K]: Generated<T[P]> };
