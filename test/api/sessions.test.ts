import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gatewaySession, type GatewaySession } from '@gatehouse/api';
import { decodeRfbRecording, encodeRfbFrame, encodeRfbHeader, RFB_RECORDING_MEDIA_TYPE } from '@gatehouse/core';
import { listAuditEvents, type GatewaySessionInput } from '@gatehouse/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API } from '../support/api-helpers.js';
import type { TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';
import { createSessionsApp, sessionRow } from '../support/session-rows.js';
import { testRfbHeader } from '../support/rfb-header.js';

/** Sessions as the API answers them: every kind the gateway records, file operations, recordings. */
describe.each(dialects)('sessions API on %s', (dialect) => {
  let t: TestApp;
  let auditor: string;
  let deviceId: string;
  const row = (over: Partial<GatewaySessionInput>) => sessionRow(deviceId, over);

  beforeAll(async () => {
    ({ t, auditor, deviceId } = await createSessionsApp(dialect));
  });
  afterAll(() => t.close());

  it('answers every kind of session the gateway records, a forward with its destination too', async () => {
    const forward = row({ kind: 'forward', command: '127.0.0.1:5432' });
    await t.gatewaySessions.start(forward);
    await t.gatewaySessions.end(forward.id, {
      endedAt: new Date().toISOString(),
      bytesIn: 4,
      bytesOut: 4,
      result: 'success',
      exitStatus: null,
      reason: null,
    });
    for (const kind of ['shell', 'exec', 'sftp', 'connection'] as const) await t.gatewaySessions.start(row({ kind }));

    const list = await t.request('GET', `${API}/sessions?limit=10`, { token: auditor });
    expect(list.statusCode, list.body).toBe(200);
    const page = list.json<{ items: GatewaySession[]; total: number }>();
    expect(page.total).toBe(5);
    expect(page.items.map((s) => s.kind).sort()).toEqual(['connection', 'exec', 'forward', 'sftp', 'shell']);
    for (const s of page.items) expect(gatewaySession.strict().safeParse(s).success).toBe(true);

    const shown = (await t.request('GET', `${API}/sessions/${forward.id}`, { token: auditor })).json<GatewaySession>();
    expect(shown).toMatchObject({ kind: 'forward', command: '127.0.0.1:5432', result: 'success', recorded: false, bytesIn: 4 });
    expect((await t.request('GET', `${API}/sessions?result=active`, { token: auditor })).json<{ total: number }>().total).toBe(4);
  });

  it("shows a live session's bytes as the gateway reports them, keeps the final ones after its end, and counts and filters transfers", async () => {
    const sftp = row({ kind: 'sftp', device_name: 'files-1' });
    await t.gatewaySessions.start(sftp);
    const shown = async () => (await t.request('GET', `${API}/sessions/${sftp.id}`, { token: auditor })).json<GatewaySession>();
    // Reports from several channels at once all land; the row holds one of them.
    await Promise.all([1, 2, 3].map((n) => t.gatewaySessions.progress(sftp.id, { bytesIn: n * 1000, bytesOut: n * 10 })));
    expect([1000, 2000, 3000]).toContain((await shown()).bytesIn);
    await t.gatewaySessions.progress(sftp.id, { bytesIn: 5000, bytesOut: 50 });
    expect(await shown()).toMatchObject({ result: 'active', bytesIn: 5000, bytesOut: 50, uploads: 0, downloads: 0 });
    const op = (o: string, result: 'success' | 'failure' = 'success') => ({
      at: new Date().toISOString(),
      op: o,
      path: '/tmp/x',
      target: null,
      bytes: 10,
      result,
      error: result === 'failure' ? 'Permission denied' : null,
    });
    // Two uploads and a download finished at once; a failed upload and listings are not transfers.
    await Promise.all(['upload', 'upload', 'download', 'list'].map((o) => t.gatewaySessions.addFileOperation(sftp.id, op(o))));
    await t.gatewaySessions.addFileOperation(sftp.id, op('upload', 'failure'));
    expect(await shown()).toMatchObject({ uploads: 2, downloads: 1 });
    const end = {
      endedAt: new Date().toISOString(),
      bytesIn: 6000,
      bytesOut: 60,
      result: 'success',
      exitStatus: null,
      reason: null,
    } as const;
    // The end answers the ended row with its transfer counts (from the update itself), as a read would.
    const ended = await t.gatewaySessions.end(sftp.id, end);
    expect(ended).toMatchObject({ result: 'success', bytesIn: 6000, bytesOut: 60, uploads: 2, downloads: 1 });
    expect(ended).toEqual(await t.gatewaySessions.find(sftp.id));
    // Ended already: the row as it stands, unchanged.
    expect(await t.gatewaySessions.end(sftp.id, { ...end, bytesIn: 1, result: 'failure' })).toEqual(ended);
    // A report that arrives after the end does not change the final counts.
    await t.gatewaySessions.progress(sftp.id, { bytesIn: 1, bytesOut: 1 });
    expect(await shown()).toMatchObject({ result: 'success', bytesIn: 6000, bytesOut: 60 });

    const quiet = row({ kind: 'sftp', device_name: 'files-1' });
    await t.gatewaySessions.start(quiet);
    const list = (q: string) =>
      t.request('GET', `${API}/sessions?device=files-1${q}`, { token: auditor }).then((r) => r.json<{ items: GatewaySession[] }>().items);
    expect((await list('')).map((s) => s.id).sort()).toEqual([sftp.id, quiet.id].sort());
    expect((await list('&transfers=true')).map((s) => s.id)).toEqual([sftp.id]);
    expect((await list('&transfers=true')).map((s) => [s.uploads, s.downloads])).toEqual([[2, 1]]);
  });

  it('hands out a recording as asciicast with its headers, and audits the read', async () => {
    const relative = `${randomUUID()}.cast`;
    const dir = path.join(t.services.config.dataDir, 'recordings');
    mkdirSync(dir, { recursive: true });
    const cast = '{"version":2,"width":80,"height":24}\n[0.1,"o","hi"]\n';
    writeFileSync(path.join(dir, relative), cast);
    const recorded = row({ recording: relative });
    await t.gatewaySessions.start(recorded);

    const res = await t.request('GET', `${API}/sessions/${recorded.id}/recording`, { token: auditor });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-asciicast');
    expect(res.headers['content-length']).toBe(String(Buffer.byteLength(cast)));
    expect(res.headers['content-disposition']).toBe(`attachment; filename="${recorded.id}.cast"`);
    expect(res.body).toBe(cast);
    const reads = await listAuditEvents(t.database.db, { action: 'session.recording_read', limit: 10 });
    expect(reads.map((e) => e.targetId)).toContain(recorded.id);
    expect((await t.request('GET', `${API}/sessions/${randomUUID()}/recording`, { token: auditor })).statusCode).toBe(404);
  });

  it("hands out a desktop session's recording as RFB, and says which format each session's recording is", async () => {
    const dir = path.join(t.services.config.dataDir, 'recordings', '2026-12-06');
    mkdirSync(dir, { recursive: true });
    const id = randomUUID();
    const header = encodeRfbHeader(testRfbHeader({ width: 640, height: 480, name: 'desk' }));
    const rfb = Buffer.concat([header, encodeRfbFrame(5, Buffer.from([2]))]);
    writeFileSync(path.join(dir, `${id}.rfb`), rfb);
    await t.gatewaySessions.start(row({ id, kind: 'vnc', recording: `2026-12-06/${id}.rfb` }));
    const cast = row({ recording: `${randomUUID()}.cast` });
    await t.gatewaySessions.start(cast);

    const shown = (await t.request('GET', `${API}/sessions/${id}`, { token: auditor })).json<GatewaySession>();
    expect(shown).toMatchObject({ kind: 'vnc', recorded: true, recordingFormat: 'rfb' });
    expect((await t.request('GET', `${API}/sessions/${cast.id}`, { token: auditor })).json<GatewaySession>().recordingFormat).toBe(
      'asciicast',
    );
    const unrecorded = row({ kind: 'rdp' });
    await t.gatewaySessions.start(unrecorded);
    expect((await t.request('GET', `${API}/sessions/${unrecorded.id}`, { token: auditor })).json<GatewaySession>().recordingFormat).toBe(
      null,
    );

    const res = await t.request('GET', `${API}/sessions/${id}/recording`, { token: auditor });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(RFB_RECORDING_MEDIA_TYPE);
    expect(res.headers['content-disposition']).toBe(`attachment; filename="${id}.rfb"`);
    expect(res.rawPayload.equals(rfb)).toBe(true);
    expect(decodeRfbRecording(new Uint8Array(res.rawPayload)).frames).toHaveLength(1);
  });

  it("shows an operator their own sessions and recordings, and answers another user's as not found", async () => {
    const me = await t.userWithToken('operator');
    const other = await t.userWithToken('operator');
    const dir = path.join(t.services.config.dataDir, 'recordings');
    mkdirSync(dir, { recursive: true });
    const recordingOf = (name: string) => {
      writeFileSync(path.join(dir, name), '{"version":2,"width":80,"height":24}\n[0.1,"o","hi"]\n');
      return name;
    };
    const mine = row({ user_id: me.id, username: me.username, kind: 'sftp', recording: recordingOf(`${randomUUID()}.cast`) });
    const theirs = row({ user_id: other.id, username: other.username, recording: recordingOf(`${randomUUID()}.cast`) });
    await t.gatewaySessions.start(mine);
    await t.gatewaySessions.start(theirs);
    await t.gatewaySessions.addFileOperation(mine.id, {
      at: new Date().toISOString(),
      op: 'upload',
      path: '/tmp/a.txt',
      target: null,
      bytes: 3,
      result: 'success',
      error: null,
    });
    const as = (path: string, token = me.token) => t.request('GET', `${API}${path}`, { token });

    const list = await as('/sessions?limit=500');
    expect(list.statusCode, list.body).toBe(200);
    const page = list.json<{ items: GatewaySession[]; total: number }>();
    expect(page.items.map((s) => s.id)).toEqual([mine.id]);
    expect(page.total).toBe(1);
    // Asking by another user's id or name does not widen it.
    expect((await as(`/sessions?userId=${other.id}`)).json<{ total: number }>().total).toBe(0);
    expect((await as(`/sessions?user=${other.username}`)).json<{ total: number }>().total).toBe(0);

    expect((await as(`/sessions/${mine.id}`)).json<GatewaySession>()).toMatchObject({ id: mine.id, recorded: true });
    const ops = await as(`/sessions/${mine.id}/file-operations`);
    expect(ops.json<{ items: { path: string }[] }>().items.map((o) => o.path)).toEqual(['/tmp/a.txt']);
    const played = await as(`/sessions/${mine.id}/recording`);
    expect(played.statusCode).toBe(200);
    expect(played.body).toContain('"hi"');

    for (const path of [`/sessions/${theirs.id}`, `/sessions/${theirs.id}/file-operations`, `/sessions/${theirs.id}/recording`]) {
      const res = await as(path);
      expect(res.statusCode, path).toBe(404);
      // The same answer as for an id that names nothing: nothing of the other session leaks.
      expect(res.body, path).not.toContain(other.username);
      expect(res.body, path).not.toContain('"hi"');
    }
    const reads = await listAuditEvents(t.database.db, { action: 'session.recording_read', limit: 100 });
    expect(reads.map((e) => e.targetId)).not.toContain(theirs.id);
    // Administrators and auditors still see both; ending a session stays with administrators.
    const both = (await as('/sessions?limit=500', auditor)).json<{ items: GatewaySession[] }>().items.map((s) => s.id);
    expect(both).toEqual(expect.arrayContaining([mine.id, theirs.id]));
    expect((await t.request('POST', `${API}/sessions/${mine.id}/end`, { token: me.token, body: {} })).statusCode).toBe(403);
  });
});
