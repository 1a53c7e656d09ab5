import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { signAuditCheckpoint, type AuditCheckpoint } from '@gatehouse/core';
import { openDatabase, type Db } from '@gatehouse/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rewriteAuditFrom, truncateAuditAfter } from '../support/audit-tamper.js';
import { dialects } from '../support/db.js';
import { runOnServerDatabase } from '../support/e2e-sql.js';
import {
  cli,
  cliJson,
  e2eDatabase,
  killServers,
  removeTempDirs,
  setupAdmin,
  startServer,
  tempDir,
  type E2eDatabase,
  type GatehouseServer,
} from '../support/server.js';

/** Edits one stored audit event behind Gatehouse's back, as an intruder with database access would. */
async function tamper(dialect: (typeof dialects)[number], dataDir: string, database: E2eDatabase, seq: number): Promise<void> {
  const details = JSON.stringify({ note: 'nothing to see here' });
  const changed = await runOnServerDatabase(dialect, { dataDir, database }, 'update audit_events set details = $1 where seq = $2', [
    details,
    seq,
  ]);
  expect(changed).toBe(1);
}

/** Opens the stopped server's database the way any client with its credentials can. */
async function withDatabase(dataDir: string, database: E2eDatabase, use: (db: Db) => Promise<void>): Promise<void> {
  const db = await openDatabase({ dataDir, databaseUrl: database.env.DATABASE_URL });
  try {
    await use(db);
  } finally {
    await db.close();
  }
}

describe.each(dialects)('gatehouse audit on %s', (dialect) => {
  let dataDir: string;
  let checkpointFile: string;
  let credentials: string;
  let database: E2eDatabase;
  let server: GatehouseServer;
  const offline = (args: string[]) => cli([...args, '--data-dir', dataDir, ...database.offlineArgs]);

  beforeAll(async () => {
    const dir = tempDir();
    dataDir = path.join(dir, 'data');
    credentials = path.join(dir, 'credentials.json');
    checkpointFile = path.join(dir, 'audit-checkpoints.jsonl');
    database = await e2eDatabase(dialect);
    server = await startServer({ dataDir, env: { ...database.env, GATEHOUSE_AUDIT_CHECKPOINT_FILE: checkpointFile } });
    const env = { GATEHOUSE_CREDENTIALS: credentials };
    await setupAdmin(server, 'audited admin password', { env });
    for (const name of ['Alpha', 'Beta', 'Gamma']) await cliJson(['projects', 'create', name], { env });
  });
  afterAll(async () => {
    killServers();
    await database.drop();
    removeTempDirs();
  });

  let events: number;

  it('audit verify reports the chain intact, also while the server runs', async () => {
    const result = await offline(['audit', 'verify']);
    expect(result.code, result.stderr).toBe(0);
    const match = /^Audit chain intact: (\d+) events, head [0-9a-f]{64}$/m.exec(result.stdout);
    expect(match).not.toBeNull();
    events = Number(match?.[1]);
    // Set-up, sign-in, token, sign-out and three projects at least.
    expect(events).toBeGreaterThanOrEqual(7);
  });

  it('audit export writes one JSON line per event, oldest first', async () => {
    const result = await offline(['audit', 'export']);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(events);
    const parsed = lines.map((l) => JSON.parse(l) as { seq: number; action: string; prevHash: string; hash: string });
    expect(parsed.map((e) => e.seq)).toEqual(Array.from({ length: events }, (_, i) => i + 1));
    expect(parsed[0]?.action).toBe('setup.admin_create');
    expect(parsed.filter((e) => e.action === 'project.create')).toHaveLength(3);
    for (let i = 1; i < parsed.length; i++) expect(parsed[i]?.prevHash).toBe(parsed[i - 1]?.hash);
  });

  let checkpoint: AuditCheckpoint;

  it('the server appends a signed checkpoint of the head to its checkpoint file, the last one at shutdown', async () => {
    expect((await server.stop()).code).toBe(0);
    const lines = readFileSync(checkpointFile, 'utf8').trimEnd().split('\n');
    checkpoint = JSON.parse(lines.at(-1) ?? '') as AuditCheckpoint;
    expect(checkpoint).toMatchObject({
      format: 'gatehouse-audit-checkpoint/1',
      seq: events,
      hash: expect.stringMatching(/^[0-9a-f]{64}$/) as string,
    });
    const result = await offline(['audit', 'verify', '--checkpoint', checkpointFile]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`It holds the checkpoint of ${checkpoint.at} (event ${events}, key ${checkpoint.keyId}).`);
  });

  it('audit verify --checkpoint says the chain was rewritten after an event was edited and every later one re-hashed', async () => {
    await withDatabase(dataDir, database, (db) => rewriteAuditFrom(db, 2));
    // The chain alone cannot tell: every hash matches and links.
    expect((await offline(['audit', 'verify'])).code).toBe(0);
    const result = await offline(['audit', 'verify', '--checkpoint', checkpointFile]);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain(
      `Audit chain BROKEN at event ${events}: event ${events} is not the event the checkpoint of ${checkpoint.at} signed (its hash differs): the chain up to event ${events} was rewritten`,
    );
  });

  it('audit verify --checkpoint says the chain was truncated after the newest events were deleted and the head rewound', async () => {
    await withDatabase(dataDir, database, (db) => truncateAuditAfter(db, events - 2));
    expect((await offline(['audit', 'verify'])).code).toBe(0);
    const result = await offline(['audit', 'verify', '--checkpoint', checkpointFile]);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain(
      `Audit chain BROKEN at event ${events - 1}: the chain was truncated after event ${events - 2}: the checkpoint of ${checkpoint.at} signed event ${events}, which is gone`,
    );
    events -= 2;
  });

  it('audit verify refuses a checkpoint forged with another key, and one that claims the right key', async () => {
    const forger = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const forged = signAuditCheckpoint({ seq: events, hash: 'a'.repeat(64) }, forger);
    const forgedFile = path.join(dataDir, '..', 'forged.json');
    writeFileSync(forgedFile, JSON.stringify(forged));
    const other = await offline(['audit', 'verify', '--checkpoint', forgedFile]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain(
      `The checkpoint in ${forgedFile} cannot be trusted: it was signed by key ${forged.keyId}, not by the key you gave (${checkpoint.keyId})`,
    );
    expect(other.stdout).not.toContain('intact');

    writeFileSync(forgedFile, JSON.stringify({ ...forged, keyId: checkpoint.keyId }));
    const claimed = await offline(['audit', 'verify', '--checkpoint', forgedFile]);
    expect(claimed.code).toBe(1);
    expect(claimed.stderr).toContain('its signature does not verify: it was altered or forged');
    // The public key may be given instead of read from the data directory: the auditor's own copy.
    const publicKey = path.join(dataDir, '..', 'checkpoint.pub');
    writeFileSync(
      publicKey,
      createPublicKey(readFileSync(path.join(dataDir, 'audit-checkpoint.key'))).export({ type: 'spki', format: 'pem' }),
    );
    const given = await cli([
      'audit',
      'verify',
      '--checkpoint',
      forgedFile,
      '--public-key',
      publicKey,
      '--data-dir',
      dataDir,
      ...database.offlineArgs,
    ]);
    expect(given.code).toBe(1);
    expect(given.stderr).toContain('its signature does not verify');
  });

  it('audit verify exits 2 naming event 2 after that event was edited in the database', async () => {
    await tamper(dialect, dataDir, database, 2);
    const result = await offline(['audit', 'verify']);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain('Audit chain BROKEN at event 2: event 2 was edited after it was written');
    expect(result.stdout).not.toContain('intact');

    // The export still shows every event, the edited one included.
    const exported = await offline(['audit', 'export']);
    expect(exported.stdout.trimEnd().split('\n')).toHaveLength(events);
  });
});

describe('gatehouse audit without a database', () => {
  afterAll(removeTempDirs);

  it('says where to point it', async () => {
    const empty = path.join(tempDir(), 'nothing-here');
    const result = await cli(['audit', 'verify', '--data-dir', empty]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`No database in ${empty}. Pass --data-dir (or DATABASE_URL for PostgreSQL).`);
  });
});
