import path from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dialects } from '../support/db.js';
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
  if (dialect === 'sqlite') {
    const db = new SQLite(path.join(dataDir, 'gatehouse.sqlite'));
    try {
      expect(db.prepare('update audit_events set details = ? where seq = ?').run(details, seq).changes).toBe(1);
    } finally {
      db.close();
    }
    return;
  }
  const client = new pg.Client({ connectionString: database.env.DATABASE_URL });
  await client.connect();
  try {
    expect((await client.query('update audit_events set details = $1 where seq = $2', [details, seq])).rowCount).toBe(1);
  } finally {
    await client.end();
  }
}

describe.each(dialects)('gatehouse audit on %s', (dialect) => {
  let dataDir: string;
  let credentials: string;
  let database: E2eDatabase;
  let server: GatehouseServer;
  const offline = (args: string[]) => cli([...args, '--data-dir', dataDir, ...database.offlineArgs]);

  beforeAll(async () => {
    const dir = tempDir();
    dataDir = path.join(dir, 'data');
    credentials = path.join(dir, 'credentials.json');
    database = await e2eDatabase(dialect);
    server = await startServer({ dataDir, env: database.env });
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

  it('audit verify exits 2 naming event 2 after that event was edited in the database', async () => {
    expect((await server.stop()).code).toBe(0);
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
