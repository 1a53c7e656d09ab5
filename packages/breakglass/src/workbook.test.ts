import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, describe, expect, it } from 'vitest';
import { sealStream } from './seal.js';
import { CONNECTION_COLUMNS, writeConnectionWorkbook, type BreakGlassSource, type ConnectionRow } from './workbook.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const row = (deviceName: string, extra: Partial<ConnectionRow> = {}): ConnectionRow => ({
  provider: 'aws',
  deviceName,
  protocols: ['ssh'],
  publicIp: '203.0.113.7',
  privateIp: '10.0.0.7',
  urlPort: '22',
  accessType: 'gateway',
  account: 'root',
  password: 'pw-1',
  pemFileName: null,
  extraCredential: null,
  ...extra,
});

function source(projects: { id: string; name: string; rows: ConnectionRow[] }[]): BreakGlassSource {
  return {
    projects: async () =>
      projects.map((p) => ({ id: p.id, name: p.name, devices: p.rows.length, accounts: p.rows.filter((r) => r.account).length })),
    async *rows(id) {
      yield* projects.find((p) => p.id === id)?.rows ?? [];
    },
    async *privateKeys() {
      yield {
        pemFileName: 'web.pem',
        project: 'Web',
        deviceName: 'web-1',
        account: 'ubuntu',
        privateKey: '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----',
        passphrase: null,
      };
    },
  };
}

/** Reads one sheet with xlsx2csv, the way a break-glass holder without Excel would. */
function sheetCsv(file: string, sheetName: string): string {
  const all = execFileSync('xlsx2csv', ['-a', file], { encoding: 'utf8' });
  const parts = all.split(/^-------- \d+ - /m);
  const part = parts.find((p) => p.startsWith(`${sheetName}\n`));
  if (part === undefined) throw new Error(`no sheet ${sheetName} in ${parts.map((p) => p.split('\n')[0]).join(', ')}`);
  return part.slice(sheetName.length + 1);
}

describe('break-glass workbook', () => {
  it('writes an index, one sheet per project with the spec columns, and the PEM keys; age CLI decrypts it', async () => {
    const identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    const identityFile = path.join(dir, 'key.txt');
    writeFileSync(identityFile, `${identity}\n`, { mode: 0o600 });

    const plain = new PassThrough();
    const sealedFile = path.join(dir, 'export.xlsx.age');
    const written = writeConnectionWorkbook(
      source([
        { id: 'p1', name: 'Web', rows: [row('web-1'), row('=HYPERLINK("x")', { account: 'admin' })] },
        { id: 'p2', name: 'history', rows: [row('db-1', { extraCredential: { enable: 'en-pw' } })] },
        { id: 'p3', name: 'a/b:c*d?e[f]g-very-long-project-name-beyond-31', rows: [] },
      ]),
      plain,
      new Date('2026-11-23T00:00:00Z'),
    );
    const sealed = await sealStream(plain, { kind: 'age', recipients: [recipient] });
    await Promise.all([written, pipeline(sealed, createWriteStream(sealedFile))]);
    expect(await written).toEqual({ projects: 3, devices: 3, accounts: 3, privateKeys: 1 });

    const xlsx = path.join(dir, 'export.xlsx');
    execFileSync('age', ['-d', '-i', identityFile, '-o', xlsx, sealedFile]);
    expect(createHash('sha256').update(readFileSync(xlsx)).digest('hex')).toMatch(/^[0-9a-f]{64}$/);

    const web = sheetCsv(xlsx, 'Web').trim().split('\n');
    expect(web[0]).toBe(CONNECTION_COLUMNS.join(','));
    expect(web).toHaveLength(3);
    // Sorted by the source (device name order is the source's job); formula-like text stays text.
    expect(web[2]).toContain('"=HYPERLINK(""x"")"');
    const index = sheetCsv(xlsx, 'Index');
    expect(index).toContain('history,history (2)');
    expect(index).toContain('a_b_c_d_e_f_g-very-long-project');
    expect(sheetCsv(xlsx, 'history (2)')).toContain('enable: en-pw');
    expect(sheetCsv(xlsx, 'PEM keys')).toContain('BEGIN OPENSSH PRIVATE KEY');
  });
});
