import { createHash } from 'node:crypto';
import { ConflictError, NotFoundError } from '@gatehouse/core';
import type { Tx } from './connect.js';
import { uniquely } from './errors.js';
import type { RunbookTable } from './schema.js';

/** A runbook document as stored: the YAML as written, with its hash. */
export interface StoredRunbook {
  name: string;
  version: number;
  source: string;
  /** Hex SHA-256 of source. */
  sha256: string;
  builtIn: boolean;
  createdBy: string | null;
  createdAt: string;
}

const runbookFromRow = (r: RunbookTable): StoredRunbook => ({
  name: r.name,
  version: r.version,
  source: r.source,
  sha256: r.sha256,
  builtIn: r.builtin === 1,
  createdBy: r.created_by,
  createdAt: r.created_at,
});

/** Runbook documents administrators added, by name and version (the service validates them and reserves built-in names). */
export class Runbooks {
  constructor(private readonly x: Tx) {}

  /** Stores a version of a runbook; the same name and version again is a conflict. */
  async add(input: { name: string; version: number; source: string; createdBy: string | null }): Promise<StoredRunbook> {
    const row: RunbookTable = {
      name: input.name,
      version: input.version,
      source: input.source,
      sha256: createHash('sha256').update(input.source, 'utf8').digest('hex'),
      builtin: 0,
      created_by: input.createdBy,
      created_at: new Date().toISOString(),
    };
    const taken = (newest: number) =>
      `Runbook ${input.name} version ${input.version} already exists: give the document a higher version (the newest is ${newest}), or remove the runbook first.`;
    const versions = await this.versions(input.name);
    if (versions.includes(input.version)) {
      throw new ConflictError(taken(versions.at(-1) ?? input.version), [{ path: 'version', message: 'is already taken' }]);
    }
    // Two adds of the same version at once: the second insert fails on the primary key.
    await uniquely('version', taken(Math.max(input.version, ...versions)), () => this.x.insertInto('runbooks').values(row).execute());
    return runbookFromRow(row);
  }

  /** Every stored version, by name then version. */
  async list(): Promise<StoredRunbook[]> {
    const rows = await this.x.selectFrom('runbooks').selectAll().orderBy('name').orderBy('version').execute();
    return rows.map(runbookFromRow);
  }

  /** One version, or the newest when `version` is omitted. */
  async get(name: string, version?: number): Promise<StoredRunbook> {
    let query = this.x.selectFrom('runbooks').selectAll().where('name', '=', name);
    query = version === undefined ? query.orderBy('version', 'desc').limit(1) : query.where('version', '=', version);
    const row = await query.executeTakeFirst();
    if (!row) throw new NotFoundError('Runbook', version === undefined ? name : `${name} version ${version}`);
    return runbookFromRow(row);
  }

  /** The versions stored of a runbook, oldest first. */
  async versions(name: string): Promise<number[]> {
    const rows = await this.x.selectFrom('runbooks').select('version').where('name', '=', name).orderBy('version').execute();
    return rows.map((r) => r.version);
  }

  /** Removes every version of a runbook (or only `version`); the number removed. NOT_FOUND when there was none. */
  async remove(name: string, version?: number): Promise<number> {
    let query = this.x.deleteFrom('runbooks').where('name', '=', name);
    if (version !== undefined) query = query.where('version', '=', version);
    const r = await query.executeTakeFirst();
    const removed = Number(r.numDeletedRows);
    if (removed === 0) throw new NotFoundError('Runbook', version === undefined ? name : `${name} version ${version}`);
    return removed;
  }
}
