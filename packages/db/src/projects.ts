import { randomUUID } from 'node:crypto';
import { NotFoundError, type ProjectInput } from '@gatehouse/core';
import type { Tx } from './connect.js';
import { uniquely } from './errors.js';
import type { ProjectTable } from './schema.js';

export interface Project {
  id: string;
  name: string;
  description: string | null;
  /** Its devices are reachable only inside an open maintenance window. */
  maintenanceRequired: boolean;
  createdAt: string;
  updatedAt: string;
}

/** A project's changeable fields: the inventory's, and whether it requires maintenance windows (not in the inventory file). */
export type ProjectPatch = Partial<ProjectInput> & { maintenanceRequired?: boolean | undefined };

export const projectFromRow = (r: ProjectTable): Project => ({
  id: r.id,
  name: r.name,
  description: r.description,
  maintenanceRequired: r.maintenance_required === 1,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** Projects, by id or by their unique name. */
export class Projects {
  constructor(private readonly x: Tx) {}

  async create(input: ProjectInput): Promise<Project> {
    const now = new Date().toISOString();
    const row: ProjectTable = {
      id: randomUUID(),
      name: input.name,
      description: input.description ?? null,
      maintenance_required: 0,
      created_at: now,
      updated_at: now,
    };
    await uniquely('name', `A project named ${JSON.stringify(input.name)} exists already. Choose another name.`, () =>
      this.x.insertInto('projects').values(row).execute(),
    );
    return projectFromRow(row);
  }

  /** Every project by name, or only those with the given ids. */
  async list(projectIds?: readonly string[]): Promise<Project[]> {
    let q = this.x.selectFrom('projects').selectAll();
    if (projectIds) {
      if (projectIds.length === 0) return [];
      q = q.where('id', 'in', projectIds);
    }
    return (await q.orderBy('name').execute()).map(projectFromRow);
  }

  async get(id: string): Promise<Project> {
    const row = await this.x.selectFrom('projects').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new NotFoundError('Project', id);
    return projectFromRow(row);
  }

  async findByName(name: string): Promise<Project | undefined> {
    const row = await this.x.selectFrom('projects').selectAll().where('name', '=', name).executeTakeFirst();
    return row && projectFromRow(row);
  }

  async update(id: string, patch: ProjectPatch): Promise<Project> {
    await this.get(id);
    const set: Partial<ProjectTable> = { updated_at: new Date().toISOString() };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.maintenanceRequired !== undefined) set.maintenance_required = patch.maintenanceRequired ? 1 : 0;
    await uniquely('name', `A project named ${JSON.stringify(patch.name)} exists already. Choose another name.`, () =>
      this.x.updateTable('projects').set(set).where('id', '=', id).execute(),
    );
    return this.get(id);
  }

  /** Deletes the project with its devices and accounts. */
  async delete(id: string): Promise<void> {
    const result = await this.x.deleteFrom('projects').where('id', '=', id).executeTakeFirst();
    if (Number(result.numDeletedRows) === 0) throw new NotFoundError('Project', id);
  }
}
