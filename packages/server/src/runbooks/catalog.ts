import type { RunbookDetail, RunbookSummary } from '@gatehouse/api';
import { ConflictError, GatehouseError, NotFoundError } from '@gatehouse/core';
import { parseRunbook, type RunbookDocument } from '@gatehouse/core/runbooks';
import type { StoredRunbook } from '@gatehouse/db';
import type { FastifyRequest } from 'fastify';
import type { RunbookDeps } from './deps.js';
import { loadBuiltinRunbooks, type LoadedRunbook } from './builtin.js';

/** A runbook a run can use: built in, or a stored version. */
export interface CatalogRunbook extends LoadedRunbook {
  builtIn: boolean;
  createdAt: string | null;
  createdBy: string | null;
}

/**
 * The runbooks there are: the built-in ones (shipped as YAML, names reserved) and the
 * versions administrators added, each validated by the schema before it is stored.
 */
export class RunbookCatalog {
  private readonly builtins: Map<string, LoadedRunbook>;

  constructor(private readonly services: RunbookDeps) {
    this.builtins = loadBuiltinRunbooks();
  }

  /** Every built-in runbook and the newest version of each added one, by name. */
  async list(): Promise<RunbookSummary[]> {
    const stored = new Map<string, StoredRunbook>();
    for (const r of await this.services.storedRunbooks.list()) stored.set(r.name, r);
    const all = [...[...this.builtins.values()].map(builtIn), ...[...stored.values()].map(fromStored)];
    return all.sort((a, b) => a.document.name.localeCompare(b.document.name)).map(summaryOf);
  }

  /** One runbook (the newest version unless `version` is given); NOT_FOUND otherwise. */
  async get(name: string, version?: number): Promise<CatalogRunbook> {
    const b = this.builtins.get(name);
    if (b) {
      if (version !== undefined && version !== b.document.version) throw new NotFoundError('Runbook', `${name} version ${version}`);
      return builtIn(b);
    }
    return fromStored(await this.services.storedRunbooks.get(name, version));
  }

  async detail(name: string, version?: number): Promise<RunbookDetail> {
    const r = await this.get(name, version);
    return { ...summaryOf(r), yaml: r.yaml };
  }

  /** Validates and stores a document (RunbookSchemaError names each problem); a built-in's name is refused. */
  async add(yaml: string, req: FastifyRequest): Promise<RunbookDetail> {
    const document = parseRunbook(yaml);
    this.refuseBuiltIn(document.name, 'add a version of');
    const stored = await this.services.withAudit(req, async (tx, audit) => {
      const row = await tx.storedRunbooks.add({
        name: document.name,
        version: document.version,
        source: yaml,
        createdBy: req.auth?.user.username ?? null,
      });
      audit({
        action: 'runbook.added',
        outcome: 'success',
        targetType: 'runbook',
        targetId: document.name,
        details: { name: document.name, version: document.version, sha256: row.sha256, steps: document.steps.length },
      });
      return row;
    });
    const r = fromStored(stored);
    return { ...summaryOf(r), yaml: r.yaml };
  }

  /** Removes every version of an added runbook. */
  async remove(name: string, req: FastifyRequest): Promise<void> {
    this.refuseBuiltIn(name, 'remove');
    await this.services.withAudit(req, async (tx, audit) => {
      const removed = await tx.storedRunbooks.remove(name);
      audit({ action: 'runbook.removed', outcome: 'success', targetType: 'runbook', targetId: name, details: { name, versions: removed } });
    });
  }

  private refuseBuiltIn(name: string, what: string): void {
    if (this.builtins.has(name)) {
      throw new ConflictError(`${name} is a built-in runbook: you cannot ${what} it. Give your runbook another name.`, [
        { path: 'name', message: 'is the name of a built-in runbook' },
      ]);
    }
  }
}

const builtIn = (b: LoadedRunbook): CatalogRunbook => ({ ...b, builtIn: true, createdAt: null, createdBy: null });

function fromStored(r: StoredRunbook): CatalogRunbook {
  let document: RunbookDocument;
  try {
    document = parseRunbook(r.source);
  } catch {
    // Stored only after it parsed; a schema since made stricter is the one way to get here.
    throw new GatehouseError('CONFLICT', `Runbook ${r.name} version ${r.version} no longer passes the schema: add a corrected version.`);
  }
  return { document, yaml: r.source, sha256: r.sha256, builtIn: false, createdAt: r.createdAt, createdBy: r.createdBy };
}

function summaryOf(r: CatalogRunbook): RunbookSummary {
  const d = r.document;
  return {
    name: d.name,
    version: d.version,
    description: d.description ?? null,
    builtIn: r.builtIn,
    sha256: r.sha256,
    inputs: Object.entries(d.inputs ?? {}).map(([name, i]) => ({
      name,
      type: i.type,
      description: i.description ?? null,
      default: i.default ?? null,
      required: i.required ?? false,
      values: i.values ?? null,
    })),
    steps: d.steps.map((s) => ({ id: s.id, type: s.type, title: s.title })),
    createdAt: r.createdAt,
    createdBy: r.createdBy,
  };
}
