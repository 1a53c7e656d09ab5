import { AUDIT_GENESIS_HASH } from './audit-hash.js';
import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

/**
 * The one migration set for both databases. Each migration uses only types both share
 * (text, integer, bigint); `dialect` picks the autoincrement spelling where they differ.
 */
type Dialect = 'sqlite' | 'postgres';

function migrations(dialect: Dialect): Record<string, Migration> {
  return {
    '0001_foundation': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('projects')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('description', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();

        await db.schema
          .createTable('devices')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('provider', 'text', (c) => c.notNull())
          .addColumn('protocols', 'text', (c) => c.notNull())
          .addColumn('public_ip', 'text')
          .addColumn('private_ip', 'text')
          .addColumn('url_port', 'text')
          .addColumn('access_type', 'text', (c) => c.notNull())
          .addColumn('tags', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addUniqueConstraint('devices_project_name', ['project_id', 'name'])
          .execute();
        await db.schema.createIndex('devices_name').on('devices').column('name').execute();

        await db.schema
          .createTable('accounts')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id').onDelete('cascade'))
          .addColumn('username', 'text', (c) => c.notNull())
          .addColumn('password_enc', 'text')
          .addColumn('private_key_enc', 'text')
          .addColumn('pem_file_name', 'text')
          .addColumn('passphrase_enc', 'text')
          .addColumn('extra_credential_enc', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addUniqueConstraint('accounts_device_username', ['device_id', 'username'])
          .execute();

        await db.schema
          .createTable('users')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('username', 'text', (c) => c.notNull().unique())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('password_hash', 'text', (c) => c.notNull())
          .addColumn('totp_secret_enc', 'text')
          .addColumn('totp_enabled', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('failed_logins', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('locked_until', 'text')
          .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addColumn('last_login_at', 'text')
          .execute();

        await db.schema
          .createTable('web_sessions')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('mfa_passed', 'integer', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addColumn('last_seen_at', 'text', (c) => c.notNull())
          .execute();

        await db.schema
          .createTable('api_tokens')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('token_hash', 'text', (c) => c.notNull().unique())
          .addColumn('prefix', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text')
          .addColumn('last_used_at', 'text')
          .execute();

        await db.schema
          .createTable('grants')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
          .addColumn('device_id', 'text', (c) => c.references('devices.id').onDelete('cascade'))
          .addColumn('account_id', 'text', (c) => c.references('accounts.id').onDelete('cascade'))
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('grants_user').on('grants').column('user_id').execute();

        await db.schema
          .createTable('audit_events')
          .addColumn('seq', dialect === 'postgres' ? 'bigint' : 'integer', (c) => c.primaryKey())
          .addColumn('id', 'text', (c) => c.notNull().unique())
          .addColumn('at', 'text', (c) => c.notNull())
          .addColumn('actor_id', 'text')
          .addColumn('actor_name', 'text', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('target_type', 'text')
          .addColumn('target_id', 'text')
          .addColumn('outcome', 'text', (c) => c.notNull())
          .addColumn('details', 'text', (c) => c.notNull())
          .addColumn('ip', 'text')
          .addColumn('prev_hash', 'text', (c) => c.notNull())
          .addColumn('hash', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('audit_events_action').on('audit_events').column('action').execute();

        await db.schema
          .createTable('audit_head')
          .addColumn('id', 'integer', (c) => c.primaryKey())
          .addColumn('seq', dialect === 'postgres' ? 'bigint' : 'integer', (c) => c.notNull())
          .addColumn('hash', 'text', (c) => c.notNull())
          .execute();

        await sql`insert into audit_head (id, seq, hash) values (1, 0, ${AUDIT_GENESIS_HASH})`.execute(db);

        await db.schema
          .createTable('vault_keys')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('wrapped_key', 'text', (c) => c.notNull())
          .addColumn('master_key_id', 'text', (c) => c.notNull())
          .addColumn('active', 'integer', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();

        await db.schema
          .createTable('settings')
          .addColumn('key', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();
      },
    },
    '0002_breakglass_runs': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('breakglass_runs')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('trigger', 'text', (c) => c.notNull())
          .addColumn('started_at', 'text', (c) => c.notNull())
          .addColumn('finished_at', 'text')
          .addColumn('result', 'text', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull())
          .addColumn('target', 'text')
          .addColumn('objects', 'text', (c) => c.notNull())
          .addColumn('counts', 'text', (c) => c.notNull())
          .addColumn('bytes', dialect === 'postgres' ? 'bigint' : 'integer')
          .addColumn('sha256', 'text')
          .addColumn('error', 'text')
          .addColumn('error_stage', 'text')
          .execute();
        await db.schema.createIndex('breakglass_runs_started').on('breakglass_runs').column('started_at').execute();

        // Leases: one holder at a time across server replicas sharing the database.
        await db.schema
          .createTable('leases')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('holder', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .execute();
      },
    },
    '0003_totp_last_step': {
      async up(db: Kysely<unknown>) {
        // The last TOTP time step accepted per user: a code is good once.
        await db.schema.alterTable('users').addColumn('totp_last_step', 'integer').execute();
      },
    },
    '0004_gateway_sessions': {
      async up(db: Kysely<unknown>) {
        // Trust on first use: the first host key a gateway saw for each device.
        await db.schema
          .createTable('device_host_keys')
          .addColumn('device_id', 'text', (c) => c.primaryKey().references('devices.id').onDelete('cascade'))
          .addColumn('algorithm', 'text', (c) => c.notNull())
          .addColumn('fingerprint', 'text', (c) => c.notNull())
          .addColumn('first_seen', 'text', (c) => c.notNull())
          .execute();

        // One row per proxied channel (shell, exec, sftp), and one per failed connection.
        // Names are copied so the row still reads right after the device or user is gone.
        await db.schema
          .createTable('gateway_sessions')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('user_id', 'text')
          .addColumn('username', 'text', (c) => c.notNull())
          .addColumn('project_id', 'text')
          .addColumn('project_name', 'text', (c) => c.notNull())
          .addColumn('device_id', 'text')
          .addColumn('device_name', 'text', (c) => c.notNull())
          .addColumn('account_id', 'text')
          .addColumn('account_username', 'text', (c) => c.notNull())
          .addColumn('gateway', 'text', (c) => c.notNull())
          .addColumn('kind', 'text')
          .addColumn('command', 'text')
          .addColumn('remote_address', 'text')
          .addColumn('started_at', 'text', (c) => c.notNull())
          .addColumn('ended_at', 'text')
          .addColumn('bytes_in', dialect === 'postgres' ? 'bigint' : 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('bytes_out', dialect === 'postgres' ? 'bigint' : 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('result', 'text', (c) => c.notNull())
          .addColumn('exit_status', 'integer')
          .addColumn('reason', 'text')
          .addColumn('recording', 'text')
          .execute();
        await db.schema.createIndex('gateway_sessions_started').on('gateway_sessions').column('started_at').execute();
      },
    },
    '0005_gateways': {
      async up(db: Kysely<unknown>) {
        // Remote gateways an administrator registered, with what the last status sync found.
        await db.schema
          .createTable('gateways')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('segment', 'text')
          .addColumn('address', 'text', (c) => c.notNull())
          .addColumn('public_key', 'text', (c) => c.notNull())
          .addColumn('fingerprint', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('status_reason', 'text')
          .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('last_contact_at', 'text')
          .addColumn('last_sync_at', 'text')
          .addColumn('latency_ms', 'integer')
          .addColumn('version', 'text')
          .addColumn('open_relays', 'integer')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();
        // The segment the device was in, and the gateway the user connected to (the one
        // that terminated their SSH and recorded the session) beside the one that reached
        // the device.
        await db.schema.alterTable('gateway_sessions').addColumn('segment', 'text').execute();
        await db.schema.alterTable('gateway_sessions').addColumn('entry_gateway', 'text').execute();
      },
    },
    '0006_user_ssh_keys': {
      async up(db: Kysely<unknown>) {
        // Public keys users sign in to the gateway with (OpenSSH clients' publickey method).
        await db.schema
          .createTable('user_ssh_keys')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('algorithm', 'text', (c) => c.notNull())
          .addColumn('public_key', 'text', (c) => c.notNull())
          .addColumn('fingerprint', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('last_used_at', 'text')
          .addUniqueConstraint('user_ssh_keys_user_fingerprint', ['user_id', 'fingerprint'])
          .execute();
      },
    },
    '0007_session_file_operations': {
      async up(db: Kysely<unknown>) {
        // What users did over SFTP (and legacy scp): one row per finished operation.
        await db.schema
          .createTable('session_file_operations')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('session_id', 'text', (c) => c.notNull().references('gateway_sessions.id').onDelete('cascade'))
          .addColumn('seq', 'integer', (c) => c.notNull())
          .addColumn('at', 'text', (c) => c.notNull())
          .addColumn('op', 'text', (c) => c.notNull())
          .addColumn('path', 'text', (c) => c.notNull())
          .addColumn('target', 'text')
          .addColumn('bytes', dialect === 'postgres' ? 'bigint' : 'integer', (c) => c.notNull())
          .addColumn('result', 'text', (c) => c.notNull())
          .addColumn('error', 'text')
          .execute();
        await db.schema
          .createIndex('session_file_operations_session')
          .on('session_file_operations')
          .columns(['session_id', 'seq'])
          .execute();
      },
    },
    '0008_device_list_order': {
      async up(db: Kysely<unknown>) {
        // The device list pages in (name, id) and (created_at, id) order: with these a far page
        // (offset 99,950 of 100,000) is read in index order instead of sorting every row before it.
        await db.schema.createIndex('devices_name_id').on('devices').columns(['name', 'id']).execute();
        await db.schema.createIndex('devices_created_id').on('devices').columns(['created_at', 'id']).execute();
        await db.schema.dropIndex('devices_name').execute();
      },
    },
    '0009_sign_in_throttle_and_token_scopes': {
      async up(db: Kysely<unknown>) {
        // Failed sign-ins are throttled per address (and per user name from an address)
        // rather than locking the account for everyone; see SignInThrottle.
        await db.schema
          .createTable('sign_in_throttle')
          .addColumn('username', 'text', (c) => c.notNull())
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('throttled_until', 'text')
          .addColumn('last_failure_at', 'text')
          .addColumn('last_success_at', 'text')
          .addPrimaryKeyConstraint('sign_in_throttle_key', ['username', 'source'])
          .execute();
        await db.schema.alterTable('users').addColumn('last_failed_login_at', 'text').execute();
        // Tokens made before scopes could do everything their user can: they stay 'full'.
        await db.schema
          .alterTable('api_tokens')
          .addColumn('scope', 'text', (c) => c.notNull().defaultTo('full'))
          .execute();
      },
    },
    '0010_maintenance_windows': {
      async up(db: Kysely<unknown>) {
        // Devices (or whole projects) reachable only inside an open maintenance window.
        // Not part of the inventory file: an import leaves these as they are.
        await db.schema
          .alterTable('projects')
          .addColumn('maintenance_required', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema
          .alterTable('devices')
          .addColumn('maintenance_required', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        // Who may approve windows of a project (admins are not approvers unless granted).
        await db.schema
          .createTable('project_approvers')
          .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
          .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('granted_by', 'text')
          .addColumn('granted_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('project_approvers_key', ['project_id', 'user_id'])
          .execute();
        // A request and the window it asks for: the same row all its life.
        await db.schema
          .createTable('maintenance_windows')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
          .addColumn('device_ids', 'text')
          .addColumn('account_ids', 'text')
          .addColumn('user_ids', 'text', (c) => c.notNull())
          // No foreign key: a window's history outlives a deleted user (as decisions' user_id does).
          .addColumn('requested_by', 'text', (c) => c.notNull())
          .addColumn('reason', 'text', (c) => c.notNull())
          .addColumn('ticket', 'text')
          .addColumn('starts_at', 'text', (c) => c.notNull())
          .addColumn('ends_at', 'text', (c) => c.notNull())
          .addColumn('required_approvals', 'integer', (c) => c.notNull())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('opened_at', 'text')
          .addColumn('ended_at', 'text')
          .addColumn('ended_by', 'text')
          .addColumn('end_comment', 'text')
          .addColumn('close_state', 'text')
          .addColumn('close_attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_close_at', 'text')
          .addColumn('warned_at', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('maintenance_windows_state').on('maintenance_windows').column('state').execute();
        await db.schema.createIndex('maintenance_windows_project').on('maintenance_windows').column('project_id').execute();
        await db.schema
          .createTable('maintenance_window_decisions')
          .addColumn('window_id', 'text', (c) => c.notNull().references('maintenance_windows.id').onDelete('cascade'))
          .addColumn('user_id', 'text', (c) => c.notNull())
          .addColumn('username', 'text', (c) => c.notNull())
          .addColumn('decision', 'text', (c) => c.notNull())
          .addColumn('comment', 'text')
          .addColumn('at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('maintenance_window_decisions_key', ['window_id', 'user_id'])
          .execute();
        await db.schema
          .createTable('maintenance_hook_runs')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('window_id', 'text', (c) => c.notNull().references('maintenance_windows.id').onDelete('cascade'))
          .addColumn('phase', 'text', (c) => c.notNull())
          .addColumn('attempt', 'integer', (c) => c.notNull())
          .addColumn('started_at', 'text', (c) => c.notNull())
          .addColumn('finished_at', 'text', (c) => c.notNull())
          .addColumn('ok', 'integer', (c) => c.notNull())
          .addColumn('exit_code', 'integer')
          .addColumn('output', 'text', (c) => c.notNull())
          .addColumn('error', 'text')
          .execute();
        await db.schema
          .createIndex('maintenance_hook_runs_window')
          .on('maintenance_hook_runs')
          .columns(['window_id', 'started_at'])
          .execute();
        // The window a gateway session entered under (null: a device that needs none).
        await db.schema.alterTable('gateway_sessions').addColumn('window_id', 'text').execute();
        // The lifecycle looks up a window's live sessions every tick: few rows have one.
        await db.schema.createIndex('gateway_sessions_window').on('gateway_sessions').column('window_id').execute();
      },
    },
    '0011_agents': {
      async up(db: Kysely<unknown>) {
        // Join tokens: only the hash is kept; using one is a conditional update on used_at.
        await db.schema
          .createTable('agent_join_tokens')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id').onDelete('cascade'))
          .addColumn('token_hash', 'text', (c) => c.notNull().unique())
          .addColumn('created_by', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addColumn('used_at', 'text')
          .addColumn('used_by_agent', 'text')
          .execute();
        await db.schema.createIndex('agent_join_tokens_device').on('agent_join_tokens').column('device_id').execute();
        await db.schema
          .createTable('agents')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id').onDelete('cascade'))
          .addColumn('public_key', 'text', (c) => c.notNull())
          .addColumn('fingerprint', 'text', (c) => c.notNull())
          .addColumn('version', 'text', (c) => c.notNull())
          .addColumn('hostname', 'text', (c) => c.notNull())
          .addColumn('enrolled_at', 'text', (c) => c.notNull())
          .addColumn('last_contact_at', 'text')
          .addColumn('link_state', 'text', (c) => c.notNull().defaultTo('never'))
          .addColumn('revoked_at', 'text')
          .addColumn('revoked_by', 'text')
          .execute();
        // One active agent per device: revoked ones stay as history.
        await db.schema
          .createIndex('agents_active_device')
          .on('agents')
          .column('device_id')
          .unique()
          .where(sql.ref('revoked_at'), 'is', null)
          .execute();
      },
    },
    '0012_agent_link_gateway': {
      async up(db: Kysely<unknown>) {
        // The gateway an agent's link is (or was last) up to.
        await db.schema.alterTable('agents').addColumn('link_gateway', 'text').execute();
      },
    },
    '0013_gateway_agent_address': {
      async up(db: Kysely<unknown>) {
        // Where a remote gateway takes host agents' links, as its status report says.
        await db.schema.alterTable('gateways').addColumn('agent_address', 'text').execute();
      },
    },
    '0014_runbooks': {
      async up(db: Kysely<unknown>) {
        // Runbook documents an administrator added; the built-in ones are not stored.
        await db.schema
          .createTable('runbooks')
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('sha256', 'text', (c) => c.notNull())
          .addColumn('builtin', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('created_by', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('runbooks_key', ['name', 'version'])
          .execute();
        // No foreign key to users: a run's history outlives the user who started it.
        await db.schema
          .createTable('runbook_runs')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('runbook_name', 'text', (c) => c.notNull())
          .addColumn('runbook_version', 'integer', (c) => c.notNull())
          .addColumn('runbook_sha256', 'text', (c) => c.notNull())
          .addColumn('apply', 'integer', (c) => c.notNull())
          .addColumn('inputs', 'text', (c) => c.notNull())
          .addColumn('privileged_account', 'text', (c) => c.notNull())
          .addColumn('concurrency', 'integer', (c) => c.notNull())
          .addColumn('user_id', 'text', (c) => c.notNull())
          .addColumn('username', 'text', (c) => c.notNull())
          .addColumn('breakglass_run_id', 'text')
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('started_at', 'text', (c) => c.notNull())
          .addColumn('finished_at', 'text')
          .addColumn('counts', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('runbook_runs_started').on('runbook_runs').columns(['started_at', 'id']).execute();
        // One row per device of a run; names are copied so it reads right after the device is gone.
        await db.schema
          .createTable('runbook_run_devices')
          .addColumn('run_id', 'text', (c) => c.notNull().references('runbook_runs.id').onDelete('cascade'))
          .addColumn('device_id', 'text', (c) => c.notNull())
          .addColumn('device_name', 'text', (c) => c.notNull())
          .addColumn('project_name', 'text', (c) => c.notNull())
          .addColumn('seq', 'integer', (c) => c.notNull())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('verdict', 'text')
          .addColumn('error', 'text')
          .addColumn('steps', 'text', (c) => c.notNull())
          .addColumn('accounts', 'text', (c) => c.notNull())
          .addColumn('started_at', 'text')
          .addColumn('finished_at', 'text')
          .addColumn('lock_device_id', 'text')
          .addPrimaryKeyConstraint('runbook_run_devices_key', ['run_id', 'device_id'])
          .execute();
        // The per-device lock: lock_device_id is the device's id while its item is queued or
        // running, null after. Inserting a run's items fails on a device another run holds.
        await db.schema.createIndex('runbook_run_devices_lock').on('runbook_run_devices').column('lock_device_id').unique().execute();
        await db.schema.createIndex('runbook_run_devices_device').on('runbook_run_devices').column('device_id').execute();
        // Credentials beside an account's current one: a new one not yet verified (pending,
        // or unverified when neither it nor the old one logged in), and the one it replaced.
        await db.schema
          .createTable('account_credentials')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('password_enc', 'text')
          .addColumn('private_key_enc', 'text')
          .addColumn('passphrase_enc', 'text')
          .addColumn('public_key', 'text')
          .addColumn('run_id', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('account_credentials_account').on('account_credentials').column('account_id').execute();
        // Only the newest previous credential is kept per account.
        await db.schema
          .createIndex('account_credentials_previous')
          .on('account_credentials')
          .column('account_id')
          .unique()
          .where(sql.ref('state'), '=', 'previous')
          .execute();
        // At most one policy per project and one per device; a device's beats its project's.
        await db.schema
          .createTable('rotation_policies')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('project_id', 'text', (c) => c.references('projects.id').onDelete('cascade'))
          .addColumn('device_id', 'text', (c) => c.references('devices.id').onDelete('cascade'))
          .addColumn('every_days', 'integer')
          .addColumn('after_session', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('credential', 'text', (c) => c.notNull())
          .addColumn('password_length', 'integer', (c) => c.notNull())
          .addColumn('password_classes', 'text', (c) => c.notNull())
          .addColumn('privileged_account', 'text', (c) => c.notNull())
          .addColumn('user_id', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('rotation_policies_project').on('rotation_policies').column('project_id').unique().execute();
        await db.schema.createIndex('rotation_policies_device').on('rotation_policies').column('device_id').unique().execute();
        // When the account's secret last changed: what scheduled rotation and rotation after a
        // break-glass export go by. Until now only updated_at said it (with other changes).
        await db.schema.alterTable('accounts').addColumn('secret_changed_at', 'text').execute();
        await sql`update accounts set secret_changed_at = updated_at`.execute(db);
        // The runbook run a gateway session ran a command of.
        await db.schema.alterTable('gateway_sessions').addColumn('runbook_run_id', 'text').execute();
        await db.schema.createIndex('gateway_sessions_runbook_run').on('gateway_sessions').column('runbook_run_id').execute();
      },
    },
    '0015_desktop_tokens': {
      async up(db: Kysely<unknown>) {
        // One-time passwords for native desktop clients (VNC now, RDP's tunnel later): sealed,
        // not hashed, because VncAuth answers a challenge with DES keyed by the token itself.
        // No foreign keys: a token is minutes long, and its audit events keep the ids.
        await db.schema
          .createTable('desktop_tokens')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('user_id', 'text', (c) => c.notNull())
          .addColumn('device_id', 'text', (c) => c.notNull())
          .addColumn('account_id', 'text', (c) => c.notNull())
          .addColumn('protocol', 'text', (c) => c.notNull())
          .addColumn('token_sealed', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addColumn('used_at', 'text')
          .addColumn('used_from', 'text')
          .execute();
        await db.schema.createIndex('desktop_tokens_expires').on('desktop_tokens').column('expires_at').execute();
      },
    },
    '0016_host_keys_per_protocol': {
      async up(db: Kysely<unknown>) {
        // One trusted key per device and protocol: a device reached over SSH and RDP (or
        // VeNCrypt X509 VNC) presents a key to each, and neither is a change of the other.
        // The old rows' protocol follows from their algorithm: the RDP renderer stores
        // 'rdp-x509', the VNC client 'x509', SSH the key's type. A pinned row (set by an
        // administrator, not seen yet) may have no algorithm until the device presents it.
        await db.schema.alterTable('device_host_keys').renameTo('device_host_keys_0004').execute();
        await db.schema
          .createTable('device_host_keys')
          .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id').onDelete('cascade'))
          .addColumn('protocol', 'text', (c) => c.notNull())
          .addColumn('algorithm', 'text')
          .addColumn('fingerprint', 'text', (c) => c.notNull())
          .addColumn('first_seen', 'text', (c) => c.notNull())
          .addColumn('pinned', 'integer', (c) => c.notNull().defaultTo(0))
          // Named: PostgreSQL keeps the renamed table's device_host_keys_pkey until it is dropped.
          .addPrimaryKeyConstraint('device_host_keys_device_protocol', ['device_id', 'protocol'])
          .execute();
        await sql`insert into device_host_keys (device_id, protocol, algorithm, fingerprint, first_seen, pinned)
          select device_id,
            case algorithm when 'rdp-x509' then 'rdp' when 'x509' then 'vnc' else 'ssh' end,
            algorithm, fingerprint, first_seen, 0
          from device_host_keys_0004`.execute(db);
        await db.schema.dropTable('device_host_keys_0004').execute();
      },
    },
    '0017_device_spellings': {
      async up(db: Kysely<unknown>) {
        // The provider and protocols as a customer's inventory wrote them (`AWS`, `MySQL`),
        // for the export and the break-glass workbook; null where they are as stored.
        await db.schema.alterTable('devices').addColumn('provider_as_written', 'text').execute();
        await db.schema.alterTable('devices').addColumn('protocols_as_written', 'text').execute();
      },
    },
    '0018_gateway_drains': {
      async up(db: Kysely<unknown>) {
        // Gateways an administrator drained: they carry no new connection. One row per
        // drained gateway, keyed by its id ('default' for the built-in gateway, which has
        // no row in gateways): draining is an insert that may find the row there, resuming
        // a delete that may find none, so concurrent calls change the state once.
        await db.schema
          .createTable('gateway_drains')
          .addColumn('gateway_id', 'text', (c) => c.primaryKey())
          .addColumn('drained_at', 'text', (c) => c.notNull())
          .addColumn('drained_by', 'text')
          .execute();
      },
    },
    '0019_host_key_next': {
      async up(db: Kysely<unknown>) {
        // A pin on a device that already has a trusted key is the expected next key: both
        // are accepted until the device presents the pinned one, which then replaces the
        // old (so a planned key change needs no window in which connections are refused).
        await db.schema.alterTable('device_host_keys').addColumn('next_fingerprint', 'text').execute();
        await db.schema.alterTable('device_host_keys').addColumn('next_pinned_at', 'text').execute();
      },
    },
    '0020_breakglass_last_test': {
      async up(db: Kysely<unknown>) {
        // The last break-glass Test, for every administrator's page and the CLI: one row
        // (id 1), replaced whole by one statement, so two Tests at once leave one of them,
        // never a mix. Its stages' outcomes and messages, never a secret.
        await db.schema
          .createTable('breakglass_last_test')
          .addColumn('id', 'integer', (c) => c.primaryKey())
          .addColumn('tested_at', 'text', (c) => c.notNull())
          .addColumn('tested_by', 'text')
          .addColumn('target', 'text', (c) => c.notNull())
          .addColumn('ok', 'integer', (c) => c.notNull())
          .addColumn('report', 'text', (c) => c.notNull())
          .execute();
      },
    },
    '0021_session_kex': {
      async up(db: Kysely<unknown>) {
        // The SSH key exchange each leg of a session negotiated (`mlkem768x25519-sha256`,
        // `curve25519-sha256`): the user's connection to the gateway, the gateway's to the device.
        await db.schema.alterTable('gateway_sessions').addColumn('user_kex', 'text').execute();
        await db.schema.alterTable('gateway_sessions').addColumn('device_kex', 'text').execute();
      },
    },
    '0022_recording_signature': {
      async up(db: Kysely<unknown>) {
        // A finished recording's SHA-256 and its signature document (JSON: the server's
        // Ed25519 signature, key id and fingerprint), also written beside the file as `.sig`.
        await db.schema.alterTable('gateway_sessions').addColumn('recording_sha256', 'text').execute();
        await db.schema.alterTable('gateway_sessions').addColumn('recording_signature', 'text').execute();
      },
    },
    '0023_session_replica': {
      async up(db: Kysely<unknown>) {
        // Replicas on one PostgreSQL: the server process whose built-in gateway holds a
        // session (its `replica:<id>` lease says whether it still runs), and an end asked
        // for on another replica, which the holder's gateway picks up and carries out.
        await db.schema.alterTable('gateway_sessions').addColumn('replica', 'text').execute();
        await db.schema.alterTable('gateway_sessions').addColumn('end_requested', 'text').execute();
        await db.schema.createIndex('gateway_sessions_end_requested').on('gateway_sessions').column('end_requested').execute();
      },
    },
    '0024_oidc_sign_in': {
      async up(db: Kysely<unknown>) {
        // Users made by OIDC sign-in: the identity provider's issuer and subject (unique), and
        // whether a sign-in with no mapped group disabled them (so only such a sign-in's
        // successor enables them again, never one an administrator disabled).
        await db.schema.alterTable('users').addColumn('sso_subject', 'text').execute();
        await db.schema
          .alterTable('users')
          .addColumn('sso_disabled', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema.createIndex('users_sso_subject').unique().on('users').column('sso_subject').execute();
        // Sign-ins between /auth/oidc/start and the callback, each deleted by the callback
        // that uses it (one conditional delete, so a replayed state finds nothing).
        await db.schema
          .createTable('sso_logins')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('binding_hash', 'text', (c) => c.notNull())
          .addColumn('nonce', 'text', (c) => c.notNull())
          .addColumn('code_verifier_enc', 'text', (c) => c.notNull())
          .addColumn('cli_login_id', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('sso_cli_logins')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('secret_hash', 'text', (c) => c.notNull())
          .addColumn('user_id', 'text', (c) => c.references('users.id').onDelete('cascade'))
          .addColumn('claimed_at', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .execute();
      },
    },
    '0025_recording_store': {
      async up(db: Kysely<unknown>) {
        // The recording's object name in the recordings' object store, once the store confirmed it.
        await db.schema.alterTable('gateway_sessions').addColumn('recording_store', 'text').execute();
      },
    },
    '0026_rate_limits': {
      async up(db: Kysely<unknown>) {
        // Requests counted against a route's limit, shared by every replica on one database:
        // one row per route and caller (an address, or a user for per-user limits), holding
        // the hits of its current window and when that window ends. Ended windows are pruned.
        await db.schema
          .createTable('rate_limits')
          .addColumn('route', 'text', (c) => c.notNull())
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('hits', 'integer', (c) => c.notNull())
          .addColumn('window_ends_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('rate_limits_key', ['route', 'source'])
          .execute();
        await db.schema.createIndex('rate_limits_window_ends_at').on('rate_limits').column('window_ends_at').execute();
      },
    },
    '0027_session_warn_request': {
      async up(db: Kysely<unknown>) {
        // A warning (a maintenance window about to end) for a session another replica's
        // built-in gateway holds: that replica shows it to the user, then clears it.
        await db.schema.alterTable('gateway_sessions').addColumn('warn_requested', 'text').execute();
        await db.schema.alterTable('gateway_sessions').addColumn('warn_requested_at', 'text').execute();
        await db.schema.createIndex('gateway_sessions_warn_requested').on('gateway_sessions').column('warn_requested_at').execute();
      },
    },
  };
}

export function migrationProvider(dialect: Dialect): MigrationProvider {
  return { getMigrations: () => Promise.resolve(migrations(dialect)) };
}
