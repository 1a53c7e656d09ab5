import { generateKeyPairSync } from 'node:crypto';
import { signAuditCheckpoint, type AuditCheckpoint } from '@gatehouse/core';
import { appendAuditEvent, readAuditHead } from '@gatehouse/db';
import { afterEach, describe, expect, it } from 'vitest';
import { API, errorOf } from '../support/api-helpers.js';
import { truncateAuditAfter } from '../support/audit-tamper.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

interface Signed {
  checkpoint: AuditCheckpoint;
  publicKeyPem: string;
  keyId: string;
}

async function appendEvents(t: TestApp, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await appendAuditEvent(t.services.db, { actorName: 'test', action: 'test.event', outcome: 'success' });
}

describe.each(dialects)('audit checkpoints through the API on %s', (dialect) => {
  let t: TestApp;
  afterEach(() => t.close());

  it('signs the head for readers, and verifies the chain against a checkpoint given back', async () => {
    t = await createTestApp(dialect);
    const auditor = (await t.userWithToken('auditor')).token;
    const operator = (await t.userWithToken('operator')).token;
    await appendEvents(t, 3);
    expect((await t.request('GET', `${API}/audit/checkpoint`, { token: operator })).statusCode).toBe(403);
    const res = await t.request('GET', `${API}/audit/checkpoint`, { token: auditor });
    expect(res.statusCode).toBe(200);
    const signed = res.json<Signed>();
    expect(signed.checkpoint).toMatchObject({ seq: (await readAuditHead(t.services.db)).seq, keyId: signed.keyId });
    expect(signed.publicKeyPem).toContain('BEGIN PUBLIC KEY');
    expect(res.body).not.toContain('PRIVATE KEY');

    await appendEvents(t, 2);
    const verified = await t.request('POST', `${API}/audit/verify`, { token: auditor, body: { checkpoint: signed.checkpoint } });
    expect(verified.statusCode).toBe(200);
    expect(verified.json()).toMatchObject({ ok: true, checkpoint: { seq: signed.checkpoint.seq, at: signed.checkpoint.at } });
  });

  it('says the chain was truncated when the newest events were deleted and the head rewound, and signs nothing over it', async () => {
    t = await createTestApp(dialect);
    const admin = (await t.userWithToken('admin')).token;
    await appendEvents(t, 6);
    const { checkpoint } = (await t.request('GET', `${API}/audit/checkpoint`, { token: admin })).json<Signed>();
    await truncateAuditAfter(t.services.db, checkpoint.seq - 3);

    const given = (await t.request('POST', `${API}/audit/verify`, { token: admin, body: { checkpoint } })).json<{
      ok: boolean;
      problem: string;
    }>();
    expect(given).toMatchObject({ ok: false, seq: checkpoint.seq - 2 });
    expect(given.problem).toMatch(`the chain was truncated after event ${checkpoint.seq - 3}`);
    // The server's own newest checkpoint catches it without being given one (after the audit.verify event just written).
    const own = (await t.request('GET', `${API}/audit/verify`, { token: admin })).json<{ ok: boolean; problem: string }>();
    expect(own).toMatchObject({ ok: false, seq: checkpoint.seq - 1 });
    expect(own.problem).toMatch(
      `the chain was truncated after event ${checkpoint.seq - 2}: the checkpoint of ${checkpoint.at} signed event ${checkpoint.seq}`,
    );

    // Asked for a checkpoint of the rewound head, the server keeps the last good one, logs and audits why.
    const again = (await t.request('GET', `${API}/audit/checkpoint`, { token: admin })).json<Signed>();
    expect(again.checkpoint).toEqual(checkpoint);
    expect(t.logs.text).toContain('The audit chain does not verify');
    const refused = (await t.request('GET', `${API}/audit/events?action=audit.checkpoint_refused`, { token: admin })).json<{
      items: { details: { problem: string } }[];
    }>();
    expect(refused.items).toHaveLength(1);
    expect(refused.items[0]?.details.problem).toMatch(/^the chain was truncated after event \d+/);
  });

  it('refuses a checkpoint forged with another key, and says which key signed it', async () => {
    t = await createTestApp(dialect);
    const admin = (await t.userWithToken('admin')).token;
    const { keyId } = (await t.request('GET', `${API}/audit/checkpoint`, { token: admin })).json<Signed>();
    const forger = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const forged = signAuditCheckpoint({ seq: 1, hash: 'a'.repeat(64) }, forger);
    const res = await t.request('POST', `${API}/audit/verify`, { token: admin, body: { checkpoint: forged } });
    expect(res.statusCode).toBe(400);
    expect(errorOf(res).issues).toEqual([
      {
        path: 'checkpoint',
        message: `The checkpoint cannot be trusted: it was signed by key ${forged.keyId}, not by the key you gave (${keyId}).`,
      },
    ]);
    const claimed = await t.request('POST', `${API}/audit/verify`, { token: admin, body: { checkpoint: { ...forged, keyId } } });
    expect(errorOf(claimed).message).toBe('The checkpoint cannot be trusted: its signature does not verify: it was altered or forged.');
  });
});
