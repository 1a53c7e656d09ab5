import type { BreakGlassSource, ConnectionRow, PemKeyRow } from '@gatehouse/breakglass';
import type { Inventory } from '@gatehouse/db';

/** The inventory as the break-glass workbook reads it: one row per account, devices by name. */
export function inventorySource(inventory: Inventory): BreakGlassSource {
  return {
    projects: () => inventory.projectSummaries(),
    async *rows(projectId): AsyncGenerator<ConnectionRow> {
      for await (const { device, accounts } of inventory.devicesWithSecrets(projectId)) {
        const base = {
          provider: device.provider,
          deviceName: device.name,
          protocols: device.protocols,
          publicIp: device.publicIp,
          privateIp: device.privateIp,
          urlPort: device.urlPort,
          accessType: device.accessType,
        };
        if (accounts.length === 0) {
          yield { ...base, account: null, password: null, pemFileName: null, extraCredential: null };
          continue;
        }
        for (const a of accounts) {
          yield {
            ...base,
            account: a.username,
            password: a.secrets.password,
            pemFileName: a.pemFileName,
            extraCredential: a.secrets.extraCredential,
          };
        }
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
