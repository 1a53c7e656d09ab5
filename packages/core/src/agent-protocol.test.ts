import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  AGENT_MAX_FRAME_BYTES,
  FrameReader,
  parseAgentAddress,
  parseAgentFrame,
  parseGatewayFrame,
  signAgentGateways,
  signAgentGrant,
  verifyAgentGateways,
  verifyAgentGrant,
} from './agent-protocol.js';

const server = generateKeyPairSync('ed25519');
const serverKey = server.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
const other = generateKeyPairSync('ed25519');
const grantFor = { agentId: 'a1', deviceId: 'd1', accountId: 'acc1', osUser: 'deploy', userId: 'u1', userName: 'alice' };

describe('agent grants', () => {
  it('verifies a grant the server signed, for this agent and OS user only', () => {
    const token = signAgentGrant(grantFor, server.privateKey);
    const ok = verifyAgentGrant(token, { serverKey, agentId: 'a1', osUser: 'deploy' });
    expect(ok.ok && ok.grant.userName).toBe('alice');
    expect(verifyAgentGrant(token, { serverKey, agentId: 'a2', osUser: 'deploy' })).toEqual({
      ok: false,
      reason: 'a grant for another agent',
    });
    expect(verifyAgentGrant(token, { serverKey, agentId: 'a1', osUser: 'root' })).toEqual({
      ok: false,
      reason: 'a grant for another OS user',
    });
  });

  it('refuses a grant signed by another key, altered, or expired', () => {
    const forged = signAgentGrant(grantFor, other.privateKey);
    expect(verifyAgentGrant(forged, { serverKey, agentId: 'a1', osUser: 'deploy' }).ok).toBe(false);
    const token = signAgentGrant(grantFor, server.privateKey);
    const [v, body, sig] = token.split('.');
    const altered = JSON.parse(Buffer.from(body as string, 'base64url').toString()) as Record<string, unknown>;
    altered.osUser = 'root';
    const tampered = `${v}.${Buffer.from(JSON.stringify(altered)).toString('base64url')}.${sig}`;
    expect(verifyAgentGrant(tampered, { serverKey, agentId: 'a1', osUser: 'root' })).toEqual({
      ok: false,
      reason: 'the signature is not the server’s',
    });
    const old = signAgentGrant(grantFor, server.privateKey, new Date(Date.now() - 10 * 60_000));
    expect(verifyAgentGrant(old, { serverKey, agentId: 'a1', osUser: 'deploy' })).toEqual({ ok: false, reason: 'an expired grant' });
    expect(verifyAgentGrant('v1.abc.def', { serverKey, agentId: 'a1', osUser: 'deploy' }).ok).toBe(false);
  });
});

describe('agent gateway lists', () => {
  it('round-trips and refuses another agent’s list', () => {
    const token = signAgentGateways(
      {
        agentId: 'a1',
        segment: null,
        issuedAt: new Date().toISOString(),
        gateways: [{ name: 'default', address: '127.0.0.1:7996', key: serverKey }],
      },
      server.privateKey,
    );
    const v = verifyAgentGateways(token, { serverKey, agentId: 'a1' });
    expect(v.ok && v.list.gateways[0]?.address).toBe('127.0.0.1:7996');
    expect(verifyAgentGateways(token, { serverKey, agentId: 'a2' }).ok).toBe(false);
  });
});

describe('agent frames', () => {
  it('parses the known frames and refuses unknown or malformed ones', () => {
    expect(parseAgentFrame('{"t":"hello","v":1,"agentId":"a","version":"0.1.0","hostname":"h"}').ok).toBe(true);
    expect(parseAgentFrame('{"t":"exec","cmd":"id"}')).toEqual({ ok: false, reason: 'an unknown frame type "exec"' });
    expect(parseAgentFrame('not json').ok).toBe(false);
    expect(parseAgentFrame('[1]').ok).toBe(false);
    expect(parseGatewayFrame('{"t":"open"}').ok).toBe(false);
    expect(parseGatewayFrame('{"t":"open","ref":"r1"}')).toEqual({ ok: true, frame: { t: 'open', ref: 'r1' } });
  });

  it('splits lines and gives up on an oversized one without buffering it', () => {
    const reader = new FrameReader();
    expect(reader.push('{"t":"ping","n":1}\n{"t":')).toEqual({ ok: true, lines: ['{"t":"ping","n":1}'] });
    expect(reader.push('"ping","n":2}\nSSH-2.0')).toEqual({ ok: true, lines: ['{"t":"ping","n":2}'] });
    expect(reader.rest()).toBe('SSH-2.0');
    const big = new FrameReader();
    expect(big.push('x'.repeat(AGENT_MAX_FRAME_BYTES)).ok).toBe(false);
    expect(big.push('\n').ok).toBe(false);
  });

  it('parses addresses', () => {
    expect(parseAgentAddress('127.0.0.1:7996')).toEqual({ host: '127.0.0.1', port: 7996 });
    expect(parseAgentAddress('[::1]:443')).toEqual({ host: '::1', port: 443 });
    expect(parseAgentAddress('gw.example:0')).toBeUndefined();
    expect(parseAgentAddress('nope')).toBeUndefined();
  });
});
