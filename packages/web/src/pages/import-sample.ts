import type { InventoryColumn } from '@gatehouse/api';

/**
 * Two example rows with every column the importer reads (packages/api inventoryColumns):
 * a device reached through a gateway with a password account, and one with a key file name
 * and an extra credential. Typed by column, so a column added to the importer must be added here.
 */
const SAMPLE_ROWS: Record<InventoryColumn, string>[] = [
  {
    project: 'Payments',
    device: 'web-1',
    provider: 'aws',
    protocols: 'ssh;sftp',
    public_ip: '203.0.113.10',
    private_ip: '10.0.1.10',
    url_port: '',
    access_type: 'gateway',
    tags: 'env:prod;team:payments',
    account: 'deploy',
    password: 'replace-with-the-password',
    private_key: '',
    pem_file_name: '',
    passphrase: '',
    extra_credential: '',
  },
  {
    project: 'Payments',
    device: 'win-jump',
    provider: 'azure',
    protocols: 'rdp',
    public_ip: '',
    private_ip: '10.0.2.20',
    url_port: '3389',
    access_type: 'direct',
    tags: 'env:prod',
    account: 'Administrator',
    password: 'replace-with-the-password',
    private_key: '',
    pem_file_name: 'win-jump.pem',
    passphrase: '',
    extra_credential: '{"recovery code":"replace-with-the-code"}',
  },
];

/** A CSV cell, quoted when it holds a comma, a quote or a line break (RFC 4180). */
const csvQuote = (cell: string) => (/[",\r\n]/.test(cell) ? `"${cell.replaceAll('"', '""')}"` : cell);

/** The sample file's text: a header line with every column, then the example rows. */
export function sampleCsv(): string {
  const columns = Object.keys(SAMPLE_ROWS[0] ?? {}) as InventoryColumn[];
  const lines = [columns, ...SAMPLE_ROWS.map((row) => columns.map((c) => row[c]))];
  return `${lines.map((cells) => cells.map(csvQuote).join(',')).join('\r\n')}\r\n`;
}
