import { randomUUID } from 'node:crypto';
import { NotFoundError, type DeviceInput, type DevicePatch, type Visibility } from '@gatehouse/core';
import { sql } from 'kysely';
import type { Tx } from './connect.js';
import { uniquely } from './errors.js';
import { Projects } from './projects.js';
import type { DeviceTable } from './schema.js';

export interface Device {
  id: string;
  projectId: string;
  name: string;
  provider: string;
  /** The provider as the inventory wrote it (`AWS`); the export and the break-glass workbook show it. */
  providerAsWritten: string;
  protocols: string[];
  /** The protocols as written (`MySQL`), in the order of `protocols`. */
  protocolsAsWritten: string[];
  publicIp: string | null;
  privateIp: string | null;
  urlPort: string | null;
  accessType: string;
  tags: string[];
  /** Reachable only inside an open maintenance window (the project's setting can require it too). */
  maintenanceRequired: boolean;
  createdAt: string;
  updatedAt: string;
}

export const deviceFromRow = (r: DeviceTable): Device => ({
  id: r.id,
  projectId: r.project_id,
  name: r.name,
  provider: r.provider,
  providerAsWritten: r.provider_as_written ?? r.provider,
  protocols: JSON.parse(r.protocols) as string[],
  protocolsAsWritten: JSON.parse(r.protocols_as_written ?? r.protocols) as string[],
  publicIp: r.public_ip,
  privateIp: r.private_ip,
  urlPort: r.url_port,
  accessType: r.access_type,
  tags: JSON.parse(r.tags) as string[],
  maintenanceRequired: r.maintenance_required === 1,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
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

/** `s` for a LIKE pattern with `escape '\\'`: its own %, _ and \\ match only themselves. */
export const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

type SpellingColumns = Pick<DeviceTable, 'provider' | 'provider_as_written' | 'protocols' | 'protocols_as_written'>;
interface SpelledFields {
  provider?: string | undefined;
  providerAsWritten?: string | undefined;
  protocols?: readonly string[] | undefined;
  protocolsAsWritten?: readonly string[] | undefined;
}

/**
 * The provider and protocols columns of the fields given, each with its spelling as
 * written (null where it is the value itself, or where none was given).
 */
export function spellingColumns(d: SpelledFields & { provider: string; protocols: readonly string[] }): SpellingColumns;
export function spellingColumns(d: SpelledFields): Partial<SpellingColumns>;
export function spellingColumns(d: SpelledFields): Partial<SpellingColumns> {
  const columns: Partial<SpellingColumns> = {};
  if (d.provider !== undefined) {
    columns.provider = d.provider;
    columns.provider_as_written = d.providerAsWritten === undefined || d.providerAsWritten === d.provider ? null : d.providerAsWritten;
  }
  if (d.protocols !== undefined) {
    const written = d.protocolsAsWritten;
    columns.protocols = JSON.stringify(d.protocols);
    columns.protocols_as_written =
      written === undefined || written.length !== d.protocols.length || written.every((w, i) => w === d.protocols?.[i])
        ? null
        : JSON.stringify(written);
  }
  return columns;
}

/** Devices in projects: unique by name within a project, searched, sorted and paged. */
export class Devices {
  constructor(private readonly x: Tx) {}

  async create(input: DeviceInput): Promise<Device> {
    await new Projects(this.x).get(input.projectId);
    const now = new Date().toISOString();
    const row: DeviceTable = {
      id: randomUUID(),
      project_id: input.projectId,
      name: input.name,
      ...spellingColumns(input),
      public_ip: input.publicIp ?? null,
      private_ip: input.privateIp ?? null,
      url_port: input.urlPort ?? null,
      access_type: input.accessType,
      tags: JSON.stringify(input.tags),
      maintenance_required: 0,
      created_at: now,
      updated_at: now,
    };
    await uniquely('name', `This project already has a device named ${JSON.stringify(input.name)}. Choose another name.`, () =>
      this.x.insertInto('devices').values(row).execute(),
    );
    return deviceFromRow(row);
  }

  async get(id: string): Promise<Device> {
    const row = await this.x.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new NotFoundError('Device', id);
    return deviceFromRow(row);
  }

  /** The device of this name in this project, if there is one. */
  async find(projectId: string, name: string): Promise<Device | undefined> {
    const row = await this.x
      .selectFrom('devices')
      .selectAll()
      .where('project_id', '=', projectId)
      .where('name', '=', name)
      .executeTakeFirst();
    return row && deviceFromRow(row);
  }

  /** Every device with exactly this name, in any project (names are unique per project only). */
  async findNamed(name: string): Promise<Device[]> {
    return (await this.x.selectFrom('devices').selectAll().where('name', '=', name).orderBy('id').execute()).map(deviceFromRow);
  }

  async list(q: DeviceQuery = {}): Promise<{ items: Device[]; total: number }> {
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
      return { items: rows.map(deviceFromRow), total };
    }
    const [rows, count] = await Promise.all([page.execute(), countAll()]);
    return { items: rows.map(deviceFromRow), total: Number(count.n) };
  }

  async update(id: string, patch: DevicePatch & { maintenanceRequired?: boolean | undefined }): Promise<Device> {
    const current = await this.get(id);
    if (patch.projectId !== undefined && patch.projectId !== current.projectId) await new Projects(this.x).get(patch.projectId);
    const set: Partial<DeviceTable> = { updated_at: new Date().toISOString() };
    if (patch.projectId !== undefined) set.project_id = patch.projectId;
    if (patch.name !== undefined) set.name = patch.name;
    Object.assign(set, spellingColumns(patch));
    if (patch.publicIp !== undefined) set.public_ip = patch.publicIp;
    if (patch.privateIp !== undefined) set.private_ip = patch.privateIp;
    if (patch.urlPort !== undefined) set.url_port = patch.urlPort;
    if (patch.accessType !== undefined) set.access_type = patch.accessType;
    if (patch.tags !== undefined) set.tags = JSON.stringify(patch.tags);
    if (patch.maintenanceRequired !== undefined) set.maintenance_required = patch.maintenanceRequired ? 1 : 0;
    await uniquely('name', `This project already has a device named ${JSON.stringify(patch.name)}. Choose another name.`, () =>
      this.x.updateTable('devices').set(set).where('id', '=', id).execute(),
    );
    return this.get(id);
  }

  /** Deletes the device with its accounts. */
  async delete(id: string): Promise<void> {
    const result = await this.x.deleteFrom('devices').where('id', '=', id).executeTakeFirst();
    if (Number(result.numDeletedRows) === 0) throw new NotFoundError('Device', id);
  }
}
