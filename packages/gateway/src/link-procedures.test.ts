import { describe, expect, it } from 'vitest';
import {
  answerLinkCall,
  callLinkProcedure,
  LinkCallError,
  linkProcedures,
  type LinkProcedureHandlers,
  type LinkTransport,
} from './link-procedures.js';

const target = { accountId: 'a1', deviceId: 'd1' };
const stored = { algorithm: 'ssh-ed25519', fingerprint: 'SHA256:abc' };

/** The server's end with one real handler; the rest are never reached here. */
function serverWith(checkHostKey: LinkProcedureHandlers<string>['checkHostKey']): LinkProcedureHandlers<string> {
  const unused = () => Promise.reject(new Error('not called in this test'));
  return {
    authenticate: unused,
    authenticateKey: unused,
    signInRefused: unused,
    admitKex: unused,
    authorize: unused,
    fetchCredential: unused,
    authorizeForward: unused,
    forwardRefused: unused,
    checkHostKey,
    sessionStarted: unused,
    fileOperation: unused,
    sessionProgress: unused,
    sessionEnded: unused,
    connectionFailed: unused,
    agentHello: unused,
    agentLinkChanged: unused,
    agentContact: unused,
  };
}

describe('the gateway link procedure table', () => {
  it('carries a call end to end with named arguments, leaving out fields the schema does not name', async () => {
    const seen: unknown[] = [];
    const server = serverWith(async (input, gateway) => {
      seen.push(input, gateway);
      return { ok: false, stored };
    });
    const send: LinkTransport = (procedure, input) => answerLinkCall(server, procedure, JSON.parse(JSON.stringify(input)), 'a1');
    const answer = await callLinkProcedure(send, 'checkHostKey', { target: { ...target, host: '10.0.0.5' } as typeof target, key: stored });
    expect(answer).toEqual({ ok: false, stored });
    expect(seen).toEqual([{ target, key: stored }, 'a1']);
  });

  it("drops a runbook context a remote gateway claims for its user: the server's runbook connections never cross a link", async () => {
    const seen: unknown[] = [];
    const server: LinkProcedureHandlers<string> = {
      ...serverWith(() => Promise.reject(new Error('not called'))),
      fetchCredential: async (input) => {
        seen.push(input);
        return { allow: false, message: 'no' };
      },
    };
    const claimed = { id: 'u1', username: 'alice', ticket: 't1', runbook: { runId: 'r1', direct: true, credentialId: 'c1' } };
    await answerLinkCall(server, 'fetchCredential', { user: claimed, target }, 'gw1');
    expect(seen).toEqual([{ user: { id: 'u1', username: 'alice', ticket: 't1' }, target }]);
  });

  it("takes a session's recording named after it: asciicast, or a desktop's .rfb", () => {
    const recording = linkProcedures.sessionStarted.input.shape.recording;
    const id = '0b8a6a53-7c5d-4bd5-9d8e-2f3f1d5e8a11';
    expect(recording.safeParse(`2026-12-06/${id}.cast`).success).toBe(true);
    expect(recording.safeParse(`2026-12-06/${id}.rfb`).success).toBe(true);
    expect(recording.safeParse(`2026-12-06/${id}.txt`).success).toBe(false);
    expect(recording.safeParse(`../${id}.rfb`).success).toBe(false);
  });

  describe("the caller's end (the gateway)", () => {
    it('refuses a malformed input before sending it, naming the procedure and the field', async () => {
      let sent = false;
      const send: LinkTransport = () => {
        sent = true;
        return Promise.resolve(null);
      };
      const call = callLinkProcedure(send, 'sessionEnded', {
        sessionId: '9b2e4a9c-6a5b-4c1f-9f5e-2f1d3c4b5a69',
        end: { endedAt: new Date().toISOString(), bytesIn: -1, bytesOut: 0, result: 'success', exitStatus: 0, reason: null },
      });
      await expect(call).rejects.toThrow(LinkCallError);
      await expect(call).rejects.toThrow(/^The input of link call sessionEnded is malformed: end\.bytesIn: /);
      expect(sent).toBe(false);
    });

    it('refuses a malformed answer from the server, naming the procedure and the field', async () => {
      const send: LinkTransport = () => Promise.resolve({ ok: true, user: { id: 'u1' } });
      const call = callLinkProcedure(send, 'authenticate', { username: 'alice', password: 'pw', remoteAddress: '10.0.0.9' });
      await expect(call).rejects.toMatchObject({
        name: 'LinkCallError',
        code: 'BAD_GATEWAY',
        procedure: 'authenticate',
        issues: expect.arrayContaining([expect.objectContaining({ path: 'user.username' })]) as unknown,
      });
      await expect(call).rejects.toThrow(/^The output of link call authenticate is malformed: /);
    });
  });

  describe("the server's end", () => {
    it('refuses a malformed input without running the handler, naming the procedure and the field', async () => {
      let ran = false;
      const server = serverWith(async () => {
        ran = true;
        return { ok: true, firstUse: false };
      });
      const call = answerLinkCall(server, 'checkHostKey', { target: { accountId: 'a1', deviceId: 7 }, key: stored }, 'a1');
      await expect(call).rejects.toMatchObject({ code: 'VALIDATION_FAILED', procedure: 'checkHostKey' });
      await expect(call).rejects.toThrow(/^The input of link call checkHostKey is malformed: target\.deviceId: /);
      expect(ran).toBe(false);
    });

    it('refuses to send a malformed answer, naming the procedure and the field', async () => {
      const server = serverWith(async () => ({ ok: false, stored: { algorithm: 'ssh-ed25519' } }) as never);
      const call = answerLinkCall(server, 'checkHostKey', { target, key: stored }, 'a1');
      await expect(call).rejects.toThrow(/^The output of link call checkHostKey is malformed: /);
      await expect(call).rejects.toMatchObject({ procedure: 'checkHostKey', code: 'BAD_GATEWAY' });
    });

    it('refuses an unknown procedure by name', async () => {
      await expect(
        answerLinkCall(
          serverWith(() => Promise.reject(new Error('no'))),
          'dropTables',
          {},
          'a1',
        ),
      ).rejects.toThrow('Unknown link call "dropTables".');
    });
  });
});
