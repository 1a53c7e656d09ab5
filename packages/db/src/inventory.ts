import { randomUUID } from 'node:crypto';
import {
  NotFoundError,
  SECRET_MASK,
  type AccountInput,
  type AccountPatch,
  type DeviceInput,
  type DevicePatch,
  type ProjectInput,
  type Visibility,
} from '@gatehouse/core';
import { sql } from 'kysely';
import { inTransaction, type Db, type Tx } from './connect.js';
import { uniquely } from './errors.js';
import { timeSlicer } from './time-slicer.js';
import type { AccountTable, DeviceTable, ProjectTable } from './schema.js';
import type { Vault } from './vault.js';

export interface Project {
  id: string;
  name: string;
  description: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface Device {
  id: string;
  projectId: string;
  name: string;
  provider: string;
  protocols: string[];
  publicIp: string | null;
  privateIp: string | null;
  urlPort: string | null;
  accessType: string;
  tags: string[];
  createdAt: string;
  updatedAt: string;
}

/** A secret as an account record holds it: the fixed mask when set, null when not. */
export type MaskedSecret = typeof SECRET_MASK | null;

/** An account without its secrets: each is only the mask when set, null when not (revealAccountSecrets decrypts them). */
export interface Account {
  id: string;
  deviceId: string;
  username: string;
  password: MaskedSecret;
  privateKey: MaskedSecret;
  pemFileName: string | null;
  passphrase: MaskedSecret;
  extraCredential: MaskedSecret;
  createdAt: string;
  updatedAt: string;
}

export interface AccountSecrets {
  password: string | null;
  privateKey: string | null;
  passphrase: string | null;
  extraCredential: Record<string, string> | null;
}

const presentProject = (r: ProjectTable): Project => ({
  id: r.id,
  name: r.name,
  description: r.description,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const presentDevice = (r: DeviceTable): Device => ({
  id: r.id,
  projectId: r.project_id,
  name: r.name,
  provider: r.provider,
  protocols: JSON.parse(r.protocols) as string[],
  publicIp: r.public_ip,
  privateIp: r.private_ip,
  urlPort: r.url_port,
  accessType: r.access_type,
  tags: JSON.parse(r.tags) as string[],
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const mask = (v: string | null): MaskedSecret => (v === null ? null : SECRET_MASK);

const presentAccount = (r: AccountTable): Account => ({
  id: r.id,
  deviceId: r.device_id,
  username: r.username,
  password: mask(r.password_enc),
  privateKey: mask(r.private_key_enc),
  pemFileName: r.pem_file_name,
  passphrase: mask(r.passphrase_enc),
  extraCredential: mask(r.extra_credential_enc),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

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

/**
 * An account with its decrypted secrets, for the break-glass export, built as one object
 * literal: spreading presentAccount() into a new object per account made V8 keep many of
 * them past young-generation GCs (bench/README.md).
 */
const presentAccountWithSecrets = (r: AccountTable, secrets: AccountSecrets): Account & { secrets: AccountSecrets } => ({
  id: r.id,
  deviceId: r.device_id,
  username: r.username,
  password: mask(r.password_enc),
  privateKey: mask(r.private_key_enc),
  pemFileName: r.pem_file_name,
  passphrase: mask(r.passphrase_enc),
  extraCredential: mask(r.extra_credential_enc),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  secrets,
});

export type DeviceSort = 'name' | '-name' | 'provider' | 'createdAt' | '-createdAt';

export interface DeviceQuery {
  projectId?: string | undefined;
  /** What the caller may see (an operator's grants); undefined means all. */
  visibility?: Visibility | undefined;
  search?: string | undefined;
  tag?: string | undefined;
  sort?: DeviceSort | undefined;
  limit?: number | undefined;
  offset?: number | undefined;
}

const sortColumns = { name: 'name', provider: 'provider', createdAt: 'created_at' } as const;

/** Rows per INSERT of an import: 13 columns x 100 stays far under both databases' parameter limits. */
const INSERT_ROWS = 100;

/** Makes `%`, `_` and a backslash match themselves in a LIKE pattern with a backslash escape. */
/** `s` for a LIKE pattern with `escape '\\'`: its own %, _ and \\ match only themselves. */
export const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/** Projects, devices and accounts, with every secret field sealed by the vault. */
export class Inventory {
  constructor(
    readonly db: Db,
    readonly vault: Vault,
    private readonly x: Tx = db.kysely,
  ) {}

  /** Runs `fn` in one transaction: all of it is written, or none. */
  transaction<T>(fn: (inventory: Inventory) => Promise<T>): Promise<T> {
    return inTransaction(this.x, (trx) => fn(new Inventory(this.db, this.vault, trx)));
  }

  // Projects

  async createProject(input: ProjectInput): Promise<Project> {
    const now = new Date().toISOString();
    const row = { id: randomUUID(), name: input.name, description: input.description ?? null, created_at: now, updated_at: now };
    await uniquely('name', `A project named ${JSON.stringify(input.name)} exists already. Choose another name.`, () =>
      this.x.insertInto('projects').values(row).execute(),
    );
    return presentProject(row);
  }

  async listProjects(projectIds?: readonly string[]): Promise<Project[]> {
    let q = this.x.selectFrom('projects').selectAll();
    if (projectIds) {
      if (projectIds.length === 0) return [];
      q = q.where('id', 'in', projectIds);
    }
    return (await q.orderBy('name').execute()).map(presentProject);
  }

  async getProject(id: string): Promise<Project> {
    const row = await this.x.selectFrom('projects').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new NotFoundError('Project', id);
    return presentProject(row);
  }

  async findProjectByName(name: string): Promise<Project | undefined> {
    const row = await this.x.selectFrom('projects').selectAll().where('name', '=', name).executeTakeFirst();
    return row && presentProject(row);
  }

  async updateProject(id: string, patch: Partial<ProjectInput>): Promise<Project> {
    await this.getProject(id);
    const set: Partial<ProjectTable> = { updated_at: new Date().toISOString() };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.description !== undefined) set.description = patch.description;
    await uniquely('name', `A project named ${JSON.stringify(patch.name)} exists already. Choose another name.`, () =>
      this.x.updateTable('projects').set(set).where('id', '=', id).execute(),
    );
    return this.getProject(id);
  }

  async deleteProject(id: string): Promise<void> {
    const result = await this.x.deleteFrom('projects').where('id', '=', id).executeTakeFirst();
    if (Number(result.numDeletedRows) === 0) throw new NotFoundError('Project', id);
  }

  // Devices

  async createDevice(input: DeviceInput): Promise<Device> {
    await this.getProject(input.projectId);
    const now = new Date().toISOString();
    const row: DeviceTable = {
      id: randomUUID(),
      project_id: input.projectId,
      name: input.name,
      provider: input.provider,
      protocols: JSON.stringify(input.protocols),
      public_ip: input.publicIp ?? null,
      private_ip: input.privateIp ?? null,
      url_port: input.urlPort ?? null,
      access_type: input.accessType,
      tags: JSON.stringify(input.tags),
      created_at: now,
      updated_at: now,
    };
    await uniquely('name', `This project already has a device named ${JSON.stringify(input.name)}. Choose another name.`, () =>
      this.x.insertInto('devices').values(row).execute(),
    );
    return presentDevice(row);
  }

  async getDevice(id: string): Promise<Device> {
    const row = await this.x.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new NotFoundError('Device', id);
    return presentDevice(row);
  }

  async findDevice(projectId: string, name: string): Promise<Device | undefined> {
    const row = await this.x
      .selectFrom('devices')
      .selectAll()
      .where('project_id', '=', projectId)
      .where('name', '=', name)
      .executeTakeFirst();
    return row && presentDevice(row);
  }

  /** Every device with exactly this name, in any project (names are unique per project only). */
  async findDevicesNamed(name: string): Promise<Device[]> {
    return (await this.x.selectFrom('devices').selectAll().where('name', '=', name).orderBy('id').execute()).map(presentDevice);
  }

  async listDevices(q: DeviceQuery = {}): Promise<{ items: Device[]; total: number }> {
    let base = this.x.selectFrom('devices');
    if (q.projectId) base = base.where('project_id', '=', q.projectId);
    const v = q.visibility;
    if (v && !v.all) {
      if (v.wholeProjects.length === 0 && v.deviceIds.length === 0) return { items: [], total: 0 };
      base = base.where((eb) =>
        eb.or([
          ...(v.wholeProjects.length > 0 ? [eb('project_id', 'in', v.wholeProjects)] : []),
          ...(v.deviceIds.length > 0 ? [eb('id', 'in', v.deviceIds)] : []),
        ]),
      );
    }
    if (q.search) {
      const like = `%${escapeLike(q.search.toLowerCase())}%`;
      // IPv6 addresses may be stored in upper case: compare them lowered, like names.
      base = base.where((eb) =>
        eb.or([
          eb(sql`lower(name)`, 'like', sql`${like} escape '\\'`),
          eb(sql`lower(coalesce(public_ip, ''))`, 'like', sql`${like} escape '\\'`),
          eb(sql`lower(coalesce(private_ip, ''))`, 'like', sql`${like} escape '\\'`),
        ]),
      );
    }
    if (q.tag) base = base.where('tags', 'like', sql<string>`${`%${escapeLike(JSON.stringify(q.tag))}%`} escape '\\'`);
    const sort = q.sort ?? 'name';
    const desc = sort.startsWith('-');
    const column = sortColumns[(desc ? sort.slice(1) : sort) as keyof typeof sortColumns];
    const page = base
      .selectAll()
      .orderBy(column, desc ? 'desc' : 'asc')
      // The same direction as the column, so that the (column, id) index serves both.
      .orderBy('id', desc ? 'desc' : 'asc')
      .limit(q.limit ?? 50)
      .offset(q.offset ?? 0);
    const countAll = () => base.select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow();
    if (q.search || q.tag) {
      // A search reads every row whatever indexes there are: count in the same pass
      // (a window over the whole result) instead of a second scan.
      const rows = await page.select(sql<string | number>`count(*) over ()`.as('total_rows')).execute();
      const first = rows[0];
      const total = first ? Number(first.total_rows) : (q.offset ?? 0) > 0 ? Number((await countAll()).n) : 0;
      return { items: rows.map(presentDevice), total };
    }
    const [rows, count] = await Promise.all([page.execute(), countAll()]);
    return { items: rows.map(presentDevice), total: Number(count.n) };
  }

  async updateDevice(id: string, patch: DevicePatch): Promise<Device> {
    const current = await this.getDevice(id);
    if (patch.projectId !== undefined && patch.projectId !== current.projectId) await this.getProject(patch.projectId);
    const set: Partial<DeviceTable> = { updated_at: new Date().toISOString() };
    if (patch.projectId !== undefined) set.project_id = patch.projectId;
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.provider !== undefined) set.provider = patch.provider;
    if (patch.protocols !== undefined) set.protocols = JSON.stringify(patch.protocols);
    if (patch.publicIp !== undefined) set.public_ip = patch.publicIp;
    if (patch.privateIp !== undefined) set.private_ip = patch.privateIp;
    if (patch.urlPort !== undefined) set.url_port = patch.urlPort;
    if (patch.accessType !== undefined) set.access_type = patch.accessType;
    if (patch.tags !== undefined) set.tags = JSON.stringify(patch.tags);
    await uniquely('name', `This project already has a device named ${JSON.stringify(patch.name)}. Choose another name.`, () =>
      this.x.updateTable('devices').set(set).where('id', '=', id).execute(),
    );
    return this.getDevice(id);
  }

  async deleteDevice(id: string): Promise<void> {
    const result = await this.x.deleteFrom('devices').where('id', '=', id).executeTakeFirst();
    if (Number(result.numDeletedRows) === 0) throw new NotFoundError('Device', id);
  }

  // Accounts

  private seal(id: string, field: string, value: string | null | undefined): string | null {
    if (value === null || value === undefined || value === '') return null;
    return this.vault.encrypt({ table: 'accounts', id, field }, value);
  }

  private unseal(id: string, field: string, value: string | null): string | null {
    return value === null ? null : this.vault.decrypt({ table: 'accounts', id, field }, value);
  }

  async createAccount(input: AccountInput): Promise<Account> {
    await this.getDevice(input.deviceId);
    const id = randomUUID();
    const now = new Date().toISOString();
    const row: AccountTable = {
      id,
      device_id: input.deviceId,
      username: input.username,
      password_enc: this.seal(id, 'password', input.password),
      private_key_enc: this.seal(id, 'privateKey', input.privateKey),
      pem_file_name: input.pemFileName ?? null,
      passphrase_enc: this.seal(id, 'passphrase', input.passphrase),
      extra_credential_enc:
        input.extraCredential && Object.keys(input.extraCredential).length > 0
          ? this.seal(id, 'extraCredential', JSON.stringify(input.extraCredential))
          : null,
      created_at: now,
      updated_at: now,
    };
    await uniquely('username', `This device already has an account ${JSON.stringify(input.username)}.`, () =>
      this.x.insertInto('accounts').values(row).execute(),
    );
    return presentAccount(row);
  }

  async getAccount(id: string): Promise<Account> {
    return presentAccount(await this.accountRow(id));
  }

  private async accountRow(id: string): Promise<AccountTable> {
    const row = await this.x.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new NotFoundError('Account', id);
    return row;
  }

  async listAccounts(deviceId: string): Promise<Account[]> {
    const rows = await this.x.selectFrom('accounts').selectAll().where('device_id', '=', deviceId).orderBy('username').execute();
    return rows.map(presentAccount);
  }

  /** Writes only the fields given; a secret set to null or '' is cleared. */
  async updateAccount(id: string, patch: AccountPatch): Promise<Account> {
    const current = await this.accountRow(id);
    if (patch.deviceId !== undefined && patch.deviceId !== current.device_id) {
      throw new NotFoundError('Account', `${id} on device ${patch.deviceId}`);
    }
    const set: Partial<AccountTable> = { updated_at: new Date().toISOString() };
    if (patch.username !== undefined) set.username = patch.username;
    if (patch.pemFileName !== undefined) set.pem_file_name = patch.pemFileName;
    if (patch.password !== undefined) set.password_enc = this.seal(id, 'password', patch.password);
    if (patch.privateKey !== undefined) set.private_key_enc = this.seal(id, 'privateKey', patch.privateKey);
    if (patch.passphrase !== undefined) set.passphrase_enc = this.seal(id, 'passphrase', patch.passphrase);
    if (patch.extraCredential !== undefined) {
      set.extra_credential_enc =
        patch.extraCredential && Object.keys(patch.extraCredential).length > 0
          ? this.seal(id, 'extraCredential', JSON.stringify(patch.extraCredential))
          : null;
    }
    await uniquely('username', `This device already has an account ${JSON.stringify(patch.username)}.`, () =>
      this.x.updateTable('accounts').set(set).where('id', '=', id).execute(),
    );
    return this.getAccount(id);
  }

  async deleteAccount(id: string): Promise<void> {
    const result = await this.x.deleteFrom('accounts').where('id', '=', id).executeTakeFirst();
    if (Number(result.numDeletedRows) === 0) throw new NotFoundError('Account', id);
  }

  /** The decrypted secrets of one account. Callers check permission and audit first. */
  async revealAccountSecrets(id: string): Promise<AccountSecrets> {
    return this.secretsOf(await this.accountRow(id));
  }

  /**
   * Creates or updates projects (by name), devices (by project and name) and accounts (by
   * device and user name) in bulk: a few queries per project and multi-row inserts, so a
   * large import costs seconds, not a round trip per field. A secret given as undefined
   * keeps the stored value. Run it inside transaction() so it is all or nothing. It pauses
   * every 10 ms of work (timeSlicer), so a large import does not stop the event loop; on
   * SQLite, other queries still wait for the transaction.
   */
  async importItems(items: readonly ImportItem[]): Promise<ImportCounts> {
    const pause = timeSlicer();
    const counts: ImportCounts = { projectsCreated: 0, devicesCreated: 0, devicesUpdated: 0, accountsCreated: 0, accountsUpdated: 0 };
    const now = new Date().toISOString();
    const projects = new Map((await this.x.selectFrom('projects').select(['id', 'name']).execute()).map((p) => [p.name, p.id]));
    const devices = new Map<string, Map<string, string>>();
    const accounts = new Map<string, Map<string, string>>();
    const loadProject = async (projectId: string) => {
      if (devices.has(projectId)) return;
      const rows = await this.x.selectFrom('devices').select(['id', 'name']).where('project_id', '=', projectId).execute();
      devices.set(projectId, new Map(rows.map((d) => [d.name, d.id])));
      const accs = await this.x
        .selectFrom('accounts as a')
        .innerJoin('devices as d', 'd.id', 'a.device_id')
        .select(['a.id', 'a.username', 'a.device_id'])
        .where('d.project_id', '=', projectId)
        .execute();
      for (const a of accs) {
        if (!accounts.has(a.device_id)) accounts.set(a.device_id, new Map());
        accounts.get(a.device_id)?.set(a.username, a.id);
      }
    };
    const newDevices: DeviceTable[] = [];
    const newAccounts: AccountTable[] = [];
    // Inserted INSERT_ROWS at a time as they come: each statement is a short step on the
    // main thread (SQLite runs it synchronously) and the pending rows stay few. Devices go
    // first: accounts refer to them.
    const insertDevices = async () => {
      if (newDevices.length > 0) await this.x.insertInto('devices').values(newDevices.splice(0)).execute();
    };
    const insertAccounts = async () => {
      await insertDevices();
      if (newAccounts.length > 0) await this.x.insertInto('accounts').values(newAccounts.splice(0)).execute();
    };
    const updatedDevices = new Set<string>();
    for (const item of items) {
      await pause();
      let projectId = projects.get(item.project);
      if (projectId === undefined) {
        projectId = (await this.createProject({ name: item.project, description: null })).id;
        projects.set(item.project, projectId);
        counts.projectsCreated += 1;
      }
      await loadProject(projectId);
      const byName = devices.get(projectId) as Map<string, string>;
      const d = item.device;
      const fields = {
        provider: d.provider,
        protocols: JSON.stringify(d.protocols),
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
        newDevices.push({ id: deviceId, project_id: projectId, name: d.name, ...fields, created_at: now, updated_at: now });
        if (newDevices.length >= INSERT_ROWS) await insertDevices();
        updatedDevices.add(deviceId);
        counts.devicesCreated += 1;
      } else if (!updatedDevices.has(deviceId)) {
        await this.x
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
        password_enc: a.password === undefined ? undefined : this.seal(id, 'password', a.password),
        private_key_enc: a.privateKey === undefined ? undefined : this.seal(id, 'privateKey', a.privateKey),
        passphrase_enc: a.passphrase === undefined ? undefined : this.seal(id, 'passphrase', a.passphrase),
        extra_credential_enc:
          a.extraCredential === undefined
            ? undefined
            : a.extraCredential && Object.keys(a.extraCredential).length > 0
              ? this.seal(id, 'extraCredential', JSON.stringify(a.extraCredential))
              : null,
      };
      if (existing) {
        const set = Object.fromEntries(Object.entries(sealed).filter(([, v]) => v !== undefined));
        await this.x
          .updateTable('accounts')
          .set({ ...set, pem_file_name: a.pemFileName ?? null, updated_at: now })
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
        });
        if (newAccounts.length >= INSERT_ROWS) await insertAccounts();
        counts.accountsCreated += 1;
      }
    }
    await insertAccounts();
    return counts;
  }

  /** Each project with how many devices and accounts it holds, by name. */
  async projectSummaries(): Promise<{ id: string; name: string; devices: number; accounts: number }[]> {
    const rows = await this.x
      .selectFrom('projects as p')
      .leftJoin('devices as d', 'd.project_id', 'p.id')
      .leftJoin('accounts as a', 'a.device_id', 'd.id')
      .select((eb) => [
        'p.id',
        'p.name',
        eb.fn.count<string | number>('d.id').distinct().as('devices'),
        eb.fn.count<string | number>('a.id').as('accounts'),
      ])
      .groupBy(['p.id', 'p.name'])
      .orderBy('p.name')
      .execute();
    return rows.map((r) => ({ id: r.id, name: r.name, devices: Number(r.devices), accounts: Number(r.accounts) }));
  }

  /**
   * A project's devices by name, each with its accounts and their decrypted secrets, read
   * a page at a time (keyset paging) so memory holds one page. For the break-glass export.
   */
  async *devicesWithSecrets(
    projectId: string,
    pageSize = 500,
  ): AsyncGenerator<{ device: Device; accounts: (Account & { secrets: AccountSecrets })[] }> {
    let after: { name: string; id: string } | undefined;
    for (;;) {
      let q = this.x.selectFrom('devices').selectAll().where('project_id', '=', projectId);
      if (after) {
        const a = after;
        // `name >= ?` restates what the OR implies so the (project_id, name) index seeks to
        // the page instead of filtering from the project's first device: without it each page
        // rescans the ones before, quadratic in a project's devices (bench/README.md).
        q = q
          .where('name', '>=', a.name)
          .where((eb) => eb.or([eb('name', '>', a.name), eb.and([eb('name', '=', a.name), eb('id', '>', a.id)])]));
      }
      const devices = await q.orderBy('name').orderBy('id').limit(pageSize).execute();
      if (devices.length === 0) return;
      const accounts = await this.x
        .selectFrom('accounts')
        .selectAll()
        .where(
          'device_id',
          'in',
          devices.map((d) => d.id),
        )
        .orderBy('username')
        .execute();
      const byDevice = new Map<string, AccountTable[]>();
      for (const a of accounts) {
        const list = byDevice.get(a.device_id);
        if (list) list.push(a);
        else byDevice.set(a.device_id, [a]);
      }
      for (const d of devices) {
        yield {
          device: presentDevice(d),
          accounts: (byDevice.get(d.id) ?? []).map((a) => presentAccountWithSecrets(a, this.secretsOf(a))),
        };
      }
      const last = devices[devices.length - 1] as DeviceTable;
      after = { name: last.name, id: last.id };
    }
  }

  /** Every account that holds a private key, with its project and device names. */
  async *privateKeys(pageSize = 500): AsyncGenerator<{
    project: string;
    device: string;
    account: string;
    pemFileName: string | null;
    privateKey: string;
    passphrase: string | null;
  }> {
    let afterId = '';
    for (;;) {
      const rows = await this.x
        .selectFrom('accounts as a')
        .innerJoin('devices as d', 'd.id', 'a.device_id')
        .innerJoin('projects as p', 'p.id', 'd.project_id')
        .selectAll('a')
        .select(['d.name as device_name', 'p.name as project_name'])
        .where('a.private_key_enc', 'is not', null)
        .where('a.id', '>', afterId)
        .orderBy('a.id')
        .limit(pageSize)
        .execute();
      if (rows.length === 0) return;
      for (const r of rows) {
        const secrets = this.secretsOf(r);
        if (secrets.privateKey === null) continue;
        yield {
          project: r.project_name,
          device: r.device_name,
          account: r.username,
          pemFileName: r.pem_file_name,
          privateKey: secrets.privateKey,
          passphrase: secrets.passphrase,
        };
      }
      afterId = (rows[rows.length - 1] as AccountTable).id;
    }
  }

  private secretsOf(row: AccountTable): AccountSecrets {
    const extra = this.unseal(row.id, 'extraCredential', row.extra_credential_enc);
    return {
      password: this.unseal(row.id, 'password', row.password_enc),
      privateKey: this.unseal(row.id, 'privateKey', row.private_key_enc),
      passphrase: this.unseal(row.id, 'passphrase', row.passphrase_enc),
      extraCredential: extra === null ? null : (JSON.parse(extra) as Record<string, string>),
    };
  }

  /** Every device of the given projects with its accounts, ordered by project then device name. */
  async *walk(projectIds?: readonly string[]): AsyncGenerator<{ project: Project; device: Device; accounts: Account[] }> {
    for (const project of await this.listProjects(projectIds)) {
      const devices = await this.x.selectFrom('devices').selectAll().where('project_id', '=', project.id).orderBy('name').execute();
      for (const d of devices) {
        yield { project, device: presentDevice(d), accounts: await this.listAccounts(d.id) };
      }
    }
  }
}
