import { Accounts, accountWithSecretsFromRow, secretsOf, type Account, type AccountSecrets } from './accounts.js';
import type { Tx } from './connect.js';
import { deviceFromRow, type Device } from './devices.js';
import { Projects, type Project } from './projects.js';
import type { AccountTable, DeviceTable } from './schema.js';
import type { Vault } from './vault.js';

/**
 * The inventory read whole, a page at a time: for the break-glass workbook (project counts,
 * devices with their decrypted accounts, private keys; breakglass's InventoryReader) and for
 * the export (walk), which the API masks.
 */
export class InventoryReaders {
  constructor(
    private readonly vault: Vault,
    private readonly x: Tx,
  ) {}

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
          device: deviceFromRow(d),
          accounts: (byDevice.get(d.id) ?? []).map((a) => accountWithSecretsFromRow(a, secretsOf(this.vault, a))),
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
        const secrets = secretsOf(this.vault, r);
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

  /** Every device of the given projects with its accounts, ordered by project then device name. */
  async *walk(projectIds?: readonly string[]): AsyncGenerator<{ project: Project; device: Device; accounts: Account[] }> {
    const accounts = new Accounts(this.vault, this.x);
    for (const project of await new Projects(this.x).list(projectIds)) {
      const devices = await this.x.selectFrom('devices').selectAll().where('project_id', '=', project.id).orderBy('name').execute();
      for (const d of devices) {
        yield { project, device: deviceFromRow(d), accounts: await accounts.list(d.id) };
      }
    }
  }
}
