import { randomUUID } from 'node:crypto';
import type { DeviceInput } from '@gatehouse/core';
import { changesSecrets, sealExtraCredential, sealSecret } from './accounts.js';
import type { Tx } from './connect.js';
import { spellingColumns } from './devices.js';
import { Projects } from './projects.js';
import type { AccountTable, DeviceTable } from './schema.js';
import { timeSlicer } from './time-slicer.js';
import type { Vault } from './vault.js';

/** One row of an import: a device (by project and name) and optionally one of its accounts. */
export interface ImportItem {
  project: string;
  device: Omit<DeviceInput, 'projectId'>;
  /** A secret left undefined keeps the stored value; null clears it. */
  account: {
    username: string;
    password?: string | null | undefined;
    privateKey?: string | null | undefined;
    passphrase?: string | null | undefined;
    extraCredential?: Record<string, string> | null | undefined;
    pemFileName?: string | null | undefined;
  } | null;
}

export interface ImportCounts {
  projectsCreated: number;
  devicesCreated: number;
  devicesUpdated: number;
  accountsCreated: number;
  accountsUpdated: number;
}

type SealedSecrets = Pick<AccountTable, 'id' | 'password_enc' | 'private_key_enc' | 'passphrase_enc' | 'extra_credential_enc'>;

/** Rows per INSERT of an import: 13 columns x 100 stays far under both databases' parameter limits. */
const INSERT_ROWS = 100;

/**
 * Creates or updates projects (by name), devices (by project and name) and accounts (by
 * device and user name) in bulk: a few queries per project and multi-row inserts, so a
 * large import costs seconds, not a round trip per field. A secret given as undefined
 * keeps the stored value. Run it inside one transaction so it is all or nothing. It pauses
 * every 10 ms of work (timeSlicer), so a large import does not stop the event loop; on
 * SQLite, other queries still wait for the transaction.
 */
export async function importItems(x: Tx, vault: Vault, items: readonly ImportItem[]): Promise<ImportCounts> {
  const pause = timeSlicer();
  const counts: ImportCounts = { projectsCreated: 0, devicesCreated: 0, devicesUpdated: 0, accountsCreated: 0, accountsUpdated: 0 };
  const now = new Date().toISOString();
  const projects = new Map((await x.selectFrom('projects').select(['id', 'name']).execute()).map((p) => [p.name, p.id]));
  const devices = new Map<string, Map<string, string>>();
  const accounts = new Map<string, Map<string, string>>();
  /** The sealed secrets of accounts that existed before the import: a secret given unchanged does not change secret_changed_at. */
  const sealedBefore = new Map<string, SealedSecrets>();
  const loadProject = async (projectId: string) => {
    if (devices.has(projectId)) return;
    const rows = await x.selectFrom('devices').select(['id', 'name']).where('project_id', '=', projectId).execute();
    devices.set(projectId, new Map(rows.map((d) => [d.name, d.id])));
    const accs = await x
      .selectFrom('accounts as a')
      .innerJoin('devices as d', 'd.id', 'a.device_id')
      .select(['a.id', 'a.username', 'a.device_id', 'a.password_enc', 'a.private_key_enc', 'a.passphrase_enc', 'a.extra_credential_enc'])
      .where('d.project_id', '=', projectId)
      .execute();
    for (const a of accs) {
      if (!accounts.has(a.device_id)) accounts.set(a.device_id, new Map());
      accounts.get(a.device_id)?.set(a.username, a.id);
      sealedBefore.set(a.id, a);
    }
  };
  const newDevices: DeviceTable[] = [];
  const newAccounts: AccountTable[] = [];
  // Inserted INSERT_ROWS at a time as they come: each statement is a short step on the
  // main thread (SQLite runs it synchronously) and the pending rows stay few. Devices go
  // first: accounts refer to them.
  const insertDevices = async () => {
    if (newDevices.length > 0) await x.insertInto('devices').values(newDevices.splice(0)).execute();
  };
  const insertAccounts = async () => {
    await insertDevices();
    if (newAccounts.length > 0) await x.insertInto('accounts').values(newAccounts.splice(0)).execute();
  };
  const updatedDevices = new Set<string>();
  for (const item of items) {
    await pause();
    let projectId = projects.get(item.project);
    if (projectId === undefined) {
      projectId = (await new Projects(x).create({ name: item.project, description: null })).id;
      projects.set(item.project, projectId);
      counts.projectsCreated += 1;
    }
    await loadProject(projectId);
    const byName = devices.get(projectId) as Map<string, string>;
    const d = item.device;
    const fields = {
      ...spellingColumns(d),
      public_ip: d.publicIp ?? null,
      private_ip: d.privateIp ?? null,
      url_port: d.urlPort ?? null,
      access_type: d.accessType,
      tags: JSON.stringify(d.tags),
    };
    let deviceId = byName.get(d.name);
    if (deviceId === undefined) {
      deviceId = randomUUID();
      byName.set(d.name, deviceId);
      newDevices.push({
        id: deviceId,
        project_id: projectId,
        name: d.name,
        ...fields,
        maintenance_required: 0,
        created_at: now,
        updated_at: now,
      });
      if (newDevices.length >= INSERT_ROWS) await insertDevices();
      updatedDevices.add(deviceId);
      counts.devicesCreated += 1;
    } else if (!updatedDevices.has(deviceId)) {
      await x
        .updateTable('devices')
        .set({ ...fields, updated_at: now })
        .where('id', '=', deviceId)
        .execute();
      updatedDevices.add(deviceId);
      counts.devicesUpdated += 1;
    }
    const a = item.account;
    if (!a) continue;
    if (!accounts.has(deviceId)) accounts.set(deviceId, new Map());
    const byUser = accounts.get(deviceId) as Map<string, string>;
    const existing = byUser.get(a.username);
    const id = existing ?? randomUUID();
    const sealed = {
      password_enc: a.password === undefined ? undefined : sealSecret(vault, id, 'password', a.password),
      private_key_enc: a.privateKey === undefined ? undefined : sealSecret(vault, id, 'privateKey', a.privateKey),
      passphrase_enc: a.passphrase === undefined ? undefined : sealSecret(vault, id, 'passphrase', a.passphrase),
      extra_credential_enc: a.extraCredential === undefined ? undefined : sealExtraCredential(vault, id, a.extraCredential),
    };
    if (existing) {
      const set = Object.fromEntries(Object.entries(sealed).filter(([, v]) => v !== undefined));
      const before = sealedBefore.get(id);
      // An account added earlier in this same import was new: its secrets changed now anyway.
      const secretChanged = before === undefined || changesSecrets(vault, before, a);
      if (before && secretChanged) sealedBefore.set(id, { ...before, ...set });
      await x
        .updateTable('accounts')
        .set({ ...set, pem_file_name: a.pemFileName ?? null, updated_at: now, ...(secretChanged ? { secret_changed_at: now } : {}) })
        .where('id', '=', id)
        .execute();
      counts.accountsUpdated += 1;
    } else {
      byUser.set(a.username, id);
      newAccounts.push({
        id,
        device_id: deviceId,
        username: a.username,
        password_enc: sealed.password_enc ?? null,
        private_key_enc: sealed.private_key_enc ?? null,
        pem_file_name: a.pemFileName ?? null,
        passphrase_enc: sealed.passphrase_enc ?? null,
        extra_credential_enc: sealed.extra_credential_enc ?? null,
        created_at: now,
        updated_at: now,
        secret_changed_at: now,
      });
      if (newAccounts.length >= INSERT_ROWS) await insertAccounts();
      counts.accountsCreated += 1;
    }
  }
  await insertAccounts();
  return counts;
}
