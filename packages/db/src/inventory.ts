import { Accounts } from './accounts.js';
import { inTransaction, type Db, type Tx } from './connect.js';
import { Devices } from './devices.js';
import { importItems, type ImportCounts, type ImportItem } from './inventory-import.js';
import { InventoryReaders } from './inventory-readers.js';
import { Projects } from './projects.js';
import type { Vault } from './vault.js';

/**
 * Projects, devices and accounts on one executor (the database, or a transaction), with
 * every secret field sealed by the vault: a repository per aggregate, the bulk import, and
 * the whole-inventory readers. `transaction()` gives the same on one transaction, joining
 * the caller's when there is one. The break-glass export reads it as its InventoryReader.
 */
export class Inventory {
  readonly projects: Projects;
  readonly devices: Devices;
  readonly accounts: Accounts;
  private readonly readers: InventoryReaders;

  constructor(
    readonly db: Db,
    readonly vault: Vault,
    private readonly x: Tx = db.kysely,
  ) {
    this.projects = new Projects(x);
    this.devices = new Devices(x);
    this.accounts = new Accounts(vault, x);
    this.readers = new InventoryReaders(vault, x);
  }

  /** Runs `fn` in one transaction: all of it is written, or none. */
  transaction<T>(fn: (inventory: Inventory) => Promise<T>): Promise<T> {
    return inTransaction(this.x, (trx) => fn(new Inventory(this.db, this.vault, trx)));
  }

  /**
   * Creates or updates projects (by name), devices (by project and name) and accounts (by
   * device and user name) in bulk; run it inside transaction() (or withAudit's) so it is all or nothing.
   */
  importItems(items: readonly ImportItem[]): Promise<ImportCounts> {
    return importItems(this.x, this.vault, items);
  }

  /** Each project with how many devices and accounts it holds, by name. */
  projectSummaries() {
    return this.readers.projectSummaries();
  }

  /** A project's devices by name with their accounts and decrypted secrets, a page at a time (break glass). */
  devicesWithSecrets(projectId: string, pageSize?: number) {
    return this.readers.devicesWithSecrets(projectId, pageSize);
  }

  /** Every account that holds a private key, with its project and device names (break glass). */
  privateKeys(pageSize?: number) {
    return this.readers.privateKeys(pageSize);
  }

  /** Every device of the given projects with its accounts, without their secrets (the export). */
  walk(projectIds?: readonly string[]) {
    return this.readers.walk(projectIds);
  }
}
