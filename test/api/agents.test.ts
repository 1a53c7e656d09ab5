import { generateKeyPairSync } from 'node:crypto';
import { allAuditEvents, hashToken, listAuditEvents } from '@gatehouse/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { API, createInventory, errorOf } from '../support/api-helpers.js';
import { dialects } from '../support/db.js';

const publicKeyPem = () => generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();

describe.each(dialects)('agent enrollment on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  let operator: string;
  let address = 0;
  /** Each enrollment from its own address: the route's rate limit is per address. */
  const nextAddress = () => `10.0.${Math.floor(++address / 250)}.${(address % 250) + 1}`;
  const tokens: string[] = [];

  beforeAll(async () => {
    t = await createTestApp(dialect, {}, { tls: true });
    admin = (await t.userWithToken('admin')).token;
    operator = (await t.userWithToken('operator')).token;
  });
  afterAll(() => t.close());

  const device = async (name: string) => (await createInventory(t, admin, { project: `p-${name}`, device: name })).deviceId;
  const newToken = async (deviceId: string, body: Record<string, unknown> = {}) => {
    const res = await t.request('POST', `${API}/devices/${deviceId}/agent-tokens`, { token: admin, body });
    expect(res.statusCode, res.body).toBe(201);
    const answer = res.json<{ token: string; expiresAt: string; installCommand: string }>();
    tokens.push(answer.token);
    return answer;
  };
  const enroll = (token: string, hostname = 'web-1') =>
    t.request('POST', `${API}/agents/enroll`, {
      body: { token, publicKey: publicKeyPem(), hostname, version: '0.1.0' },
      remoteAddress: nextAddress(),
    });
  const failures = async (deviceId?: string) =>
    (await listAuditEvents(t.database.db, { action: 'agent.enroll', outcome: 'failure', limit: 1000 }))
      .filter((e) => deviceId === undefined || e.targetId === deviceId)
      .map((e) => e.details['reason']);

  it('shows a token once, with the install command pinning the server, and keeps only its hash', async () => {
    const deviceId = await device('token-once');
    const before = Date.now();
    const answer = await newToken(deviceId);
    expect(answer.token).toMatch(/^ghj_[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(answer.expiresAt) - before).toBeGreaterThan(59 * 60_000);
    expect(Date.parse(answer.expiresAt) - before).toBeLessThanOrEqual(60 * 60_000 + 5000);
    expect(answer.installCommand).toMatch(
      new RegExp(
        `^printf '%s\\\\n' ${answer.token} \\| gatehouse agent enroll --server https://[^ ]+:\\d+ --server-fingerprint sha256:[0-9a-f]{64} --token-stdin$`,
      ),
    );
    expect(answer.installCommand).toContain(t.services.serverSpkiFingerprint!);
    const rows = await t.database.db.kysely.selectFrom('agent_join_tokens').selectAll().where('device_id', '=', deviceId).execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]?.token_hash).toBe(hashToken(answer.token));
    expect(JSON.stringify(rows)).not.toContain(answer.token.slice(4));
    const shown = (await t.request('GET', `${API}/devices/${deviceId}/agent`, { token: admin })).json<unknown>();
    expect(shown).toEqual({ agent: null, pendingTokens: 1 });
  });

  it('limits a token to a day, and only admins create them', async () => {
    const deviceId = await device('token-limits');
    const tooLong = await t.request('POST', `${API}/devices/${deviceId}/agent-tokens`, { token: admin, body: { expiresInMinutes: 1441 } });
    expect(errorOf(tooLong).issues?.[0]?.path).toBe('expiresInMinutes');
    const day = await newToken(deviceId, { expiresInMinutes: 1440 });
    expect(Date.parse(day.expiresAt) - Date.now()).toBeGreaterThan(1439 * 60_000);
    const byOperator = await t.request('POST', `${API}/devices/${deviceId}/agent-tokens`, { token: operator, body: {} });
    expect(byOperator.statusCode).toBe(403);
  });

  it('enrolls an agent with a token and refuses the token a second time', async () => {
    const deviceId = await device('enroll-once');
    const { token } = await newToken(deviceId);
    const ok = await enroll(token);
    expect(ok.statusCode, ok.body).toBe(201);
    const enrolled = ok.json<{ agentId: string; deviceId: string; deviceName: string }>();
    expect(enrolled).toMatchObject({ deviceId, deviceName: 'enroll-once' });
    const again = await enroll(token);
    expect(again.statusCode).toBe(401);
    const shown = (await t.request('GET', `${API}/devices/${deviceId}/agent`, { token: admin })).json<{
      agent: { id: string; fingerprint: string; linkState: string; revokedAt: string | null; hostname: string };
      pendingTokens: number;
    }>();
    expect(shown.agent).toMatchObject({ id: enrolled.agentId, linkState: 'never', revokedAt: null, hostname: 'web-1' });
    expect(shown.agent.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(shown.pendingTokens).toBe(0);
    expect(await failures(deviceId)).toEqual(['used_token']);
    const success = await listAuditEvents(t.database.db, { action: 'agent.enrolled', targetId: deviceId, limit: 10 });
    expect(success.map((e) => e.details['agentId'])).toEqual([enrolled.agentId]);
  });

  it('refuses an expired, a forged and a malformed token alike, and audits why', async () => {
    const deviceId = await device('refusals');
    const { token } = await newToken(deviceId);
    await t.database.db.kysely
      .updateTable('agent_join_tokens')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where('token_hash', '=', hashToken(token))
      .execute();
    const expired = await enroll(token);
    const forged = await enroll(`ghj_${'A'.repeat(43)}`);
    const malformed = await enroll('not-a-token');
    const messages = [expired, forged, malformed].map((res) => {
      expect(res.statusCode).toBe(401);
      return errorOf(res).message;
    });
    expect(new Set(messages).size).toBe(1);
    expect(await failures(deviceId)).toEqual(['expired_token']);
    const reasons = await failures();
    expect(reasons).toEqual(expect.arrayContaining(['unknown_token', 'malformed_token']));
    expect((await t.request('GET', `${API}/devices/${deviceId}/agent`, { token: admin })).json()).toEqual({
      agent: null,
      pendingTokens: 0,
    });
  });

  it('refuses a key that is not Ed25519, naming the field', async () => {
    const deviceId = await device('rsa-key');
    const { token } = await newToken(deviceId);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const res = await t.request('POST', `${API}/agents/enroll`, {
      body: { token, publicKey: rsa, hostname: 'h', version: '1' },
      remoteAddress: nextAddress(),
    });
    expect(errorOf(res).issues?.[0]?.path).toBe('publicKey');
    // The token was not used by a refused request.
    expect((await t.request('GET', `${API}/devices/${deviceId}/agent`, { token: admin })).json()).toMatchObject({ pendingTokens: 1 });
  });

  it('accepts an OpenSSH ed25519 line with the same fingerprint as its PEM', async () => {
    const deviceId = await device('openssh-key');
    const { token } = await newToken(deviceId);
    const { publicKey } = generateKeyPairSync('ed25519');
    const raw = publicKey.export({ type: 'spki', format: 'der' }).subarray(-32);
    const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
    const line = `ssh-ed25519 ${Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]).toString('base64')} agent`;
    const res = await t.request('POST', `${API}/agents/enroll`, {
      body: { token, publicKey: line, hostname: 'h', version: '1' },
      remoteAddress: nextAddress(),
    });
    expect(res.statusCode, res.body).toBe(201);
    const stored = await t.services.agents.get(res.json<{ agentId: string }>().agentId);
    expect(stored?.publicKey).toBe(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  });

  it('enrolls exactly one agent of ten enrollments with one token at once', async () => {
    const deviceId = await device('ten-at-once');
    const { token } = await newToken(deviceId);
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => enroll(token, `racer-${i}`)));
    const codes = answers.map((a) => a.statusCode).sort();
    expect(codes).toEqual([201, 401, 401, 401, 401, 401, 401, 401, 401, 401]);
    const agents = await t.database.db.kysely.selectFrom('agents').selectAll().where('device_id', '=', deviceId).execute();
    expect(agents).toHaveLength(1);
    const used = await t.database.db.kysely.selectFrom('agent_join_tokens').selectAll().where('device_id', '=', deviceId).execute();
    expect(used[0]?.used_by_agent).toBe(agents[0]?.id);
    expect(await failures(deviceId)).toEqual(Array.from({ length: 9 }, () => 'used_token'));
  });

  it('revokes an agent: the device shows it, its token stays used, and a new token enrolls again', async () => {
    const deviceId = await device('revoke');
    const { token } = await newToken(deviceId);
    const agentId = (await enroll(token)).json<{ agentId: string }>().agentId;
    // While the agent is enrolled, no new token is handed out.
    const early = await t.request('POST', `${API}/devices/${deviceId}/agent-tokens`, { token: admin, body: {} });
    expect(errorOf(early).code).toBe('CONFLICT');
    expect((await t.request('POST', `${API}/agents/${agentId}/revoke`, { token: operator })).statusCode).toBe(403);
    const revoked = await t.request('POST', `${API}/agents/${agentId}/revoke`, { token: admin });
    expect(revoked.statusCode, revoked.body).toBe(204);
    expect(errorOf(await t.request('POST', `${API}/agents/${agentId}/revoke`, { token: admin })).code).toBe('CONFLICT');
    const shown = (await t.request('GET', `${API}/devices/${deviceId}/agent`, { token: admin })).json<{
      agent: { id: string; revokedAt: string | null };
    }>();
    expect(shown.agent.id).toBe(agentId);
    expect(shown.agent.revokedAt).not.toBeNull();
    const audited = await listAuditEvents(t.database.db, { action: 'agent.revoked', targetId: deviceId, limit: 10 });
    expect(audited.map((e) => e.details['agentId'])).toEqual([agentId]);

    expect((await enroll(token)).statusCode).toBe(401);
    const fresh = await newToken(deviceId);
    const back = await enroll(fresh.token);
    expect(back.statusCode, back.body).toBe(201);
    const now = (await t.request('GET', `${API}/devices/${deviceId}/agent`, { token: admin })).json<{
      agent: { id: string; revokedAt: string | null };
    }>();
    expect(now.agent).toMatchObject({ id: back.json<{ agentId: string }>().agentId, revokedAt: null });
  });

  it("shows a device's agent to staff who may see the device, and to no one else", async () => {
    const deviceId = await device('visibility');
    const auditor = (await t.userWithToken('auditor')).token;
    expect((await t.request('GET', `${API}/devices/${deviceId}/agent`, { token: auditor })).statusCode).toBe(200);
    // The operator has no grant on this device: it answers as one that does not exist.
    expect((await t.request('GET', `${API}/devices/${deviceId}/agent`, { token: operator })).statusCode).toBe(404);
    expect((await t.request('GET', `${API}/devices/${deviceId}/agent`)).statusCode).toBe(401);
  });

  it('writes no token into the log, the audit log or any later answer', async () => {
    expect(tokens.length).toBeGreaterThan(5);
    const events = [];
    for await (const e of allAuditEvents(t.database.db)) events.push(e);
    expect(events.some((e) => e.action === 'agent.enrolled')).toBe(true);
    const audit = JSON.stringify(events);
    const agentAnswers = await t.database.db.kysely.selectFrom('devices').select('id').execute();
    const later = await Promise.all(agentAnswers.map((d) => t.request('GET', `${API}/devices/${d.id}/agent`, { token: admin })));
    for (const token of tokens) {
      const secret = token.slice(4);
      expect(t.logs.text).not.toContain(secret);
      expect(audit).not.toContain(secret);
      for (const res of later) expect(res.body).not.toContain(secret);
    }
  });
});
