import type { BreakGlassSource, ConnectionRow, PemKeyRow, ProjectSummary } from './workbook.js';

/** The device fields a sheet row shows: the provider and protocols as the inventory wrote them. */
export interface SourceDevice {
  name: string;
  providerAsWritten: string;
  protocolsAsWritten: readonly string[];
  publicIp: string | null;
  privateIp: string | null;
  urlPort: string | null;
  accessType: string;
}

/** An account with the secrets a sheet row shows. */
export interface SourceAccount {
  username: string;
  pemFileName: string | null;
  secrets: { password: string | null; extraCredential: Readonly<Record<string, string>> | null };
}

/**
 * What the export reads from the inventory (the db package's Inventory has it): project
 * counts, a project's devices by name with their decrypted accounts, and the private keys.
 */
export interface InventoryReader {
  projectSummaries(): Promise<ProjectSummary[]>;
  devicesWithSecrets(projectId: string): AsyncIterable<{ device: SourceDevice; accounts: SourceAccount[] }>;
  privateKeys(): AsyncIterable<{
    project: string;
    device: string;
    account: string;
    pemFileName: string | null;
    privateKey: string;
    passphrase: string | null;
  }>;
}

/**
 * One row of a project sheet, built as one object literal. (Spreading a per-device base
 * into each row made V8 keep the rows past young-generation GCs: about 90 MiB more old
 * generation and a slower read at 100,000 devices; see bench/README.md.)
 */
function connectionRow(device: SourceDevice, account: SourceAccount | null): ConnectionRow {
  return {
    provider: device.providerAsWritten,
    deviceName: device.name,
    protocols: device.protocolsAsWritten,
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

/** The inventory as the workbook reads it: one row per account (a device without accounts has one), devices by name. */
export function inventorySource(inventory: InventoryReader): BreakGlassSource {
  return {
    projects: () => inventory.projectSummaries(),
    async *rows(projectId): AsyncGenerator<ConnectionRow> {
      for await (const { device, accounts } of inventory.devicesWithSecrets(projectId)) {
        if (accounts.length === 0) yield connectionRow(device, null);
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
