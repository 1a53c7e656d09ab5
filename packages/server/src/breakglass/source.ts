import type { BreakGlassSource, ConnectionRow, PemKeyRow } from '@gatehouse/breakglass';
import type { Account, AccountSecrets, Device, Inventory } from '@gatehouse/db';

/**
 * One row of a project sheet, built as one object literal. (Spreading a per-device base
 * into each row made V8 keep the rows past young-generation GCs: about 90 MiB more old
 * generation and a slower read at 100,000 devices; see bench/README.md.)
 */
function connectionRow(device: Device, account: (Account & { secrets: AccountSecrets }) | null): ConnectionRow {
  return {
    provider: device.provider,
    deviceName: device.name,
    protocols: device.protocols,
    publicIp: device.publicIp,
    privateIp: device.privateIp,
    urlPort: device.urlPort,
    accessType: device.accessType,
    account: account ? account.username : null,
    password: account ? account.secrets.password : null,
    pemFileName: account ? account.pemFileName : null,
    extraCredential: account ? account.secrets.extraCredential : null,
  };
}

/** The inventory as the break-glass workbook reads it: one row per account, devices by name. */
export function inventorySource(inventory: Inventory): BreakGlassSource {
  return {
    projects: () => inventory.projectSummaries(),
    async *rows(projectId): AsyncGenerator<ConnectionRow> {
      for await (const { device, accounts } of inventory.devicesWithSecrets(projectId)) {
        if (accounts.length === 0) {
          yield connectionRow(device, null);
          continue;
        }
        for (const a of accounts) yield connectionRow(device, a);
      }
    },
    async *privateKeys(): AsyncGenerator<PemKeyRow> {
      for await (const k of inventory.privateKeys()) {
        yield {
          pemFileName: k.pemFileName ?? `${k.device}-${k.account}.pem`,
          project: k.project,
          deviceName: k.device,
          account: k.account,
          privateKey: k.privateKey,
          passphrase: k.passphrase,
        };
      }
    },
  };
}
